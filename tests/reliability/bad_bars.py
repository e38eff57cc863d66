"""The bad-input catalogue: one symbol per case, its RAW payload, and the outcome it must have.

Payloads are landed by the real ingestion (:class:`market_ingest.ingest.Ingestion`) from a
scripted provider that answers each symbol with its case's bytes, so the RAW files, paths and run
manifests are exactly what the Function app writes. Good bars are a deterministic random walk over
the February 2024 sessions; each case changes one thing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from market_ingest import ingest as ingest_mod  # the Function app package (pytest puts functions/ on the path)
from market_ingest.providers.base import Payload

from lakehouse import trading_calendar
from lakehouse.raw_store import DirectoryRawStore
from tests.spark_jobs.raw_files import Bar, random_walk_bars

DAYS = tuple(trading_calendar.sessions(dt.date(2024, 2, 1), dt.date(2024, 2, 29)))
BAD_DAY = "2024-02-15"  # a Thursday session in the middle of the month
FIRST_INGEST = dt.date(2024, 3, 4)  # ingest date (and "today") of the first run
SECOND_INGEST = dt.date(2024, 3, 5)  # the later delivery of the two-run cases
TRADE_WINDOW = ("2024-01-01", "2024-03-29")  # gold / mart window of every run

DROP = object()  # Series.set(day, volume=DROP) removes the field
Outcome = Literal["quarantined", "accepted", "rejected", "no_records", "job_fails"]
Pairs = list[tuple[str, object]]


def fields(b: Bar) -> dict[str, str]:
    """A bar as TIME_SERIES_DAILY_ADJUSTED prints it."""
    return {
        "1. open": f"{b.open:.4f}", "2. high": f"{b.high:.4f}", "3. low": f"{b.low:.4f}",
        "4. close": f"{b.close:.4f}", "5. adjusted close": f"{b.close:.4f}", "6. volume": str(b.volume),
        "7. dividend amount": f"{b.dividend:.4f}", "8. split coefficient": f"{b.split:.1f}",
    }  # fmt: skip


def good_bars(symbol: str, days: tuple[dt.date, ...] = DAYS) -> dict[str, Bar]:
    return random_walk_bars(list(days), seed=zlib.crc32(symbol.encode()))


@dataclass
class Series:
    """A daily-series body under construction: Meta Data plus (date, fields) pairs, newest first.

    Pairs rather than a dict, so a case can repeat a date as a real payload could.
    """

    symbol: str
    meta_symbol: str | None = None
    bars: Pairs = field(default_factory=list)
    meta: bool = True

    @classmethod
    def good(cls, symbol: str, days: tuple[dt.date, ...] = DAYS) -> Series:
        bars = good_bars(symbol, days)
        return cls(symbol, symbol, [(d, fields(bars[d])) for d in sorted(bars, reverse=True)])

    def bar(self, day: str) -> dict:
        return next(v for d, v in self.bars if d == day)

    def set(self, day: str, **values: object) -> Series:
        """Change fields of `day` (short names: open, high, low, close, volume, split, dividend, adjusted)."""
        names = {"open": "1. open", "high": "2. high", "low": "3. low", "close": "4. close",
                 "adjusted": "5. adjusted close", "volume": "6. volume", "dividend": "7. dividend amount",
                 "split": "8. split coefficient"}  # fmt: skip
        bar = self.bar(day)
        for name, value in values.items():
            if value is DROP:
                bar.pop(names.get(name, name), None)
            else:
                bar[names.get(name, name)] = value
        return self

    def add(self, day: str, like: str = BAD_DAY) -> Series:
        """A bar on `day` (any string) with the values of `like`, in newest-first position."""
        self.bars.append((day, dict(self.bar(like))))
        self.bars.sort(key=lambda p: p[0], reverse=True)
        return self

    def move(self, day: str, to: str) -> Series:
        self.bars = [(to if d == day else d, v) for d, v in self.bars]
        return self

    def body(self) -> bytes:
        def obj(pairs: Pairs) -> str:
            return "{" + ", ".join(f"{json.dumps(k)}: {v if isinstance(v, _Raw) else json.dumps(v)}"
                                   for k, v in pairs) + "}"  # fmt: skip

        meta = {"1. Information": "Daily Time Series with Splits and Dividend Events", "2. Symbol": self.meta_symbol,
                "3. Last Refreshed": max(d for d, _ in self.bars) if self.bars else "",
                "4. Output Size": "Full size", "5. Time Zone": "US/Eastern"}  # fmt: skip
        top: Pairs = [("Meta Data", meta)] if self.meta else []
        top.append(("Time Series (Daily)", _Raw(obj(self.bars))))
        return obj(top).encode()


class _Raw(str):
    """Already-encoded JSON text inside :meth:`Series.body`."""


@dataclass(frozen=True)
class BadCase:
    """One bad input and the outcome it must have.

    Args:
        symbol: the case's own ticker (RAW folder).
        title: what is wrong, for docs/reliability.md.
        outcome: quarantined (rule = the first failed rule), accepted (rule = a warn rule that
            must have counted it, or None), rejected (rule = a fragment of the rejection reason),
            no_records, job_fails (rule = the fail rule named in the error).
        body: the payload bytes.
        bad_dates: raw trade dates expected in quarantine (quarantined cases).
        dataset: daily_bars or security_master.
        later: a second delivery (SECOND_INGEST) for the two-run cases.
    """

    symbol: str
    title: str
    outcome: Outcome
    body: bytes
    rule: str | None = None
    bad_dates: tuple[str, ...] = ()
    dataset: str = "daily_bars"
    later: bytes | None = None

    @property
    def _quarantined(self) -> str:
        if self.dataset != "daily_bars":
            return "the record"
        if len(self.bad_dates) > 3:
            return f"all {len(self.bad_dates)} bars"
        return "bar " + ", ".join(self.bad_dates)

    @property
    def expected(self) -> str:
        return {
            "quarantined": f"{self._quarantined} quarantined by {self.rule}; the rest in silver",
            "accepted": "accepted into silver" + (f", counted by warn rule {self.rule}" if self.rule else ""),
            "rejected": f"file rejected in bronze.rejected_files ({self.rule!r}); no rows",
            "no_records": "nothing to load, nothing rejected",
            "job_fails": f"bronze_to_silver fails naming {self.rule}; nothing written to silver",
        }[self.outcome]


def g(symbol: str) -> Series:
    return Series.good(symbol)


def q(symbol: str, title: str, rule: str, series: Series, *dates: str) -> BadCase:
    return BadCase(symbol, title, "quarantined", series.body(), rule, dates or (BAD_DAY,))


def overview(symbol: str, **changes: object) -> bytes:
    body: dict[str, object] = {"Symbol": symbol, "AssetType": "Common Stock", "Name": f"{symbol} Inc",
                               "Exchange": "NYSE", "Currency": "USD", "Country": "USA", "Sector": "TECHNOLOGY",
                               "Industry": "SOFTWARE"}  # fmt: skip
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not DROP}).encode()


ERROR_BODY = b'{\n    "Error Message": "Invalid API call. Please retry or visit the documentation."\n}'
NOTE_BODY = b'{"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute."}'


def _jump() -> Series:
    s = g("JUMP")
    b = s.bar(BAD_DAY)
    for name, key in (("open", "1. open"), ("high", "2. high"), ("low", "3. low"), ("close", "4. close")):
        s.set(BAD_DAY, **{name: f"{float(b[key]) * 1.8:.4f}"})
    return s


def _json_numbers() -> Series:
    s = g("JSONNUM")
    s.bars = [(d, {k: float(v) if "." in v else int(v) for k, v in bar.items()}) for d, bar in s.bars]
    return s


def _duplicate_date() -> Series:
    s = g("DUPDATE")
    first = dict(s.bar(BAD_DAY))
    s.bars.insert([d for d, _ in s.bars].index(BAD_DAY) + 1, (BAD_DAY, first))
    s.set(BAD_DAY, close=f"{float(first['4. close']) * 1.001:.4f}")  # changes the first of the two pairs
    return s


def _later_close(symbol: str, factor: float) -> bytes:
    s = Series.good(symbol)
    close, high = float(s.bar(BAD_DAY)["4. close"]), float(s.bar(BAD_DAY)["2. high"])
    return s.set(BAD_DAY, close=f"{close * factor:.4f}", high=f"{max(close * factor, high):.4f}").body()


DELISTED_DAYS = tuple(d for d in DAYS if d.isoformat() <= BAD_DAY)

CASES: tuple[BadCase, ...] = (
    # --- schema drift -------------------------------------------------------------------------
    q(
        "RENAMED",
        "field renamed ('4. close' -> '4. closing price')",
        "values_parse",
        g("RENAMED").set(BAD_DAY, **{"4. closing price": "101.0000"}).set(BAD_DAY, close=DROP),
    ),
    q("MISSING", "field missing ('6. volume')", "values_parse", g("MISSING").set(BAD_DAY, volume=DROP)),
    BadCase(
        "EXTRA",
        "extra field in every bar ('9. exchange')",
        "accepted",
        Series(**{**vars(g("EXTRA")), "bars": [(d, {**v, "9. exchange": "XNYS"}) for d, v in g("EXTRA").bars]}).body(),
    ),
    BadCase("JSONNUM", "numbers as JSON numbers instead of strings", "accepted", _json_numbers().body()),
    BadCase(
        "SPACES",
        "numbers padded with spaces (' 101.2500 ')",
        "accepted",
        g("SPACES").set(BAD_DAY, close=f" {g('SPACES').bar(BAD_DAY)['4. close']} ").body(),
    ),
    q("TEXTNUM", "number as text ('n/a' close)", "values_parse", g("TEXTNUM").set(BAD_DAY, close="n/a")),
    q(
        "COMMANUM",
        "number with a thousands separator ('1,234.5000' open)",
        "values_parse",
        g("COMMANUM").set(BAD_DAY, open="1,234.5000"),
    ),
    q("EMPTYVAL", "empty string as high", "values_parse", g("EMPTYVAL").set(BAD_DAY, high="")),
    q("ADJTEXT", "adjusted close not a number ('abc')", "values_parse", g("ADJTEXT").set(BAD_DAY, adjusted="abc")),
    q("NANVAL", "NaN as adjusted close ('NaN')", "values_finite", g("NANVAL").set(BAD_DAY, adjusted="NaN")),
    q("NANCLOSE", "NaN as close ('NaN')", "values_finite", g("NANCLOSE").set(BAD_DAY, close="NaN")),
    q("INFVAL", "Infinity as high ('Infinity')", "values_finite", g("INFVAL").set(BAD_DAY, high="Infinity")),
    q(
        "OVERFLOW",
        "price beyond double range ('1e400' high)",
        "values_finite",
        g("OVERFLOW").set(BAD_DAY, high="1e400"),
    ),
    q(
        "BIGVOL",
        "volume beyond 64 bits ('99999999999999999999')",
        "values_parse",
        g("BIGVOL").set(BAD_DAY, volume="99999999999999999999"),
    ),
    q("FRACVOL", "fractional volume ('1500.5')", "values_parse", g("FRACVOL").set(BAD_DAY, volume="1500.5")),
    q(
        "NOMETA",
        "no 'Meta Data' (symbol unknown)",
        "keys_not_null",
        Series(**{**vars(g("NOMETA")), "meta": False}),
        *(d.isoformat() for d in DAYS),
    ),
    # --- values ----------------------------------------------------------------------------------
    q("NEGPX", "negative open price", "prices_positive", g("NEGPX").set(BAD_DAY, open="-5.0000")),
    q("ZEROPX", "zero close price", "prices_positive", g("ZEROPX").set(BAD_DAY, close="0.0000")),
    q("HILO", "high < low", "ohlc_consistent", g("HILO").set(BAD_DAY, high="50.0000", low="60.0000")),
    q("CLOSEHI", "close above high", "ohlc_consistent", g("CLOSEHI").set(BAD_DAY, close="1000.0000")),
    q("NEGVOL", "volume < 0", "volume_non_negative", g("NEGVOL").set(BAD_DAY, volume="-100")),
    q("SPLIT0", "split coefficient 0", "adjustments_valid", g("SPLIT0").set(BAD_DAY, split="0.0")),
    q("NEGDIV", "negative dividend", "adjustments_valid", g("NEGDIV").set(BAD_DAY, dividend="-0.5000")),
    BadCase("JUMP", "an 80% one-day move without a split", "accepted", _jump().body(), "daily_move_explained"),
    BadCase(
        "HUGEPX",
        "huge but finite prices (1e300) on one day",
        "accepted",
        g("HUGEPX").set(BAD_DAY, high="1e300", close="1e300").body(),
        "daily_move_explained",
    ),
    # --- dates -------------------------------------------------------------------------------------
    q(
        "WEEKEND",
        "bar on a Saturday (2024-02-10)",
        "trade_date_is_session",
        g("WEEKEND").add("2024-02-10"),
        "2024-02-10",
    ),
    q(
        "HOLIDAY",
        "bar on a holiday (Presidents' Day 2024-02-19)",
        "trade_date_is_session",
        g("HOLIDAY").add("2024-02-19"),
        "2024-02-19",
    ),
    q("FEB31", "31 February", "keys_not_null", g("FEB31").move(BAD_DAY, "2024-02-31"), "2024-02-31"),
    q(
        "USDATE",
        "date in US format (02/15/2024)",
        "keys_not_null",
        g("USDATE").move(BAD_DAY, "02/15/2024"),
        "02/15/2024",
    ),
    q(
        "DATETIME",
        "date with a time ('2024-02-15 16:00:00')",
        "keys_not_null",
        g("DATETIME").move(BAD_DAY, "2024-02-15 16:00:00"),
        "2024-02-15 16:00:00",
    ),
    q(
        "FUTURE",
        "bar dated after today (2024-03-08)",
        "trade_date_not_in_future",
        g("FUTURE").add("2024-03-08"),
        "2024-03-08",
    ),
    BadCase(
        "DUPDATE",
        "same date twice in one file, different closes",
        "accepted",
        _duplicate_date().body(),
        "unique_bar_per_file",
    ),
    BadCase(
        "ORDER",
        "bars oldest first instead of newest first",
        "accepted",
        Series(**{**vars(g("ORDER")), "bars": sorted(g("ORDER").bars)}).body(),
    ),
    # --- bodies ---------------------------------------------------------------------------------------
    BadCase("ERRBODY", "HTTP-200 'Error Message' body in RAW", "rejected", ERROR_BODY, "'Error Message'"),
    BadCase("NOTEBODY", "HTTP-200 'Note' (throttle) body in RAW", "rejected", NOTE_BODY, "'Note'"),
    BadCase("NOTJSON", "HTML instead of JSON", "rejected", b"<html><body>Bad gateway</body></html>", "not UTF-8 JSON"),
    BadCase("EMPTY", "empty body", "rejected", b"", "not UTF-8 JSON"),
    BadCase("TRUNC", "truncated JSON", "rejected", g("TRUNC").body()[:700], "not UTF-8 JSON"),
    BadCase("LATIN1", "bytes that are not UTF-8", "rejected", '{"Note": "caf\u00e9"}'.encode("latin-1"), "not UTF-8"),
    BadCase("ARRAY", "top level is a JSON array", "rejected", b"[1, 2, 3]", "top level is not a JSON object"),
    BadCase(
        "BARSTR",
        "a bar that is a string, not an object",
        "rejected",
        g("BARSTR").set(BAD_DAY).body().replace(b'"2024-02-15": {', b'"2024-02-15": "n/a", "x": {'),
        "is not an object",
    ),
    BadCase("EMPTYSER", "empty 'Time Series (Daily)'", "no_records", Series("EMPTYSER", "EMPTYSER", []).body()),
    # --- security master ------------------------------------------------------------------------------
    BadCase(
        "OVEMPTY",
        "overview: empty object (unknown symbol)",
        "rejected",
        b"{}",
        "empty overview",
        dataset="security_master",
    ),
    BadCase("OVHTML", "overview: not JSON", "rejected", b"<html></html>", "not UTF-8 JSON", dataset="security_master"),
    BadCase(
        "OVINFO",
        "overview: 'Information' (quota) body",
        "rejected",
        b'{"Information": "Our standard API rate limit is 25 requests per day."}',
        "'Information'",
        dataset="security_master",
    ),
    BadCase(
        "OVNONAME",
        "overview: no Name",
        "accepted",
        overview("OVNONAME", Name=DROP),
        "name_present",
        dataset="security_master",
    ),
    BadCase(
        "OVEXTRA",
        "overview: extra and nested fields",
        "accepted",
        overview("OVEXTRA", AnalystTargetPrice="1e999", Officers={"CEO": "x"}),
        dataset="security_master",
    ),
    BadCase(
        "OVNULLSYM",
        "overview: Symbol null",
        "quarantined",
        overview("OVNULLSYM", Symbol=None),
        "keys_not_null",
        (FIRST_INGEST.isoformat(),),
        dataset="security_master",
    ),
)

# Cases that stop the silver job: each needs a lake of its own.
FAILING: tuple[BadCase, ...] = (
    BadCase(
        "WRONGSYM",
        "Meta Data names another symbol",
        "job_fails",
        Series(**{**vars(g("WRONGSYM")), "meta_symbol": "OTHER"}).body(),
        "symbol_matches_source",
    ),
    BadCase(
        "LOWERSYM",
        "Meta Data symbol in lower case",
        "job_fails",
        Series(**{**vars(g("LOWERSYM")), "meta_symbol": "lowersym"}).body(),
        "symbol_matches_source",
    ),
    BadCase(
        "OVWRONG",
        "overview names another symbol",
        "job_fails",
        overview("OTHER"),
        "symbol_matches_source",
        dataset="security_master",
    ),
)


@dataclass(frozen=True)
class TwoRunCase:
    """A symbol delivered on FIRST_INGEST and again on SECOND_INGEST."""

    symbol: str
    title: str
    expected: str
    first: bytes
    later: bytes


TWO_RUN: tuple[TwoRunCase, ...] = (
    TwoRunCase(
        "REVISED",
        "a bar revised by a later delivery (close +2%)",
        f"revision 2 of {BAD_DAY} in silver with the new close; gold and mart follow",
        Series.good("REVISED").body(),
        _later_close("REVISED", 1.02),
    ),
    TwoRunCase(
        "REDELIVER",
        "the same history delivered again unchanged",
        "nothing changes: revision stays 1, no new rows",
        Series.good("REDELIVER").body(),
        Series.good("REDELIVER").body(),
    ),
    TwoRunCase(
        "BADREV",
        "a later delivery with a negative close for a known bar",
        f"the bad revision of {BAD_DAY} quarantined (prices_positive); silver keeps the first value",
        Series.good("BADREV").body(),
        Series.good("BADREV").set(BAD_DAY, close="-1.0000").body(),
    ),
    TwoRunCase(
        "DELISTED",
        "a symbol delisted mid-range, then answered with 'Error Message'",
        f"bars up to {BAD_DAY} kept in silver, gold and mart; the later error body rejected, nothing deleted",
        Series.good("DELISTED", DELISTED_DAYS).body(),
        ERROR_BODY,
    ),
)


# --- landing through the real ingestion -----------------------------------------------------------


@dataclass
class ScriptedProvider:
    """A MarketDataProvider that answers each symbol with given bytes (as if the API sent them)."""

    bodies: dict[str, bytes]
    name: str = "synthetic"
    daily_function: str = "TIME_SERIES_DAILY_ADJUSTED"

    def _payload(self, symbol: str, function: str) -> Payload:
        body = self.bodies[symbol]
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        return Payload(symbol=symbol, function=function, body=body, data=data if isinstance(data, dict) else {},
                       http_status=200, params={"function": function, "symbol": symbol}, endpoint="scripted",
                       elapsed_seconds=0.0, attempts=1)  # fmt: skip

    def daily_bars(self, symbol: str, outputsize: str, *, deadline: float | None = None) -> Payload:
        return self._payload(symbol, self.daily_function)

    def overview(self, symbol: str, *, deadline: float | None = None) -> Payload:
        return self._payload(symbol, "OVERVIEW")

    def global_quote(self, symbol: str, *, deadline: float | None = None) -> Payload:
        raise NotImplementedError

    def close(self) -> None:
        return None


def land(raw_root: Path, dataset: str, bodies: dict[str, bytes], ingest_date: dt.date, run_id: str) -> dict:
    """Land `bodies` (symbol -> bytes) as one ingestion run on `ingest_date`; its answer."""
    now = dt.datetime.combine(ingest_date, dt.time(22, 30), tzinfo=dt.UTC)
    request = ingest_mod.IngestRequest(dataset, tuple(sorted(bodies)), (), DAYS[0], DAYS[-1], run_id)
    ingestion = ingest_mod.Ingestion(ScriptedProvider(bodies), DirectoryRawStore(raw_root), concurrency=2)
    answer = ingestion.run(request, now=now).answer()
    time.sleep(0.01)  # later runs get later file times (ingested_at): latest ingestion wins
    return answer


# --- quotes, published as Event Hubs Capture files by the real local publisher -------------------------


@dataclass(frozen=True)
class QuoteCase:
    """One quote event and its outcome in silver.quotes (rule None: accepted)."""

    symbol: str
    title: str
    rule: str | None
    changes: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a raw event body instead of the quote contract

    @property
    def expected(self) -> str:
        return f"quarantined by {self.rule}" if self.rule else "accepted into silver.quotes"


def quote(symbol: str, **changes: str) -> dict[str, str]:
    """A GLOBAL_QUOTE object as Alpha Vantage prints it, for the first run's day."""
    q = {"01. symbol": symbol, "02. open": "100.0000", "03. high": "102.0000", "04. low": "99.0000",
         "05. price": "101.0000", "06. volume": "12345", "07. latest trading day": FIRST_INGEST.isoformat(),
         "08. previous close": "100.5000", "09. change": "0.5000", "10. change percent": "0.4975%"}  # fmt: skip
    q.update(changes)
    return q


