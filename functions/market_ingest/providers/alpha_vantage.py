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

from lakehouse.contracts import alpha_vantage as av
from lakehouse.contracts.alpha_vantage import SERIES_KEY
from lakehouse.contracts.provider_plans import PLANS, ProviderPlan
from lakehouse.inputs import split_symbols
from market_ingest.errors import (
    BurstThrottled,
    ConnectionFailed,
    DemoKey,
    IngestError,
    PremiumOnly,
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

log = logging.getLogger(__name__)

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


# What an HTTP-200 message means, by its wording, first match wins. The order matters: the
# burst message names the daily limit and premium endpoints, the premium refusal of
# TIME_SERIES_DAILY contains "daily", and nearly every message ends with a premium upsell.
# The real texts are kept, with their sources, in tests/functions/fixtures/alpha_vantage_messages.json.
MESSAGE_MEANINGS: tuple[tuple[re.Pattern[str], type[IngestError], str], ...] = (
    (re.compile(r"demo api key", re.I), DemoKey, "the demo key serves documentation examples only"),
    (re.compile(r"more sparingly|per second|burst", re.I), BurstThrottled, "too many requests in a second"),
    (re.compile(r"is a premium (feature|endpoint)|this is a premium endpoint", re.I), PremiumOnly,
     "the plan of the key does not serve this request"),
    (re.compile(r"calls? per minute|per minute", re.I), Throttled, "too many requests this minute"),
    (re.compile(r"requests? per day|daily rate limit", re.I), QuotaExhausted, "the day's quota is used up"),
)  # fmt: skip
_KEY_ECHO = re.compile(r"(api key as )\S+", re.IGNORECASE)


def _quoted(text: str) -> str:
    """The provider's message for an error reason: shortened, and without a key it may echo."""
    return _KEY_ECHO.sub(r"\1***", text)[:200]


def classify_message_body(data: dict[str, Any], what: str) -> IngestError | None:
    """The error an HTTP-200 body stands for, or None when it is data."""
    if av.ERROR_MESSAGE in data:
        text = str(data[av.ERROR_MESSAGE])
        if "apikey" in text.lower():
            return RequestRejected(f"{what}: the API key was refused")
        return SymbolNotFound(f"{what}: provider answered Error Message: {_quoted(text)}")
    if SERIES_KEY in data:
        return None
    for key in (av.NOTE, av.INFORMATION):
        if key in data:
            text = str(data[key])
            for pattern, error, meaning in MESSAGE_MEANINGS:
                if pattern.search(text):
                    return error(f"{what}: {meaning} ({key}: {_quoted(text)})")
            # An unknown message is not data; another attempt may get data.
            return Throttled(f"{what}: unrecognised provider message ({key}: {_quoted(text)})")
    return None


def series_warnings(data: dict[str, Any], adjusted: bool) -> list[str]:
    """Missing or unexpected fields in a daily series; the payload still lands as received."""
    expected = tuple(av.bar_fields(adjusted))
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
    unknown_top = sorted(k for k in data if k not in (av.META_KEY, SERIES_KEY))
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
        plan: the key's plan; a request it does not serve raises PremiumOnly without being sent,
            and GLOBAL_QUOTE asks for the plan's quote entitlement.
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
        plan: ProviderPlan | None = None,
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
        self.plan = plan or PLANS["premium"]
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

    def splits(self, symbol: str, *, deadline: float | None = None) -> Payload:
        params = {"function": av.SPLITS_FUNCTION, "symbol": symbol}
        return self._fetch(symbol, params, self._actions_check(av.SPLIT_FIELDS), deadline)

    def dividends(self, symbol: str, *, deadline: float | None = None) -> Payload:
        params = {"function": av.DIVIDENDS_FUNCTION, "symbol": symbol}
        return self._fetch(symbol, params, self._actions_check(av.DIVIDEND_FIELDS), deadline)

    def global_quote(self, symbol: str, *, deadline: float | None = None) -> Payload:
        params = {"function": "GLOBAL_QUOTE", "symbol": symbol}
        if self.plan.entitlement_parameter is not None:
            params["entitlement"] = self.plan.entitlement_parameter
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
        refusal = self.plan.refusal(params["function"], params.get("outputsize"))
        if refusal is not None:
            raise PremiumOnly(f"{what}: not requested, {refusal}")
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
        if not isinstance(series, dict) or av.META_KEY not in data:
            raise UnexpectedPayload(f"{what}: no {av.META_KEY!r} and {SERIES_KEY!r} objects in the answer")
        return series_warnings(data, self.adjusted)

    @staticmethod
    def _check_overview(data: dict[str, Any], what: str) -> list[str]:
        if not data or "Symbol" not in data:
            if not data:
                raise SymbolNotFound(f"{what}: empty answer (unknown symbol)")
            raise UnexpectedPayload(f"{what}: no 'Symbol' in the answer")
        missing = [k for k in av.OVERVIEW_FIELDS if k not in data]
        return [f"overview misses fields {missing}"] if missing else []

    @staticmethod
    def _actions_check(fields: dict[str, str]):
        """The check of a SPLITS or DIVIDENDS answer: a ``data`` list of events with `fields`."""

        def check(data: dict[str, Any], what: str) -> list[str]:
            if not data:
                raise SymbolNotFound(f"{what}: empty answer (unknown symbol)")
            events = data.get(av.ACTIONS_DATA_KEY)
            if not isinstance(events, list):
                raise UnexpectedPayload(f"{what}: no {av.ACTIONS_DATA_KEY!r} list in the answer")
            if not all(isinstance(e, dict) for e in events):
                raise UnexpectedPayload(f"{what}: an event of {av.ACTIONS_DATA_KEY!r} is not an object")
            missing = sorted({k for e in events for k in fields if k not in e})
            return [f"events miss fields {missing}"] if missing else []

        return check

    @staticmethod
    def _check_quote(data: dict[str, Any], what: str) -> list[str]:
        found = av.quote_object(data)
        quote = found[1] if found else None
        if not isinstance(quote, dict):
            raise UnexpectedPayload(f"{what}: no {av.QUOTE_KEY!r} object in the answer")
        if not quote:
            raise SymbolNotFound(f"{what}: empty quote (unknown symbol)")
        missing = [k for k in av.QUOTE_FIELDS if k not in quote]
        return [f"quote misses fields {missing}"] if missing else []
