"""GOLD -> SERVING: load a window of the gold Delta tables into the PostgreSQL marts, atomically.

First, for every mart table of a load, compare the gold schema with the mart table and fail
naming the mismatched columns, before anything is written. Then one transaction replaces every
table's window; per table it:

1. deletes exactly the window (and the changed ranges, below);
2. reads the gold window through Arrow (``DataFrame.toArrow()`` over Spark Connect), in key order,
   and streams it with binary COPY (:mod:`spark_jobs.copy_binary`, whole batches, no per-row
   Python) straight into the mart table, hashing the bytes sent: that md5 is the window's checksum;
3. checks the mart's content over what it replaced against that checksum, and marks the audit row
   succeeded with rows and checksum.

The rows are written once (a staging table written first, then ``INSERT ... SELECT``, wrote them
twice); the transaction's locks block other loads and writers, never readers. A reader on another
connection sees the old rows or the new rows of every table, never a mix, and never one table new
and another old. A failure anywhere, mid-COPY included, leaves the previous rows and an audit row
with status ``failed``; a loader killed outright leaves a ``running`` row whose advisory lock is
gone, which the next load (or :func:`recover_abandoned`) marks failed. Transient connection errors
retry the whole attempt with backoff; that is safe because an attempt replaces its window, it
never appends.

Windows per table: ``daily_prices`` rows with ``trade_date`` in [start, end]; ``monthly_performance``
every month the window touches; ``dim_security`` (SCD2 history changes anywhere) and
``latest_quotes`` (one row per symbol) are replaced whole by every load. ``full_refresh`` replaces
every table whole.

Prices are served in the current (back-adjusted) frame: gold stores price levels in the forward
frame, and each read multiplies them by the symbol's current factor from ``gold.adjustment_factors``
(:func:`served`, see :mod:`spark_jobs.gold`); the loaded bytes, their checksum and the mart's hold
the served values.

Gold also changes outside the window: silver-to-gold recomputes a symbol from its first revised or
late bar, or new or revised corporate action, on; and a new or revised event changes the current
factor, so every earlier row of its symbol is served rescaled. It records each (table, symbol,
date range) whose served values changed in the Delta table ``ops.gold_changes``;
:func:`run_gold_to_postgres` loads those ranges in the same swap as the window and marks them
served only after the swap committed (a failed load leaves them pending for the next one). Inside
the swap, before commit, the mart's content over everything replaced is checked against what was
read from gold (:func:`mart_checksum`): a row the mart lost or changed fails the load and rolls it
back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import failpoints, ops_store, telemetry
from lakehouse.alert_rules import MART_FRESHNESS_EVENT, MART_FRESHNESS_TABLE
from lakehouse.job_summary import JobSummary, TableSummary
from lakehouse.lake import Lake
from lakehouse.ops_store import LOAD_AUDIT
from lakehouse.settings import Settings
from spark_jobs import contracts, copy_binary, gold, migrations, pg
from spark_jobs.job_params import DateWindow, parse_flag
from spark_jobs.tables import Tables

log = logging.getLogger(__name__)

MART_SCHEMA = "mart"
STAGING_SCHEMA = "staging"  # staging.<table>__<audit_id> of loaders before issue 20; dropped if left
# First key of the two-key advisory locks a live loader holds on its audit rows ('load').
AUDIT_LOCK_CLASS = int.from_bytes(b"load", "big")
COPY_BATCH_ROWS = 65_536
# Windows longer than this are read in READ_CHUNKS ranges of the first key, so reading chunk k+1
# from Spark overlaps the COPY of chunk k (one day of 500 symbols is one small chunk).
CHUNKED_WINDOW_DAYS = 62
READ_CHUNKS = 4
# Symbol ranges replaced besides the window longer than this in all (days summed over the ranges;
# about 62 days of 500 symbols) chunk the read too: a split of many symbols reloads their histories,
# while a daily load's few rebased symbols (2 x 5 years) are one small read.
CHUNKED_RANGE_DAYS = 31_000
# A load that inserted more rows than this (autovacuum's analyze threshold: 50 + 10% of the table
# before the load) checks them through the primary-key index, never a sort (see _index_order).
INDEX_ORDER_MIN_ROWS = 50
INDEX_ORDER_SHARE = 0.1


class ServingError(RuntimeError):
    """A load that could not run; the message says which table and why."""


class SchemaMismatchError(ServingError):
    """Gold and mart disagree on columns; raised before anything is written."""


class GoldTableMissing(ServingError):
    """A required gold table does not exist at its lake location."""


class MartMismatchError(ServingError):
    """The mart's rows over what a load replaced differ from the gold rows it read."""


