"""Retry policy: only transient errors are retried, with growing jittered waits, Retry-After
honoured, and never past the call's deadline."""

from __future__ import annotations

import pytest
from market_ingest.errors import ServerError, SymbolNotFound, Throttled
from market_ingest.retry import RetryPolicy, retrying


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
