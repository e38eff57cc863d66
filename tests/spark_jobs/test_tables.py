"""The one Delta I/O module: what counts as an existing table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lakehouse.lake import Lake
from spark_jobs.tables import Tables, contract


def test_a_first_write_killed_before_its_commit_leaves_no_table(spark, lake_settings):
    """Data files and an empty `_delta_log` (a crash before version 0) are not a table: reads see
    no rows, and the next write creates version 0 without the orphaned files."""
    tables = Tables(spark, Lake.from_settings(lake_settings))
    c = contract("ops", "job_state")
    location = Path(tables.path(c).removeprefix("file://"))
    (location / "_delta_log").mkdir(parents=True)
    (location / "part-00000-orphan.parquet").write_bytes(b"written by a killed engine")
    assert not tables.exists(c)
    assert tables.read(c).count() == 0

    row = [("silver_to_gold", "gold", None, "x", dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "1.0.0")]
    tables.append(spark.createDataFrame(row, c.ddl()), c)
    assert tables.exists(c)
    assert [r.job for r in tables.read(c).collect()] == ["silver_to_gold"]


# A double whose shortest text Sail 0.7.2 parses back one unit in the last place off (see STATS_COLUMNS).
OFF_BY_ONE_ULP = 0.9875013865649279


def test_a_one_row_write_reads_back_every_double_as_written_and_through_a_stage(spark, lake_settings):
    """A daily run writes one-row files; each double reads back bit for bit from the table and from
    a scratch table, and the files record no statistics on the floating-point columns."""
    import json

    tables = Tables(spark, Lake.from_settings(lake_settings))
    c = contract("gold", "adjustment_factors")
    row = [("ADJ", dt.date(2023, 10, 26), 1.0, 0.8, 64.0071, OFF_BY_ONE_ULP, OFF_BY_ONE_ULP, OFF_BY_ONE_ULP,
            "daily", c.version)]  # fmt: skip
    tables.append(spark.createDataFrame(row, c.ddl()), c)
    tables.append(spark.createDataFrame([("B", *row[0][1:])], c.ddl()), c)  # a later write keeps the setting
    assert {r.event_factor for r in tables.read(c).collect()} == {OFF_BY_ONE_ULP}
    staged = tables.stage(tables.read(c).filter("symbol = 'ADJ'"), "adjustment_factors")
    assert [r.forward_factor for r in staged.collect()] == [OFF_BY_ONE_ULP]

    log = Path(tables.path(c).removeprefix("file://")) / "_delta_log"
    stats = [json.loads(json.loads(line)["add"]["stats"]) for f in sorted(log.glob("*.json"))
             for line in f.read_text().splitlines() if '"add"' in line]  # fmt: skip
    assert len(stats) == 2 and all(set(s["minValues"]) == {"symbol", "ex_date", "load_id", "schema_version"}
                                   for s in stats)  # fmt: skip
