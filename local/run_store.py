"""The ops store of pipeline and activity runs: ``ops.pipeline_runs`` and ``ops.activity_runs``.

The local counterpart of ADF monitoring. The runner calls the recorder when a run starts
(status ``InProgress``) and when it ends; each call is an upsert committed at once, so a run
that is still going, or that died with the process, is visible. Tables come from the migration
``spark_jobs/sql/010_ops_runs.sql`` (applied by ``spark_jobs.migrations.apply``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from local.adf_runner import ActivityRun, PipelineRunResult


def _json(value: Any) -> Jsonb | None:
    if value is None:
        return None
    # round-trip through json so dates, Decimals and framework wrappers become plain JSON
    return Jsonb(json.loads(json.dumps(value, default=str)))


_UPSERT_PIPELINE = """
INSERT INTO ops.pipeline_runs
    (run_id, parent_run_id, pipeline, status, parameters, trigger_name, started_at, ended_at, output, error)
VALUES (%(run_id)s, %(parent_run_id)s, %(pipeline)s, %(status)s, %(parameters)s, %(trigger_name)s,
        %(started_at)s, %(ended_at)s, %(output)s, %(error)s)
ON CONFLICT (run_id) DO UPDATE SET
    status = EXCLUDED.status, ended_at = EXCLUDED.ended_at, output = EXCLUDED.output, error = EXCLUDED.error
"""

_UPSERT_ACTIVITY = """
INSERT INTO ops.activity_runs
    (activity_run_id, pipeline_run_id, pipeline, activity, activity_type, status, attempt,
     started_at, ended_at, input, output, error)
VALUES (%(activity_run_id)s, %(pipeline_run_id)s, %(pipeline)s, %(activity)s, %(activity_type)s, %(status)s,
        %(attempt)s, %(started_at)s, %(ended_at)s, %(input)s, %(output)s, %(error)s)
ON CONFLICT (activity_run_id) DO UPDATE SET
    status = EXCLUDED.status, ended_at = EXCLUDED.ended_at, input = EXCLUDED.input,
    output = EXCLUDED.output, error = EXCLUDED.error
"""


class PostgresRunStore:
    """Records runs into PostgreSQL; one autocommit connection, opened lazily.

    Args:
        dsn: libpq DSN of the serving database (never logged).
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PostgresRunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record_pipeline_run(self, run: PipelineRunResult) -> None:
        self._connection().execute(
            _UPSERT_PIPELINE,
            {
                "run_id": run.run_id,
                "parent_run_id": run.parent_run_id,
                "pipeline": run.pipeline,
                "status": run.status,
                "parameters": _json(run.parameters),
                "trigger_name": run.trigger_name,
                "started_at": run.start,
                "ended_at": run.end,
                "output": _json(run.output or None),
                "error": _json(run.error),
            },
        )

    def record_activity_run(self, run: ActivityRun) -> None:
        self._connection().execute(
            _UPSERT_ACTIVITY,
            {
                "activity_run_id": run.activity_run_id,
                "pipeline_run_id": run.pipeline_run_id,
                "pipeline": run.pipeline,
                "activity": run.activity,
                "activity_type": run.activity_type,
                "status": run.status,
                "attempt": run.attempt,
                "started_at": run.start,
                "ended_at": run.end,
                "input": _json(run.input),
                "output": _json(run.output),
                "error": _json(run.error),
            },
        )

    def pipeline_runs(self, limit: int = 50, pipeline: str | None = None) -> list[dict[str, Any]]:
        """Most recent pipeline runs first."""
        with self._connection().cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT run_id, parent_run_id, pipeline, status, parameters, trigger_name, started_at, "
                "ended_at, duration_ms, output, error FROM ops.pipeline_runs "
                "WHERE %(pipeline)s::text IS NULL OR pipeline = %(pipeline)s "
                "ORDER BY started_at DESC LIMIT %(limit)s",
                {"pipeline": pipeline, "limit": limit},
            )
            return cur.fetchall()

    def activity_runs(self, pipeline_run_id: str) -> list[dict[str, Any]]:
        """Activity runs of one pipeline run, in start order."""
        with self._connection().cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT activity_run_id, pipeline_run_id, pipeline, activity, activity_type, status, attempt, "
                "started_at, ended_at, duration_ms, input, output, error FROM ops.activity_runs "
                "WHERE pipeline_run_id = %s ORDER BY started_at, attempt",
                (pipeline_run_id,),
            )
            return cur.fetchall()

    def run_tree(self, run_id: str) -> list[dict[str, Any]]:
        """A pipeline run and all its descendants (Execute Pipeline children), parents first."""
        with self._connection().cursor(row_factory=dict_row) as cur:
            cur.execute(
                """
                WITH RECURSIVE tree AS (
                    SELECT r.*, 0 AS depth FROM ops.pipeline_runs r WHERE run_id = %s
                    UNION ALL
                    SELECT c.*, t.depth + 1 FROM ops.pipeline_runs c JOIN tree t ON c.parent_run_id = t.run_id
                )
                SELECT run_id, parent_run_id, pipeline, status, started_at, ended_at, duration_ms, error, depth
                FROM tree ORDER BY depth, started_at
                """,
                (run_id,),
            )
            return cur.fetchall()


@dataclass
class MemoryRunStore:
    """Keeps the latest state of every run in memory (tests, dry runs)."""

    pipelines: dict[str, PipelineRunResult]
    activities: dict[str, ActivityRun]

    def __init__(self) -> None:
        self.pipelines = {}
        self.activities = {}
        self.events: list[tuple[str, str, str]] = []

    def record_pipeline_run(self, run: PipelineRunResult) -> None:
        self.pipelines[run.run_id] = run
        self.events.append(("pipeline", run.pipeline, run.status))

    def record_activity_run(self, run: ActivityRun) -> None:
        self.activities[run.activity_run_id] = run
        self.events.append(("activity", run.activity, run.status))

