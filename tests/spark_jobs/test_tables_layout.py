"""The file layout a contract declares (``file_range``): what a daily run's merge and a date-filtered
read pay for depends on it, not on how much history the table holds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from itertools import pairwise
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from spark_jobs import contracts
from spark_jobs.tables import Tables, contract

FIRST = dt.date(2022, 1, 3)
SESSIONS = 520  # two years of weekdays: 9 ranges of 91 days
SYMBOLS = 12


def _bars(spark, c, first: dt.date, sessions: int, symbols: int):
    """`symbols` x `sessions` weekday bars of silver.daily_bars, built on the engine."""
    days = (
        spark.range(sessions * 7 // 5 + 7)
        .select(F.date_add(F.lit(first), F.col("id").cast("int")).alias("trade_date"))
        .filter(~F.dayofweek("trade_date").isin(1, 7))
        .limit(sessions)
    )
    names = spark.range(symbols).select(F.format_string("S%02d", "id").alias("symbol"))
    price = (F.abs(F.hash("symbol", "trade_date")) % 10_000 / 100.0).cast("double")
    at = F.lit(dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    return names.crossJoin(days).select(
        "symbol", "trade_date", price.alias("open"), price.alias("high"), price.alias("low"),
        price.alias("close"), price.alias("adjusted_close"), F.lit(1000).cast("bigint").alias("volume"),
        F.lit(None).cast("double").alias("dividend_amount"), F.lit(1.0).alias("split_coefficient"),
        F.concat(F.lit("raw/"), "symbol").alias("source_file"), F.lit("ingest").alias("ingest_run_id"),
        at.alias("ingested_at"), F.lit(1).alias("revision"), at.alias("updated_at"),
        F.lit("backfill").alias("load_id"), F.lit(c.version).alias("schema_version"),
    )  # fmt: skip


def _commit(location: Path, version: int) -> dict[str, list[dict]]:
    """The add and remove actions of one commit of a table's log."""
    found: dict[str, list[dict]] = {"add": [], "remove": []}
    for line in (location / "_delta_log" / f"{version:020d}.json").read_text().splitlines():
        action = json.loads(line)
        for kind in found:
            if kind in action:
                found[kind].append(action[kind])
    return found


def _ranges(location: Path) -> dict[str, tuple[str, str]]:
    """File path -> (min, max) trade_date of the table's current files, from the log's statistics."""
    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(str(location)).get_add_actions(flatten=True)).to_pydict()
    return {
        p: (str(lo), str(hi))
        for p, lo, hi in zip(actions["path"], actions["min.trade_date"], actions["max.trade_date"], strict=True)
    }


@pytest.fixture
def history(spark, lake_settings):
    """silver.daily_bars after a backfill-sized append: (tables, contract, table directory, last date)."""
    tables = Tables(spark, Lake.from_settings(lake_settings))
    c = contract("silver", "daily_bars")
    tables.append(_bars(spark, c, FIRST, SESSIONS, SYMBOLS), c)
    location = Path(tables.path(c).removeprefix("file://"))
    last = tables.read(c).agg(F.max("trade_date")).first()[0]
    return tables, c, location, last


def test_a_merge_of_recent_revisions_rewrites_only_the_files_of_those_dates(history):
    """A daily run's revisions (2 symbols' last 60 sessions, as a provider's re-adjusted closes)
    remove only the files covering those dates, not every file of the history."""
    tables, c, location, last = history
    ranges = _ranges(location)
    assert len(ranges) >= 8, f"a 2-year append should be spread over one file per 91 days: {ranges}"
    since = last - dt.timedelta(days=84)
    revised = (
        tables.read(c)
        .filter(F.col("symbol").isin("S03", "S07") & (F.col("trade_date") > F.lit(since)))
        .withColumn("adjusted_close", F.col("adjusted_close") * 0.99)
        .withColumn("ingested_at", F.col("ingested_at") + F.expr("INTERVAL 1 DAY"))
    )
    revised = tables.spark.createDataFrame(revised.collect(), revised.schema)
    tables.merge(revised, c, matched_condition="s.ingested_at > t.ingested_at")

    merged = _commit(location, 1)
    removed = {r["path"] for r in merged["remove"]}
    assert removed, "the MERGE matched rows: it must replace their files"
    assert len(removed) <= 2, f"{len(removed)} of {len(ranges)} files rewritten for 84 days of revisions"
    for path in removed:
        assert ranges[path][1] > str(since), f"{path} holds only dates before the revisions: {ranges[path]}"
    assert tables.read(c).count() == SYMBOLS * SESSIONS
    assert tables.read(c).filter(F.col("adjusted_close") != F.col("close")).count() == revised.count()


