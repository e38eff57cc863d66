"""The ops store: the ``ops`` schema of the serving PostgreSQL, where runs, data-quality results,
loads and telemetry are recorded (the local counterpart of ADF monitoring and Log Analytics).

Its tables are created by the migrations in ``spark_jobs/sql`` (history, left as written). This
module is the one place that names them, holds the run-tree query every reader of run history
needs, and the advisory-lock protocol by which work left unfinished by a dead process is found:
a live worker holds a session-level advisory lock on each item it is working on, PostgreSQL
releases it when the session ends however it ends, so an item whose lock can be taken is
abandoned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row, tuple_row

SCHEMA = "ops"
PIPELINE_RUNS = f"{SCHEMA}.pipeline_runs"
ACTIVITY_RUNS = f"{SCHEMA}.activity_runs"
DQ_RESULTS = f"{SCHEMA}.dq_results"
LOAD_AUDIT = f"{SCHEMA}.load_audit"
TELEMETRY_EVENTS = f"{SCHEMA}.telemetry_events"

# First keys of the two-key advisory locks: a live pipeline run, a pipeline's concurrency slot.
RUN_LOCK_CLASS = int.from_bytes(b"runs", "big")
SLOT_LOCK_CLASS = int.from_bytes(b"conc", "big")

# A recursive CTE named ``run_tree``: the runs whose ids are in ``%(roots)s`` and every run they
# started (Execute Pipeline children), each with all ``ops.pipeline_runs`` columns and its
# ``depth`` (0 for a root). Queries start with it and select from ``run_tree``.
RUN_TREE = f"""
WITH RECURSIVE run_tree AS (
    SELECT r.*, 0 AS depth FROM {PIPELINE_RUNS} r WHERE r.run_id = ANY(%(roots)s)
    UNION ALL
    SELECT c.*, t.depth + 1 FROM {PIPELINE_RUNS} c JOIN run_tree t ON c.parent_run_id = t.run_id
)
"""

LockKey = int | str
T = TypeVar("T")


def _scalar(conn: psycopg.Connection, query: str, params: tuple[Any, ...]) -> Any:
    """The one value a query returns, whatever the connection's row factory."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchone()[0]


def table_exists(conn: psycopg.Connection, qualified: str) -> bool:
    """True when the table exists (an ops store that was never migrated has none)."""
    return _scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (qualified,))


def run_tree(conn: psycopg.Connection, roots: Sequence[str]) -> list[dict[str, Any]]:
    """The runs `roots` and all their descendants, parents first (by depth, then start)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            RUN_TREE + "SELECT run_id, parent_run_id, pipeline, status, parameters, trigger_name, rerun_of, "
            "started_at, ended_at, duration_ms, error, depth FROM run_tree ORDER BY depth, started_at",
            {"roots": list(roots)},
        )
        return cur.fetchall()


def _key_sql(key: LockKey) -> str:
    # text keys are hashed by PostgreSQL into the second int4 of the lock
    return "hashtext(%s)" if isinstance(key, str) else "%s"


def lock(conn: psycopg.Connection, lock_class: int, key: LockKey) -> None:
    """Take the session-level advisory lock (`lock_class`, `key`), waiting for it."""
    conn.execute(f"SELECT pg_advisory_lock(%s, {_key_sql(key)})", (lock_class, key))


def try_lock(conn: psycopg.Connection, lock_class: int, key: LockKey) -> bool:
    """Take the advisory lock if nobody holds it; True when taken."""
    return _scalar(conn, f"SELECT pg_try_advisory_lock(%s, {_key_sql(key)})", (lock_class, key))


def unlock(conn: psycopg.Connection, lock_class: int, key: LockKey) -> None:
    conn.execute(f"SELECT pg_advisory_unlock(%s, {_key_sql(key)})", (lock_class, key))


def abandoned(
    conn: psycopg.Connection, lock_class: int, items: Iterable[T], key: Callable[[T], LockKey]
) -> Iterator[T]:
    """The `items` whose worker is gone: those whose advisory lock can be taken.

    Each item is yielded while this session holds its lock (so no worker can take it up while
    the caller marks it) and the lock is released when the caller asks for the next one. Items
    whose lock is held are alive and skipped. Use a connection that holds none of these locks
    itself: advisory locks are re-entrant within a session.
    """
    for item in items:
        item_key = key(item)
        if not try_lock(conn, lock_class, item_key):
            continue
        try:
            yield item
        finally:
            unlock(conn, lock_class, item_key)
