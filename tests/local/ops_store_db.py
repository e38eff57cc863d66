"""Emptying the ops store between observability tests (each module has its own migrated database,
from tests/databases.py)."""

from __future__ import annotations

import psycopg

from lakehouse.ops_store import ACTIVITY_RUNS, DQ_RESULTS, PIPELINE_RUNS, TELEMETRY_EVENTS

OPS_TABLES = (ACTIVITY_RUNS, PIPELINE_RUNS, DQ_RESULTS, TELEMETRY_EVENTS)


def reset(dsn: str) -> None:
    """Empty the ops tables and every mart table (between tests of one module)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        marts = [
            r[0]
            for r in conn.execute(
                "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables "
                "WHERE table_schema = 'mart' AND table_type = 'BASE TABLE'"
            )
        ]
        present = [t for t in OPS_TABLES if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]]
        conn.execute(f"TRUNCATE {', '.join(present + marts)} CASCADE")