def test_a_read_filtered_on_recent_dates_touches_few_files(history):
    """A lookback read (the last year) finds its rows in the files whose statistics reach it: the
    others are skipped by their min/max, so the read does not grow with the table's history."""
    _, _, location, last = history
    ranges = _ranges(location)
    since = str(last - dt.timedelta(days=120))
    reached = [p for p, (_, hi) in ranges.items() if hi >= since]
    assert len(reached) <= 3 < len(ranges), f"files reaching {since}: {len(reached)} of {len(ranges)}"
    for lo, hi in ranges.values():  # each file one range: at most 91 days from its first to its last date
        assert (dt.date.fromisoformat(hi) - dt.date.fromisoformat(lo)).days < 91, (lo, hi)


def test_a_daily_append_is_one_file_of_its_date_and_optimize_keeps_the_order(history):
    """A daily run appends one session (one small file); the maintenance's compaction merges the
    small files without mixing the dates again: its files still cover contiguous ranges."""
    tables, c, location, last = history
    before = len(_ranges(location))
    for day in (last + dt.timedelta(days=3), last + dt.timedelta(days=4)):
        tables.append(_bars(tables.spark, c, day, 1, SYMBOLS), c)
    after = _ranges(location)
    assert len(after) == before + 2
    tables.optimize(c)
    compacted = sorted(_ranges(location).values())
    assert len(compacted) > 3, f"compaction put the history back into {len(compacted)} file(s)"
    for (_, hi), (lo, _) in pairwise(compacted):
        assert hi <= lo, f"compacted files overlap in dates: {compacted}"
    assert tables.read(c).count() == SYMBOLS * (SESSIONS + 2)


@pytest.mark.parametrize(
    ("file_range", "problem"),
    [
        ({"column": "symbol", "days": 91}, "file_range column 'symbol' is not a date column"),
        ({"column": "trade_date", "days": 0}, "file_range days 0 is not a positive integer"),
        ({"days": 91}, "missing field 'column'"),
    ],
)
def test_a_file_range_names_a_date_column_and_a_positive_number_of_days(file_range, problem):
    doc = {
        "layer": "silver", "table": "t", "version": "1.0.0", "keys": ["symbol"], "file_range": file_range,
        "columns": [{"name": "symbol", "type": "string", "nullable": False},
                    {"name": "trade_date", "type": "date", "nullable": False}],
    }  # fmt: skip
    with pytest.raises(contracts.ContractError, match=problem):
        contracts.from_dict(doc)


def test_the_tables_a_daily_run_merges_or_reads_by_date_declare_their_range():
    for layer, table in (("silver", "daily_bars"), ("gold", "fct_daily_prices")):
        assert contracts.load(layer, table).file_range == contracts.FileRange("trade_date", 91)


# Silver's merge of revised bars (jobs._merge): a later ingestion with other values wins and counts a revision.
REVISED = "s.ingested_at > t.ingested_at"
REVISION = {"revision": "t.revision + 1"}


def _changes(tables, c, last: dt.date, case: str):
    """A merge source for `case`, built from the stored rows (collected: fixed while the table changes)."""
    stored = tables.read(c)
    later = F.col("ingested_at") + F.expr("INTERVAL 1 DAY")
    recent = F.col("trade_date") > F.lit(last - dt.timedelta(days=84))
    if case == "whole history":  # a split: every bar of one symbol re-adjusted
        rows = stored.filter(F.col("symbol") == "S03").withColumn("adjusted_close", F.col("adjusted_close") / 4)
        rows = rows.withColumn("ingested_at", later)
    else:
        revised = stored.filter(F.col("symbol").isin("S03", "S07") & recent).withColumn("ingested_at", later)
        stale = stored.filter((F.col("symbol") == "S05") & recent)  # not ingested later: left as stored
        far_back = stored.filter(
            (F.col("symbol") == "S09") & (F.col("trade_date") < F.lit(FIRST + dt.timedelta(days=20)))
        )
        rows = revised.unionByName(stale).unionByName(far_back.withColumn("ingested_at", later))
        rows = rows.withColumn("adjusted_close", F.col("adjusted_close") * 0.99)
        new = _bars(tables.spark, c, last + dt.timedelta(days=3), 1, 4).withColumn(
            "symbol", F.concat(F.lit("N"), "symbol")
        )
        rows = rows.unionByName(new)  # new keys, one in a range no file holds yet
    return tables.spark.createDataFrame(rows.collect(), c.ddl())


