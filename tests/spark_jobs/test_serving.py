"""GOLD -> PostgreSQL marts: exact windows, identical reruns, atomic swaps, failures that lose nothing.

Real components only: gold tables are Delta tables written through the run's Sail server, the marts
live in a fresh database of the run's PostgreSQL per test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import psycopg
import pytest

from lakehouse.lake import Lake
from spark_jobs import migrations, serving
from spark_jobs.job_params import DateWindow
from spark_jobs.serving import MART_TABLES
from tests.spark_jobs.serving_data import (
    daily_rows,
    fresh_database,
    monthly_rows,
    quote_rows,
    security_rows,
    write_all_gold,
    write_gold,
)

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAPL", "MSFT"]
JAN = DateWindow.parse("2024-01-10", "2024-01-20")


@pytest.fixture
def db(pg_dsn: str):
    """A fresh database with the migrations applied."""
    with fresh_database(pg_dsn) as dsn:
        migrations.apply(dsn)
        yield dsn


@pytest.fixture
def lake(spark, tmp_path: Path) -> Lake:
    """A tmp lake whose gold holds the standard two-symbol tables."""
    lake = Lake(str(tmp_path / "lake"))
    write_all_gold(spark, lake, SYMBOLS)
    return lake


def fetch(dsn: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def mart(dsn: str, table: str) -> list[tuple]:
    keys = ", ".join(MART_TABLES[table].keys)
    return fetch(dsn, f"SELECT * FROM mart.{table} ORDER BY {keys}")


def audit(dsn: str, load_id: str | None = None) -> list[dict]:
    with psycopg.connect(dsn, row_factory=psycopg.rows.dict_row) as conn:
        where, params = ("WHERE load_id = %s", (load_id,)) if load_id else ("", ())
        return conn.execute(f"SELECT * FROM ops.load_audit {where} ORDER BY audit_id", params).fetchall()


def in_window(rows: list[tuple], lo: dt.date, hi: dt.date, index: int = 1) -> list[tuple]:
    return sorted(r for r in rows if lo <= r[index] <= hi)


def load(spark, lake, dsn, window=JAN, load_id="load-1", **kw):
    return {r.table: r for r in serving.load(spark, lake, dsn, window=window, load_id=load_id, **kw)}


def test_a_window_load_puts_exactly_the_gold_window_in_each_mart_table(spark, lake, db):
    results = load(spark, lake, db)

    daily = daily_rows(SYMBOLS, "2024-01-02", "2024-02-29")
    assert mart(db, "daily_prices") == in_window(daily, JAN.start, JAN.end)
    months = monthly_rows(SYMBOLS, ["2024-01-01", "2024-02-01"])
    assert mart(db, "monthly_performance") == in_window(months, dt.date(2024, 1, 1), dt.date(2024, 1, 1))
    assert mart(db, "dim_security") == sorted(security_rows(SYMBOLS))
    assert mart(db, "latest_quotes") == sorted(quote_rows(SYMBOLS))

    rows = {a["table_name"]: a for a in audit(db, "load-1")}
    assert set(rows) == {f"mart.{t}" for t in MART_TABLES}
    daily_audit = rows["mart.daily_prices"]
    assert (daily_audit["status"], daily_audit["window_start"], daily_audit["window_end"]) == (
        "succeeded", JAN.start, JAN.end)  # fmt: skip
    assert daily_audit["rows_loaded"] == len(in_window(daily, JAN.start, JAN.end)) == 14
    assert rows["mart.monthly_performance"]["window_start"] == dt.date(2024, 1, 1)
    assert rows["mart.dim_security"]["full_refresh"] is True
    assert all(a["finished_at"] >= a["started_at"] for a in rows.values())
    assert results["daily_prices"].checksum == daily_audit["checksum"]


def test_the_audit_checksum_is_what_the_server_holds(spark, lake, db):
    """The checksum of the streamed bytes equals the server's own binary dump of the stored window."""
    results = load(spark, lake, db)
    with psycopg.connect(db) as conn:
        for name, result in results.items():
            table = MART_TABLES[name]
            bounds = table.bounds(JAN, full_refresh=False)
            assert serving.mart_checksum(conn, table, bounds) == (result.rows_loaded, result.checksum), name


def test_rows_outside_the_window_are_left_alone(spark, lake, db):
    load(spark, lake, db, load_id="january")
    write_all_gold(spark, lake, SYMBOLS, load_id="gold-2", bump=1.0)
    feb = DateWindow.parse("2024-02-01", "2024-02-09")
    load(spark, lake, db, window=feb, load_id="february")

    old = in_window(daily_rows(SYMBOLS, "2024-01-02", "2024-02-29"), JAN.start, JAN.end)
    new = in_window(daily_rows(SYMBOLS, "2024-01-02", "2024-02-29", "gold-2", bump=1.0), feb.start, feb.end)
    assert mart(db, "daily_prices") == sorted(old + new)
    months = mart(db, "monthly_performance")
    assert [(m[1], m[10]) for m in months] == [(dt.date(2024, 1, 1), "gold-1"), (dt.date(2024, 2, 1), "gold-2")] * 2


