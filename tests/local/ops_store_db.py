"""A dedicated database on the run's PostgreSQL for the observability tests.

Each test module gets its own database (CREATE DATABASE), migrated like the real serving database,
so hand-made runs, DQ results and mart rows never meet other engineers' test rows.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from spark_jobs import migrations

OPS_TABLES = ("ops.activity_runs", "ops.pipeline_runs", "ops.dq_results", "ops.telemetry_events")


def with_dbname(dsn: str, dbname: str) -> str:
    return make_conninfo(**{**conninfo_to_dict(dsn), "dbname": dbname})


def create_database(admin_dsn: str, prefix: str) -> tuple[str, str]:
    """CREATE DATABASE ``{prefix}_{random}``; returns (name, dsn)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, with_dbname(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(dsn: str) -> list[str]:
    """Apply the project's migrations, as the serving database gets them."""
    return migrations.apply(dsn)


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
