"""How often an Azure Functions timer schedule (NCRONTAB, six fields, UTC) fires.

A schedule is checked against a provider plan's daily budget before any call is made, so the
count must be exact for the schedules the app uses: lists, ranges, steps and ``*`` in each field.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

# (name, lowest, highest) of the six fields: second minute hour day month day-of-week.
FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
          ("day-of-week", 0, 6))  # fmt: skip


class ScheduleError(ValueError):
    """A schedule that is not a six-field NCRONTAB expression; the message names the field."""


def _field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                first, last = lo, hi
            elif "-" in body:
                first, last = (int(v) for v in body.split("-", 1))
            else:
                first = int(body)
                last = hi if step_text else first
        except ValueError:
            raise ScheduleError(f"{name} field {text!r} is not a number, range, list or step") from None
        if step < 1 or not lo <= first <= last <= hi:
            raise ScheduleError(f"{name} field {text!r} is outside {lo}-{hi}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed NCRONTAB expression (times in UTC)."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        parts = expression.split()
        if len(parts) != len(FIELDS):
            raise ScheduleError(f"{expression!r} has {len(parts)} fields; NCRONTAB has six (second first)")
        fields = [_field(part, *spec) for part, spec in zip(parts, FIELDS, strict=True)]
        return cls(expression, *fields)

    def runs_on(self, day: dt.date, within: tuple[dt.time, dt.time] | None = None) -> int:
        """Firings on `day`, only those in [start, end) of `within` when given."""
        weekday = (day.weekday() + 1) % 7
        if day.day not in self.days or day.month not in self.months or weekday not in self.weekdays:
            return 0
        lo, hi = within or (dt.time(0), None)
        count = 0
        for hour in self.hours:
            for minute in self.minutes:
                for second in self.seconds:
                    at = dt.time(hour, minute, second)
                    count += at >= lo and (hi is None or at < hi)
        return count

    def shortest_gap_minutes(self) -> float:
        """The shortest time between two firings, in minutes (a day when it fires once a day;
        firings on consecutive days are taken as the same times of day)."""
        times = sorted(h * 3600 + m * 60 + s for h in self.hours for m in self.minutes for s in self.seconds)
        gaps = [b - a for a, b in itertools.pairwise(times)] + [times[0] + 86400 - times[-1]]
        return min(gaps) / 60
