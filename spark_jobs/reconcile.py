"""Count one window across the layers and say where rows were lost or duplicated.

The API (kept small on purpose; the reliability suite calls it after every case)::

    reconcile(spark, settings, start_date, end_date, *, dataset="daily_bars", provider=None,
              symbols=None, trade_start=None, trade_end=None, pg_dsn=None, through="mart")
        -> Reconciliation   # .as_dict(): raw_records, bronze_rows, silver_rows, quarantine_rows,
                            #   gold_rows, mart_rows, lost_rows, duplicate_rows, stale_rows, extra_rows; .details; .ok

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
- ``stale_rows``: mart rows whose values differ from their gold row. Gold and mart are compared by
  content checksums per (symbol, month) over the served dates; ranges that differ are then compared
  row by row (``details["mart_ranges_differing"]``).
- ``extra_rows``: rows with no row in the layer they come from: a gold bar no silver bar explains,
  a mart row no gold row explains (a phantom).

Content, not only counts: every payload is checked against the size and sha256 its run manifest
recorded (``details["damaged_raw_files"]``: truncated or edited after landing; their records are
not counted, bronze must have refused them); and for daily bars each file's records are checksummed
from the bytes and compared with the checksum of its bronze rows (``details["bronze_files_differing"]``).
:attr:`Reconciliation.ok` is false on any lost, duplicated, stale or extra row, damaged RAW file or
differing bronze file.

Data quality of the reconciled symbols (daily bars through silver or further; ``.quality`` lists
each finding with its symbol and dates, ``details`` counts them; :data:`QUALITY_CHECKS` declares
which fail). The symbols checked are the requested ones, or every symbol with a RAW file in the
window: the window fetched them, so each is expected to be complete and current.

- ``missing_sessions`` (fails): calendar sessions missing between two bars of a symbol in gold
  (silver when counting through silver), over the trade window; the silver rule
  ``no_missing_sessions`` evaluated on gold's series.
- ``stale_symbols`` (fails): a symbol whose last bar is more than ``quality.STALE_SESSIONS``
  sessions before the window's last session (the ``symbol_not_stale`` rule, the window's end as
  the ingestion date).
- ``unapplied_corporate_actions`` (fails): a split or dividend delivered in the window and
  quarantined (e.g. ``implausible_corporate_action``) while silver holds no accepted row for its
  (symbol, action, ex-date): the row is accounted for, but gold's adjusted prices miss the event.
- ``quarantined_accounted`` (reported): the window's other quarantined bars and corporate actions,
  with their rule; counted in the balance, not lost. A quarantined bar inside a series also leaves
  a missing session, which fails.
- ``symbols_without_bars`` (reported): a checked symbol with no bar at all (its files were
  rejected, e.g. a rate-limit body: ``rejected_files``).

`through` stops the count at a layer (a case whose silver job failed on purpose reconciles through
bronze). Gold and mart are counted for ``daily_bars`` only; ``security_master`` stops at silver.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal, get_args

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse import ops_store, trading_calendar
from lakehouse.contracts import alpha_vantage as av
from lakehouse.contracts import raw_layout
from lakehouse.contracts.manifest import read_manifests
from lakehouse.lake import Lake
from lakehouse.ops_store import LOAD_AUDIT
from lakehouse.raw_store import RawIntegrityError, RawStore, cluster_raw_store, read_verified
from lakehouse.settings import Settings
from spark_jobs import quality, raw, serving, silver
from spark_jobs.job_params import DateWindow
from spark_jobs.tables import Tables, contract

Layer = Literal["bronze", "silver", "gold", "mart"]
LAYERS: tuple[str, ...] = get_args(Layer)
log = logging.getLogger(__name__)

LEDGER_KEYS = ("raw_records", "bronze_rows", "silver_rows", "quarantine_rows", "gold_rows", "mart_rows",
               "lost_rows", "duplicate_rows", "stale_rows", "extra_rows")  # fmt: skip


@dataclass(frozen=True)
class QualityCheck:
    """A data-quality finding of the reconciliation: whether it fails it, and why."""

    name: str
    fails: bool
    why: str


QUALITY_CHECKS = (
    QualityCheck("missing_sessions", True, "a 'daily' return in gold spans more than one session"),
    QualityCheck("stale_symbols", True, "a symbol the window fetched is not current at the window's end"),
    QualityCheck("unapplied_corporate_actions", True,
                 "a quarantined split or dividend with no accepted row: gold's adjustment misses the event"),
    QualityCheck("quarantined_accounted", False, "in silver.quarantine with its rule: refused, not lost"),
    QualityCheck("symbols_without_bars", False, "every file of the symbol was rejected (see rejected_files)"),
)  # fmt: skip
QUALITY_FAILURES = tuple(c.name for c in QUALITY_CHECKS if c.fails)
# details that fail the reconciliation when not zero, beside the row counts
DEFECTS = ("damaged_raw_files", "bronze_files_differing", *QUALITY_FAILURES)
# Findings listed per check (the counts in ``details`` are complete).
LISTED = 50
# quarantine source_table -> the field of record_values holding the row's date
QUARANTINED_DATES = {"daily_bars": "trade_date_raw", "corporate_actions": "ex_date_raw"}
# The text of one record or row for a content checksum: fields joined by SEPARATOR, a null as NULL_TEXT.
SEPARATOR, NULL_TEXT = "\x1f", "\x00"
BAR_FIELDS = tuple(dict.fromkeys(av.BAR_COLUMNS.values()))
MART_LINEAGE = frozenset({"load_id"})  # the run that wrote a row, not what it says
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
    stale_rows: int = 0
    extra_rows: int = 0
    details: dict[str, int] = field(default_factory=dict)
    quality: dict = field(default_factory=dict)  # findings per QUALITY_CHECKS name, symbols, as_of

    @property
    def ok(self) -> bool:
        rows = (self.lost_rows, self.duplicate_rows, self.stale_rows, self.extra_rows)
        return not any(rows) and not any(self.details.get(k, 0) for k in DEFECTS)

    def as_dict(self) -> dict[str, int]:
        """The counted layers under the reliability ledger's keys."""
        return {k: getattr(self, k) for k in LEDGER_KEYS if getattr(self, k) is not None}