@dataclass(frozen=True)
class MartTable:
    """A mart table, the gold table it mirrors, and how a window selects its rows."""

    name: str
    gold: str
    keys: tuple[str, ...]
    window_column: str | None = None  # None: replaced whole by every load
    monthly: bool = False  # the window column holds first days of months
    required: bool = True  # a missing gold table is an error (else the table is skipped)

    @property
    def qualified(self) -> str:
        return f"{MART_SCHEMA}.{self.name}"

    def bounds(self, window: DateWindow, full_refresh: bool) -> tuple[dt.date, dt.date] | None:
        """Inclusive bounds of the replaced rows on ``window_column``; None means the whole table."""
        if full_refresh or self.window_column is None:
            return None
        if self.monthly:
            return window.start.replace(day=1), window.end.replace(day=1)
        return window.start, window.end

    def symbol_ranges(
        self, ranges: Iterable[SymbolRange], bounds: tuple[dt.date, dt.date] | None
    ) -> tuple[SymbolRange, ...]:
        """What a load replaces besides the window `bounds`: per symbol the span of the given ranges
        on ``window_column``, less the window, sorted; () when the load replaces the table whole.

        The result is disjoint from the window and within itself (at most one range before the
        window and one after it per symbol), so the load reads, deletes and checks the window and
        the ranges as separate sets without counting a row twice; a range inside the window adds
        nothing (a daily load's 500 one-day ranges on its own day are all inside it).
        """
        if self.window_column is None or bounds is None:
            return ()
        spans: dict[str, tuple[dt.date, dt.date]] = {}
        for symbol, lo, hi in ranges:
            if self.monthly:
                lo, hi = lo.replace(day=1), hi.replace(day=1)
            old = spans.get(symbol)
            spans[symbol] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)
        start, end = bounds
        before = (start - dt.timedelta(days=1)).replace(day=1) if self.monthly else start - dt.timedelta(days=1)
        after = _next_month(end) if self.monthly else end + dt.timedelta(days=1)
        out: list[SymbolRange] = []
        for symbol, (lo, hi) in sorted(spans.items()):
            if lo < start:
                out.append((symbol, lo, min(hi, before)))
            if hi > end:
                out.append((symbol, max(lo, after), hi))
        return tuple(out)


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


# (symbol, first date, last date) of gold rows a load replaces besides its window
SymbolRange = tuple[str, dt.date, dt.date]


MART_TABLES: dict[str, MartTable] = {
    t.name: t
    for t in (
        MartTable("dim_security", "dim_security", ("symbol", "valid_from")),
        MartTable("daily_prices", "fct_daily_prices", ("symbol", "trade_date"), "trade_date"),
        MartTable("monthly_performance", "fct_monthly_performance", ("symbol", "month"), "month", monthly=True),
        MartTable("latest_quotes", "latest_quotes", ("symbol",), required=False),
    )
}


@dataclass
class TableLoad:
    """Outcome of loading one table (in the job summary as a :class:`TableSummary`)."""

    table: str
    status: str
    window_start: str | None = None
    window_end: str | None = None
    rows_loaded: int | None = None
    rows_deleted: int | None = None
    checksum: str | None = None
    audit_id: int | None = None
    reason: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # delete, read (in copy), copy, verify, swap (all)
    ranges: tuple[SymbolRange, ...] = ()  # replaced besides the window


@dataclass
class _Planned:
    table: MartTable
    columns: list[str]
    data: GoldRead
    bounds: tuple[dt.date, dt.date] | None
    ranges: tuple[SymbolRange, ...] = ()
    checksum: str | None = None
    audit_id: int | None = None
    result: TableLoad | None = field(default=None)

    @property
    def target(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(MART_SCHEMA), sql.Identifier(self.table.name))


# --- schema comparison ------------------------------------------------------------------------


def mart_columns(conn: psycopg.Connection, table: MartTable) -> list[tuple[str, str]]:
    """(name, PostgreSQL type) of the mart table's columns in table order; [] if it does not exist."""
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (MART_SCHEMA, table.name),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def schema_mismatches(gold: Sequence[tuple[str, str]], mart: Sequence[tuple[str, str]]) -> list[str]:
    """Differences between gold (name, Spark type) and mart (name, PostgreSQL type) columns."""

    def type_problem(name: str, spark_type: str, pg_type: str) -> str | None:
        needed = contracts.postgres_type(spark_type)
        if needed == pg_type:
            return None
        return f"column {name!r}: gold {spark_type} needs {needed or 'no PostgreSQL mapping'}, mart has {pg_type}"

    return contracts.schema_differences(
        dict(gold),
        dict(mart),
        only_actual="columns only in gold:",
        only_expected="columns only in the mart:",
        type_problem=type_problem,
    )


def check_schema(conn: psycopg.Connection, table: MartTable, gold_schema: Any) -> list[str]:
    """Mart column names in table order, or raise SchemaMismatchError naming the columns."""
    mart = mart_columns(conn, table)
    if not mart:
        raise SchemaMismatchError(
            f"{table.qualified} does not exist; apply the migrations (spark_jobs.migrations.apply)"
        )
    gold = [(f.name, f.dataType.simpleString()) for f in gold_schema.fields]
    problems = schema_mismatches(gold, mart)
    if problems:
        raise SchemaMismatchError(f"gold.{table.gold} does not match {table.qualified}: " + "; ".join(problems))
    return [name for name, _ in mart]


# --- reading gold ----------------------------------------------------------------------------


def read_gold(spark: SparkSession, lake: Lake, table: MartTable) -> DataFrame | None:
    """The gold Delta table as stored, or None when it does not exist."""
    return Tables(spark, lake).existing(contracts.load("gold", table.gold))


