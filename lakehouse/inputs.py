"""Rules for values that come from outside (HTTP bodies, CLI options, ADF pipeline parameters,
notebook widgets) and end up in lake paths, URLs or SQL.

One definition per kind of value, shared by the Function app, the notebooks' package and the CLI,
so a value refused in one place is refused everywhere. Each check raises ``ValueError`` whose
message starts with the field's name. Patterns are matched with ``fullmatch``: ``re.match`` with
``$`` lets a trailing newline through (``"AAPL\\n"``), which would become a folder name in RAW.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Tickers as the market APIs spell them (BRK.B, RDS-A). Strict because a symbol ends up in URLs
# and lake paths; upper case only, so what is asked for is exactly what lands.
SYMBOL_PATTERN = re.compile(r"[A-Z][A-Z0-9]{0,9}([.-][A-Z0-9]{1,4})?")
SYMBOL_EXAMPLES = "e.g. AAPL or BRK.B"
# An ADF run id is a GUID; local and manual ids are letters, digits, '-', '_' and '.'.
# It names RAW files ({run_id}.json), so no '/' and no leading '.'.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
ISO_DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Dates outside these bounds are typing mistakes, not market history (Alpha Vantage starts in 1999).
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2100, 12, 31)
MAX_SYMBOLS = 1000  # per ingest call or backfill; the default universe has 20
MAX_SYMBOL_TEXT = 40  # how much of a rejected value an error message repeats


def shown(value: object) -> str:
    """A rejected value for an error message: repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= MAX_SYMBOL_TEXT else text[: MAX_SYMBOL_TEXT - 3] + "..."


def is_symbol(value: object) -> bool:
    return isinstance(value, str) and SYMBOL_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True)
class RejectedSymbol:
    symbol: str
    reason: str


def split_symbols(candidates: Iterable[object]) -> tuple[list[str], list[RejectedSymbol]]:
    """Valid symbols (deduplicated, order kept) and the rejected ones with a reason.

    For callers that serve the valid part of a request and report the rest (an ingest call);
    :func:`symbols` refuses the whole list instead. Symbols are matched as given, whole: lower-case
    or padded input is rejected rather than silently rewritten.
    """
    valid: list[str] = []
    rejected: list[RejectedSymbol] = []
    for item in candidates:
        if not isinstance(item, str):
            rejected.append(RejectedSymbol(repr(item)[:MAX_SYMBOL_TEXT], "not a string"))
        elif not is_symbol(item):
            reason = f"does not match {SYMBOL_PATTERN.pattern} ({SYMBOL_EXAMPLES})"
            rejected.append(RejectedSymbol(item[:MAX_SYMBOL_TEXT], reason))
        elif item not in valid:
            valid.append(item)
    return valid, rejected


def run_id(value: object, field: str = "run_id") -> str:
    """A run id that is safe as a file name and as a SQL value."""
    if not isinstance(value, str) or RUN_ID_PATTERN.fullmatch(value) is None:
        raise ValueError(f"{field} must match {RUN_ID_PATTERN.pattern}, got {shown(value)}")
    return value


def date(value: object, field: str) -> dt.date:
    """A calendar date given as YYYY-MM-DD (or a date), between EARLIEST_DATE and LATEST_DATE."""
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        text = str(value).strip() if isinstance(value, str) else None
        try:
            if text is None or ISO_DATE_PATTERN.fullmatch(text) is None:
                raise ValueError
            value = dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{field} must be YYYY-MM-DD, got {shown(value)}") from None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError(f"{field} {value} is outside {EARLIEST_DATE}..{LATEST_DATE}")
    return value


def symbols(values: str | Iterable[object], field: str = "symbols") -> tuple[str, ...]:
    """Tickers from a comma-separated string or a list: all valid, at most MAX_SYMBOLS, deduplicated."""
    items = [s.strip() for s in values.split(",") if s.strip()] if isinstance(values, str) else list(values)
    if not items:
        raise ValueError(f"{field} is empty")
    if len(items) > MAX_SYMBOLS:
        raise ValueError(f"{field} has {len(items)} entries; at most {MAX_SYMBOLS} per call")
    bad = [shown(s) for s in items if not is_symbol(s)]
    if bad:
        raise ValueError(f"{field}: invalid ticker(s) {', '.join(bad[:5])}; expected {SYMBOL_EXAMPLES}")
    return tuple(dict.fromkeys(items))


def symbols_parameter(value: str, field: str = "symbols") -> str:
    """A comma-separated symbols parameter in the one spelling ingestion accepts (``AAPL,BRK.B``).

    The CLI passes this on instead of what was typed, so ``"AAPL, MSFT"`` accepted here is not
    refused by ingestion (which matches symbols whole); an empty value is refused like ``","``.
    """
    return ",".join(symbols(value, field))

