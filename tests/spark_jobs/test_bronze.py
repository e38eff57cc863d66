"""RAW -> BRONZE: every record of every file exactly once, lineage on every row, reruns are no-ops."""

from __future__ import annotations

import datetime as dt
import json

from lakehouse.trading_calendar import sessions
from spark_jobs import jobs
from tests.spark_jobs.raw_files import quote_message, random_walk_bars

DAYS = sessions(dt.date(2024, 1, 2), dt.date(2024, 2, 29))
NOTE_BODY = b'{"Note": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day."}'


def test_each_bar_of_each_file_becomes_one_row_with_lineage(spark, lake_settings, raw_lake):
    a = raw_lake.daily_bars("AAPL", random_walk_bars(DAYS, seed=1), "2024-03-01", run_id="r-a")
    b = raw_lake.daily_bars("MSFT", random_walk_bars(DAYS[:10], seed=2), "2024-03-01", run_id="r-b")
    c = raw_lake.daily_bars("AAPL", random_walk_bars(DAYS[-3:], seed=3), "2024-03-04", run_id="r-c")
    summary = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-04", "load-1").as_dict()

    table = summary["tables"]["bronze.daily_bars"]
    assert (table["files_found"], table["files_loaded"], table["rows_read"], table["rows_written"]) == (
        3, 3, len(DAYS) + 10 + 3, len(DAYS) + 10 + 3,
    )  # fmt: skip
    assert table["manifest_mismatches"] == []
    rows = spark.read.format("delta").load(str(raw_lake.lake.local_path("bronze", "daily_bars")))
    per_file = {r.source_file: r["count"] for r in rows.groupBy("source_file").count().collect()}
    assert per_file == {a: len(DAYS), b: 10, c: 3}
    first = rows.filter(f"source_file = '{a}' AND trade_date = '2024-01-02'").first()
    assert (first.symbol, first.path_symbol, first.ingest_date, first.ingest_run_id, first.provider, first.load_id) == (
        "AAPL", "AAPL", dt.date(2024, 3, 1), "r-a", "synthetic", "load-1",
    )  # fmt: skip
    body = json.loads((raw_lake.root / a).read_bytes())["Time Series (Daily)"]["2024-01-02"]
    assert (first.open, first.close, first.volume, first.split_coefficient) == (
        body["1. open"], body["4. close"], body["6. volume"], body["8. split coefficient"],
    )  # values exactly as received  # fmt: skip


def test_rerun_loads_nothing_and_full_refresh_reloads_the_same_rows(spark, lake_settings, raw_lake):
    raw_lake.daily_bars("AAPL", random_walk_bars(DAYS, seed=1), "2024-03-01")
    raw_lake.overview("AAPL", "2024-03-01")
    jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1")
    table = str(raw_lake.lake.local_path("bronze", "daily_bars"))
    before = sorted(spark.read.format("delta").load(table).collect())

    again = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-2").as_dict()
    assert again["rows_written"] == 0
    assert again["tables"]["bronze.daily_bars"]["files_skipped"] == 1
    assert sorted(spark.read.format("delta").load(table).collect()) == before

    rebuilt = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1", "true").as_dict()
    assert rebuilt["tables"]["bronze.daily_bars"]["rows_written"] == len(DAYS)
    assert sorted(spark.read.format("delta").load(table).collect()) == before


def test_files_without_records_are_rejected_with_the_reason_and_not_reread(spark, lake_settings, raw_lake):
    throttled = raw_lake.file("daily_bars", "IBM", "2024-03-01", "r1",
                              NOTE_BODY, 0)  # fmt: skip
    broken = raw_lake.file("daily_bars", "KO", "2024-03-01", "r1", b'{"Meta Data": {', 0)
    unknown = raw_lake.file("security_master", "ZZZZ", "2024-03-01", "r1", b"{}", 0)
    summary = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1").as_dict()
    assert summary["tables"]["bronze.daily_bars"]["files_rejected"] == 2
    assert summary["tables"]["bronze.security_overview"]["files_rejected"] == 1
    rejected = spark.read.format("delta").load(str(raw_lake.lake.local_path("bronze", "rejected_files")))
    reasons = {r.source_file: r.reason for r in rejected.collect()}
    assert "'Note'" in reasons[throttled] and "rate limit" in reasons[throttled]
    assert "not UTF-8 JSON" in reasons[broken]
    assert "empty overview" in reasons[unknown]
    assert jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-2").as_dict()["tables"][
        "bronze.daily_bars"]["files_skipped"] == 2  # fmt: skip