def served(tables: Tables, rows: DataFrame, table: MartTable) -> DataFrame:
    """Gold `rows` of `table` as the mart serves them: forward-frame price levels times the symbol's
    current factor (:func:`spark_jobs.gold.in_current_frame`); as stored without adjustment factors."""
    if table.gold not in gold.FORWARD_COLUMNS:
        return rows
    factors = tables.existing(contracts.load("gold", "adjustment_factors"))
    if factors is None:
        return rows
    return gold.in_current_frame(rows, table.gold, gold.current_factors(factors))


class GoldRead:
    """The rows to load as Arrow tables in key order, read chunk by chunk by a background thread.

    Chunks are consecutive ranges of the first key, each sorted by the whole key, so their
    concatenation is in key order (the checksum's order, and the primary key's). While the COPY of
    chunk k runs, chunk k+1 is being read, and at most one more waits: a chunk is dropped once
    streamed (keeping them for a retry held the whole window, ~145 MB of the 627,500-row backfill).
    Each iteration is a fresh read of gold, so a retried attempt streams the rows gold holds then,
    with the checksum of what it streamed.
    """

    def __init__(self, frames: list[DataFrame], keys: Sequence[str]):
        self._frames = frames
        self._order = [(key, "ascending") for key in keys]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.num_rows = 0  # rows of the last complete iteration
        self.seconds = 0.0  # reading time of the last iteration

    def _produce(self, handover: queue.Queue, stop: threading.Event) -> None:
        try:
            for frame in self._frames:
                started = time.perf_counter()
                chunk = frame.toArrow().sort_by(self._order)
                self.seconds += time.perf_counter() - started
                if not self._put(handover, stop, chunk):
                    return
                del chunk  # not held while the next one is read
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(handover, stop, exc)
        else:
            self._put(handover, stop, None)

    @staticmethod
    def _put(handover: queue.Queue, stop: threading.Event, item: object) -> bool:
        while not stop.is_set():
            try:
                handover.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        self.close()  # a previous attempt's reader, abandoned mid-stream
        handover: queue.Queue = queue.Queue(maxsize=1)
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(handover, stop), name="gold-read", daemon=True)
        self.seconds, rows = 0.0, 0
        self._thread.start()
        try:
            while (item := handover.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                rows += item.num_rows
                yield item
                del item  # not held while the reader fetches the next chunk
            self.num_rows = rows
        finally:
            stop.set()

    def close(self) -> None:
        """Stop the reader thread (it may be blocked handing over a chunk nobody will take)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None


def chunk_frames(
    df: DataFrame, table: MartTable, bounds: tuple[dt.date, dt.date] | None, ranges: Sequence[SymbolRange] = ()
) -> list[DataFrame]:
    """The rows of the window and `ranges` as consecutive ranges of the first key (one frame for
    short windows with short ranges: choosing the chunks' edges costs a read of its own)."""
    long_window = bounds is None or (bounds[1] - bounds[0]).days > CHUNKED_WINDOW_DAYS
    long_ranges = sum((hi - lo).days + 1 for _, lo, hi in ranges) > CHUNKED_RANGE_DAYS
    if table.window_column is None or not (long_window or long_ranges):
        return [df]
    first = table.keys[0]
    values = sorted(df.select(first).distinct().toArrow().column(0).to_pylist())
    if len(values) < 2 * READ_CHUNKS:
        return [df]
    edges = [values[i * len(values) // READ_CHUNKS] for i in range(1, READ_CHUNKS)]
    column = F.col(first)
    frames = [df.where(column < F.lit(edges[0]))]
    frames += [df.where((column >= F.lit(lo)) & (column < F.lit(hi))) for lo, hi in itertools.pairwise(edges)]
    frames.append(df.where(column >= F.lit(edges[-1])))
    return frames


def window_rows(
    df: DataFrame, table: MartTable, bounds: tuple[dt.date, dt.date] | None, ranges: Sequence[SymbolRange] = ()
) -> DataFrame:
    """Gold rows in the window, then those in their symbol's range (`ranges` from
    :meth:`MartTable.symbol_ranges`: disjoint from the window, so no row comes twice).

    The window is a filter of its own, not OR-ed with the ranges' join, so the engine can skip
    the files outside it; the ranges are an inner join with a broadcast list.
    """
    if bounds is None:
        return df
    column = F.col(table.window_column)
    in_window = df.where(column.between(F.lit(bounds[0]), F.lit(bounds[1])))
    if not ranges:
        return in_window
    spans = df.sparkSession.createDataFrame(
        pa.table({
            "_range_symbol": pa.array([r[0] for r in ranges], pa.string()),
            "_range_lo": pa.array([r[1] for r in ranges], pa.date32()),
            "_range_hi": pa.array([r[2] for r in ranges], pa.date32()),
        })
    )  # fmt: skip
    joined = df.join(
        F.broadcast(spans),
        (F.col("symbol") == F.col("_range_symbol")) & column.between(F.col("_range_lo"), F.col("_range_hi")),
    )
    return in_window.unionByName(joined.select(*df.columns))


# --- the load --------------------------------------------------------------------------------


def load(
    spark: SparkSession,
    lake: Lake,
    info: str,
    *,
    window: DateWindow,
    load_id: str,
    full_refresh: bool = False,
    tables: Iterable[str] | None = None,
    ranges: Mapping[str, Iterable[SymbolRange]] | None = None,
    attempts: int = 5,
) -> list[TableLoad]:
    """Load the window of each gold table into its mart table in one swap transaction.

    Args:
        spark: Spark session that reads gold.
        lake: the lake holding gold.
        info: conninfo of the serving database (see :func:`spark_jobs.pg.conninfo`).
        window: dates to replace (see the module docstring for each table's rule).
        load_id: the ADF pipeline run id, recorded in ``ops.load_audit``.
        full_refresh: replace every table whole.
        tables: mart table names to load; default all of :data:`MART_TABLES`.
        ranges: mart table name -> (symbol, first, last date) ranges to replace besides the window
            (the gold ranges silver-to-gold recomputed); in the same swap transaction. Their parts
            inside the window are the window's (:meth:`MartTable.symbol_ranges`).
        attempts: tries in all on transient connection errors.

    Returns:
        One :class:`TableLoad` per table, in load order.

    Raises:
        SchemaMismatchError: gold and mart columns differ (nothing was written).
        GoldTableMissing: a required gold table does not exist while its mart table holds rows
            (nothing was written); behind an empty mart table it is skipped: nothing to load.
        MartMismatchError: after the inserts the mart's rows differ from the gold rows read
            (the swap was rolled back).
    """
    if not load_id or not load_id.strip():
        raise ValueError("load_id (the run_id) must not be empty")
    selected = _select(tables)
    planned: list[_Planned] = []
    skipped: list[TableLoad] = []
    with pg.connect(info, attempts=attempts, autocommit=True) as conn:
        for table in selected:
            df = read_gold(spark, lake, table)
            if df is None:
                if table.required and not _mart_is_empty(conn, table):
                    raise GoldTableMissing(
                        f"gold.{table.gold} does not exist at {lake.table('gold', table.gold)}; "
                        f"cannot load {table.qualified}"
                    )
                skipped.append(TableLoad(table.name, "skipped", reason=f"gold.{table.gold} does not exist"))
                continue
            columns = check_schema(conn, table, df.schema)
            bounds = table.bounds(window, full_refresh)
            extra = table.symbol_ranges((ranges or {}).get(table.name, ()), bounds)
            rows = served(Tables(spark, lake), window_rows(df, table, bounds, extra), table).select(*columns)
            frames = chunk_frames(rows, table, bounds, extra)
            planned.append(_Planned(table, columns, GoldRead(frames, table.keys), bounds, extra))

    try:
        for attempt in pg.retrying(attempts):
            with attempt:
                number = attempt.retry_state.attempt_number
                _attempt(info, planned, load_id=load_id, full_refresh=full_refresh, attempt=number)
    finally:
        for item in planned:
            item.data.close()
    return [s.result for s in planned if s.result is not None] + skipped


def _mart_is_empty(conn: psycopg.Connection, table: MartTable) -> bool:
    """True when the mart table exists and holds no row: nothing was ever built to load into it (a
    fresh home whose windows so far had no session). A gold table missing behind a loaded mart
    table is lost, and fails the load."""
    if conn.execute("SELECT to_regclass(%s)", (table.qualified,)).fetchone()[0] is None:
        return False
    target = sql.SQL("{}.{}").format(sql.Identifier(MART_SCHEMA), sql.Identifier(table.name))
    return conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(target)).fetchone()[0]


def _select(tables: Iterable[str] | None) -> list[MartTable]:
    if tables is None:
        return list(MART_TABLES.values())
    names = list(tables)
    unknown = [n for n in names if n not in MART_TABLES]
    if unknown:
        raise ValueError(f"unknown mart tables {unknown}; expected some of {list(MART_TABLES)}")
    return [t for t in MART_TABLES.values() if t.name in names]  # fixed order: no lock-order deadlocks


def _attempt(info: str, planned: list[_Planned], *, load_id: str, full_refresh: bool, attempt: int) -> None:
    conn = pg.connect(info, attempts=1, autocommit=True)
    try:
        recover_abandoned(conn)
        for item in planned:
            item.audit_id = _open_audit(conn, item, load_id, full_refresh, attempt)
        try:
            _swap(conn, planned)
        except BaseException as exc:
            _record_failure(conn, info, planned, exc)
            raise
    finally:
        conn.close()  # ends the session: its advisory locks go with it


def _open_audit(conn: psycopg.Connection, item: _Planned, load_id: str, full_refresh: bool, attempt: int) -> int:
    """Insert the 'running' audit row and take its advisory lock in one transaction."""
    lo, hi = item.bounds if item.bounds else (None, None)
    with conn.transaction():
        audit_id = conn.execute(
            f"INSERT INTO {LOAD_AUDIT} (load_id, table_name, window_start, window_end, full_refresh, "
            "attempt, status) VALUES (%s, %s, %s, %s, %s, %s, 'running') RETURNING audit_id",
            (load_id, item.table.qualified, lo, hi, item.bounds is None, attempt),
        ).fetchone()[0]
        ops_store.lock(conn, AUDIT_LOCK_CLASS, _lock_key(audit_id))
    item.result = TableLoad(
        item.table.name,
        "running",
        lo and lo.isoformat(),
        hi and hi.isoformat(),
        audit_id=audit_id,
        seconds={},
        ranges=item.ranges,
    )
    return audit_id


def _lock_key(audit_id: int) -> int:
    return audit_id % 2_147_483_647


def _copy(conn: psycopg.Connection, item: _Planned) -> int:
    """Binary COPY the gold rows straight into the mart table, hashing what is sent; the rows copied.

    Called inside the swap transaction, after the window was deleted: the rows are written once.
    A failure mid-stream (a rejected row, a gold read that fails, a lost connection) aborts the
    transaction with the rows sent so far; a loader killed mid-stream ends its session, which
    rolls them back: the old window stays.
    """
    started = time.perf_counter()
    columns = sql.SQL(", ").join(map(sql.Identifier, item.columns))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(item.target, columns)
    digest = hashlib.md5(usedforsecurity=False)
    with conn.cursor() as cur:
        with cur.copy(statement) as copy:
            copy.write(copy_binary.SIGNATURE)
            for data in item.data:
                for chunk in copy_binary.encode(data, COPY_BATCH_ROWS):
                    digest.update(chunk)
                    copy.write(chunk)
                del data  # released before the next chunk is awaited
                failpoints.failpoint("pg_load:copy")  # the window deleted, part of its new rows sent
            copy.write(copy_binary.TRAILER)
        copied = cur.rowcount
    item.checksum = digest.hexdigest()
    item.result.seconds["read"] = round(item.data.seconds, 3)  # overlaps "copy", which includes it
    item.result.seconds["copy"] = round(time.perf_counter() - started, 3)
    return copied


def replaced(table: MartTable, bounds: tuple[dt.date, dt.date] | None) -> sql.Composable:
    """SQL predicate of the mart rows in a load's window (as literals: COPY takes no parameters);
    the symbol ranges replaced besides it are a join with :func:`ranges_table`, never a predicate."""
    if bounds is None:
        return sql.SQL("TRUE")
    column = sql.Identifier(table.window_column)
    return sql.SQL("{} BETWEEN {} AND {}").format(column, sql.Literal(bounds[0]), sql.Literal(bounds[1]))


def ranges_table(conn: psycopg.Connection, table: MartTable, ranges: Sequence[SymbolRange]) -> sql.Composable | None:
    """A temporary table of `ranges` (symbol, range_lo, range_hi), COPied, for the delete and the
    content check to join on; None without ranges. Dropped at the end of the calling transaction.

    Why a table: the ranges were literals in an ``EXISTS (VALUES ...)`` OR-ed with the window, which
    the planner can only evaluate row by row over a scan of the whole mart table (120 s on 5 years
    with 500 ranges; with a few ranges still a sequential scan of every row for a daily load). Joined
    from a table, each range is a scan of the primary-key index over its symbol and dates.
    """
    if not ranges:
        return None
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
        raise ServingError("ranges_table must be called inside a transaction (it is dropped at its commit)")
    name = sql.Identifier(f"{table.name}__ranges")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(name))
    conn.execute(
        sql.SQL(
            'CREATE TEMPORARY TABLE {} (symbol text COLLATE "C" NOT NULL, range_lo date NOT NULL, '
            "range_hi date NOT NULL, PRIMARY KEY (symbol, range_lo)) ON COMMIT DROP"
        ).format(name)
    )
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY pg_temp.{} FROM STDIN").format(name)) as copy:
        for row in ranges:
            copy.write_row(row)
    conn.execute(sql.SQL("ANALYZE pg_temp.{}").format(name))  # row count and symbols for the planner
    return sql.SQL("pg_temp.{}").format(name)


def _in_ranges(table: MartTable, ranges: sql.Composable) -> sql.Composable:
    """Join condition of mart rows `m` with their symbol's range `r`."""
    return sql.SQL("m.symbol = r.symbol AND m.{} BETWEEN r.range_lo AND r.range_hi").format(
        sql.Identifier(table.window_column)
    )


def _delete(conn: psycopg.Connection, item: _Planned, ranges: sql.Composable | None) -> int:
    """Delete the window, then the ranges (disjoint from it); the rows deleted."""
    target, window = item.target, replaced(item.table, item.bounds)
    deleted = conn.execute(sql.SQL("DELETE FROM {} WHERE {}").format(target, window)).rowcount
    if ranges is not None:
        deleted += conn.execute(
            sql.SQL("DELETE FROM {} AS m USING {} AS r WHERE {}").format(target, ranges, _in_ranges(item.table, ranges))
        ).rowcount
    return deleted


def _swap(conn: psycopg.Connection, planned: list[_Planned]) -> None:
    """One transaction: per table, delete the window, COPY the gold rows in, checksum, audit.

    The rows stream from gold into the mart inside the transaction: written once, where a COPY into
    a staging table first wrote them twice (an UNLOGGED table, then ``INSERT ... SELECT`` into the
    indexed mart). The transaction, and its table locks, now last through the read of gold; the
    locks block other loads and writers of the tables, never readers, who see the old rows (MVCC)
    until the commit.
    """
    started = time.perf_counter()
    with conn.transaction():
        for item in planned:
            # Blocks other loads of the table (and writers), never readers.
            conn.execute(sql.SQL("LOCK TABLE {}.{} IN SHARE ROW EXCLUSIVE MODE").format(
                sql.Identifier(MART_SCHEMA), sql.Identifier(item.table.name)))  # fmt: skip
        for item in planned:
            step = time.perf_counter()
            estimated = conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                                     (item.table.qualified,)).fetchone()[0]  # fmt: skip
            ranges = ranges_table(conn, item.table, item.ranges)
            deleted = _delete(conn, item, ranges)
            item.result.seconds["delete"] = round(time.perf_counter() - step, 3)
            inserted = _copy(conn, item)
            if inserted != item.data.num_rows:
                raise ServingError(f"{item.table.qualified}: read {item.data.num_rows} rows but copied {inserted}")
            step = time.perf_counter()
            digest = item.checksum
            with _index_order(conn, inserted > INDEX_ORDER_MIN_ROWS + INDEX_ORDER_SHARE * max(estimated, 0)):
                held = copy_binary.read_digest(conn, checksum_query(conn, item.table, item.bounds, (), ranges))
            if held[0] != inserted:
                raise ServingError(
                    f"{item.table.qualified}: the window holds {held[0]} rows after inserting {inserted}; "
                    f"gold rows fall outside the window column {item.table.window_column!r}"
                )
            if held != (inserted, digest):
                raise MartMismatchError(
                    f"{item.table.qualified}: after the load the mart holds {held[0]} rows (md5 {held[1]}) where "
                    f"gold has {inserted} rows (md5 {digest}) in the replaced window {item.bounds} and "
                    f"{len(item.ranges)} symbol ranges; rows were lost or changed on the way, the load is rolled back"
                )
            item.result.seconds["verify"] = round(time.perf_counter() - step, 3)
            conn.execute(
                f"UPDATE {LOAD_AUDIT} SET status = 'succeeded', rows_deleted = %s, rows_loaded = %s, "
                "checksum = %s, finished_at = clock_timestamp() WHERE audit_id = %s",
                (deleted, inserted, digest, item.audit_id),
            )
            result = item.result
            result.status, result.rows_deleted, result.rows_loaded, result.checksum = (
                "succeeded", deleted, inserted, digest)  # fmt: skip
            log.info("%s: deleted %s, inserted %s (%.3fs into the swap)", item.table.qualified, deleted,
                     inserted, time.perf_counter() - started)  # fmt: skip
        failpoints.failpoint("pg_load:swap")  # every window deleted and re-inserted, not committed
    for item in planned:
        item.result.seconds["swap"] = round(time.perf_counter() - started, 3)


@contextlib.contextmanager
def _index_order(conn: psycopg.Connection, wanted: bool) -> Iterator[None]:
    """Inside the swap, plan the content check to read the primary-key index rather than sort, if `wanted`.

    The check's order is the primary key's (migration 062), but the statistics are those of before
    the load: an empty table for a backfill, or a window whose old rows are now dead index entries.
    The planner then sorted the whole window (a parallel external sort, 1.7-3 s for 627,500 rows
    against 1.3 s through the index), and an ANALYZE inside the swap cost 0.3-1.6 s and still chose
    the sort on a table with dead rows. For a small window in a large table a sort of its few rows
    is cheaper than the index, so the planner keeps its choice there.
    """
    if not wanted:
        yield
        return
    previous = conn.execute("SELECT current_setting('enable_sort')").fetchone()[0]
    conn.execute("SELECT set_config('enable_sort', 'off', true)")
    try:
        yield
    finally:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            conn.execute("SELECT set_config('enable_sort', %s, true)", (previous,))


def mart_checksum(
    conn: psycopg.Connection,
    table: MartTable,
    bounds: tuple[dt.date, dt.date] | None,
    exclude: Iterable[str] = (),
    ranges: Sequence[SymbolRange] = (),
) -> tuple[int, str]:
    """(rows, checksum) of what the mart holds for a window, computed by the server.

    The checksum a load records is the md5 of the rows it streamed, in PostgreSQL's binary COPY
    tuple format, in key order. This asks the server for the same bytes from the stored rows
    (``COPY (SELECT ... ORDER BY key) TO STDOUT (FORMAT binary)``), so equal values prove the mart
    window holds exactly what the audit row says was loaded. The rows counted are the rows that
    statement copied, so count and checksum always describe one snapshot. The key order is the
    primary key's (text keys are ``COLLATE "C"``, migration 062): the server reads the index, it
    does not sort the window.
    `exclude` leaves columns out (e.g. ``load_id`` to compare the content two runs loaded);
    `ranges` adds the symbol ranges a load replaced besides its window (as the load does:
    :meth:`MartTable.symbol_ranges`).
    """
    with conn.transaction():  # ends what it began on an idle connection, a savepoint inside a caller's
        joined = ranges_table(conn, table, table.symbol_ranges(ranges, bounds))
        return copy_binary.read_digest(conn, checksum_query(conn, table, bounds, exclude, joined))


def checksum_query(
    conn: psycopg.Connection,
    table: MartTable,
    bounds: tuple[dt.date, dt.date] | None,
    exclude: Iterable[str] = (),
    ranges: sql.Composable | None = None,
) -> sql.Composed:
    """The SELECT whose binary COPY :func:`mart_checksum` hashes: the replaced rows in key order.

    `ranges` is a :func:`ranges_table`: its rows are a second branch (a join) of a UNION ALL with
    the window's, each served by an index, the few rows of both then sorted into key order.
    """
    described = mart_columns(conn, table)
    columns = [name for name, _ in described if name not in exclude]
    target = sql.SQL("{}.{}").format(sql.Identifier(MART_SCHEMA), sql.Identifier(table.name))
    # Text keys in byte order, the order the loader streams them in (Arrow sorts by code point).
    text = {name for name, kind in described if kind == "text"}
    order = sql.SQL(", ").join(
        sql.SQL('{} COLLATE "C"' if key in text else "{}").format(sql.Identifier(key)) for key in table.keys
    )
    selected = sql.SQL(", ").join(map(sql.Identifier, columns))
    window = sql.SQL("SELECT {} FROM {} WHERE {}").format(selected, target, replaced(table, bounds))
    if ranges is None:
        return sql.SQL("{} ORDER BY {}").format(window, order)
    joined = sql.SQL("SELECT {} FROM {} AS m JOIN {} AS r ON {}").format(
        sql.SQL(", ").join(sql.SQL("m.{}").format(sql.Identifier(c)) for c in columns),
        target,
        ranges,
        _in_ranges(table, ranges),
    )
    return sql.SQL("SELECT * FROM ({} UNION ALL {}) AS replaced ORDER BY {}").format(window, joined, order)


def _record_failure(conn: psycopg.Connection, info: str, planned: list[_Planned], exc: BaseException) -> None:
    """Mark this attempt's audit rows failed, on the same connection if it still works."""
    message = f"{type(exc).__name__}: {exc}".strip()[:4000]
    ids = [s.audit_id for s in planned if s.audit_id is not None]
    for item in planned:
        if item.result is not None:
            item.result.status, item.result.reason = "failed", message
    if not ids:
        return
    update = (
        f"UPDATE {LOAD_AUDIT} SET status = 'failed', error = %s, finished_at = clock_timestamp() "
        "WHERE audit_id = ANY(%s) AND status = 'running'"
    )
    try:
        if conn.broken or conn.closed:
            with pg.connect(info, attempts=3, autocommit=True) as fresh:
                fresh.execute(update, (message, ids))
        else:
            conn.execute(update, (message, ids))
    except psycopg.Error:
        log.exception("could not mark audit rows %s failed; the next load will (abandoned)", ids)


def recover_abandoned(conn: psycopg.Connection) -> list[int]:
    """Mark 'running' audit rows whose loader is gone as failed, and drop any staging table they left
    (loads no longer stage; a loader of an earlier version killed before an upgrade may have).

    A live loader holds an advisory lock on each of its audit rows for its whole session; when the
    process is killed or its connection lost, PostgreSQL releases the lock. Must be called on a
    connection that holds no audit locks itself (locks are re-entrant within a session).

    Returns:
        audit ids marked failed.
    """
    marked = []
    running = conn.execute(
        f"SELECT audit_id, table_name FROM {LOAD_AUDIT} WHERE status = 'running' ORDER BY audit_id"
    ).fetchall()
    for audit_id, table_name in ops_store.abandoned(conn, AUDIT_LOCK_CLASS, running, lambda r: _lock_key(r[0])):
        updated = conn.execute(
            f"UPDATE {LOAD_AUDIT} SET status = 'failed', finished_at = clock_timestamp(), "
            "error = 'abandoned: the loading session ended before the load finished "
            "(process killed or connection lost)' WHERE audit_id = %s AND status = 'running'",
            (audit_id,),
        ).rowcount
        name = table_name.split(".", 1)[-1]
        conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
                sql.Identifier(STAGING_SCHEMA), sql.Identifier(f"{name}__{audit_id}")
            )
        )
        if updated:
            marked.append(audit_id)
            log.warning("load audit %s (%s) was abandoned by its loader; marked failed", audit_id, table_name)
    return marked


