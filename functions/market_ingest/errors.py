"""What can go wrong while fetching one payload, classified for retries and reporting.

Messages never contain a URL with its query string: the API key travels in the query, so
every message is composed here from safe parts (function, symbol, status, elapsed time).
"""

from __future__ import annotations


class IngestError(Exception):
    """A failed fetch. `kind` is the stable short name reported in answers and manifests."""

    kind = "error"
    retryable = False

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(IngestError):
    retryable = True


class Throttled(TransientError):
    """HTTP 429, or HTTP 200 with a {"Note"} / rate-style {"Information"} body."""

    kind = "throttled"


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
    """A 4xx other than 429, or a premium-only endpoint."""

    kind = "rejected"


class QuotaExhausted(IngestError):
    """The daily quota is used up: no further request of this call can succeed."""

    kind = "quota_exhausted"


class DeadlineReached(IngestError):
    """The call's time budget ran out before this symbol was fetched."""

    kind = "deadline"