def test_capture_events_become_quote_rows(spark, lake_settings, raw_lake):
    at = dt.datetime(2024, 3, 1, 14, 30, tzinfo=dt.UTC)
    path = raw_lake.capture([quote_message("AAPL", 180.0, "2024-03-01T14:30:00Z", "2024-03-01"), b"not json"], at,
                            partition="1", first_sequence=40)  # fmt: skip
    summary = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1").as_dict()
    assert summary["tables"]["bronze.quotes"]["rows_written"] == 2
    rows = spark.read.format("delta").load(str(raw_lake.lake.local_path("bronze", "quotes"))).orderBy("sequence_number")
    good, bad = rows.collect()
    assert (good.symbol, good.price, good.sequence_number, good.partition_id, good.source_file, good.ingest_date) == (
        "AAPL", "180.0000", 40, "1", path, dt.date(2024, 3, 1),
    )  # fmt: skip
    assert (bad.symbol, bad.body, bad.sequence_number) == (None, "not json", 41)  # kept, silver will quarantine it


def test_manifest_record_counts_are_reconciled(spark, lake_settings, raw_lake):
    """A manifest that disagrees with the file (here: it claims one more bar) is reported per file."""
    path = raw_lake.daily_bars("AAPL", random_walk_bars(DAYS[:5], seed=1), "2024-03-01")
    manifest = raw_lake.root / "_manifests/daily_bars/ingest_date=2024-03-01/run1.json"
    doc = json.loads(manifest.read_text())
    doc["files"][0]["records"] = 6
    manifest.write_text(json.dumps(doc))
    summary = jobs.run_raw_to_bronze(spark, lake_settings, "2024-03-01", "2024-03-01", "load-1").as_dict()
    assert summary["tables"]["bronze.daily_bars"]["manifest_mismatches"] == [
        {"file": path, "manifest_records": 6, "bronze_rows": 5}
    ]


def test_lineage_kept_once_per_file_joins_back_to_one_value_per_row():
    """Batch.take_arrow_parts gives the rows and each file's lineage once, sharing a file index; joined
    on it they equal a row-by-row build."""
    import pyarrow as pa

    from spark_jobs import bronze, raw
    from spark_jobs.tables import contract

    target = contract("bronze", "daily_bars")
    batch, expected = bronze.Batch(), []
    for i, (symbol, n) in enumerate((("AAPL", 3), ("MSFT", 0), ("IBM", 2))):
        columns = {"symbol": [symbol] * n, "trade_date": [f"2024-01-0{d + 2}" for d in range(n)],
                   "record_index": list(range(n)), "rows_in_file_with_key": [1] * n}  # fmt: skip
        columns |= {c: [f"{i}.{d}" for d in range(n)] for c in target.column_names if c not in columns}
        lineage = {"path_symbol": symbol, "source_file": f"f{i}.json", "ingest_date": dt.date(2024, 3, 1 + i),
                   "ingest_run_id": f"r{i}", "ingested_at": dt.datetime(2024, 3, 1, i, tzinfo=dt.UTC),
                   "provider": "synthetic", "load_id": "load", "schema_version": target.version,
                   raw.LAST_IN_FILE: dt.date(2024, 1, 1 + n) if n else None}  # fmt: skip
        for name in lineage:
            columns.pop(name)
        batch.extend(raw.Parsed(columns, None, n), lineage, target.arrow_schema(), f"f{i}.json")
        expected += [{**{k: v[d] for k, v in columns.items()}, **lineage} for d in range(n)]

    assert all(isinstance(a, pa.Array) for arrays in batch.chunks.values() for a in arrays)  # no Python lists kept
    assert batch.size == 5
    rows, files = batch.take_arrow_parts(target)
    assert files.num_rows == 2 and rows.num_rows == 5  # the file without rows has no lineage row
    assert set(rows.column_names) & set(files.column_names) == {bronze.FILE_INDEX}
    lineage = files.take(rows[bronze.FILE_INDEX]).drop_columns([bronze.FILE_INDEX])
    joined = rows.drop_columns([bronze.FILE_INDEX])
    for f in lineage.schema:
        joined = joined.append_column(f, lineage[f.name])
    table = joined.select(target.arrow_schema().names)
    assert table.schema.equals(target.arrow_schema())
    assert table.to_pylist() == pa.Table.from_pylist(expected, schema=target.arrow_schema()).to_pylist()
    assert batch.size == 0 and not batch.chunks  # taken: the per-file arrays are given up


