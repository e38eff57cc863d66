"""A local market API that speaks Alpha Vantage's wire format, deterministically, with faults.

The ingestion code runs unchanged against it: provider ``synthetic`` is the Alpha Vantage client
pointed at this server's URL. It answers ``GET /query`` for TIME_SERIES_DAILY,
TIME_SERIES_DAILY_ADJUSTED (outputsize compact/full), OVERVIEW, GLOBAL_QUOTE, SPLITS and DIVIDENDS.

Prices are a geometric Brownian motion per symbol on the XNYS sessions, seeded by
``(seed, symbol, stream)``: a bar depends only on the seed, the symbol and its date (the adjusted
close also on the as-of date, as with the real API: a later dividend or split rescales earlier
adjusted closes). OHLC relations hold (low <= open, close <= high), volumes follow the moves, and
about half the symbols pay quarterly dividends; any symbol splits now and then (2, 3 or 4 for 1)
or reverse-splits (1 for 2 or 1 for 10). The events are the same on every endpoint: the split
coefficient and dividend amount of the adjusted series, and SPLITS and DIVIDENDS (every split up to
the as-of date, every dividend declared by then). The adjusted close follows the usual (CRSP)
convention: a dividend d paid on a day whose previous close is c scales earlier prices by 1 - d / c,
a split of factor s by 1 / s.

Rate limits and faults are configurable (:class:`MarketApiConfig`, :class:`Fault`) to exercise the
client: 429 bursts, 5xx, slow answers and timeouts, dropped connections, truncated JSON, the
HTTP-200 error bodies (``Error Message``, ``Note``, ``Information``), missing and extra fields.

Start it in-process (tests, the local runtime)::

    with running(MarketApiConfig(seed=7)) as server:
        os.environ["ALPHAVANTAGE_BASE_URL"] = server.url

or as a process: ``python -m local.market_api --port 8765``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, urlparse

import numpy as np

from lakehouse import inputs, trading_calendar
from lakehouse.contracts import alpha_vantage as av
from lakehouse.contracts.provider_plans import PLANS, PlanName

HISTORY_START = dt.date(1999, 11, 1)  # Alpha Vantage's daily history starts here
MODEL_VERSION = 2  # part of the body cache's key: bump when the market model or the wire format changes
COMPACT_SESSIONS = 100
TRADING_DAYS = 252
DOCS = "https://www.alphavantage.co/documentation/"

FaultKind = Literal[
    "http_429", "http_500", "http_503", "slow", "timeout", "reset", "truncated",
    "error_message", "note", "information", "missing_fields", "extra_fields", "burst",
]  # fmt: skip
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
FUNCTIONS = ("TIME_SERIES_DAILY", "TIME_SERIES_DAILY_ADJUSTED", "OVERVIEW", "GLOBAL_QUOTE", av.SPLITS_FUNCTION,
             av.DIVIDENDS_FUNCTION)  # fmt: skip
SPLIT_CHANCE = 1 / 2000  # per session
# Split factors by share of the splits: 2, 3 and 4 for 1, and reverse splits of 1 for 2 and 1 for 10.
SPLIT_FACTORS = ((0.45, 2.0), (0.60, 3.0), (0.75, 4.0), (0.90, 0.5), (1.0, 0.1))
DIVIDEND_DECLARED_DAYS = 14  # a dividend is declared this many days before its ex-date

NOTE_TEXT = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and "
    "500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to "
    "target a higher API call frequency."
)
INFORMATION_TEXT = (
    "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day. Please "
    "subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly "
    "remove all daily rate limits."
)
KEY_ERROR_TEXT = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)
# The messages of the plans, worded as Alpha Vantage words them (the real texts and their sources are
# kept in tests/functions/fixtures/alpha_vantage_messages.json, and a test holds these to them).
BURST_TEXT = (
    "Thank you for using Alpha Vantage! Please consider spreading out your free API requests more sparingly "
    "(1 request per second). You may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ "
    "to lift the free key rate limit (25 requests per day)."
)
PREMIUM_ENDPOINT_TEXT = (
    "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of the premium "
    "plans at https://www.alphavantage.co/premium/ to instantly unlock all premium endpoints"
)
DEMO_KEY_TEXT = (
    "The demo API key is for demo purposes only. Please claim your free API key at "
    "(https://www.alphavantage.co/support/#api-key) to explore our full API offerings. It takes fewer than 20 seconds."
)
DEMO_KEY, DEMO_SYMBOLS = "demo", frozenset({"IBM"})  # the demo key serves the documentation's examples only
QUOTE_DELAY = dt.timedelta(minutes=15)


def premium_feature_text(parameter: str, value: str, function: str) -> str:
    """The refusal of a premium parameter value (e.g. outputsize=full) on a free key."""
    return (
        f"Thank you for using Alpha Vantage! The {parameter}={value} parameter value is a premium feature for the "
        f"{function} endpoint. You may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ "
        f"to instantly unlock all premium features"
    )


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    Args:
        kind: what happens (see FAULT_KINDS).
        symbols: only requests for these symbols (None: any).
        functions: only these API functions (None: any).
        times: only the first N matching requests (None: no limit).
        ratio: probability that a matching request is hit (seeded, reproducible per request order).
        delay: seconds for `slow` and `timeout` (a timeout is a delay longer than the client waits).
    """

    kind: FaultKind
    symbols: frozenset[str] | None = None
    functions: frozenset[str] | None = None
    times: int | None = None
    ratio: float = 1.0
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"fault ratio must be within [0, 1], got {self.ratio}")
        for name in ("symbols", "functions"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))


