"""Client-side quota: at most N calls in any 60 s window and M calls per UTC day."""

from __future__ import annotations

import datetime as dt
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
        clock: monotonic seconds (injectable for tests).
        sleep: blocking wait (injectable for tests).
        today: the current UTC date (injectable for tests).
    """

    def __init__(
        self,
        per_minute: int | None = None,
        per_day: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ):
        self.per_minute = per_minute
        self.per_day = per_day
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
                if self.per_minute is None or len(self._recent) < self.per_minute:
                    self._recent.append(now)
                    self._day_count += 1
                    return
                wait = 60.0 - (now - self._recent[0])
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
