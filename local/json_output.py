"""Values of the database, the lake and the runs as JSON the CLI prints: strict (no bare NaN),
one spelling per type, decimals digit for digit. Shared by every `--json` output."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
import uuid
from typing import Any


class ExactNumber(str):
    """A decimal's digits, written into JSON as a number exactly as they are (not through a float)."""


def to_jsonable(value: Any) -> Any:
    """Database and Spark values as JSON: dates ISO-8601, decimals as exact numbers, bytes as hex,
    intervals as ISO-8601 durations, NaN and infinities as the strings "NaN", "Infinity", "-Infinity"
    (JSON has no such numbers)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return "NaN" if value.is_nan() else "Infinity" if value > 0 else "-Infinity"
        return int(value) if value == value.to_integral_value() else ExactNumber(format(value, "f"))
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def iso_duration(value: dt.timedelta) -> str:
    """An interval as ISO-8601, e.g. P1DT2H0M0.5S (negative parts keep their sign)."""
    days, rest = value.days, value - dt.timedelta(days=value.days)
    hours, rest = divmod(rest, dt.timedelta(hours=1))
    minutes, rest = divmod(rest, dt.timedelta(minutes=1))
    seconds = decimal.Decimal(rest.seconds) + decimal.Decimal(rest.microseconds) / 1_000_000
    return f"P{days}DT{hours}H{minutes}M{seconds.normalize():f}S"


def json_text(value: Any) -> str:
    """Strict JSON (no NaN) of `value` after :func:`to_jsonable`, decimals written digit for digit."""
    marker = f"exact-{uuid.uuid4().hex}:"

    def exact(item: Any) -> Any:
        if isinstance(item, ExactNumber):
            return marker + item
        if isinstance(item, dict):
            return {k: exact(v) for k, v in item.items()}
        if isinstance(item, list):
            return [exact(v) for v in item]
        return item

    text = json.dumps(exact(to_jsonable(value)), indent=2, allow_nan=False)
    return re.sub(f'"{marker}([-0-9.]+)"', r"\1", text)