@dataclass(frozen=True)
class MarketApiConfig:
    """Behaviour of the server.

    Args:
        seed: the market; same seed, same prices.
        api_key: if set, requests must carry exactly this key (else Alpha Vantage's key error).
        as_of: the last session served (default: the latest closed XNYS session at request time).
        calls_per_minute / calls_per_day: server-side quotas (None: unlimited).
        throttle: how the per-minute limit answers: Alpha Vantage's HTTP-200 ``{"Note"}`` or HTTP 429.
        unknown_symbols: answered as Alpha Vantage answers an unknown ticker.
        faults: injected faults, the first matching one applies.
        listed_from: every symbol listed on this date (its first session on or after it), so a
            full history is exactly the sessions since then: a data set of a chosen size
            (benchmarks). None: each symbol's own listing date.
        cache_dir: keep each rendered daily series, overview and SPLITS or DIVIDENDS answer here
            and serve it again from there (also across processes; never for a request hit by a
            fault). The server stands in for a remote API whose formatting costs the project
            nothing; benchmarks cache so that they time the client, not the stand-in.
        plan: the plan of every key (``free``, ``premium``, ``premium_realtime``): a request the
            plan does not serve gets Alpha Vantage's premium-only message, a quote entitlement it
            lacks too. None: everything is served.
        burst_per_second: more requests than this within one second get the burst message.
    """

    seed: int = 7
    api_key: str | None = None
    as_of: dt.date | None = None
    calls_per_minute: int | None = None
    calls_per_day: int | None = None
    throttle: Literal["note", "http_429"] = "note"
    unknown_symbols: frozenset[str] = frozenset()
    faults: tuple[Fault, ...] = ()
    listed_from: dt.date | None = None
    cache_dir: Path | None = None
    plan: PlanName | None = None
    burst_per_second: int | None = None


# --- the market model ------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolProfile:
    symbol: str
    listed: dt.date
    mu: float
    sigma: float
    first_price: float
    base_volume: float
    dividend_yield: float  # per year, 0 for non-payers
    dividend_phase: int
    name: str
    sector: str
    industry: str
    exchange: str
    renamed_on: dt.date | None  # SCD2 material: the name and industry change on this date


SECTORS = {
    "TECHNOLOGY": [
        "SERVICES-PREPACKAGED SOFTWARE", "ELECTRONIC COMPUTERS", "SEMICONDUCTORS & RELATED DEVICES",
    ],
    "FINANCE": ["NATIONAL COMMERCIAL BANKS", "SECURITY BROKERS, DEALERS & FLOTATION COMPANIES"],
    "LIFE SCIENCES": ["PHARMACEUTICAL PREPARATIONS", "SURGICAL & MEDICAL INSTRUMENTS & APPARATUS"],
    "ENERGY & TRANSPORTATION": ["PETROLEUM REFINING", "AIRCRAFT"],
    "TRADE & SERVICES": ["RETAIL-VARIETY STORES", "SERVICES-COMPUTER PROGRAMMING SERVICES"],
    "MANUFACTURING": ["BEVERAGES", "SOAP, DETERGENTS, CLEANG PREPARATIONS, PERFUMES, COSMETICS"],
}  # fmt: skip
SUFFIXES = ("Inc", "Corp", "Group", "Holdings", "Co")


def _rng(seed: int, symbol: str, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(symbol.encode()), zlib.crc32(stream.encode())])


@dataclass(frozen=True)
class Series:
    """Arrays over the symbol's sessions (listing .. calendar end), oldest first."""

    dates: tuple[dt.date, ...]
    iso: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    dividend: np.ndarray
    split: np.ndarray
    log_factor: np.ndarray  # cumulative log of (1 - dividend yield) / split: adjusts closes
    log_return: np.ndarray  # total return of each session