# --- notebook entry point --------------------------------------------------------------------


@telemetry.job("gold_to_postgres")
def run_gold_to_postgres(
    spark: SparkSession,
    settings: Settings,
    *,
    start_date: str | dt.date,
    end_date: str | dt.date,
    run_id: str,
    full_refresh: str | bool = False,
    tables: Iterable[str] | None = None,
) -> JobSummary:
    """The ``gold_to_postgres`` notebook: migrate, then load the window and every gold range changed
    since the last load (``ops.gold_changes``), and mark those ranges served."""
    started = time.monotonic()
    window = DateWindow.parse(start_date, end_date)
    refresh = parse_flag(full_refresh)
    info = pg.conninfo(pg.base_dsn(settings), settings)
    applied = migrations.apply(info)
    lake = Lake.from_settings(settings)
    pending = pending_changes(Tables(spark, lake), _select(tables))
    results = load(
        spark,
        lake,
        info,
        window=window,
        load_id=run_id,
        full_refresh=refresh,
        tables=tables,
        ranges=pending.ranges(window, refresh),
        attempts=settings.pg_connect_attempts,
    )
    loaded = {r.table for r in results if r.status == "succeeded"}
    pending.mark_served(loaded, run_id)
    _report_freshness(info, run_id, settings.pg_connect_attempts)
    return JobSummary(
        job="gold_to_postgres",
        run_id=run_id,
        start_date=window.start,
        end_date=window.end,
        full_refresh=refresh,
        database=pg.host_of(info),
        migrations_applied=applied,
        tables={r.table: _table_summary(r) for r in results},
        seconds=round(time.monotonic() - started, 3),
    )


