"""RAW -> BRONZE's load loop: a batch is appended while the next one is parsed, in order, errors kept.

The loop runs here against a recording stand-in for the tables (no engine); the last test runs the
whole job on Sail with batches of a few rows and compares bronze with a one-batch load.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading

import pytest

from lakehouse.trading_calendar import sessions
from spark_jobs import bronze, jobs, raw
from spark_jobs.job_params import DateWindow
from spark_jobs.tables import contract
from tests.spark_jobs.raw_files import bar_body, random_walk_bars

DAYS = sessions(dt.date(2024, 1, 2), dt.date(2024, 2, 29))
TARGET = contract("bronze", "daily_bars")
WINDOW = DateWindow.parse("2024-03-01", "2024-03-01")


def _batch(symbol: str, n_days: int) -> bronze.Batch:
    """A batch holding one daily-bars file of `n_days` bars."""
    path = f"synthetic/daily_bars/ingest_date=2024-03-01/{symbol}/r.json"
    parsed = raw.parse_daily_bars(bar_body(symbol, random_walk_bars(DAYS[:n_days], seed=len(symbol))), path)
    lineage = {"source_file": path, "ingest_date": dt.date(2024, 3, 1), "ingest_run_id": "r",
               "ingested_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC), "provider": "synthetic", "load_id": "l",
               "schema_version": TARGET.version, "path_symbol": symbol}  # fmt: skip
    batch = bronze.Batch()
    batch.extend(parsed, lineage, TARGET.arrow_schema(), path)
    batch.records_per_file[path] = parsed.count
    return batch


class RecordingTables:
    """Appends recorded in order, each one held until `release` is set (or for `hold` seconds)."""

    def __init__(self, hold: float = 0.0, fail_on: int | None = None):
        self.appended: list[str] = []
        self.rows: dict[str, int] = {}
        self.hold, self.fail_on = hold, fail_on
        self.release = threading.Event()

    def append_arrow(self, table, target, per_file) -> None:
        self.release.wait(self.hold)
        if self.fail_on == len(self.appended):
            raise RuntimeError("engine refused the append")
        (path,) = set(per_file.column("source_file").to_pylist())
        self.appended.append(path)
        self.rows[path] = table.num_rows


@pytest.fixture
def counted_back(monkeypatch):
    """_load counts the rows back from bronze: here, from what the stand-in recorded."""
    monkeypatch.setattr(jobs, "_bronze_counts", lambda tables, table, window, files, since: dict(tables.rows))


def test_the_next_batch_is_parsed_while_the_previous_one_is_appended(counted_back):
    tables = RecordingTables(hold=5.0)
    parsed_second_during_first_append = []

    def batches():
        yield _batch("AAPL", 20)
        # Asked for the second batch: the first one's append must still be in flight.
        parsed_second_during_first_append.append(not tables.appended)
        tables.release.set()
        yield _batch("MSFT", 10)

    counts, landed = jobs._load(tables, "daily_bars", batches(), WINDOW)

    assert parsed_second_during_first_append == [True]
    assert tables.appended == [
        "synthetic/daily_bars/ingest_date=2024-03-01/AAPL/r.json",
        "synthetic/daily_bars/ingest_date=2024-03-01/MSFT/r.json",
    ]  # in the batches' order
    assert (counts.files_loaded, counts.rows_read, counts.rows_written) == (2, 30, 30)
    assert landed == dict(zip(tables.appended, (20, 10), strict=True))


def test_a_failed_append_ends_the_load_with_its_error(counted_back):
    tables = RecordingTables(fail_on=1)
    batches = (_batch(symbol, 5) for symbol in ("AAPL", "MSFT", "IBM", "KO"))

    with pytest.raises(RuntimeError, match="engine refused the append"):
        jobs._load(tables, "daily_bars", batches, WINDOW)

    assert tables.appended == ["synthetic/daily_bars/ingest_date=2024-03-01/AAPL/r.json"]


def test_a_parse_error_waits_for_the_append_in_flight_and_is_raised(counted_back):
    tables = RecordingTables(hold=0.2)

    def batches():
        yield _batch("AAPL", 5)
        raise raw.RawFormatError("broken file")

    with pytest.raises(raw.RawFormatError, match="broken file"):
        jobs._load(tables, "daily_bars", batches(), WINDOW)

    assert tables.appended == ["synthetic/daily_bars/ingest_date=2024-03-01/AAPL/r.json"]  # not abandoned mid-append


def test_bronze_loaded_in_many_small_batches_equals_one_batch(spark, lake_settings, raw_lake, monkeypatch):
    for i, symbol in enumerate(("AAPL", "MSFT", "IBM", "KO", "PEP")):
        raw_lake.daily_bars(symbol, random_walk_bars(DAYS[: 10 + 7 * i], seed=i), "2024-03-01", run_id=f"r-{i}")
    raw_lake.overview("AAPL", "2024-03-01")

    def bronze_rows() -> list[tuple]:
        columns = [c for c in TARGET.arrow_schema().names if c not in {"load_id", "ingested_at"}]
        rows = spark.read.format("delta").load(str(raw_lake.lake.local_path("bronze", "daily_bars")))
        return sorted(tuple(r) for r in rows.select(*columns).collect())

    one = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "one-batch").as_dict()
    once = bronze_rows()
    monkeypatch.setattr(bronze, "ingested_batches", functools.partial(bronze.ingested_batches, batch_rows=12))
    many = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "many", full_refresh=True)

    assert bronze_rows() == once
    counts = [{k: t["bronze.daily_bars"][k] for k in ("files_loaded", "rows_read", "rows_written")}
              for t in (one["tables"], many.as_dict()["tables"])]  # fmt: skip
    assert counts == [{"files_loaded": 5, "rows_read": 120, "rows_written": 120}] * 2


def test_a_file_already_in_bronze_from_another_load_fails_the_count_back(spark, lake_settings):
    """The count back is bounded by the files' RAW modification time (their rows' ``ingested_at``),
    not by this load: rows of the same file landed by another load (a concurrent run) still count."""
    from lakehouse.lake import Lake
    from spark_jobs.tables import Tables

    tables = Tables(spark, Lake.from_settings(lake_settings))
    since = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)  # the files' modification time, as _batch writes it
    counts, landed = jobs._load(tables, "daily_bars", [_batch("AAPL", 5)], WINDOW, since)
    assert (counts.rows_written, list(landed.values())) == (5, [5])
    with pytest.raises(jobs.ReconciliationError, match=r"AAPL/r\.json"):
        jobs._load(tables, "daily_bars", [_batch("AAPL", 5)], WINDOW, since)