# --- RAW, counted from the bytes -------------------------------------------------------------------


def _body(data: bytes) -> tuple[list[tuple[str, object]], type] | None:
    """The top-level (key, value) pairs of a payload and the type its objects were decoded as;
    None when it is not a JSON object."""
    try:
        fast = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(fast, dict) and data.count(b"{") == _objects(fast):
        return list(fast.items()), dict  # no object was collapsed by a duplicate key: the C decoder's answer holds
    body = json.loads(data.decode("utf-8"), object_pairs_hook=raw.JsonObject)
    if not isinstance(body, raw.JsonObject):  # the top level is not an object
        return None
    return body, raw.JsonObject


def _items(node: object) -> list[tuple[str, object]]:
    return list(node.items()) if isinstance(node, dict) else list(node)


def _bars(body: list[tuple[str, object]], decoded: type) -> list[tuple[str, object]] | None:
    series = [v for k, v in body if k == av.SERIES_KEY]
    if not series or not isinstance(series[-1], decoded):
        return None
    bars = _items(series[-1])
    return bars if all(isinstance(v, decoded) for _, v in bars) else None


def count_records(data: bytes, dataset: str) -> int:
    """Records of one RAW payload, as the layer contract defines them (duplicate dates included)."""
    decoded = _body(data)
    if decoded is None:
        return 0
    body, kind = decoded
    if dataset == "security_master":
        keys = {k for k, _ in body}
        return 1 if keys and not keys & set(av.ERROR_KEYS) else 0
    bars = _bars(body, kind)
    return len(bars) if bars is not None else 0


