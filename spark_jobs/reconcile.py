"""Count one window across the layers and say where rows were lost or duplicated.

The API (kept small on purpose; the reliability suite calls it after every case)::

    reconcile(spark, settings, start_date, end_date, *, dataset="daily_bars", provider=None,
              symbols=None, trade_start=None, trade_end=None, pg_dsn=None, through="mart")
        -> Reconciliation   # .as_dict(): raw_records, bronze_rows, silver_rows, quarantine_rows,
                            #   gold_rows, mart_rows, lost_rows, duplicate_rows; .details; .ok

What is counted, for the RAW files of one provider and dataset whose ingest_date lies in
[start_date, end_date] (optionally only the folders of `symbols`):

- ``raw_records``: records in those files, counted here from the bytes independently of the bronze
  parser (dates of the daily series with duplicates kept; 1 per non-empty overview). A file that
  holds an error body or broken JSON has none (bronze lists it in ``rejected_files``).
- ``bronze_rows``: bronze rows of those files. Per file, fewer rows than records are lost, more are
  duplicated.
- ``quarantine_rows``: those bronze rows found in ``silver.quarantine`` (same source file and key).
- ``silver_rows``: those bronze rows that silver accepted: silver holds their key, from this
  ingestion or a later one, or from an earlier one with identical values (a re-delivery is not
  a revision). So ``bronze_rows = silver_rows + quarantine_rows`` when nothing is lost, exactly the
  invariant the bronze_to_silver job checks per run; ``details["silver_keys"]`` counts distinct keys.
- ``gold_rows``: ``gold.fct_daily_prices`` rows of the symbols involved in the trade window
  (default: the span of the accepted rows' dates); every silver bar there must have one.
- ``mart_rows``: ``mart.daily_prices`` rows of the same symbols and trade window (when a DSN is
  given or configured); every gold row on a date some succeeded load served (``ops.load_audit``:
  the mart holds only the windows it was loaded with) must have one.
- ``duplicate_rows``: bronze rows of a file beyond its RAW records, and rows beyond the first of one
  business key (symbol, trade_date) in silver, gold and the mart.

`through` stops the count at a layer (a case whose silver job failed on purpose reconciles through
bronze). Gold and mart are counted for ``daily_bars`` only; ``security_master`` stops at silver.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Literal, get_args

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.lake import Lake
from lakehouse.settings import Settings
from spark_jobs import raw, silver
from spark_jobs.job_params import DateWindow
from spark_jobs.tables import Tables, contract

Layer = Literal["bronze", "silver", "gold", "mart"]
LAYERS: tuple[str, ...] = get_args(Layer)
LEDGER_KEYS = ("raw_records", "bronze_rows", "silver_rows", "quarantine_rows", "gold_rows", "mart_rows",
               "lost_rows", "duplicate_rows")  # fmt: skip
# dataset -> (bronze table, silver table, quarantine source_table, silver business key)
DATASETS = {
    "daily_bars": ("daily_bars", "daily_bars", "daily_bars", ("symbol", "trade_date")),
    "security_master": ("security_overview", "securities", "securities", ("symbol", "as_of_date")),
}


@dataclass(frozen=True)
class Reconciliation:
    """Counts of one window per layer (None: layer not counted) and where rows went missing."""

    raw_records: int
    bronze_rows: int
    silver_rows: int | None = None
    quarantine_rows: int | None = None
    gold_rows: int | None = None
    mart_rows: int | None = None
    lost_rows: int = 0
    duplicate_rows: int = 0
    details: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.lost_rows == 0 and self.duplicate_rows == 0

    def as_dict(self) -> dict[str, int]:
        """The counted layers under the reliability ledger's keys."""
        return {k: getattr(self, k) for k in LEDGER_KEYS if getattr(self, k) is not None}


# --- RAW, counted from the bytes -------------------------------------------------------------------


def count_records(data: bytes, dataset: str) -> int:
    """Records of one RAW payload, as the layer contract defines them (duplicate dates included)."""
    try:
        fast = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return 0
    if isinstance(fast, dict) and data.count(b"{") == _objects(fast):
        body = list(fast.items())  # no object was collapsed by a duplicate key: the C decoder's answer holds
        decoded = dict
    else:
        body = json.loads(data.decode("utf-8"), object_pairs_hook=raw.JsonObject)
        decoded = raw.JsonObject
        if not isinstance(body, raw.JsonObject):  # the top level is not an object
            return 0
    keys = [k for k, _ in body]
    if dataset == "security_master":
        return 1 if keys and not set(keys) & set(raw.ERROR_KEYS) else 0
    series = [v for k, v in body if k == raw.DAILY_SERIES_KEY]
    if not series or not isinstance(series[-1], decoded):
        return 0
    bars = list(series[-1].values()) if decoded is dict else [v for _, v in series[-1]]
    return len(bars) if all(isinstance(v, decoded) for v in bars) else 0