class MarketModel:
    """Deterministic prices per (seed, symbol, date)."""

    def __init__(self, seed: int = 7, calendar: str = "XNYS", listed_from: dt.date | None = None):
        self.seed = seed
        self.calendar = calendar
        self.listed_from = listed_from
        cal = trading_calendar.calendar(calendar)
        self.sessions: tuple[dt.date, ...] = tuple(
            trading_calendar.sessions(HISTORY_START, cal.last_session.date(), code=calendar)
        )
        self._index = {d: i for i, d in enumerate(self.sessions)}
        self._iso = tuple(d.isoformat() for d in self.sessions)  # shared by every series: ~60% of building one
        self.series = lru_cache(maxsize=64)(self._series)  # ~1 MB each; regenerating takes ~3 ms
        self.profile = lru_cache(maxsize=4096)(self._profile)
        self._listed_index = None
        if listed_from is not None:
            self._listed_index = next((i for i, d in enumerate(self.sessions) if d >= listed_from), None)
            if self._listed_index is None:
                raise ValueError(f"listed_from {listed_from} is after the calendar's last session")

    def _profile(self, symbol: str) -> SymbolProfile:
        rnd = random.Random(f"{self.seed}:{symbol}:profile")  # noqa: S311
        listed_index = 0 if rnd.random() < 0.4 else rnd.randrange(0, int(len(self.sessions) * 0.6))
        if self._listed_index is not None:
            listed_index = self._listed_index
        sector = rnd.choice(sorted(SECTORS))
        base = symbol.split(".")[0].split("-")[0].title()
        renamed = None
        if rnd.random() < 0.15:
            renamed = self.sessions[rnd.randrange(len(self.sessions) // 2, len(self.sessions) - 300)]
        return SymbolProfile(
            symbol=symbol,
            listed=self.sessions[listed_index],
            mu=rnd.uniform(0.04, 0.16),
            sigma=rnd.uniform(0.15, 0.45),
            first_price=round(rnd.uniform(10, 200), 2),
            base_volume=10 ** rnd.uniform(5.3, 7.5),
            dividend_yield=rnd.uniform(0.01, 0.04) if rnd.random() < 0.5 else 0.0,
            dividend_phase=rnd.randrange(63),
            name=f"{base} {rnd.choice(SUFFIXES)}",
            sector=sector,
            industry=rnd.choice(SECTORS[sector]),
            exchange=rnd.choice(("NYSE", "NASDAQ")),
            renamed_on=renamed,
        )

    def _series(self, symbol: str) -> Series:
        p = self.profile(symbol)
        start = self._index[p.listed]
        n = len(self.sessions) - start
        # One generator per stream and symbol, drawn over all sessions from HISTORY_START so that
        # a bar depends on its date only, not on the listing date or the calendar's end.
        full = len(self.sessions)

        def draw(stream: str) -> np.ndarray:
            return _rng(self.seed, symbol, stream).standard_normal(full)[start:]

        z_ret, z_open, z_high, z_low, z_vol = (draw(s) for s in ("ret", "open", "high", "low", "vol"))
        u_split = _rng(self.seed, symbol, "split").random(full)[start:]
        daily_sigma = p.sigma / np.sqrt(TRADING_DAYS)
        log_ret = (p.mu - p.sigma**2 / 2) / TRADING_DAYS + daily_sigma * z_ret
        log_ret[0] = 0.0
        idx = np.arange(start, len(self.sessions))
        split = np.ones(n)
        hits = (u_split < SPLIT_CHANCE) & (np.arange(n) > 20)
        share = u_split / SPLIT_CHANCE  # uniform on [0, 1) among the hits
        ratios = np.select([share < bound for bound, _ in SPLIT_FACTORS], [f for _, f in SPLIT_FACTORS])
        split[hits] = ratios[hits]
        # A dividend and a split never share an ex-date: the two conventions of that day differ by provider.
        yield_ = np.where(
            (p.dividend_yield > 0) & ((idx - p.dividend_phase) % 63 == 0) & (np.arange(n) > 0) & ~hits,
            p.dividend_yield / 4,
            0.0,
        )
        step = np.log1p(-yield_) - np.log(split)
        log_close = np.log(p.first_price) + np.cumsum(log_ret + step)
        close = np.exp(log_close)
        prev_close = np.concatenate([[p.first_price], close[:-1]])
        base_open = prev_close * np.exp(step)  # yesterday's close after today's dividend and split
        open_ = base_open * np.exp(0.3 * daily_sigma * z_open)
        open_[0] = p.first_price
        high = np.maximum(open_, close) * np.exp(np.abs(0.5 * daily_sigma * z_high))
        low = np.minimum(open_, close) * np.exp(-np.abs(0.5 * daily_sigma * z_low))
        shares = np.cumprod(split)
        volume = p.base_volume * shares * np.exp(0.35 * z_vol) * (1 + 2 * np.abs(log_ret) / daily_sigma)
        dividend = prev_close * yield_  # what makes 1 - dividend / previous close the day's factor
        open_, close = np.round(open_, 4), np.round(close, 4)
        high = np.maximum(np.round(high, 4), np.maximum(open_, close))
        low = np.maximum(np.minimum(np.round(low, 4), np.minimum(open_, close)), 0.0001)
        dates = self.sessions[start:]
        return Series(
            dates=dates,
            iso=self._iso[start:],
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=np.round(volume).astype(np.int64),
            dividend=np.round(dividend, 4),
            split=split,
            log_factor=np.cumsum(step),
            log_return=log_ret,
        )

    def last_bar(self, symbol: str, as_of: dt.date) -> str | None:
        s = self.series(symbol)
        last = self.last_index(s, as_of)
        return s.iso[last] if last >= 0 else None

    def last_index(self, series: Series, as_of: dt.date) -> int:
        """Index of the last bar on or before `as_of` (-1 when none)."""
        lo, hi = 0, len(series.dates)
        while lo < hi:
            mid = (lo + hi) // 2
            if series.dates[mid] <= as_of:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1

    def _window(self, symbol: str, as_of: dt.date, compact: bool) -> tuple[Series, int, int, np.ndarray]:
        s = self.series(symbol)
        last = self.last_index(s, as_of)
        first = max(0, last - COMPACT_SESSIONS + 1) if compact else 0
        # Adjusted close = close x the dividend and split factors of the sessions after it (to as_of).
        adj = s.close[first : last + 1] * np.exp(s.log_factor[last] - s.log_factor[first : last + 1])
        return s, first, last, adj

    def daily_rows(self, symbol: str, as_of: dt.date, adjusted: bool, compact: bool) -> list[tuple[str, dict]]:
        """Bars newest first, fields as Alpha Vantage formats them."""
        s, first, last, adj = self._window(symbol, as_of, compact)
        if last < 0:
            return []
        rows = []
        for k in range(last, first - 1, -1):
            values = {"open": s.open[k], "high": s.high[k], "low": s.low[k], "close": s.close[k],
                      "volume": int(s.volume[k]), "adjusted_close": adj[k - first],
                      "dividend_amount": s.dividend[k], "split_coefficient": s.split[k]}  # fmt: skip
            rows.append((s.iso[k], av.format_bar(values, adjusted=adjusted)))
        return rows

    def daily_body(self, symbol: str, as_of: dt.date, adjusted: bool, compact: bool, meta: dict[str, str]) -> bytes:
        """The same text as ``av.render_series(meta, daily_rows(...))``, formatted in bulk from the arrays."""
        s, first, last, adj = self._window(symbol, as_of, compact)
        return av.render_series_columns(meta, s.iso[first : last + 1], series_columns(s, first, last, adj),
                                        adjusted=adjusted)  # fmt: skip

    def splits(self, symbol: str, as_of: dt.date) -> list[dict[str, str]]:
        """SPLITS events effective on or before `as_of`, newest first, as Alpha Vantage prints them."""
        s = self.series(symbol)
        last = self.last_index(s, as_of)
        days = np.flatnonzero(s.split[: last + 1] != 1.0)[::-1]
        return [{"effective_date": s.iso[k], "split_factor": f"{s.split[k]:.4f}"} for k in days]

    def dividends(self, symbol: str, as_of: dt.date) -> list[dict[str, str]]:
        """DIVIDENDS events declared on or before `as_of` (ex-dates after it included), newest first."""
        s = self.series(symbol)
        declared_by = self.last_index(s, as_of + dt.timedelta(days=DIVIDEND_DECLARED_DAYS))
        events = []
        for k in np.flatnonzero(s.dividend[: declared_by + 1] > 0)[::-1]:
            ex = s.dates[k]
            record = s.dates[k + 1] if k + 1 < len(s.dates) else ex + dt.timedelta(days=1)
            events.append({
                "ex_dividend_date": s.iso[k],
                "declaration_date": (ex - dt.timedelta(days=DIVIDEND_DECLARED_DAYS)).isoformat(),
                "record_date": record.isoformat(),
                "payment_date": (ex + dt.timedelta(days=21)).isoformat(),
                "amount": f"{s.dividend[k]:.4f}",
            })  # fmt: skip
        return events

    def overview(self, symbol: str, as_of: dt.date) -> dict[str, str]:
        p = self.profile(symbol)
        s = self.series(symbol)
        last = self.last_index(s, as_of)
        close = float(s.close[last])
        year = s.close[max(0, last - 251) : last + 1]
        renamed = p.renamed_on is not None and as_of >= p.renamed_on
        name = f"{p.name.rsplit(' ', 1)[0]} Holdings Inc" if renamed else p.name
        industry = SECTORS[p.sector][-1] if renamed else p.industry
        shares = int(p.base_volume * 60)
        annual_dividend = close * p.dividend_yield
        return {
            "Symbol": symbol,
            "AssetType": "Common Stock",
            "Name": name,
            "Description": f"{name} is a synthetic company of the local market API.",
            "CIK": str(zlib.crc32(symbol.encode()) % 2_000_000),
            "Exchange": p.exchange,
            "Currency": "USD",
            "Country": "USA",
            "Sector": p.sector,
            "Industry": industry,
            "Address": "1 SYNTHETIC WAY, NEW YORK, NY, US",
            "FiscalYearEnd": "December",
            "LatestQuarter": _quarter_end(as_of).isoformat(),
            "MarketCapitalization": str(int(close * shares)),
            "PERatio": f"{15 + (zlib.crc32(symbol.encode()) % 200) / 10:.2f}",
            "DividendPerShare": f"{annual_dividend:.2f}" if p.dividend_yield else "None",
            "DividendYield": f"{p.dividend_yield:.4f}" if p.dividend_yield else "None",
            "52WeekHigh": f"{float(year.max()):.2f}",
            "52WeekLow": f"{float(year.min()):.2f}",
            "50DayMovingAverage": f"{float(s.close[max(0, last - 49) : last + 1].mean()):.2f}",
            "200DayMovingAverage": f"{float(s.close[max(0, last - 199) : last + 1].mean()):.2f}",
            "SharesOutstanding": str(shares),
        }

    def quote(self, symbol: str, now: dt.datetime) -> dict[str, str]:
        """GLOBAL_QUOTE at `now`: intraday during a session, else the last session's close."""
        cal = trading_calendar.calendar(self.calendar)
        s = self.series(symbol)
        now = now.astimezone(dt.UTC)
        today = now.date()
        ts = np.datetime64(now.replace(tzinfo=None))
        in_session = False
        if cal.is_session(today):
            opens, closes = cal.session_open(today), cal.session_close(today)
            in_session = opens.tz_convert(None).to_datetime64() <= ts < closes.tz_convert(None).to_datetime64()
        k = self.last_index(s, today if in_session else trading_calendar.latest_session(now, self.calendar))
        prev = float(s.close[k - 1]) if k > 0 else float(s.open[k])
        price, high, low, volume = float(s.close[k]), float(s.high[k]), float(s.low[k]), int(s.volume[k])
        if in_session:
            frac = float((ts - opens.tz_convert(None).to_datetime64()) / (closes - opens).to_timedelta64())
            minute = int(now.timestamp() // 60)
            noise = random.Random(f"{self.seed}:{symbol}:{minute}").gauss(0, 1)  # noqa: S311
            sigma = self.profile(symbol).sigma / np.sqrt(TRADING_DAYS)
            price = float(s.open[k]) * np.exp(
                frac * (np.log(s.close[k] / s.open[k])) + 0.3 * sigma * np.sqrt(frac * (1 - frac)) * noise
            )
            price = round(price, 4)
            high, low = max(float(s.open[k]), price), min(float(s.open[k]), price)
            volume = int(volume * frac)
        change = price - prev
        values = {
            "quote_symbol": symbol, "open": f"{s.open[k]:.4f}", "high": f"{high:.4f}", "low": f"{low:.4f}",
            "price": f"{price:.4f}", "volume": str(volume), "latest_trading_day": s.iso[k],
            "previous_close": f"{prev:.4f}", "change": f"{change:.4f}", "change_percent": f"{change / prev * 100:.4f}%",
        }  # fmt: skip
        return {wire: values[column] for wire, column in av.QUOTE_FIELDS.items()}


def _quarter_end(day: dt.date) -> dt.date:
    month = ((day.month - 1) // 3) * 3
    if month == 0:
        return dt.date(day.year - 1, 12, 31)
    return dt.date(day.year, month + 1, 1) - dt.timedelta(days=1)


def series_columns(s: Series, first: int, last: int, adjusted_close) -> dict[str, list]:
    """Bar values of sessions first..last by bronze column name, as plain Python numbers."""
    sl = slice(first, last + 1)
    return {
        "open": s.open[sl].tolist(), "high": s.high[sl].tolist(), "low": s.low[sl].tolist(),
        "close": s.close[sl].tolist(), "adjusted_close": adjusted_close.tolist(), "volume": s.volume[sl].tolist(),
        "dividend_amount": s.dividend[sl].tolist(), "split_coefficient": s.split[sl].tolist(),
    }  # fmt: skip


# --- the HTTP server -------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One request as the server saw it (the key only as present / absent)."""

    function: str | None
    symbol: str | None
    params: dict[str, str]
    key_present: bool
    status: int
    fault: str | None
    bytes: int


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    delay: float = 0.0


@dataclass
class _State:
    config: MarketApiConfig
    fault_hits: list[int] = field(default_factory=list)
    recent: deque = field(default_factory=deque)
    day_count: int = 0
    rng: random.Random = field(default_factory=random.Random)
    last_second: deque = field(default_factory=deque)


class MarketApiServer:
    """The synthetic API on a loopback port, served by a thread of this process.

    Args:
        config: behaviour; replaceable at run time with :meth:`configure`.
        host / port: where to listen; port 0 picks a free port.
    """

    def __init__(self, config: MarketApiConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self._lock = threading.Lock()
        self._state = _State(config or MarketApiConfig())
        self._reset_locked()
        self.model = _model(self._state.config)
        self.requests: list[RequestRecord] = []
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/query"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def config(self) -> MarketApiConfig:
        return self._state.config

    def start(self) -> MarketApiServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="market-api", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> MarketApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, **changes: Any) -> MarketApiConfig:
        """Replace parts of the config (e.g. ``faults=(...)``); counters and quotas restart."""
        with self._lock:
            config = dataclasses.replace(self._state.config, **changes)
            if (config.seed, config.listed_from) != (self._state.config.seed, self._state.config.listed_from):
                self.model = _model(config)
            self._state.config = config
            self._reset_locked()
            self.requests.clear()
            return config

    def _reset_locked(self) -> None:
        state = self._state
        state.fault_hits = [0] * len(state.config.faults)
        state.recent.clear()
        state.last_second.clear()
        state.day_count = 0
        state.rng = random.Random(state.config.seed)  # noqa: S311

    # --- request handling -----------------------------------------------------------------------

    def _decide(self, function: str | None, symbol: str | None) -> tuple[str | None, Fault | None]:
        """Under the lock: the quota answer ('note' / 'http_429' / 'information') or a fault."""
        with self._lock:
            state, config = self._state, self._state.config
            now = time.monotonic()
            if config.calls_per_day is not None and state.day_count >= config.calls_per_day:
                return "information", None
            if config.calls_per_minute is not None:
                while state.recent and now - state.recent[0] >= 60.0:
                    state.recent.popleft()
                if len(state.recent) >= config.calls_per_minute:
                    return config.throttle, None
                state.recent.append(now)
            state.day_count += 1
            for i, fault in enumerate(config.faults):
                if fault.symbols is not None and symbol not in fault.symbols:
                    continue
                if fault.functions is not None and function not in fault.functions:
                    continue
                if fault.times is not None and state.fault_hits[i] >= fault.times:
                    continue
                if fault.ratio < 1.0 and state.rng.random() >= fault.ratio:
                    continue
                state.fault_hits[i] += 1
                return None, fault
            return None, None

    def _as_of(self) -> dt.date:
        return self._state.config.as_of or trading_calendar.latest_session(code=self.model.calendar)

    def answer(self, query: dict[str, str]) -> Answer:
        """The answer to one query, faults and quotas applied."""
        config = self._state.config
        function, symbol = query.get("function"), query.get("symbol")
        if query.get("apikey") == DEMO_KEY and symbol not in DEMO_SYMBOLS:
            return Answer(200, _dump({av.INFORMATION: DEMO_KEY_TEXT}), fault="demo_key")
        if not query.get("apikey") or (config.api_key is not None and query["apikey"] != config.api_key):
            return Answer(200, _dump({av.ERROR_MESSAGE: KEY_ERROR_TEXT}))
        refused = self._plan_refusal(function, query) or self._burst()
        if refused is not None:
            return refused
        quota, fault = self._decide(function, symbol)
        if quota == "http_429":
            return Answer(429, _dump({av.NOTE: NOTE_TEXT}), {"Retry-After": "1"}, "rate_limit")
        if quota == "note":
            return Answer(200, _dump({av.NOTE: NOTE_TEXT}), fault="rate_limit")
        if quota == "information":
            return Answer(200, _dump({av.INFORMATION: INFORMATION_TEXT}), fault="daily_quota")
        if fault is None:
            return Answer(*self._data(function, symbol, query, None))
        kind, delay = fault.kind, fault.delay
        if kind == "http_429":
            return Answer(429, _dump({av.NOTE: NOTE_TEXT}), {"Retry-After": "0"}, kind)
        if kind in ("http_500", "http_503"):
            html = b"<html><body>Service unavailable</body></html>"
            return Answer(int(kind[-3:]), html, {"Content-Type": "text/html"}, kind)
        if kind == "error_message":
            return Answer(200, _dump({av.ERROR_MESSAGE: _invalid_call(function)}), fault=kind)
        if kind == "note":
            return Answer(200, _dump({av.NOTE: NOTE_TEXT}), fault=kind)
        if kind == "information":
            return Answer(200, _dump({av.INFORMATION: INFORMATION_TEXT}), fault=kind)
        if kind == "burst":
            return Answer(200, _dump({av.INFORMATION: BURST_TEXT}), fault=kind)
        status, body = self._data(function, symbol, query, kind)
        if kind == "truncated":
            body = body[: max(1, len(body) // 2)]
        return Answer(status, body, fault=kind, delay=delay if kind in ("slow", "timeout") else 0.0)

    def _data(
        self, function: str | None, symbol: str | None, query: dict[str, str], kind: str | None
    ) -> tuple[int, bytes]:
        config = self._state.config
        if function not in FUNCTIONS:
            return 200, _dump({av.ERROR_MESSAGE: f"This API function ({function}) does not exist."})
        as_of = self._as_of()
        known = (
            symbol is not None
            and inputs.is_symbol(symbol)
            and symbol not in config.unknown_symbols
            and self.model.profile(symbol).listed <= as_of
        )
        if function == "GLOBAL_QUOTE":
            return self._quote(symbol if known else None, query.get("entitlement"), kind)
        if function in (av.SPLITS_FUNCTION, av.DIVIDENDS_FUNCTION):
            if not known:
                return 200, _dump({})
            events_of = self.model.splits if function == av.SPLITS_FUNCTION else self.model.dividends
            if kind is None:
                # The events need the symbol's whole series (~3 ms to draw again once it has left
                # the model's cache): a stand-in's cost, kept out of the client's timings like the others.
                return 200, self._cached_body(function, symbol, "events", as_of, lambda: av.render_actions(
                    symbol, events_of(symbol, as_of)))  # fmt: skip
            events = events_of(symbol, as_of)
            if kind == "missing_fields" and events:
                events[0].pop(next(iter(events[0])))
            if kind == "extra_fields":
                for event in events:
                    event["currency"] = "USD"
            return 200, av.render_actions(symbol, events)
        if function == "OVERVIEW":
            if not known:
                return 200, _dump({})
            if kind is None:
                return 200, self._cached_body(function, symbol, "overview", as_of, lambda: json.dumps(
                    self.model.overview(symbol, as_of), indent=4).encode())  # fmt: skip
            overview = self.model.overview(symbol, as_of)
            if kind == "missing_fields":
                overview.pop("Sector")
            if kind == "extra_fields":
                overview["AnalystTargetPrice"] = "123.45"
            return 200, json.dumps(overview, indent=4).encode()
        if not known:
            return 200, _dump({av.ERROR_MESSAGE: _invalid_call(function)})
        outputsize = query.get("outputsize", "compact")
        if outputsize not in ("compact", "full"):
            return 200, _dump({av.ERROR_MESSAGE: _invalid_call(function)})
        adjusted = function == "TIME_SERIES_DAILY_ADJUSTED"
        compact = outputsize == "compact"

        def meta() -> dict[str, str]:
            last = self.model.last_bar(symbol, as_of) or as_of.isoformat()
            return av.series_meta(symbol, last, adjusted=adjusted, compact=compact)

        if kind not in ("missing_fields", "extra_fields"):
            # Nothing of the series is built when the cache has the body.
            return 200, self._cached_body(function, symbol, outputsize, as_of, lambda: self.model.daily_body(
                symbol, as_of, adjusted, compact, meta()))  # fmt: skip
        rows = self.model.daily_rows(symbol, as_of, adjusted, compact=compact)
        if kind == "missing_fields":
            for _, fields in rows[:2]:
                fields.pop("4. close", None)
            if len(rows) > 2:
                rows[2][1].pop("2. high", None)
        if kind == "extra_fields":
            for _, fields in rows:
                fields["9. exchange"] = "XNYS"
        return 200, av.render_series(meta(), rows)

    def _quote(self, symbol: str | None, entitlement: str | None, kind: str | None) -> tuple[int, bytes]:
        """GLOBAL_QUOTE as entitled: the last session's close without an entitlement, the price
        15 minutes ago under the delayed key with ``delayed``, the live price with ``realtime``."""
        key = av.DELAYED_QUOTE_KEY if entitlement == "delayed" else av.QUOTE_KEY
        if symbol is None:
            return 200, _dump({key: {}})
        config = self._state.config
        now = dt.datetime.now(dt.UTC)
        if config.as_of is not None:
            now = min(now, trading_calendar.calendar().session_close(config.as_of).to_pydatetime())
        if entitlement == "delayed":
            now -= QUOTE_DELAY
        elif entitlement != "realtime":
            last = trading_calendar.latest_session(now, code=self.model.calendar)
            now = trading_calendar.calendar(self.model.calendar).session_close(last).to_pydatetime()
        quote = self.model.quote(symbol, now)
        if kind == "missing_fields":
            quote.pop("05. price")
        if kind == "extra_fields":
            quote["11. exchange"] = "XNYS"
        return 200, _dump({key: quote})

    def _plan_refusal(self, function: str | None, query: dict[str, str]) -> Answer | None:
        """Alpha Vantage's premium-only answer to a request the configured plan does not serve."""
        name = self._state.config.plan
        if name is None or function not in FUNCTIONS:
            return None
        plan = PLANS[name]
        if function not in plan.functions:
            return Answer(200, _dump({av.INFORMATION: PREMIUM_ENDPOINT_TEXT}), fault="premium_only")
        outputsize = query.get("outputsize")
        if outputsize is not None and function.startswith("TIME_SERIES") and outputsize not in plan.output_sizes:
            text = premium_feature_text("outputsize", outputsize, function)
            return Answer(200, _dump({av.INFORMATION: text}), fault="premium_only")
        entitlement = query.get("entitlement")
        if function == "GLOBAL_QUOTE" and entitlement is not None:
            granted = {"end_of_day": set(), "delayed": {"delayed"}, "realtime": {"delayed", "realtime"}}
            if entitlement not in granted[plan.quote_entitlement]:
                return Answer(200, _dump({av.INFORMATION: PREMIUM_ENDPOINT_TEXT}), fault="premium_only")
        return None

    def _burst(self) -> Answer | None:
        """The burst message when more than ``burst_per_second`` requests arrive within a second."""
        limit = self._state.config.burst_per_second
        if limit is None:
            return None
        with self._lock:
            recent, now = self._state.last_second, time.monotonic()
            while recent and now - recent[0] >= 1.0:
                recent.popleft()
            if len(recent) >= limit:
                return Answer(200, _dump({av.INFORMATION: BURST_TEXT}), fault="burst")
            recent.append(now)
        return None

    def _cached_body(self, function: str, symbol: str, outputsize: str, as_of: dt.date, render) -> bytes:
        """An answer body from `config.cache_dir` if rendered before, else rendered (and kept)."""
        config = self._state.config
        if config.cache_dir is None:
            return render()
        listing = config.listed_from.isoformat() if config.listed_from else "own"
        folder = Path(config.cache_dir) / f"v{MODEL_VERSION}-seed{config.seed}-listed-{listing}-asof-{as_of}"
        path = folder / f"{function}-{outputsize}-{symbol}.json"
        with contextlib.suppress(FileNotFoundError):
            return path.read_bytes()
        body = render()
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp"
        temp.write_bytes(body)
        temp.replace(path)  # atomic: a concurrent reader sees the whole body or none
        return body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "SyntheticAlphaVantage/1.0"
            # The headers and the body go out in two writes. With Nagle's algorithm on, a small body
            # waits for the ACK of the headers, which the client delays (40 ms on Linux): every
            # OVERVIEW, SPLITS or DIVIDENDS answer took 44 ms on a keep-alive connection, a full
            # history 1.3 ms. A remote API's latency is the network's, not this stand-in's.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return None  # the request line carries the API key: never print it

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                if parsed.path != "/query":
                    self._send(404, b'{"detail": "not found"}', {})
                    return
                answer = server.answer(query)
                server.requests.append(
                    RequestRecord(
                        function=query.get("function"),
                        symbol=query.get("symbol"),
                        params={k: v for k, v in query.items() if k != "apikey"},
                        key_present=bool(query.get("apikey")),
                        status=answer.status,
                        fault=answer.fault,
                        bytes=len(answer.body),
                    )
                )
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.fault == "reset":
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self._send(answer.status, answer.body, dict(answer.headers))

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler


def _model(config: MarketApiConfig) -> MarketModel:
    return MarketModel(config.seed, listed_from=config.listed_from)


def _dump(obj: object) -> bytes:
    return json.dumps(obj, indent=4).encode()


def _invalid_call(function: str | None) -> str:
    return f"Invalid API call. Please retry or visit the documentation ({DOCS}) for {function}."


def start(config: MarketApiConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> MarketApiServer:
    """Start the synthetic API in a thread of this process; call ``.stop()`` when done."""
    return MarketApiServer(config, host=host, port=port).start()


@contextlib.contextmanager
def running(
    config: MarketApiConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[MarketApiServer]:
    """The synthetic API for the duration of a ``with`` block."""
    server = start(config, host=host, port=port)
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class ServerProcess:
    """The synthetic API running as a process of its own."""

    url: str
    pid: int


@contextlib.contextmanager
def running_process(config: MarketApiConfig | None = None, *, host: str = "127.0.0.1") -> Iterator[ServerProcess]:
    """The synthetic API as a process of its own for the duration of a ``with`` block.

    As the real API is remote, its work should not share the client's interpreter: in a thread
    of the same process, rendering full histories competes with the client for one GIL. Faults,
    unknown symbols and a required key are configured in-process only (use :func:`running`).
    """
    config = config or MarketApiConfig()
    if config.faults or config.unknown_symbols or config.api_key or config.throttle != "note" or config.plan \
            or config.burst_per_second:  # fmt: skip
        raise ValueError("faults, unknown_symbols, api_key, throttle, plan and burst_per_second need the "
                         "in-process server (running)")  # fmt: skip
    argv = [sys.executable, "-m", "local.market_api", "--host", host, "--port", "0", "--seed", str(config.seed)]
    for flag, value in (("--calls-per-minute", config.calls_per_minute), ("--calls-per-day", config.calls_per_day),
                        ("--as-of", config.as_of), ("--listed-from", config.listed_from),
                        ("--cache-dir", config.cache_dir)):  # fmt: skip
        if value is not None:
            argv += [flag, str(value)]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError(f"the market API process exited with {proc.wait(timeout=10)} before announcing its URL")
        yield ServerProcess(json.loads(line)["url"], proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Synthetic Alpha Vantage-compatible market API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--calls-per-minute", type=int, default=None)
    parser.add_argument("--calls-per-day", type=int, default=None)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=None, help="last session served")
    parser.add_argument("--listed-from", type=dt.date.fromisoformat, default=None, help="list every symbol here")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep rendered daily series here")
    args = parser.parse_args(argv)
    config = MarketApiConfig(
        seed=args.seed,
        calls_per_minute=args.calls_per_minute,
        calls_per_day=args.calls_per_day,
        as_of=args.as_of,
        listed_from=args.listed_from,
        cache_dir=args.cache_dir,
    )
    server = start(config, host=args.host, port=args.port)
    print(json.dumps({"url": server.url, "port": server.port}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
