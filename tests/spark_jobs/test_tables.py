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