def test_rerunning_a_window_gives_identical_content_and_checksum(spark, lake, db):
    first = load(spark, lake, db, load_id="run-1")
    content = {t: mart(db, t) for t in MART_TABLES}
    second = load(spark, lake, db, load_id="run-2")
    assert {t: mart(db, t) for t in MART_TABLES} == content
    assert {t: r.checksum for t, r in second.items()} == {t: r.checksum for t, r in first.items()}
    assert second["daily_prices"].rows_deleted == second["daily_prices"].rows_loaded == 14

    write_all_gold(spark, lake, SYMBOLS, bump=0.01)
    third = load(spark, lake, db, load_id="run-3")
    assert third["daily_prices"].checksum != first["daily_prices"].checksum
    assert third["dim_security"].checksum == first["dim_security"].checksum  # unchanged input


def test_the_checksum_does_not_depend_on_how_gold_rows_are_laid_out(spark, lake, db, tmp_path):
    ordered = load(spark, lake, db, load_id="ordered")["daily_prices"].checksum
    shuffled = daily_rows(SYMBOLS, "2024-01-02", "2024-02-29")
    random.Random(7).shuffle(shuffled)
    other = Lake(str(tmp_path / "other"))
    write_gold(spark, other, "fct_daily_prices", shuffled)
    again = load(spark, other, db, load_id="shuffled", tables=["daily_prices"])["daily_prices"].checksum
    assert again == ordered


def test_full_refresh_replaces_every_table_whole(spark, lake, db):
    load(spark, lake, db, load_id="window")
    results = load(spark, lake, db, load_id="full", full_refresh=True)
    assert mart(db, "daily_prices") == sorted(daily_rows(SYMBOLS, "2024-01-02", "2024-02-29"))
    assert results["daily_prices"].rows_deleted == 14
    assert [a["window_start"] for a in audit(db, "full")] == [None] * 4


