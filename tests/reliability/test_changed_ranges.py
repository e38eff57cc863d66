"""Gold changes outside the run's window reach the mart, and a mart that does not match gold fails the load.

Each case delivers a history on day 1 and a change on day 2 whose effect on gold lies before day 2's
window: a 4:1 split (the mart rebases the whole history; gold's forward frame changes from the split
on), a revised earlier bar, a bar first delivered a day late. Day 2's serving run is given only day
2's window, as the daily pipeline gives it; the mart must still equal gold everywhere.
"""

from __future__ import annotations

import datetime as dt
import os

import psycopg
import pytest

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from lakehouse.trading_calendar import sessions
from spark_jobs import jobs, migrations, reconcile, serving
from spark_jobs.job_params import DateWindow
from spark_jobs.tables import Tables, contract
from tests.databases import fresh_database
from tests.local.test_cli import run
from tests.spark_jobs.raw_files import Bar, RawLake, random_walk_bars

DAYS = sessions(dt.date(2023, 6, 1), dt.date(2024, 2, 29))
FIRST, SECOND = "2024-03-01", "2024-03-04"  # ingestion days
LATE = DAYS[-10]
REVISED = DAYS[50]
SYMBOLS = ("SPLT", "REVS", "LATE")
RUN_COLUMNS = ("load_id", "schema_version")
MART_OF_GOLD = (
    ("fct_daily_prices", "daily_prices", "trade_date"),
    ("fct_monthly_performance", "monthly_performance", "month"),
)


def _deliveries() -> dict[str, tuple[dict, dict]]:
    """Symbol -> (bars delivered on day 1, bars delivered on day 2)."""
    out = {}
    split = random_walk_bars(DAYS, seed=11, events={len(DAYS) - 1: {"split": 4.0}})
    last = DAYS[-1].isoformat()
    out["SPLT"] = ({d: b for d, b in split.items() if d != last}, {last: split[last]})
    revs = random_walk_bars(DAYS, seed=12)
    old = revs[REVISED.isoformat()]
    revised = Bar(old.open, old.high, old.low, old.close, old.volume + 1_000)
    out["REVS"] = (
        {d: b for d, b in revs.items() if d != DAYS[-1].isoformat()},
        {REVISED.isoformat(): revised, DAYS[-1].isoformat(): revs[DAYS[-1].isoformat()]},
    )
    late = random_walk_bars(DAYS, seed=13)
    out["LATE"] = (
        {d: b for d, b in late.items() if d not in (DAYS[-1].isoformat(), LATE.isoformat())},
        {LATE.isoformat(): late[LATE.isoformat()], DAYS[-1].isoformat(): late[DAYS[-1].isoformat()]},
    )
    return out


