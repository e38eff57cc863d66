"""Rerun from the failed activity: succeeded work is not executed again, outputs are reused, runs linked."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest

from local.adf.context import RunContext
from local.adf.rerun import plan_reuse
from local.adf.runner import rerun_pipeline, run_pipeline
from local.run_store import UnknownRun

FIXTURES = Path(__file__).parent / "fixtures" / "adf"


class Notebooks:
    """Counts notebook executions; fails the notebooks named in `failing` until told otherwise."""

    def __init__(self, failing: set[str]):
        self.calls: Counter[str] = Counter()
        self.failing = failing

    def __call__(self, call):
        name = call.notebook_path.rsplit("/", 1)[-1]
        value = call.base_parameters.get("value")
        self.calls[f"{name}:{value}" if name == "child" else name] += 1
        if name in self.failing or f"{name}:{value}" in self.failing:
            raise RuntimeError(f"{name} exploded")
        suffix = {"extract": "-e", "transform": "-t", "load": "-l"}.get(name, "")
        return json.dumps({"value": f"{value}{suffix}"})


def test_a_run_failed_in_its_third_activity_is_completed_without_repeating_the_first_two(store):
    notebooks = Notebooks(failing={"load"})
    ctx = RunContext(notebook_executor=notebooks, adf_root=FIXTURES, recorder=store)
    failed = run_pipeline("pl_three_steps", {"value": "v"}, ctx)
    assert failed.status == "Failed"
    assert notebooks.calls == {"extract": 1, "transform": 1, "load": 1}

    notebooks.failing.clear()
    original = store.pipeline_run(failed.run_id)
    rerun = rerun_pipeline(original, store.activity_runs(failed.run_id), ctx)

    assert rerun.status == "Succeeded", rerun.error
    assert notebooks.calls == {"extract": 1, "transform": 1, "load": 2}
    # the reused outputs feed the expressions downstream
    assert rerun.output == {"loaded": "v-e-t-l", "extracted": "v-e"}
    assert rerun.parameters == {"value": "v"}
    recorded = store.pipeline_run(rerun.run_id)
    assert recorded["rerun_of"] == failed.run_id
    assert recorded["status"] == "Succeeded"
    before = {a["activity"]: a for a in store.activity_runs(failed.run_id)}
    after = {a["activity"]: a for a in store.activity_runs(rerun.run_id)}
    assert after["Extract"]["reused_from"] == before["Extract"]["activity_run_id"]
    assert after["Transform"]["reused_from"] == before["Transform"]["activity_run_id"]
    assert after["Load"]["reused_from"] is None and after["Load"]["status"] == "Succeeded"
    assert after["Record failure of Load"]["status"] == "Skipped"


def test_a_rerun_of_chunks_runs_only_the_chunks_that_failed(store):
    notebooks = Notebooks(failing={"child:2"})
    ctx = RunContext(notebook_executor=notebooks, adf_root=FIXTURES, recorder=store)
    failed = run_pipeline("pl_chunks", {"items": "[1, 2, 3]"}, ctx)
    assert failed.status == "Failed"
    assert notebooks.calls == {"child:1": 1, "child:2": 1, "child:3": 1}

    notebooks.failing.clear()
    rerun = rerun_pipeline(store.pipeline_run(failed.run_id), store.activity_runs(failed.run_id), ctx)
    assert rerun.status == "Succeeded", rerun.error
    assert notebooks.calls == {"child:1": 1, "child:2": 2, "child:3": 1}
    chunk_runs = [a for a in store.activity_runs(rerun.run_id) if a["activity"] == "Run chunk"]
    assert sorted((a["input"]["parameters"]["value"], a["reused_from"] is not None) for a in chunk_runs) == [
        ("1", True), ("2", False), ("3", True),
    ]  # fmt: skip


def test_an_activity_after_a_failed_one_is_executed_again_even_if_it_succeeded():
    def after(name, condition="Succeeded"):
        return [{"activity": name, "dependencyConditions": [condition]}]

    doc = {"properties": {"activities": [
        {"name": "A", "type": "DatabricksNotebook", "dependsOn": []},
        {"name": "B", "type": "DatabricksNotebook", "dependsOn": after("A")},
        {"name": "Cleanup", "type": "DatabricksNotebook", "dependsOn": after("B", "Completed")},
        {"name": "Note", "type": "SetVariable", "dependsOn": after("A")},
    ]}}  # fmt: skip
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = [
        {"activity_run_id": f"id-{n}", "activity": n, "activity_type": kind, "status": status, "input": {},
         "output": {"n": n}, "started_at": t0 + dt.timedelta(seconds=i), "attempt": 1}
        for i, (n, kind, status) in enumerate([
            ("A", "DatabricksNotebook", "Succeeded"), ("B", "DatabricksNotebook", "Failed"),
            ("Cleanup", "DatabricksNotebook", "Succeeded"), ("Note", "SetVariable", "Succeeded"),
        ])
    ]  # fmt: skip
    reuse = plan_reuse("r1", doc, rows)
    assert set(reuse.top) == {"A"}  # not B (failed), not Cleanup (after B), not Note (control activity)
    assert reuse.top["A"].output == {"n": "A"} and reuse.rerun_of == "r1"


def test_a_run_id_prefix_names_one_run_or_is_refused_with_the_candidates(store):
    ctx = RunContext(notebook_executor=Notebooks(set()), adf_root=FIXTURES, recorder=store)
    runs = [run_pipeline("pl_child", {"value": str(i)}, ctx).run_id for i in range(3)]
    assert store.resolve_run_id(runs[0]) == runs[0]
    assert store.resolve_run_id(runs[1][:13]) == runs[1]
    with pytest.raises(UnknownRun, match="no run id starts with 'zzz'"):
        store.resolve_run_id("zzz")
    with store._connection().cursor() as cur:  # two ids sharing a prefix
        for suffix in ("a", "b"):
            cur.execute(
                "INSERT INTO ops.pipeline_runs (run_id, pipeline, status, started_at) "
                "VALUES (%s, 'pl_x', 'Succeeded', now())",
                (f"prefix-test-{suffix}",),
            )
    with pytest.raises(UnknownRun, match=r"ambiguous: prefix-test-[ab], prefix-test-[ab]"):
        store.resolve_run_id("prefix-test-")


def test_a_closed_progress_output_does_not_cancel_the_run():
    """rich raises SystemExit on a broken pipe (`lakehouse adf run ... | head -2`)."""
    calls = []

    def closed_pipe(event, record):
        calls.append(event)
        raise SystemExit(1)

    ctx = RunContext(notebook_executor=Notebooks(set()), adf_root=FIXTURES, on_event=closed_pipe)
    result = run_pipeline("pl_three_steps", {"value": "v"}, ctx)
    assert result.status == "Succeeded"
    assert calls == ["pipeline_started"]  # not called again once its reader is gone


def test_a_broken_pipe_in_the_progress_output_does_not_cancel_the_run():
    def closed_pipe(event, record):
        raise BrokenPipeError(32, "Broken pipe")

    ctx = RunContext(notebook_executor=Notebooks(set()), adf_root=FIXTURES, on_event=closed_pipe)
    assert run_pipeline("pl_three_steps", {"value": "v"}, ctx).status == "Succeeded"