def test_schema_mismatch_fails_before_anything_is_written(spark, lake, db):
    """Every table is checked before the first is staged: a bad monthly table stops the daily load too."""
    load(spark, lake, db, load_id="before")
    before = {t: mart(db, t) for t in MART_TABLES}
    renamed = [(*r[:6], str(r[6]), *r[7:]) for r in monthly_rows(SYMBOLS, ["2024-01-01"])]
    ddl = (
        "symbol string, month date, open double, high double, low double, close double, "
        "adj_close string, volume bigint, monthly_return double, days_traded int, load_id string, "
        "schema_version string"
    )
    write_gold(spark, lake, "fct_monthly_performance", renamed, ddl)

    with pytest.raises(serving.SchemaMismatchError) as caught:
        load(spark, lake, db, load_id="mismatch")
    message = str(caught.value)
    assert "gold.fct_monthly_performance does not match mart.monthly_performance" in message
    assert "['days_traded']" in message and "['trading_days']" in message
    assert "'adj_close': gold string needs text, mart has double precision" in message
    assert {t: mart(db, t) for t in MART_TABLES} == before
    assert audit(db, "mismatch") == []
    assert fetch(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'staging'") == [(0,)]


def test_a_failure_inside_the_swap_keeps_the_old_rows_and_records_failed(spark, lake, db):
    """Duplicate keys in gold fail the INSERT after the DELETE ran: the rollback restores the window."""
    load(spark, lake, db, load_id="good")
    before = {t: mart(db, t) for t in MART_TABLES}
    daily = daily_rows(SYMBOLS, "2024-01-02", "2024-02-29", "bad", bump=5.0)
    write_gold(spark, lake, "fct_daily_prices", daily + daily[10:12])

    with pytest.raises(psycopg.errors.UniqueViolation):
        load(spark, lake, db, load_id="bad")
    assert {t: mart(db, t) for t in MART_TABLES} == before
    failed = audit(db, "bad")
    assert [a["status"] for a in failed] == ["failed"] * 4
    assert all("daily_prices_pk" in a["error"] for a in failed)
    assert all(a["attempt"] == 1 for a in failed)  # not a transient error: no retry
    assert fetch(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'staging'") == [(0,)]


class Blocker:
    """Holds a row lock on one mart row so a load's DELETE waits inside its swap transaction."""

    def __init__(self, dsn: str, where: str):
        self.conn = psycopg.connect(dsn)
        self.conn.execute(f"SELECT 1 FROM mart.daily_prices WHERE {where} FOR UPDATE")
        self.dsn = dsn

    def wait_for_blocked_loader(self, timeout: float = 60.0) -> int:
        """pid of the loader backend once it waits for our lock in DELETE."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = fetch(
                self.dsn,
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'lakehouse-serving' "
                "AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM%%' AND datname = current_database()",
            )
            if rows:
                return rows[0][0]
            time.sleep(0.05)
        raise AssertionError("the loader never reached its DELETE")

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def window_view(dsn: str) -> tuple:
    """What a BI reader sees in one statement: every table's content in the window."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT (SELECT array_agg(p ORDER BY symbol, trade_date)::text FROM mart.daily_prices p "
            "        WHERE trade_date BETWEEN '2024-01-10' AND '2024-01-20'),"
            "       (SELECT array_agg(s ORDER BY symbol, valid_from)::text FROM mart.dim_security s)"
        ).fetchone()


def test_a_concurrent_reader_sees_the_old_or_the_new_window_never_a_mix(spark, lake, db):
    load(spark, lake, db, load_id="old")
    old = window_view(db)
    write_all_gold(spark, lake, SYMBOLS, load_id="gold-new", bump=2.0)
    write_gold(spark, lake, "dim_security", security_rows(SYMBOLS, "gold-new", sector="Energy"))

    seen: list[tuple] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append(window_view(db))

    blocker = Blocker(db, "symbol = 'MSFT' AND trade_date = '2024-01-16'")
    loader = threading.Thread(target=lambda: load(spark, lake, db, load_id="new"))
    reader = threading.Thread(target=poll)
    loader.start()
    reader.start()
    try:
        blocker.wait_for_blocked_loader()
        # The loader is inside its swap: dim_security is already replaced and most of the window
        # deleted, uncommitted. A second connection must still see the old state of everything.
        assert window_view(db) == old
    finally:
        blocker.release()
        loader.join(timeout=60)
        stop.set()
        reader.join(timeout=60)
    new = window_view(db)
    assert new != old and "Energy" in new[1] and "gold-new" in new[0]
    assert seen and set(seen) <= {old, new}
    assert [a["status"] for a in audit(db, "new")] == ["succeeded"] * 4


LOADER = """
import sys
from lakehouse.lake import Lake
from local.spark import connect
from spark_jobs import serving
spark = connect(sys.argv[1])
serving.load(spark, Lake(sys.argv[2]), sys.argv[3], window=serving.DateWindow.parse("2024-01-10", "2024-01-20"),
             load_id="killed")
"""


def test_a_loader_killed_inside_its_transaction_leaves_the_old_rows(spark, lake, db, endpoints):
    """SIGKILL mid-swap: PostgreSQL rolls back; the next load marks the abandoned audit rows failed."""
    load(spark, lake, db, load_id="old")
    before = {t: mart(db, t) for t in MART_TABLES}
    write_all_gold(spark, lake, SYMBOLS, load_id="gold-new", bump=3.0)

    blocker = Blocker(db, "symbol = 'AAPL' AND trade_date = '2024-01-12'")
    proc = subprocess.Popen(
        [sys.executable, "-c", LOADER, endpoints.spark_remote, lake.root, db],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        backend = blocker.wait_for_blocked_loader()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        blocker.release()
    deadline = time.monotonic() + 30
    while fetch(db, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (backend,)) != [(0,)]:
        assert time.monotonic() < deadline, "the killed loader's backend did not go away"
        time.sleep(0.05)

    assert {t: mart(db, t) for t in MART_TABLES} == before
    assert [a["status"] for a in audit(db, "killed")] == ["running"] * 4  # nobody left to say otherwise
    with psycopg.connect(db, autocommit=True) as conn:
        marked = serving.recover_abandoned(conn)
    killed = audit(db, "killed")
    assert sorted(marked) == [a["audit_id"] for a in killed]
    assert all(a["status"] == "failed" and a["error"].startswith("abandoned") for a in killed)
    assert fetch(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'staging'") == [(0,)]


def test_the_rows_are_copied_straight_into_the_mart_without_a_staging_table(spark, lake, db):
    """Written once: inside its swap the loader has created no staging table (one per table before)."""
    load(spark, lake, db, load_id="old")
    write_all_gold(spark, lake, SYMBOLS, load_id="gold-new", bump=1.0)
    blocker = Blocker(db, "symbol = 'AAPL' AND trade_date = '2024-01-12'")
    loader = threading.Thread(target=lambda: load(spark, lake, db, load_id="direct"))
    loader.start()
    try:
        blocker.wait_for_blocked_loader()  # dim_security copied, daily_prices' window being deleted
        staging = fetch(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'staging'")
    finally:
        blocker.release()
        loader.join(timeout=60)
    assert staging == [(0,)]
    assert [a["status"] for a in audit(db, "direct")] == ["succeeded"] * 4


def wide_gold(spark, tmp_path: Path, symbols: int = 20) -> tuple[Lake, list[tuple], DateWindow]:
    """daily_prices of `symbols` symbols over a window long enough to be read in READ_CHUNKS chunks."""
    lake = Lake(str(tmp_path / "wide"))
    daily = daily_rows([f"S{i:02d}" for i in range(symbols)], "2024-01-02", "2024-03-28")
    write_gold(spark, lake, "fct_daily_prices", daily)
    return lake, daily, DateWindow.parse("2024-01-02", "2024-03-28")


def test_a_copy_rejected_half_way_leaves_the_old_window(spark, db, tmp_path):
    """The server rejects a row of the last chunk after the first chunks were copied into the mart
    (the window already deleted): the transaction rolls back to the old window, the audit says failed."""
    lake, daily, window = wide_gold(spark, tmp_path)
    load(spark, lake, db, window=window, load_id="old", tables=["daily_prices"])
    before = mart(db, "daily_prices")
    newer = [(*r[:17], "gold-new", r[18]) for r in daily]
    newer[-1] = (*newer[-1][:2], None, *newer[-1][3:])  # open NULL: the mart's NOT NULL rejects it
    write_gold(spark, lake, "fct_daily_prices", newer)

    with pytest.raises(psycopg.errors.NotNullViolation) as caught:
        load(spark, lake, db, window=window, load_id="bad", tables=["daily_prices"])
    line = int(re.search(r"COPY daily_prices\S*, line (\d+)", str(caught.value.diag.context)).group(1))
    assert line == len(daily)  # every earlier row was sent (and copied) before the rejection
    assert mart(db, "daily_prices") == before
    (failed,) = audit(db, "bad")
    assert failed["status"] == "failed" and "open" in failed["error"] and failed["attempt"] == 1


def test_a_gold_read_failing_half_way_leaves_the_old_window(spark, db, tmp_path, monkeypatch):
    """The read of the last chunk fails in the engine after the first chunks were copied into the
    mart: the COPY is aborted, the transaction rolls back to the old window, the engine's error is raised."""
    from pyspark.sql import functions as F

    lake, daily, window = wide_gold(spark, tmp_path)
    load(spark, lake, db, window=window, load_id="old", tables=["daily_prices"])
    before = mart(db, "daily_prices")
    write_gold(spark, lake, "fct_daily_prices", [(*r[:17], "gold-new", r[18]) for r in daily])
    chunked = serving.chunk_frames

    def failing_last(df, *args):
        frames = chunked(df, *args)
        last = frames[-1]
        broken = F.when(F.col("symbol") >= F.lit("S00"), F.raise_error(F.lit("gold read failed"))).cast("double")
        return [*frames[:-1], last.select(*[broken.alias(c) if c == "open" else c for c in last.columns])]

    monkeypatch.setattr(serving, "chunk_frames", failing_last)
    with pytest.raises(Exception, match="gold read failed"):
        load(spark, lake, db, window=window, load_id="bad", tables=["daily_prices"])
    assert mart(db, "daily_prices") == before
    (failed,) = audit(db, "bad")
    assert failed["status"] == "failed" and "gold read failed" in failed["error"]


KILLED_MID_COPY = """
import sys
from lakehouse.lake import Lake
from local.spark import connect
from spark_jobs import serving
spark = connect(sys.argv[1])
serving.load(spark, Lake(sys.argv[2]), sys.argv[3], window=serving.DateWindow.parse("2024-01-02", "2024-03-28"),
             load_id="killed", tables=["daily_prices"])
"""


def test_a_loader_killed_mid_copy_leaves_the_old_window(spark, db, tmp_path, endpoints):
    """SIGKILL after the first chunk of the window went into the mart: the session ends, PostgreSQL
    rolls the deleted window and the copied rows back; the next load marks the audit row abandoned."""
    lake, daily, window = wide_gold(spark, tmp_path)
    load(spark, lake, db, window=window, load_id="old", tables=["daily_prices"])
    before = mart(db, "daily_prices")
    write_gold(spark, lake, "fct_daily_prices", [(*r[:17], "gold-new", r[18]) for r in daily])
    hits = tmp_path / "failpoints.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAKEHOUSE_FAILPOINTS": "pg_load:copy",
           "LAKEHOUSE_FAILPOINT_LOG": str(hits)}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_COPY, endpoints.spark_remote, lake.root, db],
                          cwd=ROOT, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL
    assert [json.loads(h)["failpoint"] for h in hits.read_text().splitlines()] == ["pg_load:copy"]
    deadline = time.monotonic() + 30
    while fetch(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lakehouse-serving' "
                    "AND datname = current_database()") != [(0,)]:  # fmt: skip
        assert time.monotonic() < deadline, "the killed loader's backend did not go away"
        time.sleep(0.05)

    assert mart(db, "daily_prices") == before
    with psycopg.connect(db, autocommit=True) as conn:
        marked = serving.recover_abandoned(conn)
    (killed,) = audit(db, "killed")
    assert marked == [killed["audit_id"]] and killed["error"].startswith("abandoned")
    load(spark, lake, db, window=window, load_id="after", tables=["daily_prices"])
    assert {r[17] for r in mart(db, "daily_prices")} == {"gold-new"}


def test_a_lost_connection_is_retried_and_the_load_completes(spark, lake, db):
    load(spark, lake, db, load_id="old")
    write_all_gold(spark, lake, SYMBOLS, load_id="gold-new", bump=4.0)
    blocker = Blocker(db, "symbol = 'AAPL' AND trade_date = '2024-01-12'")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            load(spark, lake, db, load_id="retried")
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    loader = threading.Thread(target=run)
    loader.start()
    try:
        backend = blocker.wait_for_blocked_loader()
        fetch(db, "SELECT pg_terminate_backend(%s)", (backend,))  # what a failover does to a session
    finally:
        blocker.release()
        loader.join(timeout=120)
    assert errors == []
    attempts = [(a["attempt"], a["status"]) for a in audit(db, "retried") if a["table_name"] == "mart.daily_prices"]
    assert attempts == [(1, "failed"), (2, "succeeded")]
    assert mart(db, "daily_prices") == in_window(
        daily_rows(SYMBOLS, "2024-01-02", "2024-02-29", "gold-new", bump=4.0), JAN.start, JAN.end
    )


def test_a_missing_optional_gold_table_is_skipped_and_a_required_one_fails(spark, db, tmp_path):
    lake = Lake(str(tmp_path / "partial"))
    write_gold(spark, lake, "fct_daily_prices", daily_rows(SYMBOLS, "2024-01-02", "2024-01-31"))
    write_gold(spark, lake, "fct_monthly_performance", monthly_rows(SYMBOLS, ["2024-01-01"]))
    write_gold(spark, lake, "dim_security", security_rows(SYMBOLS))
    results = load(spark, lake, db)
    assert results["latest_quotes"].status == "skipped"
    assert results["daily_prices"].status == "succeeded"

    with pytest.raises(serving.GoldTableMissing, match=r"gold.dim_security does not exist"):
        load(spark, Lake(str(tmp_path / "empty")), db, tables=["dim_security"])


def test_a_gold_table_whose_first_commit_was_killed_is_missing(spark, db, tmp_path):
    """A `_delta_log` without a commit (a first write killed before version 0) is no table yet:
    optional tables are skipped, required ones fail by name, as if the directory were absent."""
    lake = Lake(str(tmp_path / "killed"))
    write_gold(spark, lake, "fct_daily_prices", daily_rows(SYMBOLS, "2024-01-02", "2024-01-31"))
    write_gold(spark, lake, "fct_monthly_performance", monthly_rows(SYMBOLS, ["2024-01-01"]))
    write_gold(spark, lake, "dim_security", security_rows(SYMBOLS))
    for name in ("latest_quotes", "dim_date"):
        (lake.local_path("gold", name) / "_delta_log").mkdir(parents=True)
        (lake.local_path("gold", name) / "part-00000-orphan.parquet").write_bytes(b"written by a killed engine")
    results = load(spark, lake, db)
    assert results["latest_quotes"].status == "skipped"
    assert results["daily_prices"].status == "succeeded"

    killed = Lake(str(tmp_path / "killed-required"))
    (killed.local_path("gold", "dim_security") / "_delta_log").mkdir(parents=True)
    with pytest.raises(serving.GoldTableMissing, match=r"gold.dim_security does not exist"):
        load(spark, killed, db, tables=["dim_security"])


def test_bad_arguments_are_rejected_by_name(spark, lake, db):
    with pytest.raises(ValueError, match="end_date 2024-01-01 is before start_date 2024-01-31"):
        DateWindow.parse("2024-01-31", "2024-01-01")
    with pytest.raises(ValueError, match="start_date must be YYYY-MM-DD"):
        DateWindow.parse("31/01/2024", "2024-02-01")
    with pytest.raises(ValueError, match="unknown mart tables"):
        load(spark, lake, db, tables=["prices"])


def test_the_notebook_loads_the_window_and_exits_with_a_json_summary(spark, db, tmp_path, monkeypatch, endpoints):
    from lakehouse.settings import load_settings
    from local.notebook_runner import run_notebook

    home = tmp_path / "home"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", db)
    monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", endpoints.spark_remote)
    write_all_gold(spark, Lake.from_settings(load_settings()), SYMBOLS)

    notebook = ROOT / "spark_jobs" / "notebooks" / "gold_to_postgres.py"
    params = {"start_date": "2024-01-10", "end_date": "2024-01-20", "run_id": "adf-run-7", "full_refresh": "false"}
    summary = json.loads(run_notebook(notebook, spark, params))
    assert summary["run_id"] == "adf-run-7"
    assert (summary["start_date"], summary["end_date"]) == ("2024-01-10", "2024-01-20")
    assert summary["migrations_applied"] == []  # the fixture migrated already
    assert summary["tables"]["daily_prices"]["rows_written"] == 14
    assert summary["tables"]["daily_prices"]["status"] == "succeeded"
    assert summary["rows_written"] == sum(t["rows_written"] for t in summary["tables"].values())
    assert fetch(db, "SELECT count(*) FROM mart.daily_prices") == [(14,)]
    assert "password" not in json.dumps(summary)


def test_a_long_window_is_read_in_key_range_chunks_with_the_same_result(spark, db, tmp_path):
    """Backfills read gold in symbol ranges (reading overlaps COPY); content and checksum are unchanged."""
    symbols = [f"S{i:02d}" for i in range(20)]
    lake = Lake(str(tmp_path / "wide"))
    daily = daily_rows(symbols, "2024-01-02", "2024-03-28")
    write_gold(spark, lake, "fct_daily_prices", daily)
    window = DateWindow.parse("2024-01-02", "2024-03-28")
    table = MART_TABLES["daily_prices"]
    frames = serving.chunk_frames(
        spark.read.format("delta").load(lake.table("gold", table.gold)), table, (window.start, window.end)
    )
    assert len(frames) == serving.READ_CHUNKS
    assert sum(f.count() for f in frames) == len(daily)

    result = load(spark, lake, db, window=window, tables=["daily_prices"])["daily_prices"]
    assert mart(db, "daily_prices") == sorted(daily)
    with psycopg.connect(db) as conn:
        assert serving.mart_checksum(conn, table, (window.start, window.end)) == (len(daily), result.checksum)


def test_the_content_check_reads_every_mart_table_in_primary_key_order_without_sorting(spark, lake, db):
    """The check's ORDER BY (text keys COLLATE "C") is the primary key's order: the server reads the
    index instead of sorting the window (a sort cost 2-3 s of a 627,500-row backfill)."""
    load(spark, lake, db)
    with psycopg.connect(db) as conn:
        conn.execute("SET enable_sort = off")  # a plan without a sort, if one exists
        for table in MART_TABLES.values():
            for bounds in (table.bounds(JAN, full_refresh=False), None):
                query = serving.checksum_query(conn, table, bounds)
                plan = "\n".join(r[0] for r in conn.execute(psycopg.sql.SQL("EXPLAIN ") + query).fetchall())
                assert "Sort" not in plan and f"{table.name}_pk" in plan, (table.name, bounds, plan)


def test_gold_is_read_afresh_by_each_attempt_and_no_chunk_is_kept(spark, lake):
    """A retried attempt re-reads gold rather than holding every chunk of the window in memory."""
    table = MART_TABLES["daily_prices"]
    df = (
        spark.read.format("delta")
        .load(lake.table("gold", table.gold))
        .select(*serving.contracts.load("gold", table.gold).column_names)
    )
    frames = [df.where(df.symbol == symbol) for symbol in SYMBOLS]
    data = serving.GoldRead(frames, table.keys)
    try:
        attempts = []
        for _ in range(2):
            chunks, rows = [], []
            for chunk in data:
                chunks.append(weakref.ref(chunk))
                rows += chunk.to_pylist()
            del chunk
            gc.collect()
            assert [ref() for ref in chunks] == [None, None]  # dropped once streamed
            attempts.append(rows)
            assert data.num_rows == len(rows) == len(daily_rows(SYMBOLS, "2024-01-02", "2024-02-29"))
    finally:
        data.close()
    assert attempts[0] == attempts[1]
    assert [(r["symbol"], r["trade_date"]) for r in attempts[0]] == sorted(
        (r[0], r[1]) for r in daily_rows(SYMBOLS, "2024-01-02", "2024-02-29")
    )


def test_lakehouse_sql_returns_the_loaded_count(spark, lake, db, tmp_path, monkeypatch, endpoints):
    """The acceptance query of the issue, through the real CLI command."""
    from typer.testing import CliRunner

    from local.cli import app

    results = load(spark, lake, db)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", db)
    monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", endpoints.spark_remote)
    out = CliRunner().invoke(app, ["sql", "select count(*) from mart.daily_prices", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == [{"count": results["daily_prices"].rows_loaded}]


def test_a_pending_range_inside_the_window_is_loaded_with_it_and_one_across_its_edge_is_cut_there() -> None:
    """The ranges replaced besides a window are built without the window: a daily load's 500 one-day
    ranges on its own day add nothing (they became 500 probes per mart row, 120 s on 5 years)."""
    daily, monthly = MART_TABLES["daily_prices"], MART_TABLES["monthly_performance"]
    day = dt.date(2024, 1, 17)
    window = DateWindow(day, day)
    changes = [
        ("INSIDE", day, day),
        ("REBASED", dt.date(2020, 1, 2), day),  # a new factor: the whole history up to the window
        ("LATE", dt.date(2024, 1, 10), dt.date(2024, 1, 12)),
        ("LATE", dt.date(2024, 1, 16), dt.date(2024, 1, 16)),  # one span per symbol
        ("AROUND", dt.date(2024, 1, 2), dt.date(2024, 1, 31)),
    ]
    assert daily.symbol_ranges(changes, (day, day)) == (
        ("AROUND", dt.date(2024, 1, 2), dt.date(2024, 1, 16)),
        ("AROUND", dt.date(2024, 1, 18), dt.date(2024, 1, 31)),
        ("LATE", dt.date(2024, 1, 10), dt.date(2024, 1, 16)),
        ("REBASED", dt.date(2020, 1, 2), dt.date(2024, 1, 16)),
    )
    # Monthly rows: the window's month is the window; ranges stop at the month before it.
    assert monthly.symbol_ranges(changes, monthly.bounds(window, False)) == (
        ("REBASED", dt.date(2020, 1, 1), dt.date(2023, 12, 1)),
    )
    assert daily.symbol_ranges(changes, None) == () == MART_TABLES["dim_security"].symbol_ranges(changes, (day, day))

    rows = [
        _Change(gold, symbol, lo, hi)
        for gold in ("fct_daily_prices", "fct_monthly_performance", "dim_security")
        for symbol, lo, hi in changes
    ]
    pending = serving.PendingChanges(tables=None, rows=rows)
    assert pending.ranges(window) == {
        "daily_prices": daily.symbol_ranges(changes, (day, day)),
        "monthly_performance": monthly.symbol_ranges(changes, monthly.bounds(window, False)),
    }
    inside_only = serving.PendingChanges(tables=None, rows=[r for r in rows if r.symbol == "INSIDE"])
    assert inside_only.ranges(window) == {}
    assert pending.ranges(window, full_refresh=True) == {}


@dataclasses.dataclass
class _Change:
    """The fields of an ``ops.gold_changes`` row that ranges are built from."""

    table_name: str
    symbol: str
    range_start: dt.date
    range_end: dt.date


def test_a_range_across_the_window_edge_replaces_exactly_its_rows(spark, lake, db):
    """A late change from Jan 15 to Feb 5 of one symbol, loaded with the window Feb 1-9: January's
    rows of that symbol from the 15th are replaced, every other row outside the window stands."""
    load(spark, lake, db, window=DateWindow.parse("2024-01-02", "2024-02-29"), load_id="history")
    write_all_gold(spark, lake, SYMBOLS, load_id="gold-2", bump=1.0)
    feb = DateWindow.parse("2024-02-01", "2024-02-09")
    change = ("AAPL", dt.date(2024, 1, 15), dt.date(2024, 2, 5))
    result = load(spark, lake, db, window=feb, load_id="late", tables=["daily_prices"],
                  ranges={"daily_prices": [change]})["daily_prices"]  # fmt: skip

    old, new = daily_rows(SYMBOLS, "2024-01-02", "2024-02-29"), daily_rows(SYMBOLS, "2024-01-02", "2024-02-29",
                                                                         "gold-2", bump=1.0)  # fmt: skip
    replaced = {(r[0], r[1]) for r in new if feb.start <= r[1] <= feb.end or (r[0] == "AAPL" and r[1] >= change[1]
                                                                             and r[1] < feb.start)}  # fmt: skip
    expected = sorted([r for r in new if (r[0], r[1]) in replaced] + [r for r in old if (r[0], r[1]) not in replaced])
    assert mart(db, "daily_prices") == expected
    assert result.ranges == (("AAPL", dt.date(2024, 1, 15), dt.date(2024, 1, 31)),)
    assert result.rows_loaded == result.rows_deleted == len(replaced) == 14 + 12
    bounds = (feb.start, feb.end)
    with psycopg.connect(db) as conn:
        held = serving.mart_checksum(conn, MART_TABLES["daily_prices"], bounds, ranges=[change])
        assert held == (result.rows_loaded, result.checksum)
        assert serving.mart_checksum(conn, MART_TABLES["daily_prices"], bounds) != held


def test_many_ranges_are_joined_from_a_table_each_probing_the_primary_key(spark, db, tmp_path):
    """500 symbol ranges (every symbol's history rebased) are a temporary table the delete and the
    content check join on: each mart scan has an index condition, no range list is probed per row."""
    symbols = [f"S{i:03d}" for i in range(500)]
    lake = Lake(str(tmp_path / "wide"))
    write_gold(spark, lake, "fct_daily_prices", daily_rows(symbols, "2024-01-02", "2024-01-12"))
    table = MART_TABLES["daily_prices"]
    history = DateWindow.parse("2024-01-02", "2024-01-11")
    load(spark, lake, db, window=history, load_id="history", tables=["daily_prices"])
    write_gold(spark, lake, "fct_daily_prices", daily_rows(symbols, "2024-01-02", "2024-01-12", "gold-2", 1.0))
    day = DateWindow.parse("2024-01-12", "2024-01-12")
    rebased = [(s, dt.date(2024, 1, 2), day.end) for s in symbols]
    result = load(spark, lake, db, window=day, load_id="rebased", tables=["daily_prices"],
                  ranges={"daily_prices": rebased})["daily_prices"]  # fmt: skip
    assert len(result.ranges) == 500 and result.rows_loaded == result.rows_deleted + 500 == 9 * 500
    assert mart(db, "daily_prices") == sorted(daily_rows(symbols, "2024-01-02", "2024-01-12", "gold-2", 1.0))

    with psycopg.connect(db) as conn, conn.transaction():
        conn.execute("ANALYZE mart.daily_prices")
        joined = serving.ranges_table(conn, table, table.symbol_ranges(rebased, (day.start, day.end)))
        query = serving.checksum_query(conn, table, (day.start, day.end), (), joined)
        assert "VALUES" not in query.as_string(conn)
        conn.execute("SET LOCAL enable_seqscan = off")  # a plan that reads no whole table, if one exists
        plan = "\n".join(r[0] for r in conn.execute(psycopg.sql.SQL("EXPLAIN ") + query).fetchall())
    scans = [line for line in plan.splitlines() if re.search(r" on daily_prices( m)?  \(", line)]
    assert len(scans) == 2 and not any("Seq Scan" in line for line in scans), plan  # the window's, the ranges'
    assert "SubPlan" not in plan and "Join" in plan and "daily_prices__ranges" in plan, plan
    with psycopg.connect(db) as conn:
        held = serving.mart_checksum(conn, table, (day.start, day.end), ranges=rebased)
    assert held == (result.rows_loaded, result.checksum)


def test_pruning_deletes_only_changes_served_before_the_cutoff(spark, tmp_path):
    """Maintenance keeps ops.gold_changes small (the MERGE marking a load's changes reads all of it):
    rows served before the cutoff go; rows served after it and pending rows, however old, stay."""
    import pyarrow as pa

    from spark_jobs import contracts
    from spark_jobs.tables import Tables

    tables = Tables(spark, Lake(str(tmp_path / "lake")))
    c = contracts.load("ops", "gold_changes")
    assert serving.prune_served_changes(tables, dt.datetime.now(dt.UTC)) == 0  # no table yet
    cutoff = dt.datetime(2026, 11, 2, 4, 0, tzinfo=dt.UTC)
    minute = dt.timedelta(minutes=1)
    rows = [  # (symbol, recorded, served_at)
        ("OLD", cutoff - dt.timedelta(days=40), cutoff - dt.timedelta(days=39)),
        ("JUST_BEFORE", cutoff - dt.timedelta(days=2), cutoff - minute),
        ("JUST_AFTER", cutoff - dt.timedelta(days=2), cutoff + minute),
        ("PENDING", cutoff - dt.timedelta(days=60), None),
    ]
    tables.append_arrow(pa.Table.from_pylist([
        {"gold_run_id": "run-1", "table_name": "fct_daily_prices", "symbol": symbol,
         "range_start": dt.date(2026, 9, 1), "range_end": dt.date(2026, 9, 30), "recorded_at": recorded,
         "served_by": served and "load-1", "served_at": served, "schema_version": c.version}
        for symbol, recorded, served in rows
    ], schema=c.arrow_schema()), c)  # fmt: skip

    assert serving.prune_served_changes(tables, cutoff.astimezone(dt.timezone(dt.timedelta(hours=-5)))) == 2
    assert sorted(r.symbol for r in tables.read(c).collect()) == ["JUST_AFTER", "PENDING"]
    pending = serving.pending_changes(tables, serving.MART_TABLES.values())
    assert [r.symbol for r in pending.rows] == ["PENDING"]
    assert serving.prune_served_changes(tables, cutoff) == 0
