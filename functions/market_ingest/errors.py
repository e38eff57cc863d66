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

_FACTS = ("kind", "retryable", "ends_call")


class IngestError(Exception):
    """A failed fetch. `kind` is the stable short name reported in answers and manifests.

    A subclass states its facts in its header, ``class X(PermanentError, kind="x", ends_call=True)``,
    and inherits the others, so each class reads as one line of the classification.
    """

    kind = "error"
    retryable = False
    ends_call = False

    def __init_subclass__(cls, **facts: Any) -> None:
        super().__init_subclass__()
        unknown = set(facts) - set(_FACTS)
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown failure facts {sorted(unknown)}; known: {_FACTS}")
        for name, value in facts.items():
            setattr(cls, name, value)

    def failure(self, symbol: str) -> dict[str, Any]:
        """The symbol's entry in the call's ``failures``."""
        return {"symbol": symbol, "kind": self.kind, "reason": str(self), "retryable": self.retryable}

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(IngestError, retryable=True):
    """The same request may succeed when repeated: retried at once, within the call."""


class Throttled(TransientError, kind="throttled"):
    """HTTP 429, or HTTP 200 with a {"Note"} / rate-style {"Information"} body."""


class BurstThrottled(TransientError, kind="burst"):
    """Too many requests in a second ("... 1 request per second ..."): retried after a pause."""

    PAUSE_SECONDS = 1.5  # the free plan allows one request a second; wait a little longer

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message, retry_after=retry_after or self.PAUSE_SECONDS)


class ServerError(TransientError, kind="server_error"):
    """HTTP 5xx: the provider's own trouble."""


class RequestTimeout(TransientError, kind="timeout"):
    """No complete answer within the request's timeout."""


class ConnectionFailed(TransientError, kind="connection"):
    """Any other failure of the HTTP exchange: DNS, a refused or reset connection, TLS, a broken read."""


class TruncatedPayload(TransientError, kind="truncated"):
    """HTTP 200 whose body is not complete JSON."""


class PermanentError(IngestError):
    """Retrying the same request will not help; the symbol fails with this reason."""


class SymbolNotFound(PermanentError, kind="not_found"):
    """{"Error Message"} for a symbol, or an empty OVERVIEW / GLOBAL_QUOTE."""


class UnexpectedPayload(PermanentError, kind="unexpected_payload"):
    """Complete JSON without the objects the function answers with."""


class RequestRejected(PermanentError, kind="rejected"):
    """A 4xx other than 429, or an API key the provider refuses."""


class PremiumOnly(PermanentError, kind="premium_only", ends_call=True):
    """The plan of the key does not serve this function or parameter value (a premium feature).

    Every symbol of the call asks for the same function and output size: none can succeed.
    """


class DemoKey(PermanentError, kind="demo_key", ends_call=True):
    """The ``demo`` key, which serves a few documentation examples only: configure a real key."""


class InvalidSymbol(PermanentError, kind="invalid_symbol"):
    """A requested symbol that is not a ticker; it never reaches a URL or a path."""


class QuotaExhausted(IngestError, kind="quota_exhausted", retryable=True, ends_call=True):
    """The daily quota is used up: no further request of this call can succeed, a later call can."""


class DeadlineReached(IngestError, kind="deadline", retryable=True):
    """The call's time budget ran out before this symbol was fetched; a later call fetches it."""


class UnexpectedFailure(IngestError, kind="internal", retryable=True):
    """Anything else while landing one symbol (a bug, a storage error): the others still land."""

    @classmethod
    def of(cls, exc: BaseException) -> UnexpectedFailure:
        return cls(f"{type(exc).__name__}: {exc}"[:300])
