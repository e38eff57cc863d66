"""A run whose process died is marked failed (RunAbandoned); a run still going elsewhere is left alone."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest

from local.adf.records import ActivityRun, PipelineRunResult
from local.run_store import PostgresRunStore, recover_abandoned_runs
from tests.databases import migrated_database


@pytest.fixture
def dsn(pg_dsn):
    with migrated_database(pg_dsn, "runs") as own:
        yield own


def _start(store: PostgresRunStore) -> str:
    now = dt.datetime.now(dt.UTC)
    run = PipelineRunResult(str(uuid.uuid4()), "pl_lakehouse_daily", {}, "InProgress", now)
    store.record_pipeline_run(run)
    store.record_activity_run(ActivityRun(str(uuid.uuid4()), run.run_id, run.pipeline, "Load bronze",
                                          "ExecutePipeline", "InProgress", now))  # fmt: skip
    return run.run_id


def _statuses(dsn: str) -> dict[str, tuple]:
    with psycopg.connect(dsn) as conn:
        runs = conn.execute("SELECT run_id, status, error->>'errorCode', ended_at IS NOT NULL FROM ops.pipeline_runs")
        acts = dict(conn.execute("SELECT pipeline_run_id, status FROM ops.activity_runs").fetchall())
        return {r[0]: (*r[1:], acts.get(r[0])) for r in runs.fetchall()}


def test_only_runs_whose_recording_session_ended_are_marked_abandoned(dsn):
    alive, dead = PostgresRunStore(dsn), PostgresRunStore(dsn)
    try:
        running = _start(alive)
        killed = _start(dead)
        dead.close()  # what a SIGKILL does to the process's session
        assert recover_abandoned_runs(dsn) == [killed]
        assert _statuses(dsn) == {
            running: ("InProgress", None, False, "InProgress"),
            killed: ("Failed", "RunAbandoned", True, "Failed"),
        }
        assert recover_abandoned_runs(dsn) == []  # idempotent; the live run still holds its lock
    finally:
        alive.close()
    assert recover_abandoned_runs(dsn) == [running]
