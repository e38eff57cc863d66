"""Pipeline and activity runs land in ops.pipeline_runs / ops.activity_runs of PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from local.adf.context import RunContext
from local.adf.runner import run_pipeline

FIXTURES = Path(__file__).parent / "fixtures" / "adf"


def echo_unless_fail(call):
    if call.base_parameters.get("value") == "fail":
        raise RuntimeError("child exploded")
    return json.dumps({"value": call.base_parameters.get("value")})


def test_a_run_tree_is_recorded_with_parents_statuses_and_durations(store, pg_dsn):
    result = run_pipeline(
        "pl_parent",
        {"value": "hello"},
        RunContext(notebook_executor=echo_unless_fail, adf_root=FIXTURES, recorder=store),
    )
    tree = store.run_tree(result.run_id)
    assert [(r["pipeline"], r["status"], r["depth"]) for r in tree] == [
        ("pl_parent", "Succeeded", 0),
        ("pl_child", "Succeeded", 1),
        ("pl_child", "Failed", 1),
    ]
    assert all(r["parent_run_id"] == result.run_id for r in tree[1:])
    assert all(r["duration_ms"] is not None and r["duration_ms"] >= 0 for r in tree)
    failed_child = tree[2]
    assert failed_child["error"]["message"] == "Operation on target Child work failed: RuntimeError: child exploded"

    activities = store.activity_runs(result.run_id)
    assert [(a["activity"], a["status"]) for a in activities] == [(r.activity, r.status) for r in result.activity_runs]
    use = next(a for a in activities if a["activity"] == "Use child result")
    assert use["output"] == {"value": "hello"}
    assert use["input"] == {"variableName": "echoed", "value": "hello"}


def test_a_run_is_visible_while_in_progress(store, pg_dsn):
    """The recorder writes the start at once; a run seen mid-flight has status InProgress."""
    seen = []

    def look(call):
        with psycopg.connect(pg_dsn) as conn:
            seen.append(
                conn.execute(
                    "SELECT status FROM ops.pipeline_runs WHERE run_id = %s", (call.pipeline_run_id,)
                ).fetchone()[0]
            )
        return '{"value": "x"}'

    result = run_pipeline(
        "pl_child", {"value": "x"}, RunContext(notebook_executor=look, adf_root=FIXTURES, recorder=store)
    )
    assert seen == ["InProgress"]
    assert store.pipeline_runs(pipeline="pl_child", limit=1)[0]["run_id"] == result.run_id
    assert store.pipeline_runs(pipeline="pl_child", limit=1)[0]["status"] == "Succeeded"


def test_a_start_record_the_database_refuses_leaves_the_store_recording(store, pg_dsn):
    """Start records go in one pipelined transaction: a refused one is rolled back, the next lands."""
    import datetime as dt
    import uuid

    import pytest

    from local.adf.records import ActivityRun, PipelineRunResult

    pipeline = PipelineRunResult(str(uuid.uuid4()), "pl_x", {}, "InProgress", dt.datetime.now(dt.UTC))
    store.record_pipeline_run(pipeline)

    def start(attempt: int) -> None:
        store.record_activity_run(ActivityRun(str(uuid.uuid4()), pipeline.run_id, "pl_x", "A", "SetVariable",
                                              "InProgress", dt.datetime.now(dt.UTC), attempt=attempt))  # fmt: skip

    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        start(2**40)  # out of the column's integer range
    start(1)
    assert [(a["status"], a["attempt"]) for a in store.activity_runs(pipeline.run_id)] == [("InProgress", 1)]
    pipeline.status, pipeline.end = "Succeeded", dt.datetime.now(dt.UTC)
    store.record_pipeline_run(pipeline)