class World:
    """One lake and one database, the pipeline's jobs run on them day by day."""

    def __init__(self, spark, settings, dsn: str):
        self.spark, self.settings, self.dsn = spark, settings, dsn
        self.lake = Lake.from_settings(settings)
        self.raw = RawLake(self.lake)

    def deliver(self, day: str, which: int) -> None:
        for symbol, bars in _deliveries().items():
            self.raw.daily_bars(symbol, bars[which], day, run_id=f"ingest-{day}")

    def transform(self, day: str, run_id: str) -> dict:
        jobs.run_raw_to_bronze(self.spark, self.settings, day, day, run_id)
        jobs.run_bronze_to_silver(self.spark, self.settings, day, day, run_id, today=dt.date(2024, 3, 4))
        return jobs.run_silver_to_gold(self.spark, self.settings, day, day, run_id).as_dict()

    def serve(self, start: dt.date, end: dt.date, run_id: str) -> dict:
        return serving.run_gold_to_postgres(
            self.spark, self.settings, start_date=start, end_date=end, run_id=run_id
        ).as_dict()

    def gold(self, table: str, mart_table: str, date_column: str) -> dict[tuple, tuple]:
        """Gold's rows as the mart serves them (forward-frame price levels times the current factor)."""
        tables = Tables(self.spark, self.lake)
        rows = serving.served(tables, tables.read(contract("gold", table)), serving.MART_TABLES[mart_table]).collect()
        return {(r.symbol, r[date_column]): _values(r.asDict()) for r in rows}

    def mart(self, table: str, date_column: str) -> dict[tuple, tuple]:
        with psycopg.connect(self.dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            rows = cur.execute(f"SELECT * FROM mart.{table}").fetchall()
        return {(r["symbol"], r[date_column]): _values(r) for r in rows}

    def differences(self) -> dict[str, list]:
        """Keys whose mart row is missing or differs from gold, per mart table (first few)."""
        out = {}
        for gold_table, mart_table, column in MART_OF_GOLD:
            gold, mart = self.gold(gold_table, mart_table, column), self.mart(mart_table, column)
            out[mart_table] = sorted(k for k in gold.keys() | mart.keys() if gold.get(k) != mart.get(k))[:5]
        return out


def _values(row: dict) -> tuple:
    return tuple(v for k, v in sorted(row.items()) if k not in RUN_COLUMNS)


@pytest.fixture
def world(spark, pg_dsn, endpoints, tmp_path):
    with fresh_database(pg_dsn) as dsn:
        migrations.apply(dsn)
        settings = load_settings(home=tmp_path / "home", spark_remote=endpoints.spark_remote, pg_dsn=dsn)
        yield World(spark, settings, dsn)


def _two_days(world: World) -> dict:
    world.deliver(FIRST, 0)
    world.transform(FIRST, "run-1")
    world.serve(DAYS[0], DAYS[-2], "run-1")
    world.deliver(SECOND, 1)
    gold = world.transform(SECOND, "run-2")
    served = world.serve(DAYS[-1], DAYS[-1], "run-2")  # the daily window: day 2's session only
    return {"gold": gold, "serving": served}


def test_gold_changes_before_the_window_reach_the_mart(world: World, case):
    c = case(
        "silent loss",
        "split, revised bar and late bar before the serving window",
        expected="a 4:1 split rebases the mart's whole history, a revised earlier bar and a bar delivered a "
        "day late reach the mart, although serving was given only the day's window; mart = gold everywhere",
    )
    out = _two_days(world)
    diffs = world.differences()
    ranges = {t: s.get("ranges") for t, s in out["serving"]["tables"].items()}
    c.observe(f"mart rows differing from gold after day 2: {diffs}; symbol ranges loaded besides the window: {ranges}")
    assert diffs == {"daily_prices": [], "monthly_performance": []}
    # LATE's bar is in the window's month: its monthly row is replaced with the window, not besides it.
    assert ranges["daily_prices"] == len(SYMBOLS) and ranges["monthly_performance"] == len(SYMBOLS) - 1
    counts = reconcile.reconcile(world.spark, world.settings, FIRST, SECOND, symbols=list(SYMBOLS), pg_dsn=world.dsn)
    c.reconcile(counts)
    assert counts.ok
    assert counts.details["lost_gold_to_mart"] == 0 and counts.details["mart_without_gold"] == 0


def test_served_changes_are_not_loaded_again(world: World):
    _two_days(world)
    again = world.serve(DAYS[-1], DAYS[-1], "run-3")
    assert {t: s.get("ranges") for t, s in again["tables"].items()} == dict.fromkeys(again["tables"])
    pending = Tables(world.spark, world.lake).read(contract("ops", "gold_changes")).filter("served_by IS NULL")
    assert pending.count() == 0


def test_a_failed_load_leaves_the_changes_pending_for_the_next_one(world: World):
    world.deliver(FIRST, 0)
    world.transform(FIRST, "run-1")
    world.serve(DAYS[0], DAYS[-2], "run-1")
    world.deliver(SECOND, 1)
    world.transform(SECOND, "run-2")
    with psycopg.connect(world.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE mart.daily_prices ADD CONSTRAINT no_split CHECK (symbol <> 'SPLT') NOT VALID")
        with pytest.raises(psycopg.errors.CheckViolation):
            world.serve(DAYS[-1], DAYS[-1], "run-2")
        conn.execute("ALTER TABLE mart.daily_prices DROP CONSTRAINT no_split")
    world.serve(DAYS[-1], DAYS[-1], "run-3")
    assert world.differences() == {"daily_prices": [], "monthly_performance": []}


def test_a_mart_that_differs_from_gold_after_the_load_fails_it(world: World, case):
    c = case(
        "silent loss",
        "a mart row changed on the way in",
        expected="the load compares the mart with the gold rows it read before committing: a changed row "
        "fails gold_to_postgres naming the table, and the old rows stay",
    )
    world.deliver(FIRST, 0)
    world.transform(FIRST, "run-1")
    window = (DAYS[0], DAYS[-2])
    with psycopg.connect(world.dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION mart.shave() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF NEW.symbol = 'REVS' THEN NEW.volume := NEW.volume - 1; END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER shave BEFORE INSERT ON mart.daily_prices FOR EACH ROW EXECUTE FUNCTION mart.shave()"
        )
    with pytest.raises(serving.MartMismatchError, match=r"mart\.daily_prices.*rolled back"):
        world.serve(*window, "run-1")
    with psycopg.connect(world.dsn) as conn:
        held = conn.execute("SELECT count(*) FROM mart.daily_prices").fetchone()[0]
        status = conn.execute(
            "SELECT status FROM ops.load_audit WHERE table_name = 'mart.daily_prices' AND load_id = 'run-1'"
        ).fetchone()[0]
    c.observe(f"gold_to_postgres raised MartMismatchError; mart.daily_prices rows after it: {held}; audit: {status}")
    assert held == 0 and status == "failed"


def test_reconcile_fails_when_the_mart_was_served_only_the_window(world: World, case):
    c = case(
        "silent loss",
        "reconcile after a window-only load",
        expected="a load given only the window (the old behaviour) leaves the late bar out of the mart; "
        "reconcile reports it lost and is not ok",
    )
    world.deliver(FIRST, 0)
    world.transform(FIRST, "run-1")
    world.serve(DAYS[0], DAYS[-2], "run-1")
    world.deliver(SECOND, 1)
    world.transform(SECOND, "run-2")
    info = world.settings.pg_dsn.get_secret_value()
    serving.load(world.spark, world.lake, info, window=DateWindow(DAYS[-1], DAYS[-1]), load_id="run-2")
    counts = reconcile.reconcile(world.spark, world.settings, FIRST, SECOND, symbols=list(SYMBOLS), pg_dsn=world.dsn)
    env = {**os.environ, "LAKEHOUSE_HOME": str(world.settings.home), "LAKEHOUSE_PG_DSN": world.dsn,
           "LAKEHOUSE_SPARK_REMOTE": world.settings.spark_remote}  # fmt: skip
    cli = run("reconcile", "--start", FIRST, "--end", SECOND, "--symbols", ",".join(SYMBOLS), env=env)
    lost, stale = counts.details["lost_gold_to_mart"], counts.details.get("stale_in_mart")
    c.observe(f"reconcile ok={counts.ok}, lost_gold_to_mart={lost}, stale_in_mart={stale}; "
              f"`lakehouse reconcile` exit {cli.returncode}")  # fmt: skip
    assert not counts.ok and counts.details["lost_gold_to_mart"] >= 1
    assert cli.returncode == 1, cli.stderr
