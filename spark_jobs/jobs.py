"""One entry point per notebook: read the window, call the layer functions, write, summarize.

Every job takes a window (``start_date``..``end_date``), a ``run_id`` (the ADF pipeline run id,
stored as ``load_id``) and ``full_refresh``, and returns the JSON-able summary the notebook
passes to ``dbutils.notebook.exit``. Rerunning a window leaves every table unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import telemetry, trading_calendar
from lakehouse.lake import Lake
from lakehouse.settings import Settings
from spark_jobs import bronze, gold, quality, raw, silver
from spark_jobs.job_params import DateWindow, parse_flag
from spark_jobs.tables import Tables, contract

log = logging.getLogger(__name__)

# RAW dataset -> bronze table
BRONZE_DATASETS = {"daily_bars": "daily_bars", "security_master": "security_overview"}


class ReconciliationError(RuntimeError):
    """Rows were lost or duplicated between layers; the message names the files or counts."""


def _context(spark: SparkSession, settings: Settings) -> tuple[Tables, Lake]:
    lake = Lake.from_settings(settings)
    return Tables(spark, lake), lake


def _dsn(settings: Settings) -> str | None:
    return settings.pg_dsn.get_secret_value() if settings.pg_dsn else None


def _now() -> dt.datetime:
    """Time of a silver change and of gold's watermark, to the microsecond: gold picks up changes
    strictly after its watermark, so two runs inside one second must not share a timestamp."""
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------- RAW -> BRONZE


def _loaded_files(tables: Tables, table: str, dataset: str, window: DateWindow) -> set[str]:
    """Source files of the window already in bronze (as rows or as rejected files)."""
    rows = tables.read(contract("bronze", table)).filter(window.predicate("ingest_date"))
    rejected = (
        tables.read(contract("bronze", "rejected_files"))
        .filter(window.predicate("ingest_date"))
        .filter(F.col("dataset") == dataset)
    )
    found = rows.select("source_file").union(rejected.select("source_file")).distinct().collect()
    return {r.source_file for r in found}


def _bronze_counts(tables: Tables, table: str, window: DateWindow, files: list[str]) -> dict[str, int]:
    if not files:
        return {}
    rows = (
        tables.read(contract("bronze", table))
        .filter(window.predicate("ingest_date"))
        .filter(F.col("source_file").isin(files))
        .groupBy("source_file")
        .count()
        .collect()
    )
    return {r.source_file: int(r["count"]) for r in rows}


def _manifest_records(store: raw.RawStore, dataset: str, window: DateWindow) -> dict[str, int]:
    """records per file as the ingestion's run manifests state them."""
    found: dict[str, int] = {}
    for day in raw.days(window.start, window.end):
        for f in store.list(f"_manifests/{dataset}/ingest_date={day.isoformat()}"):
            if not f.path.endswith(".json"):
                continue
            try:
                doc = json.loads(store.read(f.path))
            except json.JSONDecodeError:
                log.warning("unreadable manifest %s", f.path)
                continue
            for entry in doc.get("files", []):
                if isinstance(entry, dict) and "path" in entry and isinstance(entry.get("records"), int):
                    found[entry["path"]] = entry["records"]
    return found


def _load(tables: Tables, table: str, batches, window: DateWindow) -> dict:
    """Append batches of whole files to a bronze table, then prove every file's rows arrived once."""
    target, rejected_contract = contract("bronze", table), contract("bronze", "rejected_files")
    parsed: dict[str, int] = {}
    rejected = 0
    for batch in batches:
        if batch.rows:
            tables.append(bronze.to_frame(tables.spark, batch.rows, target), target)
        if batch.column_rows:
            tables.append(bronze.columns_frame(tables.spark, batch.columns, target), target)
        if batch.rejected:
            tables.append(bronze.to_frame(tables.spark, batch.rejected, rejected_contract), rejected_contract)
            rejected += len(batch.rejected)
        parsed.update(batch.records_per_file)
    landed = _bronze_counts(tables, table, window, [p for p, n in parsed.items() if n])
    wrong = {p: (n, landed.get(p, 0)) for p, n in parsed.items() if landed.get(p, 0) != n}
    if wrong:
        sample = dict(list(wrong.items())[:5])
        raise ReconciliationError(
            f"bronze.{table}: {len(wrong)} files did not land exactly once (file: (records, rows)): {sample}"
        )
    return {
        "files_loaded": len(parsed),
        "files_rejected": rejected,
        "rows_read": sum(parsed.values()),
        "rows_written": sum(landed.values()),
        "_landed": landed,
    }


