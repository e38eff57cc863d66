"""Alpha Vantage over HTTP; also the client of the local synthetic server (same wire format).

Alpha Vantage reports most problems as HTTP 200 with a JSON body: ``{"Error Message": ...}``
for a bad symbol or call, ``{"Note": ...}`` or ``{"Information": ...}`` when throttled or out of
quota. Those are classified here (see :mod:`market_ingest.errors`) and never returned as data.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from market_ingest.errors import (
    ConnectionFailed,
    IngestError,
    QuotaExhausted,
    RequestRejected,
    RequestTimeout,
    ServerError,
    SymbolNotFound,
    Throttled,
    TruncatedPayload,
    UnexpectedPayload,
)
from market_ingest.providers.base import OUTPUT_SIZES, OutputSize, Payload
from market_ingest.ratelimit import RateLimiter
from market_ingest.retry import RetryPolicy, retrying
from market_ingest.symbols import split_symbols

log = logging.getLogger(__name__)

SERIES_KEY = "Time Series (Daily)"
ADJUSTED_FIELDS = (
    "1. open", "2. high", "3. low", "4. close", "5. adjusted close",
    "6. volume", "7. dividend amount", "8. split coefficient",
)  # fmt: skip
RAW_FIELDS = ("1. open", "2. high", "3. low", "4. close", "5. volume")
QUOTE_FIELDS = (
    "01. symbol", "02. open", "03. high", "04. low", "05. price", "06. volume",
    "07. latest trading day", "08. previous close", "09. change", "10. change percent",
)  # fmt: skip
OVERVIEW_REQUIRED = ("Symbol", "Name", "Exchange", "Currency", "Country", "Sector", "Industry")

READ_CHUNK_BYTES = 1 << 20
_KEY_IN_TEXT = re.compile(r"(apikey=)[^&\s\"']+", re.IGNORECASE)


class RedactApiKey(logging.Filter):
    """Masks ``apikey=...`` in records of a logger (urllib3 logs full URLs at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "apikey=" in message.lower():
            record.msg, record.args = _KEY_IN_TEXT.sub(r"\1***", message), None
        return True


_URLLIB3_FILTER = RedactApiKey()


def _guard_urllib3_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if _URLLIB3_FILTER not in logger.filters:
        logger.addFilter(_URLLIB3_FILTER)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return float(value)
    except ValueError:
        return None


def classify_message_body(data: dict[str, Any], what: str) -> IngestError | None:
    """The error an HTTP-200 body stands for, or None when it is data."""
    if "Error Message" in data:
        text = str(data["Error Message"])
        if "apikey" in text.lower():
            return RequestRejected(f"{what}: the API key was refused")
        return SymbolNotFound(f"{what}: provider answered Error Message: {text[:200]}")
    if SERIES_KEY in data:
        return None
    if "Note" in data:
        # The per-minute throttle message (it also mentions the daily quota, so read no further).
        return Throttled(f"{what}: provider throttled the call (Note: {str(data['Note'])[:160]})")
    if "Information" in data:
        text = str(data["Information"])
        lowered = text.lower()
        if "premium endpoint" in lowered:
            return RequestRejected(f"{what}: premium-only endpoint (Information: {text[:160]})")
        if "per day" in lowered or "daily" in lowered:
            return QuotaExhausted(f"{what}: provider daily quota exhausted (Information: {text[:160]})")
        return Throttled(f"{what}: provider throttled the call (Information: {text[:160]})")
    return None


def series_warnings(data: dict[str, Any], adjusted: bool) -> list[str]:
    """Missing or unexpected fields in a daily series; the payload still lands as received."""
    expected = ADJUSTED_FIELDS if adjusted else RAW_FIELDS
    missing: dict[str, int] = {}
    extra: set[str] = set()
    expected_keys = set(expected)
    for bar in data[SERIES_KEY].values():
        if isinstance(bar, dict) and bar.keys() == expected_keys:
            continue  # the common case, checked in C
        if not isinstance(bar, dict):
            missing["<bar is not an object>"] = missing.get("<bar is not an object>", 0) + 1
            continue
        for name in expected:
            if name not in bar:
                missing[name] = missing.get(name, 0) + 1
        extra.update(k for k in bar if k not in expected)
    warnings = [f"{count} bars miss field {name!r}" for name, count in sorted(missing.items())]
    if extra:
        warnings.append(f"unexpected bar fields {sorted(extra)}")
    unknown_top = sorted(k for k in data if k not in ("Meta Data", SERIES_KEY))
    if unknown_top:
        warnings.append(f"unexpected top-level fields {unknown_top}")
    return warnings


class AlphaVantageClient:
    """The Alpha Vantage client: one requests.Session, a shared rate limiter, tenacity retries.

    Args:
        name: provider name used for RAW folders (`alpha_vantage`, or `synthetic` for the
            local server that speaks the same wire format).
        base_url: the query endpoint, e.g. ``https://www.alphavantage.co/query``.
        api_key: sent as the ``apikey`` query parameter and nowhere else.
        adjusted: use TIME_SERIES_DAILY_ADJUSTED (splits and dividends) or TIME_SERIES_DAILY.
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: SecretStr,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        adjusted: bool = True,
        pool_size: int = 8,
        sleep=time.sleep,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"ALPHAVANTAGE_BASE_URL must be an http(s) URL, got {base_url!r}")
        self.name = name
        self.endpoint = base_url.split("?", 1)[0]
        self._api_key = api_key
        self.limiter = limiter or RateLimiter()
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.adjusted = adjusted
        self._sleep = sleep
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        # requests re-reads the proxy and CA settings from the whole environment on every request;
        # read them once per client (one ingest call) instead. The behaviour is the same.
        self._session.proxies.update(requests.utils.get_environ_proxies(self.endpoint))
        self._session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._session.trust_env = False
        _guard_urllib3_logs()

    def __repr__(self) -> str:
        return f"AlphaVantageClient(name={self.name!r}, endpoint={self.endpoint!r})"

    @property
    def daily_function(self) -> str:
        return "TIME_SERIES_DAILY_ADJUSTED" if self.adjusted else "TIME_SERIES_DAILY"

    def daily_bars(self, symbol: str, outputsize: OutputSize, *, deadline: float | None = None) -> Payload:
        if outputsize not in OUTPUT_SIZES:
            raise ValueError(f"outputsize must be one of {OUTPUT_SIZES}, got {outputsize!r}")
        params = {"function": self.daily_function, "symbol": symbol, "outputsize": outputsize}
        return self._fetch(symbol, params, self._check_series, deadline)

    def overview(self, symbol: str, *, deadline: float | None = None) -> Payload:
        return self._fetch(symbol, {"function": "OVERVIEW", "symbol": symbol}, self._check_overview, deadline)

    def global_quote(self, symbol: str, *, deadline: float | None = None) -> Payload:
        params = {"function": "GLOBAL_QUOTE", "symbol": symbol}
        return self._fetch(symbol, params, self._check_quote, deadline)

    def close(self) -> None:
        self._session.close()

    # --- one request, retried -------------------------------------------------------------

    def _fetch(self, symbol: str, params: dict[str, str], check, deadline: float | None) -> Payload:
        _, rejected = split_symbols([symbol])
        if rejected:
            raise ValueError(f"invalid symbol {rejected[0].symbol!r}: {rejected[0].reason}")
        params = {**params, "datatype": "json"}
        what = f"{params['function']} {symbol}"
        attempts = 0
        started = time.monotonic()
        for attempt in retrying(self.retry, deadline=deadline, sleep=self._sleep):
            with attempt:
                attempts += 1
                self.limiter.acquire(deadline)
                status, body = self._get(params, what)
                data = self._parse(body, what)
                warnings = check(data, what)
        return Payload(
            symbol=symbol,
            function=params["function"],
            body=body,
            data=data,
            http_status=status,
            params=dict(params),
            endpoint=self.endpoint,
            elapsed_seconds=round(time.monotonic() - started, 4),
            attempts=attempts,
            warnings=tuple(warnings),
        )

    def _get(self, params: dict[str, str], what: str) -> tuple[int, bytes]:
        query = {**params, "apikey": self._api_key.get_secret_value()}
        try:
            response = self._session.get(self.endpoint, params=query, timeout=self.timeout, stream=True)
            # Read in large chunks: `.content` reads 10 KB at a time, 200 trips through urllib3
            # for a 2 MB history. Errors while reading surface as the same requests exceptions.
            body = b"".join(response.iter_content(READ_CHUNK_BYTES))
        except requests.Timeout:
            raise RequestTimeout(f"{what}: no answer within {self.timeout:g} s") from None
        except requests.RequestException as exc:
            # The exception text contains the URL with the key: report only its type.
            raise ConnectionFailed(f"{what}: connection failed ({type(exc).__name__})") from None
        status = response.status_code
        if status == 429:
            raise Throttled(f"{what}: HTTP 429", retry_after=_retry_after(response))
        if status >= 500:
            raise ServerError(f"{what}: HTTP {status}", retry_after=_retry_after(response))
        if status >= 400:
            raise RequestRejected(f"{what}: HTTP {status}")
        return status, body

    @staticmethod
    def _parse(body: bytes, what: str) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TruncatedPayload(f"{what}: body is not complete JSON ({len(body)} bytes, {exc.msg})") from None
        if not isinstance(data, dict):
            raise UnexpectedPayload(f"{what}: body is a JSON {type(data).__name__}, expected an object")
        error = classify_message_body(data, what)
        if error is not None:
            raise error
        return data

    def _check_series(self, data: dict[str, Any], what: str) -> list[str]:
        series = data.get(SERIES_KEY)
        if not isinstance(series, dict) or "Meta Data" not in data:
            raise UnexpectedPayload(f"{what}: no 'Meta Data' and {SERIES_KEY!r} objects in the answer")
        return series_warnings(data, self.adjusted)

    @staticmethod
    def _check_overview(data: dict[str, Any], what: str) -> list[str]:
        if not data or "Symbol" not in data:
            if not data:
                raise SymbolNotFound(f"{what}: empty answer (unknown symbol)")
            raise UnexpectedPayload(f"{what}: no 'Symbol' in the answer")
        missing = [k for k in OVERVIEW_REQUIRED if k not in data]
        return [f"overview misses fields {missing}"] if missing else []

    @staticmethod
    def _check_quote(data: dict[str, Any], what: str) -> list[str]:
        quote = data.get("Global Quote")
        if not isinstance(quote, dict):
            raise UnexpectedPayload(f"{what}: no 'Global Quote' object in the answer")
        if not quote:
            raise SymbolNotFound(f"{what}: empty quote (unknown symbol)")
        missing = [k for k in QUOTE_FIELDS if k not in quote]
        return [f"quote misses fields {missing}"] if missing else []
