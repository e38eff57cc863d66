"""What a backfill would do, chunk by chunk, before it runs (`lakehouse backfill --dry-run`).

``pl_backfill`` cuts ``startDate..endDate`` into chunks of ``chunkDays`` days and runs the daily
master once per chunk. For each chunk the plan says:

- ``skip``: resuming (``--resume``) the last unfinished backfill of the same parameters, whose
  run of this chunk succeeded: its output is reused, the chunk is not run again;
- ``replace``: a run of the master for exactly this window (and symbols) succeeded before; running
  it again replaces that window in gold and the marts;
- ``run``: no run of this window succeeded yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from local.adf.rerun import Reuse

CHUNK_ACTIVITIES = ("Run master for chunk", "Run master for chunk in parallel")


@dataclass(frozen=True)
class ChunkPlan:
    index: int  # 1-based
    start: str
    end: str
    action: str  # skip | replace | run
    reason: str


def chunk_windows(start: dt.date, end: dt.date, chunk_days: int) -> list[tuple[str, str]]:
    """The chunks ``pl_backfill`` runs, as its expressions compute them (last one ends at `end`)."""
    windows = []
    first = start
    while first <= end:
        last = min(first + dt.timedelta(days=chunk_days - 1), end)
        windows.append((first.isoformat(), last.isoformat()))
        first += dt.timedelta(days=chunk_days)
    return windows


def _key(parameters: Mapping[str, Any] | None) -> tuple[Any, ...]:
    p = parameters or {}
    return (p.get("startDate"), p.get("endDate"), p.get("symbols") or "")


def plan(
    windows: list[tuple[str, str]],
    symbols: str,
    succeeded_masters: Iterable[Mapping[str, Any]],
    resumed: Reuse | None = None,
) -> list[ChunkPlan]:
    """The action of each chunk.

    Args:
        windows: from :func:`chunk_windows`.
        symbols: the backfill's ``symbols`` parameter ('' for the universe).
        succeeded_masters: succeeded ``pl_lakehouse_daily`` runs (rows with ``run_id``,
            ``parameters``, ``ended_at``).
        resumed: what resuming the unfinished backfill reuses, if resuming.
    """
    done: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in succeeded_masters:
        done.setdefault(_key(row["parameters"]), row)
    reused: dict[tuple[Any, ...], str] = {}
    for name in CHUNK_ACTIVITIES:
        for item in resumed.inner.get(name, []) if resumed else []:
            reused[_key((item.input or {}).get("parameters"))] = str((item.output or {}).get("pipelineRunId", ""))
    plans = []
    for i, (first, last) in enumerate(windows, start=1):
        key = (first, last, symbols)
        if key in reused:
            plans.append(ChunkPlan(i, first, last, "skip", f"succeeded in run {reused[key][:8]} (resumed)"))
        elif key in done:
            row = done[key]
            when = row["ended_at"].strftime("%Y-%m-%d %H:%M") if row.get("ended_at") else "?"
            plans.append(ChunkPlan(i, first, last, "replace", f"succeeded in run {row['run_id'][:8]} at {when}"))
        else:
            plans.append(ChunkPlan(i, first, last, "run", "no succeeded run of this window"))
    return plans