def test_a_value_off_the_contract_type_is_refused_when_its_file_is_added():
    import pytest

    from spark_jobs import bronze, raw
    from spark_jobs.tables import contract

    target = contract("bronze", "daily_bars")
    lineage = {"path_symbol": "A", "source_file": "raw/a.json", "ingest_date": dt.date(2024, 3, 1),
               "ingest_run_id": "r", "ingested_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC), "provider": "synthetic",
               "load_id": "load", "schema_version": target.version}  # fmt: skip
    columns = {c: ["x"] for c in target.column_names if c not in lineage} | {"record_index": ["first"]}
    with pytest.raises(raw.RawFormatError, match=r"raw/a.json: column 'record_index' is not int32"):
        bronze.Batch().extend(raw.Parsed(columns, None, 1), lineage, target.arrow_schema(), "raw/a.json")


def test_arrow_rows_off_the_contract_are_refused_before_any_write(lake_settings):
    import pyarrow as pa
    import pytest

    from lakehouse.lake import Lake
    from spark_jobs.contracts import ContractError
    from spark_jobs.tables import Tables, contract

    target = contract("bronze", "daily_bars")
    good = target.arrow_schema()
    wrong = pa.schema([pa.field(f.name, pa.int64()) if f.name == "volume" else f for f in good])
    tables = Tables(None, Lake.from_settings(lake_settings))  # no engine: the check must fail first
    with pytest.raises(ContractError, match="volume: int64"):
        tables.append_arrow(wrong.empty_table(), target)
    assert not _table_written(tables, target)


def _table_written(tables, target) -> bool:
    from pathlib import Path

    return Path(tables.path(target).removeprefix("file://")).exists()


