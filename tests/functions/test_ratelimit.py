"""The client-side quota: a sliding 60 s window and a per-day budget (fake clock, no sleeping)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from market_ingest.errors import DeadlineReached, QuotaExhausted
from market_ingest.providers import provider_from_settings
from market_ingest.ratelimit import RateLimiter, shared_limiter

from lakehouse.settings import load_settings


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


def test_a_burst_limit_spaces_the_starts_of_calls():
    clock = FakeClock()
    rl = RateLimiter(None, None, min_interval=1.0, clock=lambda: clock.now, sleep=clock.sleep, today=lambda: clock.day)
    starts = []
    for _ in range(4):
        rl.acquire()
        starts.append(clock.now)
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [1.0, 1.0, 1.0]


def test_every_caller_with_one_key_shares_one_limiter():
    first = shared_limiter("key-a", 5, 25, min_interval=1.0)
    assert shared_limiter("key-a", 5, 25, min_interval=1.0) is first
    assert shared_limiter("key-b", 5, 25, min_interval=1.0) is not first


def test_providers_built_for_concurrent_calls_draw_from_one_quota(tmp_path):
    """pl_backfill runs four chunks at once: each builds its provider, all count against the key."""
    settings = load_settings(home=tmp_path, provider="alpha_vantage", alphavantage_api_key="sentinel",
                             ingest_calls_per_day=3)  # fmt: skip
    clients = [provider_from_settings(settings) for _ in range(4)]
    try:
        assert len({id(c.limiter) for c in clients}) == 1
        for client in clients[:3]:
            client.limiter.acquire()
        with pytest.raises(QuotaExhausted):
            clients[3].limiter.acquire()
    finally:
        for client in clients:
            client.close()


def test_the_free_plan_limits_a_real_key_to_its_budget(tmp_path):
    settings = load_settings(home=tmp_path, provider="alpha_vantage", alphavantage_api_key="sentinel",
                             alphavantage_plan="free", symbols="AAPL",
                             poll_quotes_schedule="0 0 2 * * 1-5")  # fmt: skip
    client = provider_from_settings(settings)
    client.close()
    limits = client.limiter
    assert (limits.per_minute, limits.per_day, limits.min_interval) == (5, 25, 1.0)
