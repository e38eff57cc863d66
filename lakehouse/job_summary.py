"""What a job reports when it ends: one typed summary shared by every job and its readers.

Every notebook exits with :meth:`JobSummary.to_json` (ADF keeps it as the activity's
``runOutput``; the local runner records it in ``ops.activity_runs``). Telemetry turns it into row
metrics, ``lakehouse report`` sums its tables per layer. One shape for all jobs: rows read, written
and quarantined are named the same everywhere, and the job's totals are always the sums of its tables.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field


class TableSummary(BaseModel):
    """What a job did to one table. Counters a job does not keep stay None and are left out of the JSON."""

    model_config = ConfigDict(extra="forbid")

    rows_read: int | None = None
    rows_written: int = 0  # rows inserted or changed
    rows_quarantined: int | None = None
    # RAW -> BRONZE: files of the window, and files whose bronze rows differ from their manifest
    files_found: int | None = None
    files_skipped: int | None = None
    files_loaded: int | None = None
    files_rejected: int | None = None
    manifest_mismatches: list[dict[str, Any]] | None = None
    # BRONZE -> SILVER: how the rows read were routed, and how the written ones changed the table
    valid: int | None = None
    superseded: int | None = None
    inserted: int | None = None
    revised: int | None = None
    unchanged: int | None = None
    files: int | None = None
    # SILVER -> GOLD: symbols recomputed (from their first changed date, or whole)
    symbols: int | None = None
    full_symbols: int | None = None
    # GOLD -> SERVING: the mart table's load and its audit row
    status: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    rows_deleted: int | None = None
    checksum: str | None = None
    audit_id: int | None = None
    reason: str | None = None
    seconds: dict[str, float] | None = None  # read, stage and swap of the load
    ranges: int | None = None  # symbol ranges gold changed outside the window, loaded with it
    # maintenance
    files_added: int | None = None
    files_removed: int | None = None
    vacuumed: int | None = None
    version: int | None = None
    rows: int | None = None


    def plus(self, other: TableSummary) -> TableSummary:
        """The two loads of one table (two datasets landing in it) as one entry: counters add up,
        lists join; a counter neither kept stays None."""
        merged: dict[str, Any] = {}
        for name in type(self).model_fields:
            a, b = getattr(self, name), getattr(other, name)
            if a is None or b is None:
                merged[name] = a if b is None else b
            elif isinstance(a, int) and isinstance(b, int):
                merged[name] = a + b
            elif isinstance(a, list):
                merged[name] = [*a, *b]
            else:
                raise ValueError(f"cannot combine {name}: {a!r} and {b!r}")
        return TableSummary(**merged)


class FailedRule(BaseModel):
    table: str
    rule: str
    severity: str
    failed_count: int


class DqOutcome(BaseModel):
    """The data-quality rules a job evaluated; ``passed`` is False when a ``fail`` rule did not hold."""

    passed: bool
    rules_evaluated: int
    failed_rules: list[FailedRule] = Field(default_factory=list)
    results_recorded: int = 0


class JobSummary(BaseModel):
    """A job's exit summary: its parameters, one :class:`TableSummary` per table, totals, timing."""

    model_config = ConfigDict(extra="ignore")  # the totals are computed; reading JSON back drops them

    job: str
    run_id: str
    start_date: dt.date
    end_date: dt.date
    full_refresh: bool = False
    tables: dict[str, TableSummary] = Field(default_factory=dict)
    dq: DqOutcome | None = None
    files_recorded: int | None = None  # files silver recorded as merged
    database: str | None = None  # host of the serving database
    migrations_applied: list[str] | None = None
    seconds: float = 0.0

    @computed_field
    @property
    def rows_read(self) -> int:
        return sum(t.rows_read or 0 for t in self.tables.values())

    @computed_field
    @property
    def rows_written(self) -> int:
        return sum(t.rows_written for t in self.tables.values())

    @computed_field
    @property
    def rows_quarantined(self) -> int:
        return sum(t.rows_quarantined or 0 for t in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON types only, counters a job does not keep left out."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self) -> str:
        """The notebook's exit value."""
        return self.model_dump_json(exclude_none=True)
