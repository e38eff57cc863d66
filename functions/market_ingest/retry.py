"""Retries with exponential backoff and jitter for transient failures (tenacity)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from market_ingest.errors import TransientError


@dataclass(frozen=True)
class RetryPolicy:
    """How one request is retried.

    Args:
        attempts: attempts in total, the first included.
        initial: first wait in seconds; doubles each retry up to `maximum`.
        maximum: longest single wait.
        jitter: up to this many random seconds added to each wait.
    """

    attempts: int = 5
    initial: float = 1.0
    maximum: float = 30.0
    jitter: float = 1.0


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with jitter, but at least the server's Retry-After when it sent one."""

    def __init__(self, policy: RetryPolicy):
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=policy.initial, max=policy.maximum, jitter=policy.jitter
        )
        self._maximum = policy.maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = self._backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            wait = max(wait, min(retry_after, self._maximum))
        return wait


def _stop_at(deadline: float | None, clock: Callable[[], float]):
    def stop(retry_state: tenacity.RetryCallState) -> bool:
        if deadline is None:
            return False
        return clock() + (retry_state.upcoming_sleep or 0.0) >= deadline

    return stop


def retrying(
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tenacity.Retrying:
    """A tenacity controller: retry TransientError only, stop at `attempts` or before `deadline`.

    The last exception is re-raised unchanged, so callers see the classified error.
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        wait=_WaitRetryAfter(policy),
        stop=tenacity.stop_after_attempt(policy.attempts) | _stop_at(deadline, clock),
        sleep=sleep,
        reraise=True,
    )
