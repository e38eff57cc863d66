"""What can go wrong while fetching one payload, classified for retries and reporting.

Each class declares the two retry facts, and nothing else decides them:

- a :class:`TransientError` is retried at once, within the call (:mod:`market_ingest.retry`);
- ``retryable``: a later call may succeed. It is the failure's ``retryable`` flag in answers and
  manifests, and a call whose failures are all retryable answers 503 rather than 502;
- ``ends_call``: no other request of the same call can succeed either (the day's quota is gone,
  the plan does not serve the request, the key is the demo key), so the call stops requesting.

Alpha Vantage's HTTP-200 messages are mapped to these classes by their meaning in
:data:`market_ingest.providers.alpha_vantage.MESSAGE_MEANINGS`.

Messages never contain a URL with its query string: the API key travels in the query, so
every message is composed here from safe parts (function, symbol, status, elapsed time).
"""

from __future__ import annotations

from typing import Any


class IngestError(Exception):
    """A failed fetch. `kind` is the stable short name reported in answers and manifests."""

    kind = "error"
    retryable = False
    ends_call = False

    def failure(self, symbol: str) -> dict[str, Any]:
        """The symbol's entry in the call's ``failures``."""
        return {"symbol": symbol, "kind": self.kind, "reason": str(self), "retryable": self.retryable}

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(IngestError):
    retryable = True


class Throttled(TransientError):
    """HTTP 429, or HTTP 200 with a {"Note"} / rate-style {"Information"} body."""

    kind = "throttled"


class BurstThrottled(TransientError):
    """Too many requests in a second ("... 1 request per second ..."): retried after a pause."""

    kind = "burst"
    PAUSE_SECONDS = 1.5  # the free plan allows one request a second; wait a little longer

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message, retry_after=retry_after or self.PAUSE_SECONDS)


class ServerError(TransientError):
    kind = "server_error"


class RequestTimeout(TransientError):
    kind = "timeout"


class ConnectionFailed(TransientError):
    kind = "connection"


class TruncatedPayload(TransientError):
    """HTTP 200 whose body is not complete JSON."""

    kind = "truncated"


class PermanentError(IngestError):
    """Retrying the same request will not help; the symbol fails with this reason."""


class SymbolNotFound(PermanentError):
    """{"Error Message"} for a symbol, or an empty OVERVIEW / GLOBAL_QUOTE."""

    kind = "not_found"


class UnexpectedPayload(PermanentError):
    kind = "unexpected_payload"


class RequestRejected(PermanentError):
    """A 4xx other than 429, or an API key the provider refuses."""

    kind = "rejected"


class PremiumOnly(PermanentError):
    """The plan of the key does not serve this function or parameter value (a premium feature).

    Every symbol of the call asks for the same function and output size: none can succeed.
    """

    kind = "premium_only"
    ends_call = True


class DemoKey(PermanentError):
    """The ``demo`` key, which serves a few documentation examples only: configure a real key."""

    kind = "demo_key"
    ends_call = True


class InvalidSymbol(PermanentError):
    """A requested symbol that is not a ticker; it never reaches a URL or a path."""

    kind = "invalid_symbol"


class QuotaExhausted(IngestError):
    """The daily quota is used up: no further request of this call can succeed, a later call can."""

    kind = "quota_exhausted"
    retryable = True
    ends_call = True


class DeadlineReached(IngestError):
    """The call's time budget ran out before this symbol was fetched; a later call fetches it."""

    kind = "deadline"
    retryable = True


class UnexpectedFailure(IngestError):
    """Anything else while landing one symbol (a bug, a storage error): the others still land."""

    kind = "internal"
    retryable = True

    @classmethod
    def of(cls, exc: BaseException) -> UnexpectedFailure:
        return cls(f"{type(exc).__name__}: {exc}"[:300])