def _objects(node: object) -> int:
    """JSON objects in a decoded value, itself included."""
    if isinstance(node, dict):
        return 1 + sum(_objects(v) for v in node.values() if isinstance(v, dict | list))
    if isinstance(node, list):
        return sum(_objects(v) for v in node if isinstance(v, dict | list))
    return 0


def _raw_files(lake: Lake, provider: str, dataset: str, window: DateWindow, symbols) -> dict[str, int]:
    store = raw.store_for(lake)
    files = raw.ingested_files(store, provider, dataset, window.start, window.end)
    return {
        f.file.path: count_records(store.read(f.file.path), dataset)
        for f in files
        if symbols is None or f.symbol in symbols
    }


def _manifest_records(lake: Lake, dataset: str, window: DateWindow) -> dict[str, int]:
    store = raw.store_for(lake)
    found: dict[str, int] = {}
    for day in raw.days(window.start, window.end):
        for f in store.list(f"_manifests/{dataset}/ingest_date={day.isoformat()}"):
            try:
                doc = json.loads(store.read(f.path))
            except ValueError:
                continue
            for entry in doc.get("files", []) if isinstance(doc, dict) else []:
                if isinstance(entry, dict) and isinstance(entry.get("records"), int) and "path" in entry:
                    found[entry["path"]] = entry["records"]
    return found


# --- the window ----------------------------------------------------------------------------------------


