"""Client-side quota: at most N calls in any 60 s window and M calls per UTC day, per API key.

The provider counts calls per key, so every caller with the same key must draw from one limiter:
:func:`shared_limiter` keeps one per key (by its hash) for the whole process. That covers the
concurrent calls one Function app instance serves (``pl_backfill`` runs four chunks at once);
across instances nothing is shared, which is why the ingestion app is held to one instance
(see docs/ingestion.md, "One rate limit per key").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable

from market_ingest.errors import DeadlineReached, QuotaExhausted


class RateLimiter:
    """A sliding-window limiter shared by the worker threads of one call.

    A sliding window (not a token bucket) because Alpha Vantage counts calls per minute:
    a bucket that starts full would allow twice the quota in the first minute.

    Args:
        per_minute: calls allowed in any 60 s window; None for no limit.
        per_day: calls allowed per UTC day in this process; None for no limit.
        min_interval: seconds between the starts of two calls (a burst limit); 0 for none.
        clock: monotonic seconds (injectable for tests).
        sleep: blocking wait (injectable for tests).
        today: the current UTC date (injectable for tests).
    """

    def __init__(
        self,
        per_minute: int | None = None,
        per_day: int | None = None,
        *,
        min_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ):
        self.per_minute = per_minute
        self.per_day = per_day
        self.min_interval = min_interval
        self._last_start: float | None = None
        self._clock = clock
        self._sleep = sleep
        self._today = today
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self._day: dt.date | None = None
        self._day_count = 0

    def acquire(self, deadline: float | None = None) -> None:
        """Block until one call may start; raise when the day's quota or the deadline is hit."""
        while True:
            with self._lock:
                now = self._clock()
                self._roll_day()
                if self.per_day is not None and self._day_count >= self.per_day:
                    raise QuotaExhausted(f"client-side daily quota of {self.per_day} calls used up")
                while self._recent and now - self._recent[0] >= 60.0:
                    self._recent.popleft()
                wait = 0.0
                if self.per_minute is not None and len(self._recent) >= self.per_minute:
                    wait = 60.0 - (now - self._recent[0])
                if self._last_start is not None:
                    wait = max(wait, self.min_interval - (now - self._last_start))
                if wait <= 0.0:
                    self._recent.append(now)
                    self._last_start = now
                    self._day_count += 1
                    return
            if deadline is not None and now + wait > deadline:
                raise DeadlineReached("rate limit wait would pass the call deadline")
            self._sleep(max(wait, 0.001))

    def _roll_day(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._day_count = today, 0

    @property
    def calls_today(self) -> int:
        with self._lock:
            self._roll_day()
            return self._day_count


_SHARED: dict[tuple[str, int | None, int | None, float], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(
    api_key: str, per_minute: int | None, per_day: int | None, *, min_interval: float = 0.0
) -> RateLimiter:
    """The one limiter of this API key (and these limits) in the process, created on first use.

    Keyed by the key's sha256, so the key itself is not kept in the registry.
    """
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    entry = (digest, per_minute, per_day, min_interval)
    with _SHARED_LOCK:
        limiter = _SHARED.get(entry)
        if limiter is None:
            limiter = _SHARED[entry] = RateLimiter(per_minute, per_day, min_interval=min_interval)
        return limiter


def forget_shared_limiters() -> None:
    """Drop every shared limiter (tests start each case with fresh counts)."""
    with _SHARED_LOCK:
        _SHARED.clear()