@telemetry.job("raw_to_bronze")
def run_raw_to_bronze(
    spark: SparkSession, settings: Settings, start_date, end_date, run_id: str, full_refresh=False
) -> dict:
    """Load the RAW files of the window that bronze has not seen (all of them with full_refresh)."""
    window, full_refresh = DateWindow.parse(start_date, end_date), parse_flag(full_refresh)
    tables, lake = _context(spark, settings)
    store = raw.store_for(lake)
    started = time.monotonic()
    summary: dict = {"job": "raw_to_bronze", "run_id": run_id, **window.as_dict(), "full_refresh": full_refresh,
                     "tables": {}}  # fmt: skip
    for dataset, table in BRONZE_DATASETS.items():
        if full_refresh:
            tables.delete(contract("bronze", table), window.predicate("ingest_date"))
            rejected_in_window = f"{window.predicate('ingest_date')} AND dataset = '{dataset}'"
            tables.delete(contract("bronze", "rejected_files"), rejected_in_window)
        files = raw.ingested_files(store, settings.provider, dataset, window.start, window.end)
        seen = _loaded_files(tables, table, dataset, window)
        new = [f for f in files if f.file.path not in seen]
        batches = bronze.ingested_batches(store, new, dataset, run_id, contract("bronze", table),
                                          contract("bronze", "rejected_files"))  # fmt: skip
        result = {"files_found": len(files), "files_skipped": len(files) - len(new)}
        result |= _load(tables, table, batches, window)
        manifest = _manifest_records(store, dataset, window)
        result["manifest_mismatches"] = _manifest_mismatches(
            result.pop("_landed"), manifest, [f.file.path for f in new]
        )
        summary["tables"][f"bronze.{table}"] = result
    summary["tables"]["bronze.quotes"] = _load_quotes(tables, store, window, run_id, full_refresh)
    summary["rows_read"] = sum(t["rows_read"] for t in summary["tables"].values())
    summary["rows_written"] = sum(t["rows_written"] for t in summary["tables"].values())
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary


def _manifest_mismatches(landed: dict[str, int], manifest: dict[str, int], new_files: list[str]) -> list[dict]:
    """Files of this load whose bronze row count (as counted back after the load) differs from the
    manifest's `records`."""
    listed = [p for p in new_files if p in manifest]
    return [
        {"file": p, "manifest_records": manifest[p], "bronze_rows": landed.get(p, 0)}
        for p in listed
        if landed.get(p, 0) != manifest[p]
    ]


def _load_quotes(tables: Tables, store: raw.RawStore, window: DateWindow, run_id: str, full_refresh: bool) -> dict:
    target = contract("bronze", "quotes")
    if full_refresh:
        tables.delete(target, window.predicate("ingest_date"))
        tables.delete(contract("bronze", "rejected_files"), f"{window.predicate('ingest_date')} AND dataset = 'quotes'")
    files = raw.capture_files(store, window.start, window.end)
    seen = _loaded_files(tables, "quotes", "quotes", window)
    new = [(f, p) for f, p in files if f.path not in seen]
    batches = bronze.capture_batches(store, new, run_id, target, contract("bronze", "rejected_files"))
    result = {"files_found": len(files), "files_skipped": len(files) - len(new)}
    loaded = _load(tables, "quotes", batches, window)
    loaded.pop("_landed")
    return result | loaded