def reconcile(
    spark: SparkSession,
    settings: Settings,
    start_date: str | dt.date,
    end_date: str | dt.date,
    *,
    dataset: str = "daily_bars",
    provider: str | None = None,
    symbols: list[str] | tuple[str, ...] | None = None,
    trade_start: str | dt.date | None = None,
    trade_end: str | dt.date | None = None,
    pg_dsn: str | None = None,
    through: Layer = "mart",
) -> Reconciliation:
    """Count the ingestion-date window [start_date, end_date] of one dataset through `through`.

    Args:
        spark: the session the jobs use.
        settings: where the lake is; its ``provider`` unless `provider` is given; its ``pg_dsn``
            for the mart unless `pg_dsn` is given (no DSN at all: the mart is not counted).
        start_date / end_date: the ingestion-date window (the one raw_to_bronze and
            bronze_to_silver ran on).
        dataset: ``daily_bars`` or ``security_master``.
        symbols: only the RAW folders of these symbols (e.g. one test case's symbol).
        trade_start / trade_end: the trade-date window of gold and the mart (the one
            silver_to_gold and gold_to_postgres ran on); default the span of the accepted bars.
        through: the last layer counted.

    Returns:
        The counts; ``lost_rows`` / ``duplicate_rows`` sum every layer, ``details`` says where.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    if through not in LAYERS:
        raise ValueError(f"through must be one of {LAYERS}, got {through!r}")
    window = DateWindow.parse(start_date, end_date)
    provider = provider or settings.provider
    wanted = set(symbols) if symbols is not None else None
    lake = Lake.from_settings(settings)
    tables = Tables(spark, lake)
    bronze_table, silver_table, source_table, keys = DATASETS[dataset]
    details: dict[str, int] = {}

    raw_counts = _raw_files(lake, provider, dataset, window, wanted)
    manifest = _manifest_records(lake, dataset, window)
    details["files"] = len(raw_counts)
    details["manifest_mismatches"] = sum(1 for p, n in raw_counts.items() if p in manifest and manifest[p] != n)

    bronze = (
        tables.read(contract("bronze", bronze_table))
        .filter(window.predicate("ingest_date"))
        .filter(F.col("provider") == provider)
    )
    if wanted is not None:
        bronze = bronze.filter(F.col("path_symbol").isin(sorted(wanted)))
    per_file = {r.source_file: int(r["count"]) for r in bronze.groupBy("source_file").count().collect()}
    rejected = (
        tables.read(contract("bronze", "rejected_files"))
        .filter(window.predicate("ingest_date"))
        .filter(F.col("dataset") == dataset)
        .select("source_file")
        .distinct()
        .collect()
    )
    rejected_files = {r.source_file for r in rejected} & set(raw_counts)
    details["rejected_files"] = len(rejected_files)
    details["files_unaccounted"] = sum(1 for p in raw_counts if p not in per_file and p not in rejected_files)
    details["lost_raw_to_bronze"] = sum(max(n - per_file.get(p, 0), 0) for p, n in raw_counts.items())
    details["duplicated_in_bronze"] = sum(max(per_file.get(p, 0) - raw_counts.get(p, 0), 0) for p in per_file)
    result = {
        "raw_records": sum(raw_counts.values()),
        "bronze_rows": sum(per_file.values()),
        "lost_rows": details["lost_raw_to_bronze"],
        "duplicate_rows": details["duplicated_in_bronze"],
    }
    if through == "bronze":
        return Reconciliation(**result, details=details)

    symbols, span = _silver(tables, bronze, dataset, silver_table, source_table, keys, result, details)
    if through == "silver" or dataset != "daily_bars":
        return Reconciliation(**result, details=details)

    _gold_and_mart(tables, settings, symbols, span, trade_start, trade_end, pg_dsn, through, result, details)
    return Reconciliation(**result, details=details)


def _silver(tables: Tables, bronze: DataFrame, dataset: str, silver_table: str, source_table: str,
            keys: tuple[str, ...], result: dict, details: dict) -> tuple[list[str], tuple]:  # fmt: skip
    """Quarantined and accepted bronze rows; returns the accepted rows' symbols and trade-date span."""
    quarantine = (
        tables.read(contract("silver", "quarantine"))
        .filter(F.col("source_table") == source_table)
        .select("source_file", "record_key")
        .distinct()
        .withColumn("_quarantined", F.lit(True))
    )
    if dataset == "daily_bars":
        rows = bronze.withColumn("trade_date_raw", F.col("trade_date")).withColumn("record_key", silver.bar_key())
        rows = rows.withColumn("trade_date", F.expr("try_cast(trade_date_raw AS DATE)"))
        compared = [F.expr(f"try_cast(trim(`{c}`) AS {'BIGINT' if c == 'volume' else 'DOUBLE'})").alias(c)
                    for c in silver.BAR_COMPARED]  # fmt: skip
    else:
        rows = bronze.withColumn("record_key", F.concat_ws("|", F.coalesce("symbol", F.lit("")),
                                                           F.col("ingest_date").cast("string")))  # fmt: skip
        rows = rows.withColumn("as_of_date", F.col("ingest_date"))
        compared = []
    rows = rows.select(*keys, "source_file", "record_key", "ingested_at", *compared)
    marked = rows.join(quarantine, ["source_file", "record_key"], "left")
    current = tables.read(contract("silver", silver_table))
    held = current.select(*keys, F.col("ingested_at").alias("_held_at"),
                          *[F.col(c).alias(f"_held_{c}") for c in silver.BAR_COMPARED if compared])  # fmt: skip
    same = F.lit(True)
    for c in silver.BAR_COMPARED if compared else ():
        same = same & F.col(c).eqNullSafe(F.col(f"_held_{c}"))
    # One pass: a silver duplicate is counted below, so one held row per key is enough here.
    joined = marked.join(held.dropDuplicates(list(keys)), list(keys), "left")
    kept = F.col("_quarantined").isNull() & F.col("_held_at").isNotNull()
    kept = kept & ((F.col("_held_at") >= F.col("ingested_at")) | same)
    stats = joined.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count("_quarantined").alias("quarantined"),
        F.sum(F.when(kept, 1).otherwise(0)).alias("accepted"),
        F.count_distinct(*[F.when(kept, F.col(k)) for k in keys]).alias("keys"),
        F.collect_set(F.when(kept, F.col("symbol"))).alias("symbols"),
        *([F.min(F.when(kept, F.col("trade_date"))).alias("lo"), F.max(F.when(kept, F.col("trade_date"))).alias("hi")]
          if dataset == "daily_bars" else []),
    ).first()  # fmt: skip
    accepted, quarantined = int(stats.accepted or 0), int(stats.quarantined or 0)
    missing = int(stats.rows or 0) - quarantined - accepted
    symbols = sorted(stats.symbols or [])
    dup = current.filter(F.col("symbol").isin(symbols)).groupBy(*keys).count().filter("count > 1")
    details["silver_keys"] = int(stats["keys"] or 0)
    details["lost_bronze_to_silver"] = missing
    details["duplicated_in_silver"] = int(dup.agg(F.sum(F.col("count") - 1)).first()[0] or 0) if symbols else 0
    result.update(silver_rows=accepted, quarantine_rows=quarantined)
    result["lost_rows"] += missing
    result["duplicate_rows"] += details["duplicated_in_silver"]
    span = (stats["lo"], stats["hi"]) if dataset == "daily_bars" else (None, None)
    return symbols, span


