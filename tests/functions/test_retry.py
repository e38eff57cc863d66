"""Retry policy: only transient errors are retried, with growing jittered waits, Retry-After
honoured, and never past the call's deadline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from market_ingest.errors import IngestError, ServerError, SymbolNotFound, Throttled, TransientError
from market_ingest.ingest import Ingestion, IngestRequest
from market_ingest.retry import RetryPolicy, retrying

from lakehouse.raw_store import DirectoryRawStore


def run(policy: RetryPolicy, errors: list[Exception], deadline: float | None = None, clock=lambda: 0.0):
    sleeps: list[float] = []
    calls = 0
    for attempt in retrying(policy, deadline=deadline, sleep=sleeps.append, clock=clock):
        with attempt:
            calls += 1
            if errors:
                raise errors.pop(0)
    return calls, sleeps


def test_transient_errors_are_retried_with_exponential_waits_within_jitter():
    policy = RetryPolicy(attempts=5, initial=1.0, maximum=30.0, jitter=0.5)
    calls, sleeps = run(policy, [ServerError("x"), ServerError("x"), ServerError("x")])
    assert calls == 4
    for i, wait in enumerate(sleeps):
        assert 2**i <= wait <= 2**i + 0.5


def test_waits_are_capped_at_the_maximum():
    calls, sleeps = run(RetryPolicy(attempts=8, initial=1.0, maximum=3.0, jitter=0.0), [ServerError("x")] * 7)
    assert calls == 8 and max(sleeps) == 3.0


def test_permanent_errors_are_not_retried():
    with pytest.raises(SymbolNotFound):
        run(RetryPolicy(attempts=5), [SymbolNotFound("bad")])


def test_the_last_error_is_raised_when_attempts_run_out():
    with pytest.raises(Throttled, match="third"):
        run(RetryPolicy(attempts=3, initial=0, jitter=0), [Throttled("first"), Throttled("second"), Throttled("third")])


def test_retry_after_from_the_server_lengthens_the_wait():
    _, sleeps = run(RetryPolicy(attempts=3, initial=0.1, maximum=30, jitter=0), [Throttled("x", retry_after=7)])
    assert sleeps == [7]


def test_no_retry_sleeps_past_the_deadline():
    with pytest.raises(ServerError):
        run(RetryPolicy(attempts=10, initial=4, jitter=0), [ServerError("x")] * 10, deadline=5.0, clock=lambda: 2.0)


# --- one classification: what the error classes declare is what the answer says -------------


def _concrete_errors() -> list[type[IngestError]]:
    found, todo = [], [IngestError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.kind != IngestError.kind and cls.__module__ == IngestError.__module__:
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


class FailingProvider:
    """Stands in for the market API: every symbol fails with the error given for it."""

    name = "synthetic"

    def __init__(self, errors: dict[str, BaseException]):
        self.errors = errors

    def daily_bars(self, symbol: str, outputsize: str, *, deadline: float | None = None):
        raise self.errors[symbol]

    def close(self) -> None:
        pass


def run_call(tmp_path: Path, symbols: list[str], errors: dict[str, BaseException]):
    request = IngestRequest.from_body(
        {"symbols": symbols, "start_date": "2024-03-04", "end_date": "2024-03-04", "run_id": "r-1"},
        default_symbols=("AAPL",),
        default_date=dt.date(2024, 3, 4),
    )
    ingestion = Ingestion(FailingProvider(errors), DirectoryRawStore(tmp_path), concurrency=1)
    return ingestion.run(request, now=dt.datetime(2024, 3, 5, 12, tzinfo=dt.UTC))


def test_every_error_kind_declares_whether_a_later_call_can_succeed():
    declared = {cls.kind: cls.retryable for cls in _concrete_errors()}
    assert declared == {
        "throttled": True, "server_error": True, "timeout": True, "connection": True, "truncated": True,
        "quota_exhausted": True, "deadline": True, "internal": True, "burst": True,
        "not_found": False, "unexpected_payload": False, "rejected": False, "invalid_symbol": False,
        "premium_only": False, "demo_key": False,
    }  # fmt: skip
    assert all(issubclass(cls, TransientError) <= cls.retryable for cls in _concrete_errors())


@pytest.mark.parametrize(
    "error",
    [*(cls("boom") for cls in _concrete_errors() if cls.kind != "invalid_symbol"), OSError("disk full")],
    ids=lambda e: type(e).__name__,
)
def test_the_failure_flag_and_the_call_status_follow_the_declaration(tmp_path, error):
    result = run_call(tmp_path, ["KO"], {"KO": error})
    (failure,) = result.failures
    expected = error.retryable if isinstance(error, IngestError) else True  # an unexpected error: try again later
    assert failure["retryable"] is expected
    assert result.status_code == (503 if expected else 502)


def test_one_failure_that_no_retry_can_fix_makes_the_call_a_502(tmp_path):
    result = run_call(tmp_path, ["aapl", "KO"], {"KO": ServerError("down")})
    assert [(f["symbol"], f["kind"], f["retryable"]) for f in result.failures] == [
        ("KO", "server_error", True),
        ("aapl", "invalid_symbol", False),
    ]
    assert result.status_code == 502
    assert run_call(tmp_path, ["KO"], {"KO": ServerError("down")}).status_code == 503


def test_failure_classes_take_their_retry_facts_from_the_class_header():
    assert (ServerError.kind, ServerError.retryable, ServerError.ends_call) == ("server_error", True, False)
    assert (SymbolNotFound.kind, SymbolNotFound.retryable) == ("not_found", False)
    with pytest.raises(TypeError, match="unknown failure facts \\['retriable'\\]"):

        class Misspelt(TransientError, retriable=False):
            pass
