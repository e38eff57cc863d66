"""Rerun from the failed activity, as Data Factory's monitoring offers it.

A rerun is a new pipeline run with the same parameters. Activities that did their work in the
failed run are not executed again: their recorded output is given to the expressions downstream
(``activity('X').output``) and they are recorded as reused. Which ones:

- in the pipeline's own scope, an execution activity (notebook, function, Execute Pipeline) whose
  last attempt succeeded and that does not depend, directly or through others, on an activity
  that did not succeed (ADF reruns the failed activity and everything after it);
- inside a container (a ForEach iteration, an If branch), an execution activity of the same name
  that succeeded with the same evaluated input: so a backfill rerun skips the chunks whose master
  run succeeded and runs the others.

Control activities (Set Variable, If, ForEach...) are evaluated again: they have no effect outside
the run and rebuild the variables and return value from the reused outputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

REUSABLE_TYPES = {"DatabricksNotebook", "AzureFunctionActivity", "ExecutePipeline"}


def comparable(value: Any) -> Any:
    """A value as it reads back from the ops store's jsonb, so recorded and evaluated inputs compare."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class Reused:
    """A succeeded activity run of the failed run, stood in for by its recorded input and output."""

    activity_run_id: str
    activity: str
    activity_type: str
    input: Any
    output: Any


@dataclass
class Reuse:
    """What a rerun takes from the run it reruns (see the module docstring)."""

    rerun_of: str
    top: dict[str, Reused] = field(default_factory=dict)
    inner: dict[str, list[Reused]] = field(default_factory=dict)

    def at_top(self, name: str) -> Reused | None:
        return self.top.get(name)

    def inside(self, name: str, evaluated_input: Any) -> Reused | None:
        wanted = comparable(evaluated_input)
        return next((r for r in self.inner.get(name, []) if r.input == wanted), None)


def _downstream_of(activities: list[dict[str, Any]], roots: set[str]) -> set[str]:
    """Names of the activities that depend, directly or not, on one of `roots`."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for activity in activities:
            name = activity["name"]
            if name in found:
                continue
            if any(d["activity"] in roots or d["activity"] in found for d in activity.get("dependsOn", [])):
                found.add(name)
                changed = True
    return found


def plan_reuse(run_id: str, doc: Mapping[str, Any], activity_runs: Iterable[Mapping[str, Any]]) -> Reuse:
    """What a rerun of run `run_id` of pipeline `doc` reuses, from that run's recorded activity runs.

    Args:
        run_id: the failed run.
        doc: the pipeline JSON (its top-level activities and their dependencies).
        activity_runs: rows of ``ops.activity_runs`` of that run (every attempt, every scope), with
            ``activity_run_id``, ``activity``, ``activity_type``, ``status``, ``input``, ``output``,
            ``started_at`` and ``attempt``.
    """
    top_level = doc.get("properties", {}).get("activities", [])
    top_names = {a["name"] for a in top_level}
    rows = sorted(activity_runs, key=lambda r: (r["started_at"], r["attempt"]))
    last: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        if row["activity"] in top_names:
            last[row["activity"]] = row
    not_succeeded = {name for name in top_names if (last.get(name) or {}).get("status") != "Succeeded"}
    after_failure = _downstream_of(top_level, not_succeeded)
    reuse = Reuse(rerun_of=run_id)
    for name, row in last.items():
        if row["status"] == "Succeeded" and name not in after_failure and row["activity_type"] in REUSABLE_TYPES:
            reuse.top[name] = _reused(row)
    for row in rows:
        if row["activity"] not in top_names and row["status"] == "Succeeded" and row["activity_type"] in REUSABLE_TYPES:
            reuse.inner.setdefault(row["activity"], []).append(_reused(row))
    return reuse


def _reused(row: Mapping[str, Any]) -> Reused:
    return Reused(
        activity_run_id=row["activity_run_id"],
        activity=row["activity"],
        activity_type=row["activity_type"],
        input=row.get("input"),
        output=row.get("output"),
    )