def _hash48(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def content_checksum(data: bytes) -> int | None:
    """Order-independent checksum of a daily-bars payload's records, from the bytes.

    Per record: its date and each bar field's text as received (the last of two keys naming one
    field), joined by SEPARATOR, hashed with sha256; the checksum is the sum of the hashes' first
    48 bits, so it is the same for bronze's rows in any order (see :func:`bronze_checksums`).
    None when the file holds no bars or a bar value that is not a JSON string or null: bronze's
    text of a number or an object is the parser's rendering, not the bytes', so it is not compared.
    """
    decoded = _body(data)
    bars = _bars(*decoded) if decoded is not None else None
    if not bars:
        return None
    total = 0
    for day, bar in bars:
        values: dict[str, object] = dict.fromkeys(BAR_FIELDS)
        for key, value in _items(bar):
            name = av.BAR_COLUMNS.get(key.split(". ", 1)[-1])
            if name is not None:
                values[name] = value
        if not all(v is None or isinstance(v, str) for v in values.values()):
            return None
        total += _hash48(SEPARATOR.join([day, *(NULL_TEXT if v is None else v for v in values.values())]))
    return total


def bronze_checksums(bronze: DataFrame, files: list[str]) -> dict[str, int]:
    """Per source file, the checksum of its bronze daily-bar rows as :func:`content_checksum` takes it."""
    if not files:
        return {}
    text = F.concat_ws(SEPARATOR, *[F.coalesce(F.col(c), F.lit(NULL_TEXT)) for c in ("trade_date", *BAR_FIELDS)])
    hashed = F.conv(F.substring(F.sha2(text, 256), 1, 12), 16, 10).cast("bigint")
    rows = bronze.filter(F.col("source_file").isin(files)).groupBy("source_file").agg(F.sum(hashed).alias("sum"))
    return {r.source_file: int(r["sum"]) for r in rows.collect()}


def _objects(node: object) -> int:
    """JSON objects in a decoded value, itself included."""
    if isinstance(node, dict):
        return 1 + sum(_objects(v) for v in node.values() if isinstance(v, dict | list))
    if isinstance(node, list):
        return sum(_objects(v) for v in node if isinstance(v, dict | list))
    return 0


@dataclass
class _RawFiles:
    """The window's RAW payloads: records and content checksum of each intact one, and the damaged ones."""

    records: dict[str, int] = field(default_factory=dict)
    checksums: dict[str, int] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)
    symbols: set[str] = field(default_factory=set)


