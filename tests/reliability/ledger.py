"""The reliability suite's ledger: each case states what it tried, what was expected and what
happened, with its reconciliation counts. `make reliability` renders the ledger into
docs/reliability.md (see report.py), so the figures there are the ones the tests asserted."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

# category -> its heading in docs/reliability.md
CATEGORIES = {
    "api fault": "API faults",
    "bad input": "Bad input",
    "crash recovery": "Crash recovery",
    "concurrency": "Concurrency",
    "security": "Security",
    "local runtime": "Local runtime safety",
    "silent loss": "Silent loss",
}

# Reconciliation counts a case may report. lost, duplicate, stale and extra rows must be zero for
# the suite to pass (spark_jobs.reconcile: a stale row differs from its source row, an extra one has none).
RECONCILIATION_KEYS = (
    "raw_records",
    "bronze_rows",
    "silver_rows",
    "quarantine_rows",
    "gold_rows",
    "mart_rows",
    "lost_rows",
    "duplicate_rows",
    "stale_rows",
    "extra_rows",
)
DEFECT_KEYS = ("lost_rows", "duplicate_rows", "stale_rows", "extra_rows")


class LostRowsError(AssertionError):
    """A case's reconciliation found rows lost, duplicated, stale or extra between layers."""


@dataclass
class Case:
    """One row of docs/reliability.md."""

    nodeid: str
    category: str
    title: str
    expected: str
    observed: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    outcome: str = "not run"  # passed | failed | skipped
    seconds: float = 0.0
    crash_point: str | None = None
    _started: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown reliability category {self.category!r}; expected one of {tuple(CATEGORIES)}")

    def observe(self, text: str, **figures: Any) -> Case:
        """What actually happened, in words a reader can check against `expected`."""
        self.observed = text
        self.figures.update(figures)
        return self

    def reconcile(self, counts: Any) -> Case:
        """Record layer counts (a dict or an object with `as_dict()`) and fail on any lost or
        duplicated row. Unknown keys are rejected so the report's columns stay meaningful."""
        values = counts.as_dict() if hasattr(counts, "as_dict") else dict(counts)
        unknown = set(values) - set(RECONCILIATION_KEYS)
        if unknown:
            raise ValueError(f"unknown reconciliation keys {sorted(unknown)}; expected {RECONCILIATION_KEYS}")
        self.figures.update(values)
        defects = {k: values.get(k, 0) for k in DEFECT_KEYS}
        if any(defects.values()):
            shown = ", ".join(f"{k}={v}" for k, v in defects.items())
            raise LostRowsError(f"{self.title}: {shown} ({values})")
        return self

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.seconds = round(time.monotonic() - self._started, 2)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("_")}


class Ledger:
    """All cases of one pytest session, in run order."""

    def __init__(self) -> None:
        self.cases: list[Case] = []

    def open(self, nodeid: str, category: str, title: str, expected: str, crash_point: str | None = None) -> Case:
        case = Case(nodeid=nodeid, category=category, title=title, expected=expected, crash_point=crash_point)
        self.cases.append(case)
        return case