@pytest.mark.parametrize("case", ["revisions, stale rows, far-back rows and new keys", "whole history", "insert only"])
def test_a_merge_into_a_ranged_table_leaves_what_sql_merge_leaves(history, tmp_path, lake_settings, case):
    """The ranges a ranged table's merge rewrites hold what SQL MERGE (the path of a table without a
    range) leaves: matched rows meeting the condition updated, the others and the rest of the ranges
    as stored, new keys inserted; the files of the ranges it does not touch stay."""
    tables, c, location, last = history
    source = _changes(tables, c, last, case)
    kwargs = {"update": False} if case == "insert only" else {"matched_condition": REVISED, "update_set": REVISION}
    other = Tables(
        tables.spark,
        Lake.from_settings(load_settings(home=tmp_path / "merged", spark_remote=lake_settings.spark_remote)),
    )
    unranged = dataclasses.replace(c, file_range=None)
    other.append(tables.read(c), unranged)
    before = _ranges(location)

    tables.merge(source, c, **kwargs)
    other.merge(source, unranged, **kwargs)

    assertDataFrameEqual(tables.read(c), other.read(unranged))
    touched = {p for p, (_, hi) in before.items() if hi > str(last - dt.timedelta(days=84))}
    kept = set(_ranges(location)) & set(before)
    if case == "whole history":
        assert not kept, "every range holds a revised row: every file is rewritten"
    elif case == "insert only":  # no stored row changes: new files only
        assert kept == set(before)
    else:
        assert touched.isdisjoint(kept) and len(kept) >= len(before) - len(touched) - 1, (len(kept), len(before))


def test_a_merge_of_recent_revisions_reads_no_file_of_older_dates(history):
    """A daily run's revisions read the ranges they rewrite and skip the rest of the history: an
    unreadable file of old dates does not stop them (Sail 0.7.2's MERGE joins the whole target and
    fails on it)."""
    tables, c, location, last = history
    source = _changes(tables, c, last, "recent").filter(F.col("trade_date") > F.lit(last - dt.timedelta(days=84)))
    oldest = min(_ranges(location).items(), key=lambda item: item[1])[0]
    (location / oldest).write_bytes(b"not parquet")

    tables.merge(source, c, matched_condition=REVISED, update_set=REVISION)

    recent = tables.read(c).filter(F.col("trade_date") > F.lit(last - dt.timedelta(days=84)))
    revised = recent.filter(F.col("revision") == 2).select("symbol").distinct().collect()
    assert sorted(r.symbol for r in revised) == ["S03", "S07"]
    assert recent.filter(F.col("symbol").startswith("N")).count() == 4


def test_a_merge_into_files_mixing_ranges_keeps_their_other_rows(spark, lake_settings, tmp_path):
    """A table whose files mix ranges (written before its layout, or compacted on Databricks): the
    ranges rewritten hold what MERGE leaves, and the rows of other dates in the same files stay
    (the engine deletes by the replaceWhere predicate row by row, not file by file)."""
    c = contract("silver", "daily_bars")
    unranged = dataclasses.replace(c, file_range=None)
    rows = spark.createDataFrame(_bars(spark, c, FIRST, SESSIONS, SYMBOLS).collect(), c.ddl())
    mixed = Tables(spark, Lake.from_settings(lake_settings))
    merged = Tables(
        spark, Lake.from_settings(load_settings(home=tmp_path / "merged", spark_remote=lake_settings.spark_remote))
    )
    mixed.append(rows.coalesce(1), unranged)
    merged.append(rows, unranged)
    location = Path(mixed.path(c).removeprefix("file://"))
    assert len(_ranges(location)) == 1, "the history should be one file of every date"
    last = mixed.read(c).agg(F.max("trade_date")).first()[0]
    source = _changes(mixed, c, last, "recent")

    mixed.merge(source, c, matched_condition=REVISED, update_set=REVISION)
    merged.merge(source, unranged, matched_condition=REVISED, update_set=REVISION)

    assertDataFrameEqual(mixed.read(c), merged.read(unranged))
    assert mixed.read(c).count() == SYMBOLS * SESSIONS + 4