def _report_freshness(info: str, run_id: str, attempts: int) -> None:
    """Emit the mart's latest trade date: Azure Monitor's data-freshness rule reads this event, so
    a run that succeeds and loads nothing new still shows the mart falling behind."""
    with pg.connect(info, attempts=attempts, autocommit=True) as conn:
        latest = conn.execute(f"SELECT max(trade_date) FROM {MART_FRESHNESS_TABLE}").fetchone()[0]
    telemetry.event(
        MART_FRESHNESS_EVENT,
        run_id,
        table=MART_FRESHNESS_TABLE,
        latest_trade_date=latest.isoformat() if latest else "",
    )


def _table_summary(result: TableLoad) -> TableSummary:
    return TableSummary(
        rows_written=result.rows_loaded or 0,
        status=result.status,
        window_start=result.window_start,
        window_end=result.window_end,
        rows_deleted=result.rows_deleted,
        checksum=result.checksum,
        audit_id=result.audit_id,
        reason=result.reason,
        seconds=result.seconds,
        ranges=len(result.ranges) if result.ranges else None,
    )


# --- gold ranges changed outside the window --------------------------------------------------


@dataclass
class PendingChanges:
    """The ``ops.gold_changes`` rows no load has served yet, as read before the load."""

    tables: Tables
    rows: list  # Rows of ops.gold_changes

    def ranges(self, window: DateWindow, full_refresh: bool = False) -> dict[str, tuple[SymbolRange, ...]]:
        """Mart table name -> the (symbol, first, last date) ranges a load of `window` must replace
        besides the window for the pending changes of its gold table (:meth:`MartTable.symbol_ranges`:
        the parts outside the window; a change inside it is loaded with it). Tables with none are
        left out."""
        changed: dict[str, list[SymbolRange]] = {}
        for r in self.rows:
            changed.setdefault(r.table_name, []).append((r.symbol, r.range_start, r.range_end))
        out = {}
        for table in MART_TABLES.values():
            ranges = table.symbol_ranges(changed.get(table.gold, ()), table.bounds(window, full_refresh))
            if ranges:
                out[table.name] = ranges
        return out

    def mark_served(self, mart_tables: Iterable[str], load_id: str) -> int:
        """Mark the changes of the loaded tables served by `load_id`; a change re-recorded meanwhile
        (same key, later ``recorded_at``) stays pending. Returns the rows marked."""
        golds = {MART_TABLES[name].gold for name in mart_tables}
        served = [r.asDict() for r in self.rows if r.table_name in golds]
        if not served:
            return 0
        c = contracts.load("ops", "gold_changes")
        at = dt.datetime.now(dt.UTC)
        for row in served:
            row.update(served_by=load_id, served_at=at)
        frame = self.tables.spark.createDataFrame(pa.Table.from_pylist(served, schema=c.arrow_schema()))
        self.tables.merge(frame, c, matched_condition="t.recorded_at = s.recorded_at")
        return len(served)