# ---------------------------------------------------------------- BRONZE -> SILVER


def _sessions(spark: SparkSession, settings: Settings) -> DataFrame:
    cal = trading_calendar.calendar(settings.exchange_calendar)
    days = [ts.date() for ts in cal.sessions]
    return silver.sessions_frame(spark, days)


@dataclass
class _Staged:
    """A silver table's batch after the rules, before any write."""

    table: str
    rows_in: int
    winners: DataFrame
    superseded: int
    quarantined: DataFrame
    quarantined_count: int
    results: list


def _stage(
    flagged: DataFrame, table: str, keys: list[str], order: list, key_columns: list[str], tables: Tables | None = None
) -> _Staged:
    """Route the batch and count routes and rule failures in one aggregation pass.

    With `tables`, the routed batch is first written to a scratch table: the counts, the rule
    samples, the winners and the quarantined rows then read it instead of each re-running the
    typing, rules and window functions over the bronze rows (worth it for the bars, not for the
    few securities and quotes).
    """
    routed = silver.route(flagged, keys, order)
    if tables is not None:
        routed = tables.stage(routed, f"silver_routed_{table}")
    route = F.col(silver.ROUTE)
    counts = routed.agg(
        F.count(F.lit(1)).alias("rows_in"),
        F.sum(F.when(route == "winner", 1).otherwise(0)).alias("winners"),
        F.sum(F.when(route == "superseded", 1).otherwise(0)).alias("superseded"),
        F.sum(F.when(route == "quarantine", 1).otherwise(0)).alias("quarantined"),
        *quality.failure_counts(f"silver.{table}"),
    ).first()
    rows_in = int(counts.rows_in)
    n_win, n_sup, n_quar = (int(counts[c] or 0) for c in ("winners", "superseded", "quarantined"))
    if rows_in != n_win + n_sup + n_quar:
        raise ReconciliationError(f"silver.{table}: rows in {rows_in} != valid {n_win + n_sup} + quarantined {n_quar}")
    results = quality.summarize(routed, f"silver.{table}", key_columns, counts)
    winners = routed.filter(route == "winner").drop(silver.ROUTE)
    quarantined = routed.filter(route == "quarantine").drop(silver.ROUTE)
    return _Staged(table, rows_in, winners, n_sup, quarantined, n_quar, results)


SILVER_JOB = "bronze_to_silver"


@dataclass
class _Pending:
    """Bronze rows of files silver has not processed yet, and those files (pinned before any write)."""

    source_table: str
    rows: DataFrame
    files: list  # Rows of (source_file, ingest_date)


def _pending(tables: Tables, table: str, window: DateWindow, full_refresh: bool) -> _Pending:
    """The window's bronze rows of `table` whose source files silver has not processed yet.

    RAW holds whole histories, so a window of ingestion dates holds far more bars than are new to
    silver (every chunk of a backfill lands under the same day; a daily run's lookback still covers
    the backfill's files). Silver records each bronze file it merged in ``ops.processed_files`` and
    skips it later; with `full_refresh` every file of the window is processed again. The file list
    is collected once, so the rows processed and the files recorded are the same set even if bronze
    grows meanwhile.
    """
    source = f"bronze.{table}"
    rows = tables.read(contract("bronze", table)).filter(window.predicate("ingest_date"))
    files = rows.select("source_file", "ingest_date").distinct()
    if not full_refresh:
        done = _processed(tables, source).select("source_file")
        files = files.join(done, "source_file", "left_anti")
    found = files.collect()
    if not found:
        return _Pending(source, rows.limit(0), [])
    listed = tables.spark.createDataFrame([(r.source_file,) for r in found], "source_file string")
    return _Pending(source, rows.join(F.broadcast(listed), "source_file", "left_semi"), found)


def _processed(tables: Tables, source: str) -> DataFrame:
    state = tables.read(contract("ops", "processed_files"))
    return state.filter((F.col("job") == SILVER_JOB) & (F.col("source_table") == source))


