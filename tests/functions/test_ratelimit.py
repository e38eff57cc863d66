"""The client-side quota: a sliding 60 s window and a per-day budget (fake clock, no sleeping)."""

from __future__ import annotations

import datetime as dt

import pytest
from market_ingest.errors import DeadlineReached, QuotaExhausted
from market_ingest.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.day = dt.date(2024, 3, 1)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(clock: FakeClock, per_minute=None, per_day=None) -> RateLimiter:
    return RateLimiter(per_minute, per_day, clock=lambda: clock.now, sleep=clock.sleep, today=lambda: clock.day)


def test_no_more_than_n_calls_start_in_any_minute():
    clock = FakeClock()
    rl = limiter(clock, per_minute=5)
    starts = []
    for _ in range(12):
        rl.acquire()
        starts.append(clock.now)
    for i in range(len(starts)):
        in_window = [t for t in starts if starts[i] <= t < starts[i] + 60]
        assert len(in_window) <= 5
    assert starts[5] - starts[0] == pytest.approx(60.0)  # the 6th waits until the 1st leaves the window


def test_the_daily_budget_raises_quota_exhausted_and_resets_the_next_day():
    clock = FakeClock()
    rl = limiter(clock, per_day=3)
    for _ in range(3):
        rl.acquire()
    with pytest.raises(QuotaExhausted):
        rl.acquire()
    clock.day += dt.timedelta(days=1)
    rl.acquire()
    assert rl.calls_today == 1


def test_a_wait_past_the_deadline_is_refused_instead_of_slept():
    clock = FakeClock()
    rl = limiter(clock, per_minute=1)
    rl.acquire()
    with pytest.raises(DeadlineReached):
        rl.acquire(deadline=clock.now + 10)
    assert clock.sleeps == []


def test_without_limits_nothing_waits():
    clock = FakeClock()
    rl = limiter(clock)
    for _ in range(1000):
        rl.acquire()
    assert clock.sleeps == []