def test_lineage_sent_once_per_file_lands_joined_to_every_row_in_one_data_file(spark, lake_settings):
    """append_arrow joins the per-file lineage to the rows in the engine: the table holds the
    contract's columns, each row its file's lineage, and the append adds one data file."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from lakehouse.lake import Lake
    from spark_jobs import bronze, raw
    from spark_jobs.tables import Tables, contract

    target = contract("bronze", "daily_bars")
    batch = bronze.Batch()
    for i, (symbol, n) in enumerate((("AAPL", 3), ("IBM", 2), ("KO", 30_000))):  # KO: several Arrow batches
        lineage = {"path_symbol": symbol, "source_file": f"f{i}.json", "ingest_date": dt.date(2024, 3, 1 + i),
                   "ingest_run_id": f"r{i}", "ingested_at": dt.datetime(2024, 3, 1, i, tzinfo=dt.UTC),
                   "provider": "synthetic", "load_id": "load", "schema_version": target.version,
                   raw.LAST_IN_FILE: dt.date(2024, 1, 1 + i)}  # fmt: skip
        columns = {c: [f"{symbol}.{d}" for d in range(n)] for c in target.column_names if c not in lineage}
        counts = {"record_index": list(range(n)), "rows_in_file_with_key": [1] * n}
        batch.extend(raw.Parsed(columns | counts, None, n), lineage,
                     target.arrow_schema(), f"f{i}.json")  # fmt: skip
    tables = Tables(spark, Lake.from_settings(lake_settings))
    rows, files = batch.take_arrow_parts(target)
    tables.append_arrow(rows, target, per_file=files)

    table = DeltaTable(tables.path(target).removeprefix("file://"))
    assert len(table.file_uris()) == 1
    got = table.to_pyarrow_table().sort_by([("source_file", "ascending"), ("record_index", "ascending")])
    assert got.schema.names == target.column_names
    assert got.filter(pc.equal(got["path_symbol"], "KO")).num_rows == 30_000
    got = got.slice(0, 5)
    assert [(r["source_file"], r["path_symbol"], r["symbol"], r["record_index"], r["ingest_run_id"])
            for r in got.to_pylist()] == [
        ("f0.json", "AAPL", "AAPL.0", 0, "r0"), ("f0.json", "AAPL", "AAPL.1", 1, "r0"),
        ("f0.json", "AAPL", "AAPL.2", 2, "r0"), ("f1.json", "IBM", "IBM.0", 0, "r1"),
        ("f1.json", "IBM", "IBM.1", 1, "r1"),
    ]  # fmt: skip


def test_per_file_columns_off_the_contract_are_refused_before_any_write(lake_settings):
    import pyarrow as pa
    import pytest

    from lakehouse.lake import Lake
    from spark_jobs.contracts import ContractError
    from spark_jobs.tables import Tables, contract

    target = contract("bronze", "daily_bars")
    lineage = ("path_symbol", "source_file", "ingest_date", "ingest_run_id", "ingested_at", "provider", "load_id",
               "schema_version")  # fmt: skip
    key = pa.field("_file_index", pa.int32(), nullable=False)
    rows = pa.schema([f for f in target.arrow_schema() if f.name not in lineage] + [key])
    files = pa.schema([key] + [pa.field(f.name, pa.string()) if f.name == "ingest_date" else f
                               for f in target.arrow_schema() if f.name in lineage])  # fmt: skip
    tables = Tables(None, Lake.from_settings(lake_settings))  # no engine: the check must fail first
    with pytest.raises(ContractError, match="ingest_date: string"):
        tables.append_arrow(rows.empty_table(), target, per_file=files.empty_table())
    with pytest.raises(ContractError, match="share exactly one column"):
        tables.append_arrow(rows.empty_table(), target, per_file=files.empty_table().drop_columns(["_file_index"]))
    assert not _table_written(tables, target)


def test_a_bronze_table_of_an_older_minor_version_gains_the_new_column_at_its_next_load(spark, lake_settings):
    """bronze.daily_bars 1.1.0 added nullable columns: the next append adds them to a table written
    under 1.0.0 (mergeSchema), whose rows read NULL there (silver then computes the file facts itself)."""
    from lakehouse.lake import Lake
    from spark_jobs import bronze, raw
    from spark_jobs.tables import Tables, contract

    target = contract("bronze", "daily_bars")
    tables = Tables(spark, Lake.from_settings(lake_settings))
    lineage = {"path_symbol": "AAPL", "ingest_date": dt.date(2024, 3, 1), "ingest_run_id": "r",
               "ingested_at": dt.datetime(2024, 3, 1, tzinfo=dt.UTC), "provider": "synthetic", "load_id": "load",
               "schema_version": target.version}  # fmt: skip
    old = bronze.to_frame(spark, [{**lineage, "source_file": "old.json", "record_index": 0}], target)
    old.drop(raw.IN_FILE, raw.LAST_IN_FILE).write.format("delta").save(tables.path(target))
    batch = bronze.Batch()
    facts = {raw.LAST_IN_FILE: dt.date(2024, 2, 29)}
    columns = {c: ["1"] for c in target.column_names if c not in lineage | facts and c != "source_file"}
    batch.extend(raw.Parsed(columns | {"record_index": [0], raw.IN_FILE: [1]}, None, 1),
                 {**lineage, **facts, "source_file": "new.json"}, target.arrow_schema(), "new.json")  # fmt: skip
    rows, files = batch.take_arrow_parts(target)
    tables.append_arrow(rows, target, per_file=files)
    got = {r.source_file: (r[raw.IN_FILE], r[raw.LAST_IN_FILE]) for r in tables.read(target).collect()}
    assert got == {"old.json": (None, None), "new.json": (1, dt.date(2024, 2, 29))}
