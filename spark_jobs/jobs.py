"""One entry point per notebook: read the window, call the layer functions, write, summarize.

Every job takes a window (``start_date``..``end_date``), a ``run_id`` (the ADF pipeline run id,
stored as ``load_id``) and ``full_refresh``, and returns its :class:`~lakehouse.job_summary.JobSummary`,
whose JSON the notebook passes to ``dbutils.notebook.exit``. Rerunning a window leaves every table unchanged.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import inputs, telemetry, trading_calendar
from lakehouse.contracts import raw_layout
from lakehouse.contracts.manifest import read_manifests
from lakehouse.job_summary import JobSummary, TableSummary
from lakehouse.lake import Lake
from lakehouse.raw_store import RawStore, cluster_raw_store
from lakehouse.settings import Settings
from spark_jobs import bronze, gold, quality, raw, serving, silver
from spark_jobs.contracts import Contract
from spark_jobs.job_params import DateWindow, parse_flag
from spark_jobs.tables import Tables, contract

log = logging.getLogger(__name__)

# RAW dataset -> bronze table
BRONZE_DATASETS = {
    "daily_bars": "daily_bars",
    "security_master": "security_overview",
    "splits": "corporate_actions",
    "dividends": "corporate_actions",
}
# The rows of a bronze table that one of several datasets landed in it (for a full refresh).
BRONZE_SCOPES = {"splits": "action = 'split'", "dividends": "action = 'dividend'"}


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


def _loaded_files_all(tables: Tables, datasets: dict[str, str], window: DateWindow) -> dict[str, set[str]]:
    """Per dataset (-> its bronze table), the source files of the window already in bronze (as rows
    or as rejected files), every dataset in one query: one round trip to the engine, not one each.

    Where rows carry their position in the file, only each file's first row is read: a file in
    bronze has all its records, so it has a row 0 (bronze is only ever deleted by whole files). The
    distinct then sees one row per file instead of every row of the window's history (677,500 on a
    daily run over five years: 0.03-0.04 Sail CPU s against 0.05-0.06).
    """
    rejected = tables.read(contract("bronze", "rejected_files")).filter(window.predicate("ingest_date"))
    found: DataFrame | None = None
    for dataset, table in datasets.items():
        target = contract("bronze", table)
        rows = tables.read(target).filter(window.predicate("ingest_date"))
        if "record_index" in target.column_names:
            rows = rows.filter(F.col("record_index") == 0)
        files = rows.select("source_file").union(rejected.filter(F.col("dataset") == dataset).select("source_file"))
        files = files.select(F.lit(dataset).alias("_dataset"), "source_file")
        found = files if found is None else found.union(files)
    seen: dict[str, set[str]] = {dataset: set() for dataset in datasets}
    for r in found.distinct().collect() if found is not None else []:
        seen[r["_dataset"]].add(r.source_file)
    return seen


def _bronze_counts(
    tables: Tables, table: str, window: DateWindow, files: list[str], since: dt.datetime | None = None
) -> dict[str, int]:
    """Bronze rows per file of `files`. `since`: the earliest RAW modification time of those files.

    Every bronze row carries its file's modification time as ``ingested_at``, so the bound keeps all
    rows of `files`, whichever load wrote them; as a literal it lets the engine skip the window's older
    bronze files (a daily run's window holds the backfill's bronze too: 677,500 rows on five years).
    """
    if not files:
        return {}
    rows = tables.read(contract("bronze", table)).filter(window.predicate("ingest_date"))
    if since is not None:
        rows = rows.filter(F.col("ingested_at") >= F.lit(since))
    rows = rows.filter(F.col("source_file").isin(files)).groupBy("source_file").count().collect()
    return {r.source_file: int(r["count"]) for r in rows}


def _load(
    tables: Tables, table: str, batches, window: DateWindow, since: dt.datetime | None = None
) -> tuple[TableSummary, dict[str, int]]:
    """Append batches of whole files to a bronze table, then prove every file's rows arrived once.

    A batch is appended on a second thread while the driver parses the next one: parsing is the
    driver's CPU and the append the engine's, so they overlap instead of taking turns (RAW -> BRONZE
    of 500 symbols x 5 years: about 4 s of parsing and 4.5 s of appends). One append at a time, in
    the batches' order; the driver holds the batch being sent and the one being parsed, no more.

    `since`: the earliest modification time of the files (:func:`_bronze_counts`).

    Returns:
        The table's counts, and the bronze rows per loaded file as counted back after the load.
    """
    target, rejected_contract = contract("bronze", table), contract("bronze", "rejected_files")
    parsed: dict[str, int] = {}
    rejected = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bronze-append") as writer:
        writing: Future | None = None
        for batch in batches:
            if writing is not None:
                writing.result()  # the previous append's error surfaces here, before the next is sent
            # Joined into tables only now: while the previous batch was sent, this one was still its
            # per-file arrays, not a second copy of the rows beside the sent batch's.
            parts = batch.take_arrow_parts(target) if batch.column_rows else None
            writing = writer.submit(_append_batch, tables, target, rejected_contract, batch.rows, parts,
                                    batch.rejected)  # fmt: skip
            rejected += len(batch.rejected)
            parsed.update(batch.records_per_file)
            del batch, parts  # the writer holds what it sends; the next batch is parsed meanwhile
        if writing is not None:
            writing.result()
    landed = _bronze_counts(tables, table, window, [p for p, n in parsed.items() if n], since)
    wrong = {p: (n, landed.get(p, 0)) for p, n in parsed.items() if landed.get(p, 0) != n}
    if wrong:
        sample = dict(list(wrong.items())[:5])
        raise ReconciliationError(
            f"bronze.{table}: {len(wrong)} files did not land exactly once (file: (records, rows)): {sample}"
        )
    counts = TableSummary(
        files_loaded=len(parsed),
        files_rejected=rejected,
        rows_read=sum(parsed.values()),
        rows_written=sum(landed.values()),
    )
    return counts, landed


def _append_batch(
    tables: Tables, target: Contract, rejected_contract: Contract, rows: list[dict], parts, rejected: list[dict]
) -> None:
    """One batch's rows (as row dicts, and as Arrow rows and their files' lineage) and its rejected
    files, appended."""
    if rows:
        tables.append(bronze.to_frame(tables.spark, rows, target), target)
    if parts is not None:
        columns, files = parts
        tables.append_arrow(columns, target, per_file=files)
    if rejected:
        tables.append(bronze.to_frame(tables.spark, rejected, rejected_contract), rejected_contract)


def _begin(job: str, start_date, end_date, run_id: str, full_refresh) -> tuple[DateWindow, bool, JobSummary]:
    """A job's window and flag as the notebook's widgets give them, and its summary, still empty."""
    window, refresh = DateWindow.parse(start_date, end_date), parse_flag(full_refresh)
    summary = JobSummary(job=job, run_id=run_id, start_date=window.start, end_date=window.end, full_refresh=refresh)
    return window, refresh, summary


@telemetry.job("raw_to_bronze")
def run_raw_to_bronze(
    spark: SparkSession, settings: Settings, start_date, end_date, run_id: str, full_refresh=False
) -> JobSummary:
    """Load the RAW files of the window that bronze has not seen (all of them with full_refresh)."""
    window, full_refresh, summary = _begin("raw_to_bronze", start_date, end_date, run_id, full_refresh)
    tables, lake = _context(spark, settings)
    store = cluster_raw_store(lake)
    started = time.monotonic()
    # Without a full refresh nothing is deleted, and a dataset's load adds only its own files: what
    # bronze holds of every dataset's files is read once, before the loads.
    loaded = None if full_refresh else _loaded_files_all(tables, {**BRONZE_DATASETS, "quotes": "quotes"}, window)
    for dataset, table in BRONZE_DATASETS.items():
        if full_refresh:
            scope = f" AND {BRONZE_SCOPES[dataset]}" if dataset in BRONZE_SCOPES else ""
            tables.delete(contract("bronze", table), window.predicate("ingest_date") + scope)
            rejected_in_window = f"{window.predicate('ingest_date')} AND dataset = '{dataset}'"
            tables.delete(contract("bronze", "rejected_files"), rejected_in_window)
        files = raw.ingested_files(store, settings.provider, dataset, window.start, window.end)
        # After a full refresh's deletes: what bronze still holds of this dataset (its own query).
        seen = loaded[dataset] if loaded is not None else _loaded_files_all(tables, {dataset: table}, window)[dataset]
        new = [f for f in files if f.file.path not in seen]
        target, rejected = contract("bronze", table), contract("bronze", "rejected_files")
        manifests = read_manifests(store, dataset, raw_layout.days(window.start, window.end))
        batches = bronze.ingested_batches(
            store, new, dataset, run_id, target, rejected, fingerprints=manifests.fingerprints()
        )
        result, landed = _load(tables, table, batches, window, _earliest(new))
        result.files_found, result.files_skipped = len(files), len(files) - len(new)
        manifest = manifests.records_per_file()
        result.manifest_mismatches = _manifest_mismatches(landed, manifest, [f.file.path for f in new])
        earlier = summary.tables.get(f"bronze.{table}")  # splits and dividends share one table
        summary.tables[f"bronze.{table}"] = earlier.plus(result) if earlier else result
    seen_quotes = loaded["quotes"] if loaded is not None else None
    summary.tables["bronze.quotes"] = _load_quotes(tables, store, window, run_id, full_refresh, seen_quotes)
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def _earliest(files: list) -> dt.datetime | None:
    """The earliest modification time of RAW files (their bronze rows' ``ingested_at``)."""
    return min((f.file.modified for f in files), default=None)


def _manifest_mismatches(landed: dict[str, int], manifest: dict[str, int], new_files: list[str]) -> list[dict]:
    """Files of this load whose bronze row count (as counted back after the load) differs from the
    manifest's `records`."""
    listed = [p for p in new_files if p in manifest]
    return [
        {"file": p, "manifest_records": manifest[p], "bronze_rows": landed.get(p, 0)}
        for p in listed
        if landed.get(p, 0) != manifest[p]
    ]


def _load_quotes(
    tables: Tables, store: RawStore, window: DateWindow, run_id: str, full_refresh: bool, seen: set[str] | None = None
) -> TableSummary:
    """Load the window's new capture files; `seen`: the files bronze holds, if read already."""
    target = contract("bronze", "quotes")
    if full_refresh:
        tables.delete(target, window.predicate("ingest_date"))
        tables.delete(contract("bronze", "rejected_files"), f"{window.predicate('ingest_date')} AND dataset = 'quotes'")
    files = raw.capture_files(store, window.start, window.end)
    seen = seen if seen is not None else _loaded_files_all(tables, {"quotes": "quotes"}, window)["quotes"]
    new = [f for f in files if f.file.path not in seen]
    batches = bronze.capture_batches(store, new, run_id, target, contract("bronze", "rejected_files"))
    result, _ = _load(tables, "quotes", batches, window, _earliest(new))
    result.files_found, result.files_skipped = len(files), len(files) - len(new)
    return result


# ---------------------------------------------------------------- BRONZE -> SILVER


def _sessions(spark: SparkSession, settings: Settings) -> DataFrame:
    cal = trading_calendar.calendar(settings.exchange_calendar)
    days = [ts.date() for ts in cal.sessions]
    return silver.sessions_frame(spark, days)


@dataclass(frozen=True)
class _TypingInputs:
    """What typing a silver table's bronze rows may need besides those rows."""

    current_bars: DataFrame
    stored_bars: DataFrame  # of current_bars, those the batch's bars read (_stored_bars)
    sessions: DataFrame
    today: dt.date
    has_bars: bool  # silver.daily_bars holds rows: only then can a batch bar be unchanged
    routed_bars: DataFrame | None = None  # the batch's bars once routed (SILVER_TABLES types them first)
    file_facts: bool = False  # every pending bronze bar carries its file's facts (_Pending.file_facts)

    @property
    def known_bars(self) -> DataFrame:
        """The bars silver holds once this batch is merged (silver.known_bars)."""
        if self.routed_bars is None:
            raise RuntimeError("corporate actions are typed against the batch's bars: route silver.daily_bars first")
        return silver.known_bars(self.current_bars, self.routed_bars)


@dataclass(frozen=True)
class SilverTable:
    """A silver table as the job drives it; its keys and compared columns come from its contract.

    A merged row is new (its key is not stored yet), revised (a later ingestion with different
    compared values; with a ``revision`` column that counter goes up) or unchanged. A table that
    compares no columns only ever inserts new keys.
    """

    name: str
    source: str  # the bronze table
    # bronze rows (the unchanged days left out), inputs -> typed rows with the rules' helper columns
    typed: Callable[[DataFrame, _TypingInputs], DataFrame]
    latest_first: Callable[[], list[Column]]  # the winner of a key comes first
    sample_keys: tuple[str, ...]  # columns that name a failing row in the DQ samples
    rows: Callable[[DataFrame, str, dt.datetime, str], DataFrame]  # winners -> the contract's shape
    quarantine_key: Callable[[], Column]
    quarantine_values: tuple[str, ...]  # columns kept, as received, with a quarantined row
    materialize: bool = False  # write the routed and the classified rows to scratch tables (large or costly batches)
    # keys whose rows are stored already and pass every rule (with ``_rows``): left out before typing
    unchanged: Callable[[DataFrame, _TypingInputs], DataFrame | None] | None = None
    received: tuple[str, ...] = ()  # values as received that only a quarantined row keeps (see _staged)
    # bronze rows, the unchanged keys -> the rows left to type (with ``unchanged``; see _stage_routed)
    left: Callable[[DataFrame, DataFrame], DataFrame] | None = None
    # staged flagged rows, inputs -> the failures of rules `typed` leaves to the staged rows (with
    # ``materialize``; see silver.previous_bar_failures)
    late: Callable[[DataFrame, _TypingInputs], DataFrame] | None = None

    def __post_init__(self) -> None:
        if self.late is not None and not self.materialize:
            raise ValueError(f"silver.{self.name}: rules left to the staged rows need materialize")

    @property
    def contract(self) -> Contract:
        return contract("silver", self.name)

    @property
    def qualified_name(self) -> str:
        return f"silver.{self.name}"


def _bar_order() -> list[Column]:
    return [*silver.latest_first(), F.col("record_index").desc()]


def _quote_order() -> list[Column]:
    """The highest sequence number first; the numbers count per Event Hubs partition, so equal ones
    (one quote sent on two partitions) go to the latest capture: a total order, one winner every run."""
    return [F.col("sequence_number").desc(), *silver.latest_first()]


def _key(*columns: str) -> Callable[[], Column]:
    """The record key of a quarantined row: its columns as text joined by ``|`` (a missing first one as '')."""
    return lambda: F.concat_ws(
        "|", F.coalesce(F.col(columns[0]), F.lit("")), *[F.col(c).cast("string") for c in columns[1:]]
    )


SILVER_TABLES: tuple[SilverTable, ...] = (
    # Each entry: the table and its bronze source; how rows are typed; how winners are shaped and
    # which row wins a key; how a failing row is named in the DQ samples and what a quarantined row keeps.
    SilverTable(
        "daily_bars", "daily_bars", materialize=True,
        unchanged=lambda rows, given: (
            silver.unchanged_bars(rows, given.stored_bars, given.sessions, given.today, file_facts=given.file_facts)
            if given.has_bars
            else None
        ),
        typed=lambda rows, given: silver.typed_daily_bars(
            rows, given.stored_bars, given.sessions, given.today, file_facts=given.file_facts, previous_bar=False
        ),
        late=lambda flagged, given: silver.previous_bar_failures(
            flagged, given.stored_bars, given.sessions, list(contract("bronze", "daily_bars").keys)
        ),
        left=silver.without_days,
        rows=silver.daily_bar_rows, latest_first=_bar_order,
        sample_keys=("symbol", "trade_date_raw", "source_file"), quarantine_key=silver.bar_key,
        quarantine_values=("symbol", "path_symbol", "trade_date_raw", *[f"{c}_raw" for c in silver.BAR_VALUES]),
        received=tuple(f"{c}_raw" for c in silver.BAR_VALUES),
    ),
    SilverTable(
        "securities", "security_overview",
        typed=lambda rows, given: silver.typed_securities(rows),
        rows=silver.security_rows, latest_first=silver.latest_first,
        sample_keys=("symbol", "as_of_date", "source_file"), quarantine_key=_key("symbol", "as_of_date"),
        quarantine_values=("symbol", "path_symbol", *silver.SECURITY_ATTRIBUTES),
    ),
    SilverTable(
        "quotes", "quotes",
        typed=lambda rows, given: silver.typed_quotes(rows, given.sessions),
        rows=silver.quote_rows, latest_first=_quote_order,
        sample_keys=("symbol", "quote_time", "source_file"), quarantine_key=_key("symbol", "sequence_number"),
        quarantine_values=("symbol", "body"),
    ),
    SilverTable(
        "corporate_actions", "corporate_actions", materialize=True,  # typing reads every known bar: once
        typed=lambda rows, given: silver.typed_corporate_actions(rows, given.known_bars),
        rows=silver.corporate_action_rows, latest_first=_bar_order,
        sample_keys=("symbol", "ex_date_raw", "source_file"),
        quarantine_key=_key("symbol", "action", "ex_date_raw", "record_index"),
        quarantine_values=("symbol", "path_symbol", "action", "ex_date_raw", "value_raw"),
        received=("value_raw",),
    ),
)  # fmt: skip


@dataclass
class _Routed:
    """A silver table's batch after the rules, before any write."""

    table: SilverTable
    rows_in: int
    winners: DataFrame
    superseded: int
    quarantined: DataFrame
    quarantined_count: int
    results: list
    unchanged: int = 0  # keys left out before typing (stored already, every rule passed): unchanged winners


@dataclass
class _Batch:
    """A silver table's batch routed (written to a scratch table when materialized), not yet counted."""

    table: SilverTable
    routed: DataFrame  # flagged rows with their route
    skipped: DataFrame | None  # keys left out as unchanged, with their row counts (``_rows``)


def _staged(table: SilverTable, flagged: DataFrame) -> DataFrame:
    """The columns of a table's flagged rows that are read after the rules: the rows' own columns
    and the rules' outcomes (:data:`quality.COLUMNS`), not the rules' helper columns; the values as
    received (`table.received`) only on quarantined rows, NULL on the others (winners keep their
    typed values). The backfill's bars went from 49 columns to 29, 8 of them NULL.
    """
    bad = F.col(quality.QUARANTINE_RULES_COLUMN) != ""
    kept = [c for c in flagged.columns if not c.startswith("_") or c in quality.COLUMNS]
    return flagged.select(*[F.when(bad, F.col(c)).alias(c) if c in table.received else F.col(c) for c in kept])


def _stage_routed(table: SilverTable, rows: DataFrame, given: _TypingInputs, tables: Tables) -> _Batch:
    """Type, flag and route a table's bronze rows; a materialized table's flagged rows are written
    to a scratch table, so the routing, the counts, the rule samples, the winners and the
    quarantined rows read it instead of each re-running the typing, rules and joins (worth it for
    the bars and for the corporate actions, which read every known bar; not for the few securities
    and quotes). The routing over the staged rows costs a scan and a join: it stays a plan."""
    skipped = table.unchanged(rows, given) if table.unchanged else None
    if skipped is not None:  # read to leave its days out and by the counts; staged, the check runs once
        skipped = tables.stage(skipped, f"silver_unchanged_{table.name}")
        # The rows left to type, staged too: the typing reads its input once per helper (Sail
        # shares no frame between branches), and each read scanned the batch's bronze and left the
        # unchanged days out again; a daily run on five years types 1 bronze bar in ~100.
        rows = tables.stage(table.left(rows, skipped), f"silver_left_{table.name}")
    flagged = quality.flag(table.typed(rows, given), table.qualified_name)
    keys, order, row_id = list(table.contract.keys), table.latest_first(), list(contract("bronze", table.source).keys)
    if not table.materialize:
        return _Batch(table, silver.route(flagged, keys, order, row_id), skipped)
    flagged = tables.stage(_staged(table, flagged), f"silver_flagged_{table.name}")
    superseded = tables.stage(silver.superseded_rows(flagged, keys, order, row_id), f"silver_superseded_{table.name}")
    # The rules left to the staged rows (few rows fail them): staged, and joined only when some did.
    late = tables.stage(table.late(flagged, given), f"silver_late_{table.name}") if table.late else None
    routed = silver.tag_routes(flagged, _if_any(superseded), row_id, _if_any(late))
    return _Batch(table, routed, skipped)


def _if_any(staged: DataFrame | None) -> DataFrame | None:
    """`staged` when it holds a row, else None: a tag joined only when some row carries it."""
    return staged if staged is not None and staged.limit(1).count() else None


def _route_counts(batch: _Batch) -> DataFrame:
    """One row: the table, its rows, winners, superseded, quarantined and each rule's failures."""
    route, t = F.col(silver.ROUTE), batch.table
    failures = quality.failure_counts(t.qualified_name)
    counted = batch.routed.agg(
        F.count(F.lit(1)).alias("rows_in"),
        F.sum(F.when(route == "winner", 1).otherwise(0)).alias("winners"),
        F.sum(F.when(route == "superseded", 1).otherwise(0)).alias("superseded"),
        F.sum(F.when(route == "quarantine", 1).otherwise(0)).alias("quarantined"),
        *failures,
    )
    shape = [F.col(c).cast("bigint").alias(c) for c in ("rows_in", "winners", "superseded", "quarantined")]
    fails = F.array(*[F.col(f"f{i}").cast("bigint") for i in range(len(failures))]).alias("failures")
    parts = [counted.select(F.lit(t.name).alias("table"), *shape, fails, F.lit(0).cast("bigint").alias("unchanged"))]
    if batch.skipped is not None:  # every skipped row passed every rule: no failures to add
        zero = F.array(*[F.lit(0).cast("bigint") for _ in failures]).alias("failures")
        parts.append(
            batch.skipped.agg(F.sum("_rows").alias("rows"), F.count(F.lit(1)).alias("keys")).select(
                F.lit(t.name).alias("table"), F.coalesce(F.col("rows"), F.lit(0)).cast("bigint").alias("rows_in"),
                F.col("keys").cast("bigint").alias("winners"),
                F.coalesce(F.col("rows") - F.col("keys"), F.lit(0)).cast("bigint").alias("superseded"),
                F.lit(0).cast("bigint").alias("quarantined"), zero, F.col("keys").cast("bigint").alias("unchanged"),
            )
        )  # fmt: skip
    combined = parts[0]
    for part in parts[1:]:
        combined = combined.unionByName(part)
    return combined


def _route_all(batches: list[_Batch]) -> list[_Routed]:
    """Count routes and rule failures of every table in one aggregation (one Spark action), then
    check that every row landed in exactly one route and take the failing rules' samples."""
    combined = _route_counts(batches[0])
    for batch in batches[1:]:
        combined = combined.unionByName(_route_counts(batch))
    totals: dict[str, list[int]] = {b.table.name: [0, 0, 0, 0, 0] for b in batches}
    failed: dict[str, list[int]] = {b.table.name: [0] * len(quality.RULES[b.table.qualified_name]) for b in batches}
    for row in combined.collect():
        sums = totals[row["table"]]
        for i, c in enumerate(("rows_in", "winners", "superseded", "quarantined", "unchanged")):
            sums[i] += int(row[c] or 0)
        failed[row["table"]] = [x + int(y or 0) for x, y in zip(failed[row["table"]], row["failures"], strict=True)]
    out, route = [], F.col(silver.ROUTE)
    for b in batches:
        t = b.table
        rows_in, n_win, n_sup, n_quar, unchanged = totals[t.name]
        if rows_in != n_win + n_sup + n_quar:
            raise ReconciliationError(
                f"{t.qualified_name}: rows in {rows_in} != valid {n_win + n_sup} + quarantined {n_quar}"
            )
        counts = {f"f{i}": n for i, n in enumerate(failed[t.name])}
        results = quality.summarize(b.routed, t.qualified_name, list(t.sample_keys), counts)
        winners = b.routed.filter(route == "winner").drop(silver.ROUTE)
        quarantined = b.routed.filter(route == "quarantine").drop(silver.ROUTE)
        out.append(_Routed(t, rows_in, winners, n_sup, quarantined, n_quar, results, unchanged))
    return out


def _merge(
    tables: Tables, routed: _Routed, current: DataFrame, stored: DataFrame, run_id: str, now: dt.datetime
) -> dict[str, int]:
    """Merge a routed batch's winners into its silver table (`current`; `stored`: those of its rows
    the winners' keys can match); new / revised / unchanged counts.

    Only revised rows go through MERGE and new ones are appended: a daily run's compact payloads
    repeat 99 known bars per symbol, and Sail's MERGE joins the whole table and rewrites the files
    it touches even for rows it only inserts. A materialized table's rows are classified once, into
    a scratch table, so the typing and routing plan is not computed again by the writes.
    """
    table, c = routed.table, routed.table.contract
    rows = table.rows(routed.winners, run_id, now, c.version)
    if current.limit(1).count() == 0:
        tables.append(rows, c)
        winners = routed.rows_in - routed.superseded - routed.quarantined_count
        return {"new": winners - routed.unchanged, "revised": 0, "unchanged": routed.unchanged}
    classified = silver.classify_changes(rows, stored, list(c.keys), c.compared)
    if table.materialize:
        classified = tables.stage(classified, f"silver_{table.name}")
    counts = {"new": 0, "revised": 0, "unchanged": routed.unchanged}
    for r in classified.groupBy("_change").count().collect():
        counts[r["_change"]] += int(r["count"])
    if counts["revised"]:
        condition = f"s.ingested_at > t.ingested_at AND {silver.values_differ(c.compared)}"
        revision = {"revision": "t.revision + 1"} if "revision" in c.column_names else None
        revised = classified.filter(F.col("_change") == "revised").drop("_change")
        tables.merge(revised, c, matched_condition=condition, update_set=revision)
    if counts["new"]:
        tables.append(classified.filter(F.col("_change") == "new").drop("_change"), c)
    return counts


def _table_summary(routed: _Routed, changes: dict[str, int], files: int) -> TableSummary:
    return TableSummary(
        rows_read=routed.rows_in,
        valid=routed.rows_in - routed.quarantined_count,
        superseded=routed.superseded,
        rows_quarantined=routed.quarantined_count,
        inserted=changes["new"],
        revised=changes["revised"],
        unchanged=changes["unchanged"],
        rows_written=changes["new"] + changes["revised"],
        files=files,
    )


SILVER_JOB = "bronze_to_silver"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class _Pending:
    """Bronze rows of files silver has not processed yet, and those files (pinned before any write)."""

    source_table: str
    rows: DataFrame
    files: list  # Rows of (source_file, ingest_date, _since, _without_facts)

    @property
    def file_facts(self) -> bool:
        """Every row carries its file's facts (bronze.daily_bars 1.1.0 on: the count of its key in
        the file, the file's last date): silver reads them instead of computing them
        (docs/transforms.md, ninth pass)."""
        return bool(self.files) and not any(f["_without_facts"] for f in self.files)


def _pending_all(tables: Tables, sources: list[str], window: DateWindow, full_refresh: bool) -> dict[str, _Pending]:
    """Per bronze table of `sources`, the window's rows whose source files silver has not processed yet.

    RAW holds whole histories, so a window of ingestion dates holds far more bars than are new to
    silver (every chunk of a backfill lands under the same day; a daily run's lookback still covers
    the backfill's files). Silver records each bronze file it merged in ``ops.processed_files`` and
    skips it later; with `full_refresh` every file of the window is processed again. The file lists
    are collected once, so the rows processed and the files recorded are the same set even if bronze
    grows meanwhile; every table's list in one query (one round trip to the engine, not one a table).

    The rows are also bounded by their earliest ``ingested_at``, as a literal: the window of a daily
    run holds the backfill's bronze too (677,500 rows on five years of history for 50,000 new), and
    only a literal lets the engine skip bronze files by their min/max statistics.
    """
    done = tables.read(contract("ops", "processed_files")).filter(F.col("job") == SILVER_JOB)
    rows, listed = {}, None
    for table in sources:
        rows[table] = tables.read(contract("bronze", table)).filter(window.predicate("ingest_date"))
        files = (
            rows[table]
            .groupBy("source_file", "ingest_date")
            .agg(
                F.min(F.unix_micros("ingested_at")).alias("_since"),
                _without_facts(table, rows[table]).alias("_without_facts"),
            )
        )
        if not full_refresh:
            processed = done.filter(F.col("source_table") == f"bronze.{table}").select("source_file")
            files = files.join(processed, "source_file", "left_anti")
        files = files.select(F.lit(table).alias("_table"), "source_file", "ingest_date", "_since", "_without_facts")
        listed = files if listed is None else listed.unionByName(files)
    found: dict[str, list] = {table: [] for table in sources}
    for r in listed.collect() if listed is not None else []:
        found[r["_table"]].append(r)
    return {table: _pinned(tables, f"bronze.{table}", rows[table], found[table]) for table in sources}


def _without_facts(table: str, rows: DataFrame) -> Column:
    """Per file: whether a row lacks ``rows_in_file_with_key`` or ``file_last_trade_date`` (loaded
    before bronze.daily_bars 1.1.0, or the table not yet appended to since: no such column; or a
    date the driver left to the engine: NULL). Taken with the file list, in the same query. Tables
    without the columns have nothing to read."""
    facts = [silver.IN_FILE, silver.LAST_IN_FILE]
    if not set(facts) <= set(contract("bronze", table).column_names):
        return F.lit(False)
    if not set(facts) <= set(rows.columns):  # the schema read with the table: no round trip
        return F.lit(True)
    return F.max(F.col(silver.IN_FILE).isNull() | F.col(silver.LAST_IN_FILE).isNull())


def _pinned(tables: Tables, source: str, rows: DataFrame, found: list) -> _Pending:
    """`rows` of the files `found` only, bounded by the files' earliest ``ingested_at``."""
    if not found:
        return _Pending(source, rows.limit(0), [])
    listed = tables.spark.createDataFrame([(r.source_file,) for r in found], "source_file string")
    pinned = rows.join(F.broadcast(listed), "source_file", "left_semi")
    if all(r["_since"] is not None for r in found):  # ingested_at is never NULL (contract); if it were, no bound
        since = _EPOCH + dt.timedelta(microseconds=min(r["_since"] for r in found))
        pinned = pinned.filter(F.col("ingested_at") >= F.lit(since))
    return _Pending(source, pinned, found)


def _processed(tables: Tables, sources: list[str]) -> DataFrame:
    state = tables.read(contract("ops", "processed_files"))
    return state.filter((F.col("job") == SILVER_JOB) & F.col("source_table").isin(sources))


def _record_processed(
    tables: Tables, pending: list[_Pending], run_id: str, now: dt.datetime, full_refresh: bool
) -> int:
    """Record the files merged by this run (those recorded already, after a full refresh, once).

    Without `full_refresh` the pending files are those not recorded (:func:`_pending_all`), so
    only a full refresh looks the recorded ones up (one query for every table).
    """
    c = contract("ops", "processed_files")
    listed = [p for p in pending if p.files]
    known: set[tuple[str, str]] = set()
    if full_refresh and listed:
        recorded = _processed(tables, [p.source_table for p in listed]).select("source_table", "source_file")
        known = {(r.source_table, r.source_file) for r in recorded.collect()}
    rows = [
        {
            "job": SILVER_JOB,
            "source_table": p.source_table,
            "source_file": f.source_file,
            "ingest_date": f.ingest_date,
            "load_id": run_id,
            "processed_at": now,
            "schema_version": c.version,
        }
        for p in listed
        for f in p.files
        if (p.source_table, f.source_file) not in known
    ]
    if rows:
        tables.append(bronze.to_frame(tables.spark, rows, c), c)
    return len(rows)


def _stored_bars(spark: SparkSession, current: DataFrame, bronze: DataFrame) -> DataFrame:
    """The stored bars a batch of bronze bars reads (silver.stored_bars), bounded from its first bar.

    Two small actions (each symbol's first batch bar; the symbols without a stored bar in the
    bound before it) make the bound a literal, which Delta file skipping needs: a bound joined in
    from the batch would still read the whole table.
    """
    firsts = silver.first_bars(bronze).collect()
    if not firsts:
        return current.filter(F.lit(False))
    since = min(r["_first"] for r in firsts) - silver.LOOKBACK
    listed = spark.createDataFrame([(r["symbol"], r["_first"]) for r in firsts], "symbol string, _first date")
    recent = silver.stored_bars(current, since, [])
    older = sorted(r["symbol"] for r in silver.without_recent_bar(recent, F.broadcast(listed)).collect())
    return silver.stored_bars(current, since, older)


@telemetry.job("bronze_to_silver")
def run_bronze_to_silver(
    spark: SparkSession,
    settings: Settings,
    start_date,
    end_date,
    run_id: str,
    full_refresh=False,
    today: dt.date | None = None,
) -> JobSummary:
    """Validate and merge into silver the bronze rows ingested in the window that silver has not merged yet.

    Rules are evaluated for every table first and recorded (PostgreSQL ``ops.dq_results`` when a
    DSN is configured); a failed `fail` rule stops the job before anything is written.
    """
    window, full_refresh, summary = _begin(SILVER_JOB, start_date, end_date, run_id, full_refresh)
    tables, _ = _context(spark, settings)
    started, now = time.monotonic(), _now()
    current = {t.name: tables.read(t.contract) for t in SILVER_TABLES}
    by_source = _pending_all(tables, [t.source for t in SILVER_TABLES], window, full_refresh)
    pending = {t.name: by_source[t.source] for t in SILVER_TABLES}
    bars, has_bars = current["daily_bars"], current["daily_bars"].limit(1).count() > 0
    inputs = _TypingInputs(
        current_bars=bars,
        stored_bars=_stored_bars(spark, bars, pending["daily_bars"].rows) if has_bars else bars,
        sessions=_sessions(spark, settings),
        today=today or dt.datetime.now(dt.UTC).date(),
        has_bars=has_bars,
        file_facts=pending["daily_bars"].file_facts,
    )
    stored = {**current, "daily_bars": inputs.stored_bars}
    batches = []
    for t in SILVER_TABLES:
        batches.append(_stage_routed(t, pending[t.name].rows, inputs, tables))
        if t.name == "daily_bars":  # the corporate actions are checked against the routed bars
            inputs = replace(inputs, routed_bars=batches[-1].routed)
    routed = _route_all(batches)

    results = [result for r in routed for result in r.results]
    recorded = quality.record(_dsn(settings), run_id, results)
    quality.raise_on_fail(results)

    q_contract = contract("silver", "quarantine")
    quarantine_parts = []
    for r in routed:
        changes = {"new": 0, "revised": 0, "unchanged": 0}
        if r.rows_in:
            changes = _merge(tables, r, current[r.table.name], stored[r.table.name], run_id, now)
            key, values = r.table.quarantine_key(), list(r.table.quarantine_values)
            parts = silver.quarantine_rows(r.quarantined, r.table.name, key, values, run_id, now, q_contract.version)
            quarantine_parts.append(parts)
        summary.tables[r.table.qualified_name] = _table_summary(r, changes, len(pending[r.table.name].files))

    if any(r.quarantined_count for r in routed):
        combined = quarantine_parts[0]
        for part in quarantine_parts[1:]:
            combined = combined.unionByName(part)
        tables.merge(combined, q_contract, update=False)

    summary.files_recorded = _record_processed(tables, list(pending.values()), run_id, now, full_refresh)
    summary.dq = quality.outcome(results, recorded)
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


# ---------------------------------------------------------------- SILVER -> GOLD

GOLD_JOB = "silver_to_gold"


# ops.job_state's row of a silver-to-gold attempt under way: set before its first gold write,
# cleared (NULL) with the watermarks after its last (see run_silver_to_gold). Not a watermark: the
# one record that gold rows may have been written after the last save. The rows' load_id cannot
# say it (job_state keeps one run per source; docs/transforms.md, "gold", says why not a ledger).
ATTEMPT_MARK = "gold.attempt_in_flight"


def _watermarks(tables: Tables) -> dict[str, object]:
    """Source table -> the watermark silver-to-gold saved for it (one read for every source)."""
    state = tables.read(contract("ops", "job_state")).filter(F.col("job") == GOLD_JOB)
    return {r.source_table: r.watermark for r in state.select("source_table", "watermark").collect()}


def _changed_since(df: DataFrame, mark, upto) -> DataFrame:
    if upto is None:
        return df.limit(0)
    df = df.filter(F.col("updated_at") <= F.lit(upto))
    return df if mark is None else df.filter(F.col("updated_at") > F.lit(mark))


@telemetry.job("silver_to_gold")
def run_silver_to_gold(
    spark: SparkSession, settings: Settings, start_date, end_date, run_id: str, full_refresh=False
) -> JobSummary:
    """Recompute the gold rows affected by silver changes since the last run (plus the window with full_refresh)."""
    window, full_refresh, summary = _begin(GOLD_JOB, start_date, end_date, run_id, full_refresh)
    tables, _ = _context(spark, settings)
    started, now = time.monotonic(), _now()
    marks: dict[str, object] = {}

    bars = tables.read(contract("silver", "daily_bars"))
    upto = bars.agg(F.max("updated_at").alias("m")).first().m
    saved = _watermarks(tables)
    # A lake that never landed SPLITS or DIVIDENDS has no such table (Sail then fails a union of
    # the empty stand-in with Delta frames on their differing field metadata).
    actions = tables.existing(contract("silver", "corporate_actions"))
    actions_upto = None if actions is None else actions.agg(F.max("updated_at").alias("m")).first().m
    day_events = gold.events(bars, actions if actions_upto is not None else None)
    changed = _changed_since(bars, saved.get("silver.daily_bars"), upto)
    # Nothing newer than the watermarks: no plan to compute (its query scans silver and gold).
    moved = full_refresh or (upto is not None and upto != saved.get("silver.daily_bars"))
    moved = moved or (actions_upto is not None and actions_upto != saved.get("silver.corporate_actions"))
    stored_daily = tables.existing(contract("gold", "fct_daily_prices"))
    # An attempt that died after writing gold rows but before its watermarks left rows equal to
    # the changed bars while its monthly rows and gold changes are missing: then nothing is skipped.
    interrupted = saved.get(ATTEMPT_MARK) is not None
    first_bar = changed.agg(F.min("trade_date")).first()[0] if moved and stored_daily is not None else None
    if first_bar is not None and not interrupted:
        # A daily run's compact series revise the adjusted close of every symbol with a recent event;
        # recomputing from those bars would rewrite (MERGE: the whole table) the values gold has.
        stored_factors = tables.read(contract("gold", "adjustment_factors"))
        # Only the events from the first changed bar on can match: those of the bars and actions from
        # it (a literal bound: the scans skip the history; the event fields of every bar are 0.1 s).
        since = F.lit(first_bar)
        recent_actions = None if actions_upto is None else actions.filter(F.col("ex_date") >= since)
        recent_events = gold.events(bars.filter(F.col("trade_date") >= since), recent_actions)
        unread = gold.unread_revisions(changed, stored_daily, stored_factors, recent_events, first_bar)
        changed = changed.join(unread, ["symbol", "trade_date"], "left_anti")
    changed = changed.select("symbol", "trade_date")
    if full_refresh:
        changed = changed.unionByName(bars.filter(window.predicate("trade_date")).select("symbol", "trade_date"))
    if actions_upto is not None:
        changed_actions = _changed_since(actions, saved.get("silver.corporate_actions"), actions_upto)
        changed = changed.unionByName(changed_actions.select("symbol", F.col("ex_date").alias("trade_date")))
    stored = tables.read(contract("gold", "fct_daily_prices"))
    # Each symbol's first change, collected (a row per symbol): its earliest date bounds, as a
    # literal, what the plan joins of silver and gold (see gold.recompute_plan).
    first = changed.groupBy("symbol").agg(F.min("trade_date").alias("trade_date")).collect() if moved else []
    since = min(r.trade_date for r in first) if first else None
    plan = []
    if first:
        firsts = spark.createDataFrame([(r.symbol, r.trade_date) for r in first], "symbol string, trade_date date")
        # The stored factors' events count as events too: one the data no longer has (a bar-borne
        # split the provider withdrew) must recompute its symbol's factors, or they keep it.
        stored_events = tables.read(contract("gold", "adjustment_factors")).select("symbol", "ex_date")
        known_events = day_events.select("symbol", "ex_date").unionByName(stored_events)
        plan = gold.recompute_plan(firsts, bars, stored, known_events, since).collect()
    summary.tables["gold.fct_daily_prices"] = TableSummary(symbols=len(plan))
    summary.tables["gold.fct_monthly_performance"] = TableSummary(symbols=len(plan))
    if plan:
        _save_watermarks(tables, {ATTEMPT_MARK: upto or now}, run_id, now)
        marks[ATTEMPT_MARK] = None  # cleared with the watermarks, once every gold write is done
        event_actions = actions if actions_upto is not None else None
        changed_gold = _write_prices(tables, bars, plan, run_id, summary, day_events, event_actions, full_refresh)
        _record_gold_changes(tables, changed_gold, run_id, now)
        _write_dim_date(tables, bars, settings, summary)
    if upto is not None:
        marks["silver.daily_bars"] = upto
    if actions_upto is not None:
        marks["silver.corporate_actions"] = actions_upto

    secs = tables.read(contract("silver", "securities"))
    sec_upto = secs.agg(F.max("updated_at").alias("m")).first().m
    sec_changed = _changed_since(secs, saved.get("silver.securities"), sec_upto)
    symbols = [r.symbol for r in sec_changed.select("symbol").distinct().collect()]
    summary.tables["gold.dim_security"] = TableSummary(symbols=len(symbols))
    if symbols or (full_refresh and sec_upto is not None):
        dim_contract = contract("gold", "dim_security")
        dim = gold.dim_security(secs, run_id, dim_contract.version)
        tables.overwrite(dim, dim_contract)
        summary.tables["gold.dim_security"].rows_written = dim.count()
    if sec_upto is not None:
        marks["silver.securities"] = sec_upto

    quotes = tables.read(contract("silver", "quotes"))
    q_upto = quotes.agg(F.max("updated_at").alias("m")).first().m
    q_changed = _changed_since(quotes, saved.get("silver.quotes"), q_upto).limit(1).count()
    summary.tables["gold.latest_quotes"] = TableSummary()
    if q_changed or (full_refresh and q_upto is not None):
        lq_contract = contract("gold", "latest_quotes")
        latest = gold.latest_quotes(quotes, run_id, lq_contract.version)
        differ = silver.values_differ(gold.QUOTE_VALUES)
        tables.merge(latest, lq_contract, matched_condition=f"s.quote_time >= t.quote_time AND {differ}")
        summary.tables["gold.latest_quotes"].rows_written = latest.count()
    if q_upto is not None:
        marks["silver.quotes"] = q_upto

    _save_watermarks(tables, marks, run_id, now)
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def _write_prices(
    tables: Tables,
    bars: DataFrame,
    plan: list,
    run_id: str,
    summary: JobSummary,
    day_events: DataFrame,
    actions: DataFrame | None,
    full_refresh: bool,
) -> dict[str, DataFrame]:
    """Recompute the adjustment factors, daily and monthly rows of the planned symbols; returns per
    gold table the rows whose served values changed.

    The factors are staged first: a non-positive factor fails the job there, before any gold write.
    Rows before a symbol's start date keep their forward-frame values, but when its current factor
    changed (a new or revised event) serving shows all of them rescaled: every stored row of the
    symbol counts as changed for serving, while gold writes only the recomputed ones.

    Args:
        plan: rows of :func:`spark_jobs.gold.recompute_plan`, collected.
        actions: silver.corporate_actions (None when it holds nothing), which `day_events` are of.
        full_refresh: recompute every event factor of the symbols whose factors change.
    """
    spark = tables.spark
    daily_contract = contract("gold", "fct_daily_prices")
    monthly_contract = contract("gold", "fct_monthly_performance")
    starts = spark.createDataFrame(
        [(r.symbol, r.start_date, bool(r.full), r.prev_peak, r.lookback_from) for r in plan],
        "symbol string, start_date date, full boolean, prev_peak double, lookback_from date",
    )
    symbols = F.broadcast(starts.select("symbol"))
    factors_contract = contract("gold", "adjustment_factors")
    symbol_bars = bars.join(symbols, "symbol", "left_semi")
    # Only the symbols whose factors may change are recomputed; the others' stored factors adjust
    # their recomputed rows (a daily run: a handful of symbols, not every bar of every symbol).
    planned = [r for r in plan if gold.factors_change(r.start_date, r.stored_last, r.last_event)]
    refactored = [r.symbol for r in planned]
    fresh = F.broadcast(spark.createDataFrame([(s,) for s in refactored], "symbol string"))
    factors = _recomputed_factors(tables, bars, actions, day_events, planned, full_refresh).select(
        "*", F.lit(run_id).alias("load_id"), F.lit(factors_contract.version).alias("schema_version")
    )
    factors = tables.stage(factors, "adjustment_factors")
    rebased: list[str] = []
    if refactored:
        stored_factors = tables.read(factors_contract).join(fresh, "symbol", "left_semi")
        before = gold.current_factors(stored_factors)
        after = gold.current_factors(factors).withColumnRenamed("current_factor", "_after")
        moved = F.coalesce(F.col("current_factor"), F.lit(1.0)) != F.coalesce(F.col("_after"), F.lit(1.0))
        rebased = sorted(
            r.symbol for r in before.join(after, "symbol", "full").filter(moved).select("symbol").collect()
        )
        # `factors` holds every event of the recomputed symbols: a stored one it lacks was withdrawn.
        withdrawn = stored_factors.select("symbol", "ex_date").join(
            factors.select("symbol", "ex_date"), ["symbol", "ex_date"], "left_anti"
        )
        _delete_events(tables, factors_contract, withdrawn.collect())
        _write_changed(tables, factors, factors_contract)
    written = factors.count() if refactored else 0
    summary.tables["gold.adjustment_factors"] = TableSummary(rows_written=written, symbols=len(rebased))
    stored_factors = tables.existing(factors_contract)
    if len(refactored) < len(plan) and stored_factors is not None:
        kept = stored_factors.join(symbols, "symbol", "left_semi").join(fresh, "symbol", "left_anti")
        factors = kept.unionByName(factors)

    # A plan of full recomputes (a backfill) needs no lookback; one whose rows are all new keys (a
    # daily run's new sessions) is appended as computed, without staging or comparing it.
    # The literal bound lets the scan skip what no lookback reaches (the join bounds each symbol).
    earliest = min(r.start_date for r in plan)
    reached = bars.filter(F.col("trade_date") >= F.lit(min(r.lookback_from for r in plan)))
    span = symbol_bars if all(r.full for r in plan) else gold.span_for(reached, starts)
    daily = gold.daily_prices(span, starts, run_id, daily_contract.version, factors)
    rows = sum(r.rows for r in plan)
    if all(r.stored_last is None or r.start_date > r.stored_last for r in plan):
        if rows:
            tables.append(daily, daily_contract)
    else:
        _write_changed(tables, tables.stage(daily, "fct_daily_prices"), daily_contract)
    summary.tables["gold.fct_daily_prices"].rows_written = rows
    summary.tables["gold.fct_daily_prices"].full_symbols = sum(1 for r in plan if r.full)

    stored = (
        tables.read(daily_contract)
        .filter(F.col("trade_date") >= F.lit(dt.date(earliest.year, earliest.month, 1)))
        .join(F.broadcast(starts.select("symbol", "start_date")), "symbol", "inner")
        .filter(F.col("trade_date") >= F.trunc("start_date", "month"))
    )
    stored_monthly = tables.existing(monthly_contract)
    previous = None if stored_monthly is None else gold.previous_month_closes(stored_monthly, starts)
    monthly = gold.monthly_performance(stored.drop("start_date"), starts, run_id, monthly_contract.version, previous)
    monthly = tables.stage(monthly, "fct_monthly_performance")
    _write_changed(tables, monthly, monthly_contract)
    summary.tables["gold.fct_monthly_performance"].rows_written = monthly.count()
    # The recomputed daily rows of a symbol are its bars from the start date: their span is planned.
    spans = [(r.symbol, day) for r in plan if r.rows for day in (r.first_row, r.last_row)]
    changed = {"fct_daily_prices": spark.createDataFrame(spans, "symbol string, trade_date date"),
               "fct_monthly_performance": monthly}  # fmt: skip
    if rebased:
        moved_symbols = F.broadcast(spark.createDataFrame([(s,) for s in rebased], "symbol string"))
        for name, c in (("fct_daily_prices", daily_contract), ("fct_monthly_performance", monthly_contract)):
            rescaled = tables.read(c).join(moved_symbols, "symbol", "left_semi").select("symbol", CHANGE_TRACKED[name])
            changed[name] = changed[name].select("symbol", CHANGE_TRACKED[name]).unionByName(rescaled)
    return changed


def _recomputed_factors(
    tables: Tables,
    bars: DataFrame,
    actions: DataFrame | None,
    day_events: DataFrame,
    planned: list,
    full_refresh: bool,
) -> DataFrame:
    """gold.adjustment_factors rows of the `planned` symbols (plan rows), without load_id.

    The event factors of a symbol are computed from :func:`spark_jobs.gold.factors_from` on, from
    the bars read back PREVIOUS_CLOSE_DAYS before it (a literal bound skips the older files); its
    earlier events keep their stored event factors, and the cumulative products run over both.
    A daily run so reads a month of each symbol with a new event, not its whole history. A full
    refresh, a symbol recomputed from its first bar or one gold does not hold recompute every
    event: a full refresh is what repairs the stored factors.
    """
    spark = tables.spark
    stored = tables.existing(contract("gold", "adjustment_factors"))
    incremental = not full_refresh and stored is not None
    starts = {
        r.symbol: gold.factors_from(r.start_date, r.stored_last, r.full) if incremental else None for r in planned
    }
    whole = [(s,) for s, day in starts.items() if day is None]
    recent = [(s, day) for s, day in starts.items() if day is not None]
    parts = []
    if whole:
        symbols = F.broadcast(spark.createDataFrame(whole, "symbol string"))
        parts.append(gold.event_factors(bars.join(symbols, "symbol", "left_semi"), day_events))
    if recent:
        bound = min(day for _, day in recent) - dt.timedelta(days=gold.PREVIOUS_CLOSE_DAYS)
        froms = F.broadcast(spark.createDataFrame(recent, "symbol string, factors_from date"))
        near = (
            bars.filter(F.col("trade_date") >= F.lit(bound))
            .join(froms, "symbol", "inner")
            .filter(F.col("trade_date") >= F.date_sub("factors_from", gold.PREVIOUS_CLOSE_DAYS))
            .drop("factors_from")
        )
        near_actions = None if actions is None else actions.filter(F.col("ex_date") >= F.lit(bound))
        new_events = (
            gold.events(near, near_actions)
            .join(froms, "symbol", "inner")
            .filter(F.col("ex_date") >= F.col("factors_from"))
            .drop("factors_from")
        )
        earlier = stored.join(froms, "symbol", "inner").filter(F.col("ex_date") < F.col("factors_from"))
        parts += [gold.event_factors(near, new_events), earlier.select(*gold.EVENT_COLUMNS)]
    per_event = parts[0] if parts else gold.event_factors(bars.limit(0), day_events.limit(0))
    for part in parts[1:]:
        per_event = per_event.unionByName(part)
    return gold.cumulative_factors(per_event)


def _delete_events(tables: Tables, c: Contract, events: list) -> None:
    """Delete the (symbol, ex_date) rows `events` from the table of contract `c`.

    The predicate is SQL text: every symbol is checked against the ticker pattern first (silver
    admits no other), so no value can end the literal it is written in.
    """
    if not events:
        return
    odd = [e.symbol for e in events if not inputs.is_symbol(e.symbol)]
    if odd:
        raise ValueError(f"{c.qualified_name}: cannot delete events of symbols {odd!r}: not tickers")
    tables.delete(c, " OR ".join(f"(symbol = '{e.symbol}' AND ex_date = DATE'{e.ex_date.isoformat()}')"
                                 for e in events))  # fmt: skip


def _write_changed(tables: Tables, rows: DataFrame, c: Contract) -> None:
    """Write recomputed gold rows: append the new keys, merge only the stored rows whose compared
    values changed, leave the others as stored.

    What MERGE with a condition on the compared values leaves in the table, but Sail 0.7.2's MERGE
    joins and rewrites the whole table whatever the source: a recompute that reproduces most of
    what is stored then writes only what differs. A table with a ``file_range`` is compared in the
    ranges `rows` fall in only (its keys hold the range's date), and its changed rows rewrite
    those ranges (:meth:`Tables.merge`). `rows` is read several times: pass a staged frame.
    """
    stored = tables.existing(c)
    if stored is None:
        tables.append(rows, c)
        return
    stored = tables.in_ranges_of(stored, rows, c)
    keys = list(c.keys)
    held = stored.select(*keys, *[F.col(v).alias(f"_stored_{v}") for v in c.compared])
    same = F.lit(True)
    for v in c.compared:
        same = same & F.col(v).eqNullSafe(F.col(f"_stored_{v}"))
    revised = rows.join(held, keys, "inner").filter(~same).select(*rows.columns)
    new = rows.join(stored.select(*keys), keys, "left_anti")
    if revised.limit(1).count():
        tables.merge(revised, c, matched_condition=silver.values_differ(c.compared))
    if new.limit(1).count():
        tables.append(new, c)


# gold table -> the date column its changed ranges are spans of
CHANGE_TRACKED = {"fct_daily_prices": "trade_date", "fct_monthly_performance": "month"}


def _record_gold_changes(tables: Tables, written: dict[str, DataFrame], run_id: str, now: dt.datetime) -> None:
    """Record per gold table and symbol the date span this run recomputed, for serving to reload.

    Written after gold and before the watermarks: a run killed in between recomputes the same
    symbols again and records them then. A rerun of the same run id records its spans afresh,
    unserved.
    """
    c = contract("ops", "gold_changes")
    parts = [
        gold.changed_ranges(rows, CHANGE_TRACKED[name]).select(
            F.lit(run_id).alias("gold_run_id"),
            F.lit(name).alias("table_name"),
            "symbol",
            "range_start",
            "range_end",
            F.lit(now).alias("recorded_at"),
            F.lit(None).cast("string").alias("served_by"),
            F.lit(None).cast("timestamp").alias("served_at"),
            F.lit(c.version).alias("schema_version"),
        )
        for name, rows in written.items()
    ]
    changes = parts[0]
    for part in parts[1:]:
        changes = changes.unionByName(part)
    # A new run id only adds keys: appended (Sail's MERGE would rewrite every recorded run).
    rerun = tables.exists(c) and tables.read(c).filter(F.col("gold_run_id") == run_id).limit(1).count()
    if rerun:
        tables.merge(changes, c)
    else:
        tables.append(changes, c)


def _write_dim_date(tables: Tables, bars: DataFrame, settings: Settings, summary: JobSummary) -> None:
    dim_contract = contract("gold", "dim_date")
    # The bars' bounds and what dim_date holds, in one query (one round trip, not two).
    stored = tables.read(dim_contract).agg(
        F.min("trade_date").alias("dim_lo"), F.max("trade_date").alias("dim_hi"), F.count(F.lit(1)).alias("dim_n")
    )
    both = bars.agg(F.min("trade_date").alias("lo"), F.max("trade_date").alias("hi")).crossJoin(stored).first()
    cal = trading_calendar.calendar(settings.exchange_calendar)
    days = trading_calendar.sessions(both.lo, both.hi, settings.exchange_calendar)
    if days and (both.dim_lo, both.dim_hi, both.dim_n) == (days[0], days[-1], len(days)):
        summary.tables["gold.dim_date"] = TableSummary()
        return
    import pandas as pd

    first, last = pd.Timestamp(days[0]), pd.Timestamp(days[-1])
    previous = cal.previous_session(first).date() if first > cal.first_session else None
    following = cal.next_session(last).date() if last < cal.last_session else None
    rows = gold.dim_date_rows(days, previous, following)
    tables.overwrite(bronze.to_frame(tables.spark, rows, dim_contract), dim_contract)
    summary.tables["gold.dim_date"] = TableSummary(rows_written=len(rows))


def _save_watermarks(tables: Tables, marks: dict, run_id: str, now: dt.datetime) -> None:
    if not marks:
        return
    state = contract("ops", "job_state")
    current = {r.source_table: r.watermark for r in tables.read(state).filter(F.col("job") == GOLD_JOB).collect()}
    changed = {k: v for k, v in marks.items() if current.get(k) != v}
    if not changed:
        return
    rows = [
        {
            "job": GOLD_JOB,
            "source_table": k,
            "watermark": v,
            "load_id": run_id,
            "updated_at": now,
            "schema_version": state.version,
        }
        for k, v in changed.items()
    ]
    tables.merge(bronze.to_frame(tables.spark, rows, state), state)


# ---------------------------------------------------------------- maintenance

# The scratch tables the jobs stage (Tables.stage), which maintenance vacuums: the names given at
# the stage calls above (a test checks that a pipeline run stages no other).
_SILVER_STAGES = ("unchanged_", "left_", "flagged_", "superseded_", "late_", "")
STAGED: tuple[str, ...] = (
    *(f"silver_{kind}{t.name}" for t in SILVER_TABLES for kind in _SILVER_STAGES),
    "adjustment_factors", "fct_daily_prices", "fct_monthly_performance",
)  # fmt: skip

# The tables maintenance compacts and vacuums, in this order.
MAINTAINED: tuple[tuple[str, str], ...] = tuple(
    (layer, name)
    for layer, names in (
        ("bronze", ("daily_bars", "security_overview", "quotes", "rejected_files", "corporate_actions")),
        ("silver", ("daily_bars", "securities", "quotes", "quarantine", "corporate_actions")),
        (
            "gold",
            (
                "dim_security",
                "dim_date",
                "fct_daily_prices",
                "fct_monthly_performance",
                "latest_quotes",
                "adjustment_factors",
            ),
        ),
        ("ops", ("processed_files", "gold_changes")),
    )
    for name in names
)


@telemetry.job("maintenance")
def run_maintenance(
    spark: SparkSession,
    settings: Settings,
    start_date,
    end_date,
    run_id: str,
    full_refresh=False,
    vacuum_retention_hours: int = 168,
) -> JobSummary:
    """Compact small files and vacuum old ones on every table; report versions and row counts.

    First the gold changes served more than ``serving.SERVED_CHANGES_RETENTION`` ago are deleted:
    serving marks what it loaded with a MERGE over that table, so the table must not keep every
    change ever served (reported as the table's ``rows_deleted``).
    """
    window = DateWindow.parse(start_date, end_date)
    tables, _ = _context(spark, settings)
    started = time.monotonic()
    summary = JobSummary(job="maintenance", run_id=run_id, start_date=window.start, end_date=window.end)
    pruned = serving.prune_served_changes(tables, _now() - serving.SERVED_CHANGES_RETENTION)
    for layer, name in MAINTAINED:
        c = contract(layer, name)
        if not tables.exists(c):
            continue
        done = tables.optimize(c) | tables.vacuum(c, vacuum_retention_hours)
        summary.tables[c.qualified_name] = TableSummary(**done, rows=tables.read(c).count())
    for name in STAGED:  # every run's overwrite of a scratch table leaves the previous files behind
        if tables.staged(name):
            done = tables.vacuum_path(tables.staging_path(name), vacuum_retention_hours)
            summary.tables[f"ops._staging.{name}"] = TableSummary(**done)
    if pruned:
        summary.tables["ops.gold_changes"].rows_deleted = pruned
    summary.seconds = round(time.monotonic() - started, 3)
    return summary
