"""A dedicated database on the run's PostgreSQL for the observability tests.

Each test module gets its own database (CREATE DATABASE), migrated like the real serving database,
so hand-made runs, DQ results and mart rows never meet other engineers' test rows.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SQL_DIR = Path(__file__).resolve().parents[2] / "spark_jobs" / "sql"

# Shapes from the cross-team contracts (team brief: ops.dq_results; gold fct_daily_prices columns are
# shared with the marts). Created only where the serving migrations (001-009) have not created them.
CONTRACT_TABLES = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS mart;
CREATE TABLE IF NOT EXISTS ops.dq_results (
    run_id text, table_name text, rule text, severity text, passed boolean, failed_count bigint,
    sample_keys jsonb, evaluated_at timestamptz
);
CREATE TABLE IF NOT EXISTS mart.daily_prices (
    symbol text, trade_date date, open double precision, high double precision, low double precision,
    close double precision, adj_close double precision, volume bigint, daily_return double precision,
    log_return double precision, ma_20 double precision, ma_50 double precision, ma_200 double precision,
    volatility_20d double precision, high_52w double precision, low_52w double precision,
    drawdown double precision, load_id text, schema_version text
);
"""

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
    """Apply the project's migrations: ``spark_jobs.migrations.apply`` once it exists, else the files in order."""
    try:
        from spark_jobs.migrations import apply
    except ImportError:
        apply = None
    if apply is not None:
        applied = list(apply(dsn))
    else:
        applied = []
        with psycopg.connect(dsn, autocommit=True) as conn:
            for path in sorted(SQL_DIR.glob("[0-9][0-9][0-9]_*.sql")):
                conn.execute(path.read_text())
                applied.append(path.name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(CONTRACT_TABLES)
    return applied


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