def _raw_files(store: RawStore, provider: str, dataset: str, window: DateWindow, symbols,
               fingerprints: dict) -> _RawFiles:  # fmt: skip
    found = _RawFiles()
    for f in raw.ingested_files(store, provider, dataset, window.start, window.end):
        if symbols is not None and f.symbol not in symbols:
            continue
        found.symbols.add(f.symbol)
        try:
            data = read_verified(store, f.file.path, fingerprints.get(f.file.path, ()))
        except RawIntegrityError as exc:
            log.warning("reconcile: %s", exc)
            found.damaged[f.file.path] = exc.reason
            continue
        found.records[f.file.path] = count_records(data, dataset)
        checksum = content_checksum(data) if dataset == "daily_bars" else None
        if checksum is not None:
            found.checksums[f.file.path] = checksum
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

    store = cluster_raw_store(lake)
    manifests = read_manifests(store, dataset, raw_layout.days(window.start, window.end))
    landed = _raw_files(store, provider, dataset, window, wanted, manifests.fingerprints())
    raw_counts = landed.records
    manifest = manifests.records_per_file()
    details["files"] = len(raw_counts) + len(landed.damaged)
    details["damaged_manifests"] = len(manifests.damaged)
    details["damaged_raw_files"] = len(landed.damaged)
    details["manifest_mismatches"] = sum(1 for p, n in raw_counts.items() if p in manifest and manifest[p] != n)

    bronze = (
        tables.read(contract("bronze", bronze_table))
        .filter(window.predicate("ingest_date"))
        .filter(F.col("provider") == provider)
    )
    if wanted is not None:
        bronze = bronze.filter(F.col("path_symbol").isin(sorted(wanted)))
    per_file = {r.source_file: int(r["count"]) for r in bronze.groupBy("source_file").count().collect()}
    damaged_in_bronze = sum(per_file.pop(p, 0) for p in landed.damaged)  # loaded before the damage
    rejected = (
        tables.read(contract("bronze", "rejected_files"))
        .filter(window.predicate("ingest_date"))
        .filter(F.col("dataset") == dataset)
        .select("source_file")
        .distinct()
        .collect()
    )
    rejected_files = {r.source_file for r in rejected} & (set(raw_counts) | set(landed.damaged))
    details["rejected_files"] = len(rejected_files)
    details["files_unaccounted"] = sum(1 for p in raw_counts if p not in per_file and p not in rejected_files)
    details["lost_raw_to_bronze"] = sum(max(n - per_file.get(p, 0), 0) for p, n in raw_counts.items())
    details["duplicated_in_bronze"] = sum(max(per_file.get(p, 0) - raw_counts.get(p, 0), 0) for p in per_file)
    same_count = [p for p in landed.checksums if per_file.get(p, 0) == raw_counts[p]]
    loaded = bronze_checksums(bronze, same_count) if dataset == "daily_bars" else {}
    details["bronze_files_compared"] = len(loaded)
    details["bronze_files_differing"] = sum(1 for p, n in loaded.items() if n != landed.checksums[p])
    result = {
        "raw_records": sum(raw_counts.values()),
        "bronze_rows": sum(per_file.values()) + damaged_in_bronze,
        "lost_rows": details["lost_raw_to_bronze"],
        "duplicate_rows": details["duplicated_in_bronze"],
        "stale_rows": 0,
        "extra_rows": 0,
    }
    if through == "bronze":
        return Reconciliation(**result, details=details)

    symbols, span = _silver(tables, bronze, dataset, silver_table, source_table, keys, result, details)
    if dataset != "daily_bars":
        return Reconciliation(**result, details=details)
    trade = (_date(trade_start) or span[0], _date(trade_end) or span[1])
    if through != "silver":
        _gold_and_mart(tables, settings, symbols, trade, pg_dsn, through, result, details)
    checked = sorted(wanted if wanted is not None else landed.symbols)
    found = _quality(tables, settings, checked, window, trade, through, details)
    return Reconciliation(**result, details=details, quality=found)


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
                    for c in silver.BAR_VALUES]  # fmt: skip
    else:
        rows = bronze.withColumn("record_key", F.concat_ws("|", F.coalesce("symbol", F.lit("")),
                                                           F.col("ingest_date").cast("string")))  # fmt: skip
        rows = rows.withColumn("as_of_date", F.col("ingest_date"))
        compared = []
    rows = rows.select(*keys, "source_file", "record_key", "ingested_at", *compared)
    marked = rows.join(quarantine, ["source_file", "record_key"], "left")
    current = tables.read(contract("silver", silver_table))
    held = current.select(*keys, F.col("ingested_at").alias("_held_at"),
                          *[F.col(c).alias(f"_held_{c}") for c in silver.BAR_VALUES if compared])  # fmt: skip
    same = F.lit(True)
    for c in silver.BAR_VALUES if compared else ():
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