def _record_processed(tables: Tables, pending: list[_Pending], run_id: str, now: dt.datetime) -> int:
    """Record the files merged by this run (those recorded already, after a full refresh, once)."""
    c = contract("ops", "processed_files")
    rows = []
    for p in pending:
        if not p.files:
            continue
        known = {r.source_file for r in _processed(tables, p.source_table).select("source_file").collect()}
        rows += [{"job": SILVER_JOB, "source_table": p.source_table, "source_file": f.source_file,
                  "ingest_date": f.ingest_date, "load_id": run_id, "processed_at": now,
                  "schema_version": c.version} for f in p.files if f.source_file not in known]  # fmt: skip
    if rows:
        tables.append(bronze.to_frame(tables.spark, rows, c), c)
    return len(rows)


@telemetry.job("bronze_to_silver")
def run_bronze_to_silver(
    spark: SparkSession, settings: Settings, start_date, end_date, run_id: str, full_refresh=False,
    today: dt.date | None = None,
) -> dict:  # fmt: skip
    """Validate and merge into silver the bronze rows ingested in the window that silver has not merged yet.

    Rules are evaluated for every table first and recorded (PostgreSQL ``ops.dq_results`` when a
    DSN is configured); a failed `fail` rule stops the job before anything is written.
    """
    window, full_refresh = DateWindow.parse(start_date, end_date), parse_flag(full_refresh)
    tables, _ = _context(spark, settings)
    today = today or dt.datetime.now(dt.UTC).date()
    started, now = time.monotonic(), _now()
    sessions = _sessions(spark, settings)

    bars_contract = contract("silver", "daily_bars")
    current_bars = tables.read(bars_contract)
    pending = {t: _pending(tables, t, window, full_refresh) for t in ("daily_bars", "security_overview", "quotes")}
    typed = silver.typed_daily_bars(pending["daily_bars"].rows, current_bars, sessions, today)
    bars = _stage(
        quality.flag(typed, "silver.daily_bars"), "daily_bars", ["symbol", "trade_date"],
        [*silver.latest_first(), F.col("record_index").desc()], ["symbol", "trade_date_raw", "source_file"], tables,
    )  # fmt: skip

    secs = _stage(
        quality.flag(silver.typed_securities(pending["security_overview"].rows), "silver.securities"), "securities",
        ["symbol", "as_of_date"], silver.latest_first(), ["symbol", "as_of_date", "source_file"],
    )  # fmt: skip

    quotes = _stage(
        quality.flag(silver.typed_quotes(pending["quotes"].rows, sessions), "silver.quotes"), "quotes",
        ["symbol", "quote_time"], [F.col("sequence_number").desc()], ["symbol", "quote_time", "source_file"],
    )  # fmt: skip

    results = bars.results + secs.results + quotes.results
    recorded = quality.record(_dsn(settings), run_id, results)
    quality.raise_on_fail(results)

    summary: dict = {"job": "bronze_to_silver", "run_id": run_id, **window.as_dict(), "full_refresh": full_refresh,
                     "tables": {}}  # fmt: skip
    q_contract = contract("silver", "quarantine")

    quarantine_parts = []
    if bars.rows_in:
        rows = silver.daily_bar_rows(bars.winners, run_id, now, bars_contract.version)
        changes, rows = _changed_rows(
            tables, rows, current_bars, winners=bars.rows_in - bars.superseded - bars.quarantined_count
        )
        condition, revision = silver.revision_merge(silver.BAR_COMPARED)
        if changes["revised"]:
            revised = rows.filter(F.col("_change") == "revised").drop("_change")
            tables.merge(revised, bars_contract, matched_condition=condition, update_set=revision)
        if changes["new"]:
            tables.append(rows.filter(F.col("_change") == "new").drop("_change"), bars_contract)
        quarantine_parts.append(silver.quarantine_rows(
            bars.quarantined, "daily_bars", silver.bar_key(),
            ["symbol", "path_symbol", "trade_date_raw", *[f"{c}_raw" for c in silver.BAR_VALUES]],
            run_id, now, q_contract.version,
        ))  # fmt: skip
    summary["tables"]["silver.daily_bars"] = _table_summary(bars, changes if bars.rows_in else None)

    if secs.rows_in:
        sec_contract = contract("silver", "securities")
        sec_rows = silver.security_rows(secs.winners, run_id, now, sec_contract.version)
        sec_changes = _change_counts(sec_rows, tables.read(sec_contract), ["symbol", "as_of_date"],
                                     silver.SECURITY_ATTRIBUTES)  # fmt: skip
        sec_condition = f"s.ingested_at > t.ingested_at AND {silver.values_differ(silver.SECURITY_ATTRIBUTES)}"
        tables.merge(sec_rows, sec_contract, matched_condition=sec_condition)
        quarantine_parts.append(silver.quarantine_rows(
            secs.quarantined, "securities",
            F.concat_ws("|", F.coalesce("symbol", F.lit("")), F.col("as_of_date").cast("string")),
            ["symbol", "path_symbol", *silver.SECURITY_ATTRIBUTES], run_id, now, q_contract.version,
        ))  # fmt: skip
    summary["tables"]["silver.securities"] = _table_summary(secs, sec_changes if secs.rows_in else None)

    if quotes.rows_in:
        quote_contract = contract("silver", "quotes")
        quote_rows = silver.quote_rows(quotes.winners, run_id, now, quote_contract.version)
        quote_changes = _change_counts(quote_rows, tables.read(quote_contract), ["symbol", "quote_time"], (),
                                       count_only_new=True)  # fmt: skip
        tables.merge(quote_rows, quote_contract, update=False)
        quarantine_parts.append(silver.quarantine_rows(
            quotes.quarantined, "quotes",
            F.concat_ws("|", F.coalesce("symbol", F.lit("")), F.col("sequence_number").cast("string")),
            ["symbol", "body"], run_id, now, q_contract.version,
        ))  # fmt: skip
    summary["tables"]["silver.quotes"] = _table_summary(quotes, quote_changes if quotes.rows_in else None)

    if bars.quarantined_count + secs.quarantined_count + quotes.quarantined_count:
        combined = quarantine_parts[0]
        for part in quarantine_parts[1:]:
            combined = combined.unionByName(part)
        tables.merge(combined, q_contract, update=False)

    for name, table in (("daily_bars", "silver.daily_bars"), ("security_overview", "silver.securities"),
                        ("quotes", "silver.quotes")):  # fmt: skip
        summary["tables"][table]["files"] = len(pending[name].files)
    summary["files_recorded"] = _record_processed(tables, list(pending.values()), run_id, now)
    summary["rows_read"] = sum(t["rows_in"] for t in summary["tables"].values())
    summary["rows_written"] = sum(t["inserted"] + t["revised"] for t in summary["tables"].values())
    summary["rows_quarantined"] = sum(t["quarantined"] for t in summary["tables"].values())
    summary["dq"] = quality.outcome(results) | {"results_recorded": recorded}
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary


