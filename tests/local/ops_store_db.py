"""Emptying the ops store between observability tests (each module has its own migrated database,
from tests/databases.py)."""

from __future__ import annotations

import psycopg

OPS_TABLES = ("ops.activity_runs", "ops.pipeline_runs", "ops.dq_results", "ops.telemetry_events")


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