def _gold_and_mart(tables: Tables, settings: Settings, symbols: list[str], span: tuple, trade_start, trade_end,
                   pg_dsn: str | None, through: str, result: dict, details: dict) -> None:  # fmt: skip
    lo = _date(trade_start) or span[0]
    hi = _date(trade_end) or span[1]
    if not symbols or lo is None or hi is None:
        result["gold_rows"] = 0
        if through == "mart" and (pg_dsn or settings.pg_dsn):
            result["mart_rows"] = 0
        return
    details["trade_start"], details["trade_end"] = lo.isoformat(), hi.isoformat()  # type: ignore[assignment]

    def in_scope(df: DataFrame) -> DataFrame:
        return df.filter(F.col("symbol").isin(symbols) & F.col("trade_date").between(F.lit(lo), F.lit(hi)))

    key = ["symbol", "trade_date"]
    expected = in_scope(tables.read(contract("silver", "daily_bars"))).select(*key).distinct()
    gold = in_scope(tables.read(contract("gold", "fct_daily_prices"))).groupBy(*key).agg(F.count(F.lit(1)).alias("_n"))
    both = expected.withColumn("_e", F.lit(True)).join(gold, key, "full_outer")
    counts = both.agg(
        F.sum("_n").alias("rows"), F.count("_n").alias("keys"),
        F.sum(F.when(F.col("_n").isNull(), 1).otherwise(0)).alias("lost"),
        F.sum(F.when(F.col("_e").isNull(), 1).otherwise(0)).alias("extra"),
    ).first()  # fmt: skip
    gold_rows, gold_keys = int(counts.rows or 0), int(counts["keys"] or 0)
    details["lost_silver_to_gold"] = int(counts.lost or 0)
    details["gold_without_silver"] = int(counts.extra or 0)
    details["duplicated_in_gold"] = gold_rows - gold_keys
    result["gold_rows"] = gold_rows
    result["lost_rows"] += details["lost_silver_to_gold"]
    result["duplicate_rows"] += details["duplicated_in_gold"]
    dsn = pg_dsn or (settings.pg_dsn.get_secret_value() if settings.pg_dsn else None)
    if through != "mart" or dsn is None:
        return
    import psycopg

    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('mart.daily_prices'), to_regclass('ops.load_audit')").fetchone()
        found = served = []
        if all(exists):  # a database never loaded has no mart yet: nothing served, nothing expected
            found = conn.execute(
                "SELECT symbol, trade_date FROM mart.daily_prices "
                "WHERE symbol = ANY(%s) AND trade_date BETWEEN %s AND %s",
                (symbols, lo, hi),
            ).fetchall()
            served = conn.execute(
                "SELECT window_start, window_end FROM ops.load_audit WHERE table_name = 'mart.daily_prices' "
                "AND status = 'succeeded'"
            ).fetchall()
    mart_keys = {(s, d) for s, d in found}
    gold_set = {(r.symbol, r.trade_date) for r in gold.select(*key).collect()}
    whole = any(start is None for start, _ in served)  # a full refresh serves every date

    def is_served(day: dt.date) -> bool:
        return whole or any(start <= day <= end for start, end in served)

    expected = {k for k in gold_set if is_served(k[1])}
    details["served_loads"] = len(served)
    details["gold_rows_served"] = len(expected)
    details["lost_gold_to_mart"] = len(expected - mart_keys)
    details["mart_without_gold"] = len(mart_keys - gold_set)
    details["duplicated_in_mart"] = len(found) - len(mart_keys)
    result["mart_rows"] = len(found)
    result["lost_rows"] += details["lost_gold_to_mart"]
    result["duplicate_rows"] += details["duplicated_in_mart"]


def _date(value: str | dt.date | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)