def _changed_rows(tables: Tables, rows: DataFrame, current: DataFrame, winners: int) -> tuple[dict, DataFrame]:
    """new / revised / unchanged counts of the incoming bars, and the bars tagged (``_change``).

    Only revised bars go through MERGE and new ones are appended: a daily run's compact payloads
    repeat 99 known bars per symbol, and Sail's MERGE joins the whole table and rewrites the files
    it touches even for rows it only inserts. The bars are classified once, into a scratch table,
    so the typing and routing plan is not computed again by the writes.
    """
    if current.limit(1).count() == 0:
        return {"new": winners, "revised": 0, "unchanged": 0}, rows.withColumn("_change", F.lit("new"))
    keys = ["symbol", "trade_date"]
    staged = tables.stage(silver.classify_changes(rows, current, keys, silver.BAR_COMPARED), "silver_daily_bars")
    counts = {"new": 0, "revised": 0, "unchanged": 0}
    counts.update({r["_change"]: int(r["count"]) for r in staged.groupBy("_change").count().collect()})
    return counts, staged


def _change_counts(rows, current, keys, columns, count_only_new: bool = False) -> dict[str, int]:
    """new / revised / unchanged counts of the incoming rows."""
    if count_only_new:
        joined = rows.join(current.select(*keys), keys, "left_anti")
        new = joined.count()
        return {"new": new, "revised": 0, "unchanged": rows.count() - new}
    tagged = silver.classify_changes(rows, current, keys, columns).groupBy("_change").count().collect()
    counts = {"new": 0, "revised": 0, "unchanged": 0}
    counts.update({r["_change"]: int(r["count"]) for r in tagged})
    return counts


