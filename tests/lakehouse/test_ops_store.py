"""The ops store module: its table names, the run-tree query and the abandoned-work lock protocol."""

from __future__ import annotations

import datetime as dt
import time

import psycopg
import pytest
from psycopg.rows import dict_row

from lakehouse import ops_store
from tests.databases import migrated_database


def _wait_until_gone(conn: psycopg.Connection, pid: int, seconds: float = 10.0) -> None:
    """Wait for the backend `pid` to exit: closing a connection does not wait for its backend."""
    deadline = time.monotonic() + seconds
    while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
        assert time.monotonic() < deadline, f"backend {pid} still running {seconds} s after its connection closed"
        time.sleep(0.02)

T0 = dt.datetime(2024, 1, 5, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def dsn(pg_dsn):
    with migrated_database(pg_dsn, "opsstore") as own:
        yield own


def test_every_ops_table_named_here_is_created_by_the_migrations(dsn):
    names = [ops_store.PIPELINE_RUNS, ops_store.ACTIVITY_RUNS, ops_store.DQ_RESULTS, ops_store.LOAD_AUDIT,
             ops_store.TELEMETRY_EVENTS]  # fmt: skip
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        assert [n for n in names if not ops_store.table_exists(conn, n)] == []
        assert ops_store.table_exists(conn, "ops.no_such_table") is False


def test_the_run_tree_holds_the_roots_and_every_descendant_parents_first(dsn):
    runs = [  # (run_id, parent, minutes after T0)
        ("root", None, 0), ("child-b", "root", 2), ("child-a", "root", 1), ("grandchild", "child-a", 3),
        ("other-root", None, 0), ("other-child", "other-root", 1), ("third-root", None, 5),
    ]  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        for run_id, parent, minutes in runs:
            conn.execute(
                f"INSERT INTO {ops_store.PIPELINE_RUNS} (run_id, parent_run_id, pipeline, status, started_at) "
                "VALUES (%s, %s, 'pl_x', 'Succeeded', %s)",
                (run_id, parent, T0 + dt.timedelta(minutes=minutes)),
            )
        tree = ops_store.run_tree(conn, ["root"])
        assert [(r["run_id"], r["parent_run_id"], r["depth"]) for r in tree] == [
            ("root", None, 0),
            ("child-a", "root", 1),
            ("child-b", "root", 1),
            ("grandchild", "child-a", 2),
        ]
        both = ops_store.run_tree(conn, ["root", "other-root"])
        assert sorted(r["run_id"] for r in both) == sorted(r[0] for r in runs if r[0] != "third-root")
        assert ops_store.run_tree(conn, ["missing"]) == []


def test_only_items_whose_lock_nobody_holds_are_abandoned_and_each_is_held_while_handled(dsn):
    cls = ops_store.RUN_LOCK_CLASS
    with psycopg.connect(dsn, autocommit=True) as worker, psycopg.connect(dsn, autocommit=True) as recovery, \
            psycopg.connect(dsn, autocommit=True) as other:  # fmt: skip
        ops_store.lock(worker, cls, "alive")
        handled = []
        for item in ops_store.abandoned(recovery, cls, ["alive", "dead-1", 7], lambda i: i):
            handled.append(item)
            assert not ops_store.try_lock(other, cls, item)  # held by the recovery session meanwhile
        assert handled == ["dead-1", 7]
        for item in ("dead-1", 7):  # released after handling
            assert ops_store.try_lock(other, cls, item)
            ops_store.unlock(other, cls, item)
        assert not ops_store.try_lock(other, cls, "alive")
        worker_pid = worker.info.backend_pid
        worker.close()  # the worker's session ends: its work is now abandoned
        _wait_until_gone(other, worker_pid)  # the server ends a closed session's backend a moment later
        assert list(ops_store.abandoned(recovery, cls, ["alive"], str)) == ["alive"]
