"""Jobs as a whole: reruns leave every table equal, bad parameters fail naming the parameter."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse.trading_calendar import sessions
from spark_jobs import jobs
from spark_jobs.jobs import MAINTAINED
from tests.spark_jobs.raw_files import Bar, quote_message, random_walk_bars

DAYS = sessions(dt.date(2023, 6, 1), dt.date(2024, 2, 29))


def snapshot(pipeline) -> dict[str, list]:
    """Full contents of every table, sorted, so two snapshots compare row by row."""
    out = {}
    for layer, name in (*MAINTAINED, ("ops", "job_state")):
        rows = pipeline.table(layer, name).collect()
        out[f"{layer}.{name}"] = sorted((tuple(r) for r in rows), key=repr)
    return out


def seed(raw_lake) -> None:
    raw_lake.daily_bars("AAPL", random_walk_bars(DAYS, seed=1, events={100: {"dividend": 0.4}}), "2024-03-01")
    raw_lake.daily_bars("MSFT", random_walk_bars(DAYS, seed=2), "2024-03-01")
    raw_lake.daily_bars("MSFT", {"2024-02-29": Bar(-1, 1, 1, 1, 1)}, "2024-03-04", run_id="bad")  # quarantined
    raw_lake.overview("AAPL", "2024-03-01")
    raw_lake.overview("MSFT", "2024-03-04", Sector="SOFTWARE")
    at = dt.datetime(2024, 3, 1, 15, tzinfo=dt.UTC)
    raw_lake.capture([quote_message("AAPL", 180.0, "2024-03-01T15:00:00Z", "2024-03-01")], at)


def test_running_a_window_twice_leaves_every_table_equal(pipeline, raw_lake):
    seed(raw_lake)
    pipeline.run("2024-03-01", "2024-03-04", run_id="first")
    before = snapshot(pipeline)
    assert all(before[t] for t in ("gold.fct_daily_prices", "silver.quarantine", "gold.latest_quotes"))

    pipeline.run("2024-03-01", "2024-03-04", run_id="second")
    assert snapshot(pipeline) == before

    pipeline.run("2024-03-01", "2024-03-04", run_id="first", full_refresh=True)
    assert snapshot(pipeline) == before


def test_notebook_summaries_report_rows_quarantine_and_dq(pipeline, raw_lake):
    seed(raw_lake)
    out = pipeline.run("2024-03-01", "2024-03-04", run_id="first")
    assert out["bronze"]["rows_written"] == 2 * len(DAYS) + 1 + 2 + 1
    assert out["silver"]["rows_quarantined"] == 1 and out["silver"]["dq"]["passed"] is True
    assert out["gold"]["tables"]["gold.fct_daily_prices"]["rows_written"] == 2 * len(DAYS)


@pytest.mark.parametrize(
    ("start", "end", "flag", "message"),
    [
        ("2024-13-01", "2024-03-01", "false", "start_date must be YYYY-MM-DD"),
        ("2024-03-02", "2024-03-01", "false", "before start_date"),
        ("2024-03-01", "2024-03-01", "yes", "full_refresh must be 'true' or 'false'"),
    ],
)
def test_bad_parameters_fail_naming_the_parameter(spark, lake_settings, start, end, flag, message):
    with pytest.raises(ValueError, match=message):
        jobs.run_raw_to_bronze(spark, lake_settings, start, end, "run-1", flag)


def test_maintenance_compacts_and_keeps_contents(pipeline, raw_lake):
    seed(raw_lake)
    pipeline.run("2024-03-01", "2024-03-04", run_id="first")
    before = snapshot(pipeline)
    summary = jobs.run_maintenance(pipeline.spark, pipeline.settings, "2024-03-01", "2024-03-04", "maint")
    assert summary.tables["gold.fct_daily_prices"].rows == 2 * len(DAYS)
    assert snapshot(pipeline) == before


def test_maintenance_vacuums_every_scratch_table_a_run_stages(pipeline, raw_lake):
    """Each run overwrites the jobs' scratch tables, which leaves the previous run's files on disk:
    maintenance vacuums them, by the names the jobs declare (so a new stage name must be declared)."""
    from lakehouse.lake import Lake

    seed(raw_lake)
    pipeline.run("2024-03-01", "2024-03-04", run_id="first")
    pipeline.run("2024-03-01", "2024-03-04", run_id="again", full_refresh=True)
    staging = Lake.from_settings(pipeline.settings).local_path("ops", "_staging")
    staged = sorted(p.name for p in staging.iterdir())
    assert staged and set(staged) <= set(jobs.STAGED)

    def files() -> int:
        return sum(1 for p in staging.rglob("*.parquet"))

    before = files()
    summary = jobs.run_maintenance(pipeline.spark, pipeline.settings, "2024-03-01", "2024-03-04", "maint", False, 0)
    vacuumed = {name: summary.tables[f"ops._staging.{name}"].vacuumed for name in staged}
    assert sum(vacuumed.values()) == before - files() > 0


def test_maintenance_deletes_the_gold_changes_served_longer_ago_than_the_retention(spark, lake_settings):
    """Served changes older than the retention go (serving's marking MERGE reads the whole table);
    recently served ones and pending ones, however old, stay, and the summary counts what went."""
    import pyarrow as pa

    from lakehouse.lake import Lake
    from spark_jobs import serving
    from spark_jobs.tables import Tables, contract

    tables = Tables(spark, Lake.from_settings(lake_settings))
    c = contract("ops", "gold_changes")
    now = dt.datetime.now(dt.UTC)
    retention = serving.SERVED_CHANGES_RETENTION
    rows = [("OLD", now - retention - dt.timedelta(days=1)), ("RECENT", now - retention + dt.timedelta(days=1)),
            ("PENDING", None)]  # fmt: skip
    tables.append_arrow(pa.Table.from_pylist([
        {"gold_run_id": "run-1", "table_name": "fct_daily_prices", "symbol": symbol,
         "range_start": dt.date(2024, 1, 2), "range_end": dt.date(2024, 1, 31),
         "recorded_at": now - 2 * retention, "served_by": served and "load-1", "served_at": served,
         "schema_version": c.version}
        for symbol, served in rows
    ], schema=c.arrow_schema()), c)  # fmt: skip

    summary = jobs.run_maintenance(spark, lake_settings, "2024-03-01", "2024-03-04", "maint")

    assert sorted(r.symbol for r in tables.read(c).collect()) == ["PENDING", "RECENT"]
    assert summary.tables["ops.gold_changes"].rows_deleted == 1


def test_silver_reads_the_bronze_file_facts_only_when_every_pending_file_has_them(spark, lake_settings):
    """Bars loaded before bronze 1.1.0 have no file facts (no columns, or NULL after the table gained
    them), nor has a file with a date the driver left to the engine (its last date NULL): then silver
    computes the batch's facts per file itself, as before."""
    from lakehouse.lake import Lake
    from spark_jobs import bronze, raw
    from spark_jobs.tables import Tables, contract

    target = contract("bronze", "daily_bars")
    tables = Tables(spark, Lake.from_settings(lake_settings))

    def lineage(day: dt.date, source_file: str) -> dict:
        return {"path_symbol": "AAPL", "ingest_date": day, "ingest_run_id": "r", "source_file": source_file,
                "ingested_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC), "provider": "synthetic", "load_id": "load",
                "schema_version": target.version}  # fmt: skip

    def load(day: dt.date, source_file: str, last: dt.date | None) -> None:
        batch = bronze.Batch()
        facts = {**lineage(day, source_file), raw.LAST_IN_FILE: last}
        columns = {c: ["1"] for c in target.column_names if c not in facts}
        batch.extend(raw.Parsed(columns | {"record_index": [0], raw.IN_FILE: [1]}, None, 1), facts,
                     target.arrow_schema(), source_file)  # fmt: skip
        rows, files = batch.take_arrow_parts(target)
        tables.append_arrow(rows, target, per_file=files)

    def file_facts(start: str, end: str, full_refresh: bool = False) -> bool:
        window = jobs.DateWindow.parse(start, end)
        return jobs._pending_all(tables, ["daily_bars"], window, full_refresh)["daily_bars"].file_facts

    old = bronze.to_frame(spark, [{**lineage(dt.date(2024, 3, 1), "old.json"), "record_index": 0}], target)
    old.drop(raw.IN_FILE, raw.LAST_IN_FILE).write.format("delta").save(tables.path(target))  # before 1.1.0
    assert not file_facts("2024-03-01", "2024-03-01")  # no such columns yet
    load(dt.date(2024, 3, 4), "new.json", dt.date(2024, 3, 1))  # the table gains them; old.json's row is NULL
    assert file_facts("2024-03-04", "2024-03-04")
    assert not file_facts("2024-03-01", "2024-03-04")
    assert not file_facts("2024-03-01", "2024-03-04", full_refresh=True)
    load(dt.date(2024, 3, 5), "odd.json", None)  # a date the driver did not read: its last date left to silver
    assert file_facts("2024-03-04", "2024-03-04") and not file_facts("2024-03-04", "2024-03-05")