def _table_summary(staged: _Staged, changes: dict[str, int] | None) -> dict:
    changes = changes or {"new": 0, "revised": 0, "unchanged": 0}
    return {
        "rows_in": staged.rows_in,
        "valid": staged.rows_in - staged.quarantined_count,
        "superseded": staged.superseded,
        "quarantined": staged.quarantined_count,
        "inserted": changes["new"],
        "revised": changes["revised"],
        "unchanged": changes["unchanged"],
    }


# ---------------------------------------------------------------- SILVER -> GOLD

GOLD_JOB = "silver_to_gold"


def _watermark(tables: Tables, source: str):
    state = tables.read(contract("ops", "job_state"))
    row = state.filter((F.col("job") == GOLD_JOB) & (F.col("source_table") == source)).select("watermark").first()
    return row.watermark if row is not None else None


def _changed_since(df: DataFrame, mark, upto) -> DataFrame:
    if upto is None:
        return df.limit(0)
    df = df.filter(F.col("updated_at") <= F.lit(upto))
    return df if mark is None else df.filter(F.col("updated_at") > F.lit(mark))


@telemetry.job("silver_to_gold")
def run_silver_to_gold(
    spark: SparkSession, settings: Settings, start_date, end_date, run_id: str, full_refresh=False
) -> dict:
    """Recompute the gold rows affected by silver changes since the last run (plus the window with full_refresh)."""
    window, full_refresh = DateWindow.parse(start_date, end_date), parse_flag(full_refresh)
    tables, _ = _context(spark, settings)
    started, now = time.monotonic(), _now()
    summary: dict = {"job": "silver_to_gold", "run_id": run_id, **window.as_dict(), "full_refresh": full_refresh,
                     "tables": {}}  # fmt: skip
    marks: dict[str, object] = {}

    bars = tables.read(contract("silver", "daily_bars"))
    upto = bars.agg(F.max("updated_at").alias("m")).first().m
    mark = _watermark(tables, "silver.daily_bars")
    changed = _changed_since(bars, mark, upto).select("symbol", "trade_date")
    if full_refresh:
        changed = changed.unionByName(bars.filter(window.predicate("trade_date")).select("symbol", "trade_date"))
    starts_rows = gold.recompute_starts(changed, bars).collect()
    summary["tables"]["gold.fct_daily_prices"] = {"symbols": len(starts_rows), "rows_written": 0}
    summary["tables"]["gold.fct_monthly_performance"] = {"symbols": len(starts_rows), "rows_written": 0}
    if starts_rows:
        _write_prices(tables, bars, starts_rows, run_id, summary)
        _write_dim_date(tables, bars, settings, summary)
    if upto is not None:
        marks["silver.daily_bars"] = upto

    secs = tables.read(contract("silver", "securities"))
    sec_upto = secs.agg(F.max("updated_at").alias("m")).first().m
    sec_changed = _changed_since(secs, _watermark(tables, "silver.securities"), sec_upto)
    symbols = [r.symbol for r in sec_changed.select("symbol").distinct().collect()]
    summary["tables"]["gold.dim_security"] = {"symbols": len(symbols), "rows_written": 0}
    if symbols or (full_refresh and sec_upto is not None):
        dim_contract = contract("gold", "dim_security")
        dim = gold.dim_security(secs, run_id, dim_contract.version)
        tables.overwrite(dim, dim_contract)
        summary["tables"]["gold.dim_security"]["rows_written"] = dim.count()
    if sec_upto is not None:
        marks["silver.securities"] = sec_upto

    quotes = tables.read(contract("silver", "quotes"))
    q_upto = quotes.agg(F.max("updated_at").alias("m")).first().m
    q_changed = _changed_since(quotes, _watermark(tables, "silver.quotes"), q_upto).limit(1).count()
    summary["tables"]["gold.latest_quotes"] = {"rows_written": 0}
    if q_changed or (full_refresh and q_upto is not None):
        lq_contract = contract("gold", "latest_quotes")
        latest = gold.latest_quotes(quotes, run_id, lq_contract.version)
        differ = silver.values_differ(gold.QUOTE_VALUES)
        tables.merge(latest, lq_contract, matched_condition=f"s.quote_time >= t.quote_time AND {differ}")
        summary["tables"]["gold.latest_quotes"]["rows_written"] = latest.count()
    if q_upto is not None:
        marks["silver.quotes"] = q_upto

    _save_watermarks(tables, marks, run_id, now)
    summary["rows_written"] = sum(t["rows_written"] for t in summary["tables"].values())
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary


