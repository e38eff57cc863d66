"""What each Alpha Vantage plan serves, declared as data, and the checks made against it.

The plan is chosen by ``ALPHAVANTAGE_PLAN``. A request the plan cannot serve is refused before it
is made, with the reason: a free key never asks for ``outputsize=full`` or the adjusted series
(Alpha Vantage would answer with a premium-only message and count the call), and schedules that
need more calls a day than the plan allows are refused when the app starts a call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, get_args

PlanName = Literal["free", "premium", "premium_realtime"]
PLAN_NAMES: tuple[str, ...] = get_args(PlanName)
# What GLOBAL_QUOTE serves: without ``entitlement`` the last session's close, with it the price
# 15 minutes ago or now (US equities; premium plans with that market-data entitlement).
QuoteEntitlement = Literal["end_of_day", "delayed", "realtime"]
COMPACT_SESSIONS = 100  # what outputsize=compact returns: the latest 100 sessions
DAILY_ADJUSTED, DAILY = "TIME_SERIES_DAILY_ADJUSTED", "TIME_SERIES_DAILY"
FREE_FUNCTIONS = frozenset({DAILY, "OVERVIEW", "GLOBAL_QUOTE", "SPLITS", "DIVIDENDS"})


@dataclass(frozen=True)
class ProviderPlan:
    """One plan of the provider.

    Attributes:
        calls_per_minute / calls_per_day: the provider's limits for one key (None: no limit).
        min_seconds_between_calls: the burst limit (free keys: one request a second).
        functions: the functions the plan serves.
        output_sizes: the daily series' output sizes it serves.
        quote_entitlement: what GLOBAL_QUOTE is asked for.
    """

    name: str
    calls_per_minute: int
    calls_per_day: int | None
    min_seconds_between_calls: float
    functions: frozenset[str]
    output_sizes: frozenset[str]
    quote_entitlement: QuoteEntitlement

    @property
    def serves_adjusted(self) -> bool:
        return DAILY_ADJUSTED in self.functions

    @property
    def entitlement_parameter(self) -> str | None:
        """The ``entitlement`` query value of GLOBAL_QUOTE, None for end-of-day quotes."""
        return None if self.quote_entitlement == "end_of_day" else self.quote_entitlement

    def refusal(self, function: str, outputsize: str | None = None) -> str | None:
        """Why the plan does not serve this request, or None when it does."""
        if function not in self.functions:
            return f"ALPHAVANTAGE_PLAN={self.name} does not serve {function} (a premium function)"
        if outputsize is not None and outputsize not in self.output_sizes:
            return (
                f"ALPHAVANTAGE_PLAN={self.name} serves {function} with outputsize="
                f"{'/'.join(sorted(self.output_sizes))} only, the latest {COMPACT_SESSIONS} sessions per symbol"
            )
        return None

    def history_refusal(self, start: dt.date, compact_first: dt.date, function: str = DAILY) -> str | None:
        """Why a window starting on `start` is beyond the plan, given the first session that
        ``outputsize=compact`` still returns; None when the plan covers it."""
        if start >= compact_first or "full" in self.output_sizes:
            return None
        return (
            f"ALPHAVANTAGE_PLAN={self.name} serves only the latest {COMPACT_SESSIONS} sessions per symbol "
            f"(outputsize=compact, from {compact_first}); a window from {start} needs outputsize=full, a "
            f"premium feature of {function}. Start on or after {compact_first}, or use a premium key."
        )

    def budget_refusal(self, *, daily_run_calls: int, quote_calls: int, quote_calls_per_minute: int,
                       detail: str) -> str | None:  # fmt: skip
        """Why the schedules need more calls than the plan allows, or None when they fit."""
        needed = daily_run_calls + quote_calls
        if self.calls_per_day is not None and needed > self.calls_per_day:
            return (
                f"ALPHAVANTAGE_PLAN={self.name} allows {self.calls_per_day} calls a day; the schedules need "
                f"{needed} ({detail}). Poll quotes less often or not at all (LAKEHOUSE_POLL_QUOTES_SCHEDULE), "
                f"ingest fewer symbols (LAKEHOUSE_SYMBOLS), or use a premium key."
            )
        if quote_calls_per_minute > self.calls_per_minute:
            return (
                f"ALPHAVANTAGE_PLAN={self.name} allows {self.calls_per_minute} calls a minute; a quote poll "
                f"needs {quote_calls_per_minute} a minute to finish before the next one starts. Poll fewer "
                f"symbols, poll less often (LAKEHOUSE_POLL_QUOTES_SCHEDULE) or use a larger plan."
            )
        return None


PLANS: dict[str, ProviderPlan] = {
    "free": ProviderPlan(
        name="free", calls_per_minute=5, calls_per_day=25, min_seconds_between_calls=1.0,
        functions=FREE_FUNCTIONS, output_sizes=frozenset({"compact"}), quote_entitlement="end_of_day",
    ),
    "premium": ProviderPlan(
        name="premium", calls_per_minute=75, calls_per_day=None, min_seconds_between_calls=0.0,
        functions=FREE_FUNCTIONS | {DAILY_ADJUSTED}, output_sizes=frozenset({"compact", "full"}),
        quote_entitlement="delayed",
    ),
    "premium_realtime": ProviderPlan(
        name="premium_realtime", calls_per_minute=75, calls_per_day=None, min_seconds_between_calls=0.0,
        functions=FREE_FUNCTIONS | {DAILY_ADJUSTED}, output_sizes=frozenset({"compact", "full"}),
        quote_entitlement="realtime",
    ),
}  # fmt: skip