def _gold_and_mart(tables: Tables, settings: Settings, symbols: list[str], trade: tuple, pg_dsn: str | None,
                   through: str, result: dict, details: dict) -> None:  # fmt: skip
    lo, hi = trade
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
    result["extra_rows"] += details["gold_without_silver"]
    dsn = pg_dsn or (settings.pg_dsn.get_secret_value() if settings.pg_dsn else None)
    if through != "mart" or dsn is None:
        return
    import psycopg
    from psycopg import sql

    mart_table = serving.MART_TABLES["daily_prices"]
    # Like with like: gold's forward-frame rows as the mart serves them (times the current factor).
    gold_prices = serving.served(tables, in_scope(tables.read(contract("gold", "fct_daily_prices"))), mart_table)
    with psycopg.connect(dsn) as conn:
        exists = (ops_store.table_exists(conn, mart_table.qualified), ops_store.table_exists(conn, LOAD_AUDIT))
        found: list[tuple] = []
        served: list[tuple] = []
        columns = [c for c, _ in serving.mart_columns(conn, mart_table)
                   if c in gold_prices.columns and c not in MART_LINEAGE]  # fmt: skip
        if all(exists):  # a database never loaded has no mart yet: nothing served, nothing expected
            query = sql.SQL("SELECT {} FROM {} WHERE symbol = ANY(%s) AND trade_date BETWEEN %s AND %s")
            names = sql.SQL(", ").join(map(sql.Identifier, columns))
            target = sql.Identifier(*mart_table.qualified.split("."))
            found = conn.execute(query.format(names, target), (symbols, lo, hi))
            found = found.fetchall()
            served = conn.execute(
                f"SELECT window_start, window_end FROM {LOAD_AUDIT} WHERE table_name = %s AND status = 'succeeded'",
                (mart_table.qualified,),
            ).fetchall()
    whole = any(start is None for start, _ in served)  # a full refresh serves every date

    def is_served(day: dt.date) -> bool:
        return whole or any(start <= day <= end for start, end in served)

    columns = columns or key
    mart = _keyed(found, columns)
    gold_all = dict(_keyed([tuple(r.values()) for r in gold_prices.select(*columns).toArrow().to_pylist()], columns))
    expected = {k: text for k, text in gold_all.items() if is_served(k[1])}
    mart_keys = {k for k, _ in mart}
    differing = _ranges_differing(expected, mart)
    details["served_loads"] = len(served)
    details["gold_rows_served"] = len(expected)
    details["lost_gold_to_mart"] = len(set(expected) - mart_keys)
    details["mart_without_gold"] = len(mart_keys - set(gold_all))
    details["stale_in_mart"] = sum(1 for k, text in set(mart) if k in gold_all and gold_all[k] != text)
    details["mart_ranges_differing"] = len(differing)
    details["duplicated_in_mart"] = len(found) - len(mart_keys)
    result["mart_rows"] = len(found)
    result["lost_rows"] += details["lost_gold_to_mart"]
    result["duplicate_rows"] += details["duplicated_in_mart"]
    result["stale_rows"] += details["stale_in_mart"]
    result["extra_rows"] += details["mart_without_gold"]
    if differing:
        log.warning("reconcile: gold and mart differ in %d (symbol, month) ranges, e.g. %s",
                    len(differing), sorted(differing)[:5])  # fmt: skip


# --- data quality of the checked symbols ----------------------------------------------------------------


def _quality(tables: Tables, settings: Settings, symbols: list[str], window: DateWindow, trade: tuple,
             through: str, details: dict) -> dict:  # fmt: skip
    """The :data:`QUALITY_CHECKS` findings of `symbols`; their counts go into `details`."""
    today = dt.datetime.now(dt.UTC).date()
    days = [ts.date() for ts in trading_calendar.calendar(settings.exchange_calendar).sessions]
    as_of = max((d for d in days if d <= min(window.end, today)), default=None)
    found: dict[str, list] = {c.name: [] for c in QUALITY_CHECKS}
    counted = dict.fromkeys(found, 0)
    if symbols and as_of is not None:
        bars = tables.read(contract("silver", "daily_bars") if through == "silver"
                           else contract("gold", "fct_daily_prices"))  # fmt: skip
        rated = _rated_bars(tables.spark, bars, symbols, days, as_of)
        _gaps(rated, trade, days, found, counted)
        _staleness(rated, symbols, as_of, found, counted)
    if symbols:
        _quarantined(tables, window, symbols, found, counted)
    for name, n in counted.items():
        details[name] = n
    return {"symbols": symbols, "as_of": as_of.isoformat() if as_of else None,
            "checks": [dataclasses.asdict(c) for c in QUALITY_CHECKS],
            **{name: rows[:LISTED] for name, rows in found.items()}}  # fmt: skip