def _write_prices(tables: Tables, bars: DataFrame, starts_rows: list, run_id: str, summary: dict) -> None:
    spark = tables.spark
    daily_contract = contract("gold", "fct_daily_prices")
    monthly_contract = contract("gold", "fct_monthly_performance")
    starts = spark.createDataFrame(
        [(r.symbol, r.start_date, bool(r.full)) for r in starts_rows], "symbol string, start_date date, full boolean"
    )
    existing = tables.read(daily_contract)
    peaks = (
        existing.join(F.broadcast(starts), "symbol", "inner")
        .filter(F.col("trade_date") < F.col("start_date"))
        .groupBy("symbol")
        .agg(F.max("adj_close").alias("prev_peak"))
    )
    starts_with_peak = starts.join(peaks, "symbol", "left")
    daily = gold.daily_prices(gold.span_for(bars, starts), starts_with_peak, run_id, daily_contract.version)
    daily = tables.stage(daily, "fct_daily_prices")
    tables.upsert(daily, daily_contract, matched_condition=silver.values_differ(gold.DAILY_VALUES))
    summary["tables"]["gold.fct_daily_prices"]["rows_written"] = daily.count()
    summary["tables"]["gold.fct_daily_prices"]["full_symbols"] = sum(1 for r in starts_rows if r.full)

    stored = (
        tables.read(daily_contract)
        .join(F.broadcast(starts), "symbol", "inner")
        .filter(F.col("trade_date") >= F.add_months(F.trunc("start_date", "month"), -1))
    )
    monthly = gold.monthly_performance(stored.drop("start_date", "full"), starts, run_id, monthly_contract.version)
    monthly = tables.stage(monthly, "fct_monthly_performance")
    tables.upsert(monthly, monthly_contract, matched_condition=silver.values_differ(gold.MONTHLY_VALUES))
    summary["tables"]["gold.fct_monthly_performance"]["rows_written"] = monthly.count()