QUOTES: tuple[QuoteCase, ...] = (
    QuoteCase("QGOOD", "quote: a well-formed quote (control)", None),
    QuoteCase("QNEG", "quote: negative price", "prices_positive", {"05. price": "-1.0000"}),
    QuoteCase("QNAN", "quote: NaN price", "values_finite", {"05. price": "NaN"}),
    QuoteCase("QTEXT", "quote: price not a number", "values_parse", {"05. price": "n/a"}),
    QuoteCase("QFEB31", "quote: latest trading day 31 February", "values_parse",
              {"07. latest trading day": "2024-02-31"}),
    QuoteCase("QNOTJSON", "quote: event body is not JSON", "keys_not_null", body=b"QNOTJSON <html>oops</html>"),
)  # fmt: skip


def publish_quotes(raw_root: Path, state_dir: Path, at: dt.datetime) -> int:
    """Publish every quote case through the Function app's Capture writer; events published."""
    from market_ingest.eventhubs import CaptureFilePublisher, Event
    from market_ingest.quotes import quote_event

    publisher = CaptureFilePublisher(DirectoryRawStore(raw_root), state_dir=state_dir, clock=lambda: at)
    events = [
        Event(c.symbol, c.body) if c.body else quote_event(c.symbol, quote(c.symbol, **c.changes), "q-1", at)
        for c in QUOTES
    ]
    try:
        return publisher.publish(events)
    finally:
        publisher.close()