def _rated_bars(spark, bars: DataFrame, symbols: list[str], days: list[dt.date], as_of: dt.date) -> DataFrame:
    """The symbols' bars up to `as_of` with the session rules' helper columns, computed by silver's own
    function: a symbol's whole series taken as one file ingested on `as_of`."""
    sessions = silver.sessions_frame(spark, days)
    by_date = Window.partitionBy("symbol").orderBy("trade_date")
    series = (
        bars.filter(F.col("symbol").isin(symbols) & (F.col("trade_date") <= F.lit(as_of)))
        .select("symbol", "trade_date")
        .distinct()
        .join(sessions, "trade_date", "left")
        .withColumns({"_prev_trade_date": F.lag("trade_date").over(by_date), "ingest_date": F.lit(as_of),
                      "source_file": F.lit("series")})
    )  # fmt: skip
    rules = {r.name: r for r in quality.RULES["silver.daily_bars"]}
    held = {name: F.coalesce(F.expr(rules[name].expectation), F.lit(False))
            for name in ("no_missing_sessions", "symbol_not_stale")}  # fmt: skip
    return silver._session_gaps(series, sessions).withColumns({f"_{k}": v for k, v in held.items()})


def _gaps(rated: DataFrame, trade: tuple, days: list[dt.date], found: dict, counted: dict) -> None:
    lo, hi = trade
    if lo is None or hi is None:
        return
    failing = rated.filter(~F.col("_no_missing_sessions") & F.col("trade_date").between(F.lit(lo), F.lit(hi)))
    counted["missing_sessions"] = int(failing.agg(F.sum("_missing_sessions")).first()[0] or 0)
    if not counted["missing_sessions"]:
        return
    for r in failing.orderBy("symbol", "trade_date").limit(LISTED).collect():
        between = days[bisect_right(days, r._prev_trade_date) : bisect_left(days, r.trade_date)]
        found["missing_sessions"].append({"symbol": r.symbol, "after": r._prev_trade_date.isoformat(),
                                          "before": r.trade_date.isoformat(),
                                          "dates": [d.isoformat() for d in between]})  # fmt: skip


def _staleness(rated: DataFrame, symbols: list[str], as_of: dt.date, found: dict, counted: dict) -> None:
    last = rated.filter(F.col("_sessions_behind").isNotNull()).select(
        "symbol", "trade_date", "_sessions_behind", "_symbol_not_stale").collect()  # fmt: skip
    for r in sorted(last, key=lambda r: r.symbol):
        if not r._symbol_not_stale:
            found["stale_symbols"].append({"symbol": r.symbol, "last_bar": r.trade_date.isoformat(),
                                           "as_of": as_of.isoformat(),
                                           "sessions_behind": int(r._sessions_behind)})  # fmt: skip
    without = sorted(set(symbols) - {r.symbol for r in last})
    found["symbols_without_bars"] = [{"symbol": s} for s in without]
    counted["stale_symbols"] = len(found["stale_symbols"])
    counted["symbols_without_bars"] = len(without)