# Served changes kept for inspection (which load served which gold run's ranges); older ones are
# pruned by maintenance, so the MERGE that marks a load's changes served reads a bounded table.
SERVED_CHANGES_RETENTION = dt.timedelta(days=30)


def prune_served_changes(tables: Tables, served_before: dt.datetime) -> int:
    """Delete the ``ops.gold_changes`` rows served before `served_before`; the rows deleted.

    Why: :meth:`PendingChanges.mark_served` is a MERGE, and Sail 0.7.2's MERGE joins the whole
    target, so a table keeping every change ever served (about 1,000 rows a day) made each daily
    load's marking grow with history (measured 0.04-0.17 s on an empty history, 1.0-1.6 s on a
    year, 3.3-5.5 s on five). Pending rows (``served_by`` NULL) are never deleted.
    """
    c = contracts.load("ops", "gold_changes")
    changes = tables.existing(c)
    if changes is None:
        return 0
    cutoff = served_before.astimezone(dt.UTC)  # an instant, whatever the session's time zone
    predicate = f"served_by IS NOT NULL AND served_at < TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S.%f}+00:00'"
    old = changes.filter(F.expr(predicate)).count()
    if old:
        tables.delete(c, predicate)
    return old


def pending_changes(tables: Tables, selected: Iterable[MartTable]) -> PendingChanges:
    """The unserved gold changes of the selected mart tables' gold tables."""
    golds = [t.gold for t in selected]
    changes = tables.read(contracts.load("ops", "gold_changes"))
    unserved = changes.filter(F.col("served_by").isNull() & F.col("table_name").isin(golds))
    return PendingChanges(tables, unserved.collect())