def _write_dim_date(tables: Tables, bars: DataFrame, settings: Settings, summary: dict) -> None:
    dim_contract = contract("gold", "dim_date")
    bounds = bars.agg(F.min("trade_date").alias("lo"), F.max("trade_date").alias("hi")).first()
    cal = trading_calendar.calendar(settings.exchange_calendar)
    days = trading_calendar.sessions(bounds.lo, bounds.hi, settings.exchange_calendar)
    current = (
        tables.read(dim_contract)
        .agg(F.min("trade_date").alias("lo"), F.max("trade_date").alias("hi"), F.count(F.lit(1)).alias("n"))
        .first()
    )
    if days and (current.lo, current.hi, current.n) == (days[0], days[-1], len(days)):
        summary["tables"]["gold.dim_date"] = {"rows_written": 0}
        return
    import pandas as pd

    first, last = pd.Timestamp(days[0]), pd.Timestamp(days[-1])
    previous = cal.previous_session(first).date() if first > cal.first_session else None
    following = cal.next_session(last).date() if last < cal.last_session else None
    rows = gold.dim_date_rows(days, previous, following)
    tables.overwrite(bronze.to_frame(tables.spark, rows, dim_contract), dim_contract)
    summary["tables"]["gold.dim_date"] = {"rows_written": len(rows)}


def _save_watermarks(tables: Tables, marks: dict, run_id: str, now: dt.datetime) -> None:
    if not marks:
        return
    state = contract("ops", "job_state")
    current = {r.source_table: r.watermark for r in tables.read(state).filter(F.col("job") == GOLD_JOB).collect()}
    changed = {k: v for k, v in marks.items() if current.get(k) != v}
    if not changed:
        return
    rows = [{"job": GOLD_JOB, "source_table": k, "watermark": v, "load_id": run_id, "updated_at": now,
             "schema_version": state.version} for k, v in changed.items()]  # fmt: skip
    tables.merge(bronze.to_frame(tables.spark, rows, state), state)


# ---------------------------------------------------------------- maintenance

MAINTAINED = (
    ("bronze", "daily_bars"), ("bronze", "security_overview"), ("bronze", "quotes"), ("bronze", "rejected_files"),
    ("silver", "daily_bars"), ("silver", "securities"), ("silver", "quotes"), ("silver", "quarantine"),
    ("gold", "dim_security"), ("gold", "dim_date"), ("gold", "fct_daily_prices"),
    ("gold", "fct_monthly_performance"), ("gold", "latest_quotes"), ("ops", "processed_files"),
)  # fmt: skip


@telemetry.job("maintenance")
def run_maintenance(
    spark: SparkSession, settings: Settings, start_date, end_date, run_id: str, full_refresh=False,
    vacuum_retention_hours: int = 168,
) -> dict:  # fmt: skip
    """Compact small files and vacuum old ones on every table; report versions and row counts.

    On Databricks this is SQL ``OPTIMIZE`` / ``VACUUM``; Sail 0.7.2 has neither, so on a local
    lake the `deltalake` package does the same on the table directory.
    """
    window = DateWindow.parse(start_date, end_date)
    tables, lake = _context(spark, settings)
    started = time.monotonic()
    report = {}
    for layer, name in MAINTAINED:
        c = contract(layer, name)
        if not tables.exists(c):
            continue
        report[c.qualified_name] = _maintain(tables, lake, c, vacuum_retention_hours)
    return {"job": "maintenance", "run_id": run_id, **window.as_dict(), "tables": report,
            "seconds": round(time.monotonic() - started, 3)}  # fmt: skip


def _maintain(tables: Tables, lake: Lake, c, retention_hours: int) -> dict:
    path = tables.path(c)
    if lake.is_local:
        from deltalake import DeltaTable

        table = DeltaTable(path)
        metrics = table.optimize.compact()
        removed = table.vacuum(retention_hours=retention_hours, enforce_retention_duration=False, dry_run=False)
        return {"files_added": metrics.get("numFilesAdded", 0), "files_removed": metrics.get("numFilesRemoved", 0),
                "vacuumed": len(removed), "version": table.version(),
                "rows": tables.read(c).count()}  # fmt: skip
    tables.spark.sql(f"OPTIMIZE delta.`{path}`")
    tables.spark.sql(f"VACUUM delta.`{path}` RETAIN {retention_hours} HOURS")
    return {"rows": tables.read(c).count()}