def _quarantined(tables: Tables, window: DateWindow, symbols: list[str], found: dict, counted: dict) -> None:
    """The window's quarantined bars and corporate actions of `symbols`; a corporate action is unapplied
    when silver holds no accepted row of its event."""
    rows = (
        tables.read(contract("silver", "quarantine"))
        .filter(window.predicate("ingest_date"))
        .filter(F.col("source_table").isin(list(QUARANTINED_DATES)) & F.col("symbol").isin(symbols))
    )
    day = F.coalesce(*[F.when(F.col("source_table") == t, F.get_json_object("record_values", f"$.{field}"))
                       for t, field in QUARANTINED_DATES.items()])  # fmt: skip
    rows = rows.select("source_table", "rule", "symbol", "source_file", day.alias("date"),
                       F.get_json_object("record_values", "$.action").alias("action"))  # fmt: skip
    accepted = (
        tables.read(contract("silver", "corporate_actions"))
        .select("symbol", "action", F.col("ex_date").cast("string").alias("date"), F.lit(True).alias("_applied"))
        .distinct()
    )
    rows = rows.join(accepted, ["symbol", "action", "date"], "left")
    unapplied = (F.col("source_table") == "corporate_actions") & F.col("_applied").isNull()
    check = F.when(unapplied, "unapplied_corporate_actions").otherwise("quarantined_accounted")
    rows = rows.withColumn("_check", check)
    for name, n in ((r._check, int(r["count"])) for r in rows.groupBy("_check").count().collect()):
        counted[name] = n
        for r in rows.filter(F.col("_check") == name).orderBy("symbol", "date", "source_file").limit(LISTED).collect():
            entry = {"symbol": r.symbol, "table": r.source_table, "rule": r.rule, "date": r.date,
                     "source_file": r.source_file}  # fmt: skip
            if r.source_table == "corporate_actions":
                entry["action"] = r.action
            found[name].append(entry)


def _finding(check: str, f: dict) -> str:
    if check == "missing_sessions":
        return (f"{len(f['dates'])} session(s) missing between {f['after']} and {f['before']}: "
                f"{', '.join(f['dates'])}")  # fmt: skip
    if check == "stale_symbols":
        return f"last bar {f['last_bar']}, {f['sessions_behind']} sessions behind {f['as_of']}"
    if check == "symbols_without_bars":
        return "no bar at all (every file of the symbol was rejected)"
    what = f"{f['action']} of {f['date']}" if "action" in f else f"{f['table']} row of {f['date']}"
    return f"{what} quarantined by {f['rule']} ({f['source_file']})"


def quality_lines(counts: Reconciliation) -> list[str]:
    """The data-quality findings as text, one line each, failing ones marked FAIL."""
    if not counts.quality.get("symbols"):
        return []
    failing = [f"{name}={counts.details[name]}" for name in QUALITY_FAILURES if counts.details.get(name)]
    lines = [f"data quality of {len(counts.quality['symbols'])} symbol(s) as of {counts.quality['as_of']}: "
             + (f"failing {', '.join(failing)}" if failing else "no failing finding")]  # fmt: skip
    for check in QUALITY_CHECKS:
        found = counts.quality.get(check.name, [])
        mark = "FAIL" if check.fails else "note"
        lines += [f"{mark} {check.name} {f['symbol']}: {_finding(check.name, f)}" for f in found]
        if len(found) >= LISTED:
            lines.append(f"{mark} {check.name}: the first {LISTED} listed ({counts.details[check.name]} counted)")
    return lines


def _canonical(value: object) -> str:
    if value is None:
        return NULL_TEXT
    return repr(value) if isinstance(value, float) else str(value)


def _keyed(rows: list[tuple], columns: list[str]) -> list[tuple[tuple, str]]:
    """Rows (tuples in `columns` order) as ((symbol, trade_date), text of the row) pairs."""
    at_symbol, at_date = columns.index("symbol"), columns.index("trade_date")
    return [((r[at_symbol], r[at_date]), SEPARATOR.join(map(_canonical, r))) for r in rows]


def _ranges_differing(gold: dict, mart: list) -> set[tuple[str, str]]:
    """(symbol, month) ranges whose content checksum differs between the served gold rows and the mart."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for side, pairs in ((0, gold.items()), (1, mart)):
        for (symbol, day), text in pairs:
            sums[(symbol, day.isoformat()[:7])][side] += _hash48(text)
    return {r for r, (g, m) in sums.items() if g != m}


def _date(value: str | dt.date | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)
