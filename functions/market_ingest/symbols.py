"""Symbols are checked before they reach a URL or a lake path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lakehouse.inputs import is_symbol
from lakehouse.settings import SYMBOL_PATTERN


@dataclass(frozen=True)
class RejectedSymbol:
    symbol: str
    reason: str


def split_symbols(candidates: Iterable[object]) -> tuple[list[str], list[RejectedSymbol]]:
    """Valid symbols (deduplicated, order kept) and the rejected ones with a reason.

    Symbols are matched as given, whole (a trailing newline is not ignored): lower-case or padded
    input is rejected rather than silently rewritten, so what is asked for is exactly what lands.
    """
    valid: list[str] = []
    rejected: list[RejectedSymbol] = []
    for item in candidates:
        if not isinstance(item, str):
            rejected.append(RejectedSymbol(repr(item)[:40], "not a string"))
        elif not is_symbol(item):
            rejected.append(RejectedSymbol(item[:40], f"does not match {SYMBOL_PATTERN.pattern} (e.g. AAPL, BRK.B)"))
        elif item not in valid:
            valid.append(item)
    return valid, rejected
