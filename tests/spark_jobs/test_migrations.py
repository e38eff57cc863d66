"""Serving-database migrations: from empty, re-applied, in number order, and refusing edited history."""

from __future__ import annotations

import shutil
import threading
from importlib import resources
from pathlib import Path

import psycopg
import pytest

from spark_jobs import contracts, migrations
from spark_jobs.contracts import TYPES
from spark_jobs.serving import MART_TABLES
from tests.spark_jobs.serving_data import fresh_database

PACKAGE_SQL = Path(str(resources.files("spark_jobs") / "sql"))


@pytest.fixture
def empty_db(pg_dsn: str):
    with fresh_database(pg_dsn) as dsn:
        yield dsn


def columns(dsn: str, schema: str, table: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table),
        ).fetchall()


def test_apply_on_an_empty_database_runs_every_file_in_number_order(empty_db):
    expected = sorted(p.name for p in PACKAGE_SQL.glob("*.sql"))
    assert migrations.apply(empty_db) == expected
    assert migrations.applied(empty_db) == expected
    with psycopg.connect(empty_db) as conn:
        tables = {
            f"{s}.{t}"
            for s, t in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ('mart', 'ops')"
            )
        }
    assert {"mart.dim_security", "mart.daily_prices", "mart.monthly_performance", "mart.latest_quotes",
            "ops.load_audit", "ops.dq_results"} <= tables  # fmt: skip


def test_reapplying_changes_nothing(empty_db):
    migrations.apply(empty_db)
    before = columns(empty_db, "mart", "daily_prices")
    assert migrations.apply(empty_db) == []
    assert columns(empty_db, "mart", "daily_prices") == before


def test_a_new_numbered_file_is_applied_alone_and_after_the_others(empty_db, tmp_path):
    folder = tmp_path / "sql"
    shutil.copytree(PACKAGE_SQL, folder)
    migrations.apply(empty_db, folder)
    (folder / "099_later.sql").write_text("CREATE TABLE ops.later (id int);")
    (folder / "README.md").write_text("not a migration")
    assert migrations.apply(empty_db, folder) == ["099_later.sql"]
    assert migrations.applied(empty_db)[-1] == "099_later.sql"


def test_an_edited_applied_migration_is_refused_naming_the_file(empty_db, tmp_path):
    folder = tmp_path / "sql"
    shutil.copytree(PACKAGE_SQL, folder)
    migrations.apply(empty_db, folder)
    path = folder / "003_mart_daily_prices.sql"
    path.write_text(path.read_text() + "\n-- edited\n")
    with pytest.raises(migrations.MigrationError, match=r"003_mart_daily_prices.sql changed after it was applied"):
        migrations.apply(empty_db, folder)


def test_a_failing_migration_leaves_no_trace_and_names_the_file(empty_db, tmp_path):
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "001_ok.sql").write_text("CREATE TABLE public.ok (id int);")
    (folder / "002_broken.sql").write_text("CREATE TABLE public.half (id int);\nCREATE TABLE oops syntax;")
    with pytest.raises(migrations.MigrationError, match=r"002_broken.sql failed"):
        migrations.apply(empty_db, folder)
    assert migrations.applied(empty_db) == ["001_ok.sql"]
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT to_regclass('public.half')").fetchone()[0] is None


@pytest.mark.parametrize("name", ["1_short.sql", "004_Upper.sql", "005-dash.sql"])
def test_badly_named_files_are_rejected(tmp_path, name):
    (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(migrations.MigrationError, match=r"is not named NNN_lower_snake_name.sql"):
        migrations.discover(tmp_path)


def test_a_number_used_twice_is_rejected(tmp_path):
    (tmp_path / "004_a.sql").write_text("SELECT 1;")
    (tmp_path / "004_b.sql").write_text("SELECT 1;")
    with pytest.raises(migrations.MigrationError, match="004 is used twice"):
        migrations.discover(tmp_path)


def test_concurrent_callers_apply_each_migration_once(empty_db):
    """Two notebooks starting together: the advisory lock makes one wait, nothing runs twice."""
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(migrations.apply(empty_db))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = sorted(p.name for p in PACKAGE_SQL.glob("*.sql"))
    assert sorted(results[0] + results[1]) == expected


def test_mart_tables_mirror_the_gold_contracts(empty_db):
    """Same names, order, types and nullability as gold: the loader's schema check passes by design."""
    migrations.apply(empty_db)
    for table in MART_TABLES.values():
        contract = contracts.load("gold", table.gold)
        expected = [(c.name, TYPES[c.type].postgres, "YES" if c.nullable else "NO") for c in contract.columns]
        assert columns(empty_db, "mart", table.name) == expected, table.name


def test_dq_results_has_exactly_the_contract_columns(empty_db):
    migrations.apply(empty_db)
    got = [(name, typ) for name, typ, _ in columns(empty_db, "ops", "dq_results")]
    assert got == [("run_id", "text"), ("table_name", "text"), ("rule", "text"), ("severity", "text"),
                   ("passed", "boolean"), ("failed_count", "bigint"), ("sample_keys", "jsonb"),
                   ("evaluated_at", "timestamp with time zone")]  # fmt: skip


def test_every_mart_column_has_a_comment_and_every_table_a_primary_key(empty_db):
    migrations.apply(empty_db)
    with psycopg.connect(empty_db) as conn:
        uncommented = conn.execute(
            "SELECT c.table_name || '.' || c.column_name FROM information_schema.columns c "
            "WHERE c.table_schema = 'mart' AND col_description("
            "  format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position) IS NULL"
        ).fetchall()
        keys = dict(
            conn.execute(
                "SELECT tc.table_name, string_agg(k.column_name, ',' ORDER BY k.ordinal_position) "
                "FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage k "
                "USING (constraint_schema, constraint_name) WHERE tc.table_schema = 'mart' "
                "AND tc.constraint_type = 'PRIMARY KEY' GROUP BY tc.table_name"
            ).fetchall()
        )
    assert uncommented == []
    assert keys == {t.name: ",".join(t.keys) for t in MART_TABLES.values()}


def test_bi_date_range_queries_use_an_index(empty_db):
    """All symbols over a date range: the planner must be able to avoid a full scan."""
    migrations.apply(empty_db)
    with psycopg.connect(empty_db) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT * FROM mart.daily_prices WHERE trade_date BETWEEN '2024-01-01' AND '2024-01-31'"
            )
        )
    assert "daily_prices_trade_date" in plan
