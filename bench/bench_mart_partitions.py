"""Mart load of mart.daily_prices: today's INSERT ... SELECT into the indexed table against date
partitions built unindexed and swapped in, on the same rows.

The question (issue 20): the server's own COPY into the indexed ``mart.daily_prices`` costs about
ten times a COPY into a table without indexes, and the mart load's ``INSERT ... SELECT`` pays the
same index maintenance. Would a mart partitioned by ``trade_date`` (``PARTITION BY RANGE``), whose
window is COPied into plain unindexed tables, indexed and constrained afterwards and swapped in by
``DETACH`` old / ``ATTACH`` new in one transaction, load faster and keep the atomic window?

Setup writes the bench_serving gold rows (``symbols`` x ``years``, the contract's columns) as an
Arrow file in key order, a server-readable CSV per window, and two fresh migrated databases on the
harness's PostgreSQL: ``bench_mart_flat`` (the migrations' ``mart.daily_prices``) and
``bench_mart_partitioned`` (the same table re-created ``LIKE ... INCLUDING ALL PARTITION BY RANGE
(trade_date)``, one partition per ``partition`` = month or year). Every case is a method on a window;
each run puts its table in the state the window needs (untimed: empty for the backfill, else the
full history with the window's rows carrying a stale ``load_id``, vacuumed and checkpointed), times
from the first byte to commit, then checks the whole table's (rows, md5) against gold's:

- windows: ``backfill`` (all ``years`` into an empty mart), ``month`` (the last calendar month,
  replacing its loaded rows), ``day`` (the last session, replacing its loaded rows);
- ``insert_select``: what ``spark_jobs.serving`` did when this was measured: binary COPY into an UNLOGGED
  staging table, then one transaction: delete the window, INSERT ... SELECT, count and md5 the window
  (serving now COPies straight into the mart inside that transaction: docs/serving.md);
- ``partition_swap``: per partition the window touches, a plain table COPied (plus the rows of the
  old partition outside the window), then its primary key and index (derived from the parent's),
  a CHECK constraint equal to the bounds (so ATTACH skips its validation scan), md5 of its window
  rows; then one transaction detaches the old partitions and attaches the new ones;
- ``insert_select_partitioned``: today's path on the partitioned table (the hybrid: swap whole
  partitions, delete and insert partial ones);
- ``server_copy``: ``COPY mart.daily_prices FROM '<window file>'`` into the indexed flat table
  whose window rows were deleted beforehand: the floor, without any replace.

Reading gold through Spark is left out: both designs read the same Arrow rows (``read_s`` in the
serving benchmark); the audit rows are left out too (a few rows, the same in both).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench import bench_serving, datasets

DEFAULTS = {"symbols": 500, "years": 5, "partition": "month"}  # 629k rows, 60 monthly partitions
QUICK = {"symbols": 5, "years": 1}
RUNS = 3
WARMUP = 0  # setup loads both databases once, untimed: the server's caches are warm
FLAT_DATABASE = "bench_mart_flat"
PARTITIONED_DATABASE = "bench_mart_partitioned"
STALE_LOAD_ID = "stale-load"  # what a window's rows hold before a run replaces them
STAGING = "staging.daily_prices__bench"
# How long the swap waits for readers to let go of the table before it gives up (a retry's matter):
# DETACH takes an ACCESS EXCLUSIVE lock on the parent, and every new reader queues behind it.
SWAP_LOCK_TIMEOUT = "30s"
IMPLIED = "is implied by existing constraints"  # PostgreSQL's DEBUG1 line for an ATTACH without a scan


class ContentMismatch(RuntimeError):
    """A run left the mart holding other rows than gold's."""


@dataclasses.dataclass(frozen=True)
class Window:
    """The inclusive dates a load replaces, and whether the mart is empty before it."""

    name: str
    start: dt.date
    end: dt.date
    empty_before: bool = False


def windows(data: dict) -> dict[str, Window]:
    """The measured windows over the data's dates: everything, its last calendar month, its last session."""
    start, end = dt.date.fromisoformat(data["start"]), dt.date.fromisoformat(data["end"])
    return {w.name: w for w in (
        Window("backfill", start, end, empty_before=True),
        Window("month", end.replace(day=1), end),
        Window("day", end, end),
    )}  # fmt: skip


# --- partitions ------------------------------------------------------------------------------


def _next_start(day: dt.date, grain: str) -> dt.date:
    if grain == "year":
        return dt.date(day.year + 1, 1, 1)
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _grain_start(day: dt.date, grain: str) -> dt.date:
    return day.replace(month=1, day=1) if grain == "year" else day.replace(day=1)


GRAINS = ("month", "year")


def partitions(start: dt.date, end: dt.date, grain: str) -> list[tuple[dt.date, dt.date]]:
    """[lo, hi) bounds of the partitions holding the dates [start, end]."""
    if grain not in GRAINS:
        raise ValueError(f"partition must be one of {', '.join(GRAINS)}, got {grain!r}")
    out, lo = [], _grain_start(start, grain)
    while lo <= end:
        out.append((lo, _next_start(lo, grain)))
        lo = out[-1][1]
    return out


def partition_prefix(lo: dt.date) -> str:
    """Name prefix of the partition starting at `lo`; a load appends its own token, so the new
    partition and its indexes never collide with the old one's while both exist."""
    return f"daily_prices_p{lo:%Y%m%d}_"


def make_partitioned(dsn: str) -> None:
    """Re-create the migrated mart.daily_prices as a range-partitioned table with the same columns,
    constraints, indexes and comments (the migrations stay the one declaration of the table)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("ALTER TABLE mart.daily_prices RENAME TO daily_prices_unpartitioned")
        conn.execute("CREATE TABLE mart.daily_prices (LIKE mart.daily_prices_unpartitioned INCLUDING ALL) "
                     "PARTITION BY RANGE (trade_date)")  # fmt: skip
        conn.execute("DROP TABLE mart.daily_prices_unpartitioned")


def attached(conn) -> dict[str, str]:
    """Partition name prefix -> the partition's name, of mart.daily_prices's partitions."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'mart.daily_prices'::regclass"
    ).fetchall()
    return {name[: name.rindex("_") + 1]: name for (name,) in rows}


def _index_statements(conn, table: str) -> list[str]:
    """DDL giving `table` the indexes of the partitioned mart.daily_prices, read from the catalog:
    ATTACH then adopts them instead of building its own under the lock."""
    rows = conn.execute(
        "SELECT i.indisprimary, i.indisunique, pg_get_indexdef(i.indexrelid), "
        "array(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_attribute a "
        "      ON a.attrelid = i.indrelid AND a.attnum = k) "
        "FROM pg_index i WHERE i.indrelid = 'mart.daily_prices'::regclass ORDER BY i.indisprimary DESC"
    ).fetchall()
    out = []
    for primary, unique, definition, columns in rows:
        if primary:
            out.append(f"ALTER TABLE mart.{table} ADD PRIMARY KEY ({', '.join(columns)})")
        else:
            out.append(f"CREATE {'UNIQUE ' if unique else ''}INDEX ON mart.{table} USING "
                       + definition.split(" USING ", 1)[1])  # fmt: skip
    return out


# --- the methods -----------------------------------------------------------------------------


def _mart(name: str = "daily_prices"):
    from spark_jobs.serving import MART_TABLES

    return dataclasses.replace(MART_TABLES["daily_prices"], name=name)


def _copy_rows(conn, target: str, rows) -> str:
    """Binary COPY of Arrow `rows` into `target`, as the serving load streams them; md5 of the tuples."""
    from spark_jobs import copy_binary
    from spark_jobs.serving import COPY_BATCH_ROWS

    digest = hashlib.md5(usedforsecurity=False)
    statement = f"COPY {target} ({', '.join(rows.column_names)}) FROM STDIN (FORMAT binary)"
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(copy_binary.SIGNATURE)
        for chunk in copy_binary.encode(rows, COPY_BATCH_ROWS):
            digest.update(chunk)
            copy.write(chunk)
        copy.write(copy_binary.TRAILER)
    return digest.hexdigest()


def _window_sql(window: Window) -> str:
    return f"trade_date BETWEEN '{window.start}' AND '{window.end}'"


def insert_select(conn, rows, window: Window, grain: str | None = None) -> dict:
    """Today's serving load: stage unlogged, then delete + INSERT ... SELECT + check in one transaction."""
    from spark_jobs.serving import mart_checksum

    phases, t = {}, time.perf_counter()
    if grain:  # a partitioned mart: a row needs a partition to go to
        _ensure_partitions(conn, window, grain)
    conn.execute(f"CREATE UNLOGGED TABLE {STAGING} (LIKE mart.daily_prices)")
    digest = _copy_rows(conn, STAGING, rows)
    phases["stage_s"], t = time.perf_counter() - t, time.perf_counter()
    with conn.transaction():
        conn.execute("LOCK TABLE mart.daily_prices IN SHARE ROW EXCLUSIVE MODE")
        deleted = conn.execute(f"DELETE FROM mart.daily_prices WHERE {_window_sql(window)}").rowcount
        phases["delete_s"], t = time.perf_counter() - t, time.perf_counter()
        inserted = conn.execute(f"INSERT INTO mart.daily_prices SELECT * FROM {STAGING}").rowcount
        phases["insert_s"], t = time.perf_counter() - t, time.perf_counter()
        held = mart_checksum(conn, _mart(), (window.start, window.end))
        if held != (rows.num_rows, digest) or inserted != rows.num_rows:
            raise ContentMismatch(f"the window holds {held} after inserting {inserted}; staged {rows.num_rows} "
                                  f"rows, md5 {digest}")  # fmt: skip
        phases["check_s"] = time.perf_counter() - t
    conn.execute(f"DROP TABLE {STAGING}")
    return {"rows_deleted": deleted, **phases}


def _ensure_partitions(conn, window: Window, grain: str) -> None:
    have = attached(conn)
    for lo, hi in partitions(window.start, window.end, grain):
        if partition_prefix(lo) not in have:
            conn.execute(f"CREATE TABLE mart.{partition_prefix(lo)}{uuid.uuid4().hex[:8]} PARTITION OF "
                         f"mart.daily_prices FOR VALUES FROM ('{lo}') TO ('{hi}')")  # fmt: skip


def partition_swap(conn, rows, window: Window, grain: str, inside_swap: Callable[[str], None] | None = None) -> dict:
    """Build each partition the window touches as a plain table, index and check it, then swap them
    all in one transaction. `inside_swap` runs after each ATTACH, before commit (a test's pause)."""
    import pyarrow.compute as pc

    from spark_jobs.serving import mart_checksum

    token = uuid.uuid4().hex[:8]
    old = attached(conn)
    built: list[tuple[str, str | None, dt.date, dt.date]] = []  # (new, old, lo, hi)
    phases = dict.fromkeys(("copy_s", "carry_s", "index_s", "check_s"), 0.0)
    carried = 0
    for lo, hi in partitions(window.start, window.end, grain):
        t = time.perf_counter()
        name, previous = f"{partition_prefix(lo)}{token}", old.get(partition_prefix(lo))
        dates = rows.column("trade_date")
        part = rows.filter(pc.and_(pc.greater_equal(dates, lo), pc.less(dates, hi)))
        # Columns and NOT NULLs, no index. Autovacuum stays off until the swap: a worker that picked the
        # fresh table up would hold the ATTACH (and, behind its lock on the parent, every reader) for up to
        # deadlock_timeout per partition; measured 22.8 s in one 60-partition swap.
        conn.execute(f"CREATE TABLE mart.{name} (LIKE mart.daily_prices) WITH (autovacuum_enabled = false)")
        digest = _copy_rows(conn, f"mart.{name}", part)
        phases["copy_s"] += time.perf_counter() - t
        t = time.perf_counter()
        if previous and not (window.start <= lo and hi - dt.timedelta(days=1) <= window.end):
            carried += conn.execute(f"INSERT INTO mart.{name} SELECT * FROM mart.{previous} "
                                    f"WHERE NOT ({_window_sql(window)})").rowcount  # fmt: skip
        phases["carry_s"] += time.perf_counter() - t
        t = time.perf_counter()
        for statement in _index_statements(conn, name):
            conn.execute(statement)
        conn.execute(f"ALTER TABLE mart.{name} ADD CONSTRAINT {name}_bounds "
                     f"CHECK (trade_date >= '{lo}' AND trade_date < '{hi}')")  # fmt: skip
        phases["index_s"] += time.perf_counter() - t
        t = time.perf_counter()
        held = mart_checksum(conn, _mart(name), (max(lo, window.start), min(hi - dt.timedelta(days=1), window.end)))
        if held != (part.num_rows, digest):
            raise ContentMismatch(f"partition {name} holds {held} of the window, streamed {part.num_rows} rows "
                                  f"md5 {digest}")  # fmt: skip
        phases["check_s"] += time.perf_counter() - t
        built.append((name, previous, lo, hi))
    t = time.perf_counter()
    notices: list[str] = []

    def heard(diagnostic) -> None:
        notices.append(diagnostic.message_primary or "")

    conn.add_notice_handler(heard)
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
        conn.execute("LOCK TABLE mart.daily_prices IN ACCESS EXCLUSIVE MODE")  # what DETACH takes anyway
        conn.execute("SET LOCAL client_min_messages = debug1")  # ATTACH says whether it scanned
        for name, previous, lo, hi in built:
            if previous:
                conn.execute(f"ALTER TABLE mart.daily_prices DETACH PARTITION mart.{previous}")
            conn.execute(f"ALTER TABLE mart.daily_prices ATTACH PARTITION mart.{name} "
                         f"FOR VALUES FROM ('{lo}') TO ('{hi}')")  # fmt: skip
            if inside_swap:
                inside_swap(name)
        conn.execute("SET LOCAL client_min_messages = notice")
    phases["swap_s"] = time.perf_counter() - t
    conn.remove_notice_handler(heard)
    scanned = [n for n, *_ in built if not any(f'"{n}" {IMPLIED}' in m for m in notices)]
    if scanned:
        raise RuntimeError(f"ATTACH scanned {scanned} to validate the bounds: their CHECK constraint does not "
                           "imply the partition constraint")  # fmt: skip
    t = time.perf_counter()
    for name, previous, *_ in built:
        conn.execute(f"ALTER TABLE mart.{name} RESET (autovacuum_enabled)")
        if previous:
            conn.execute(f"DROP TABLE mart.{previous}")
    phases["after_s"] = time.perf_counter() - t
    return {"partitions": len(built), "rows_carried": carried, **phases}


def server_copy(conn, window: Window, csv: Path) -> dict:
    """The server's own COPY of the window's rows into the indexed table (their old rows deleted before)."""
    conn.execute(f"COPY mart.daily_prices FROM '{csv}' (FORMAT csv)")
    return {}


@dataclasses.dataclass(frozen=True)
class Method:
    database: str
    partitioned: bool


METHODS = {
    "insert_select": Method(FLAT_DATABASE, partitioned=False),
    "partition_swap": Method(PARTITIONED_DATABASE, partitioned=True),
    "insert_select_partitioned": Method(PARTITIONED_DATABASE, partitioned=True),
    "server_copy": Method(FLAT_DATABASE, partitioned=False),
}


# --- data, state and checks ------------------------------------------------------------------


def _dir() -> Path:
    return datasets.data_dir("mart_partitions")


def gold_data() -> dict:
    return json.loads((_dir() / "data.json").read_text())


def gold_rows(window: Window):
    """The gold rows of `window`, in key order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    with pa.memory_map(str(_dir() / "daily_prices.arrow")) as source:
        table = pa.ipc.open_file(source).read_all()
    dates = table.column("trade_date")
    return table.filter(pc.and_(pc.greater_equal(dates, window.start), pc.less_equal(dates, window.end)))


def _csv(window: Window) -> Path:
    return _dir() / f"daily_prices_{window.name}.csv"


def setup(params: dict) -> None:
    import shutil

    import pyarrow as pa
    import pyarrow.compute as pc

    from spark_jobs import copy_binary

    root = _dir()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    table = bench_serving.gold_table(params["symbols"], params["years"])
    table = table.sort_by([("symbol", "ascending"), ("trade_date", "ascending")])
    with pa.OSFile(str(root / "daily_prices.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in copy_binary.encode(table):
        digest.update(chunk)
    bounds = pc.min_max(table.column("trade_date")).as_py()
    data = {"rows": table.num_rows, "md5": digest.hexdigest(), "start": bounds["min"].isoformat(),
            "end": bounds["max"].isoformat()}  # fmt: skip
    (root / "data.json").write_text(json.dumps(data))
    for window in windows(data).values():
        bench_serving.server_readable_csv(gold_rows(window), _csv(window))
    bench_serving.migrated_database(FLAT_DATABASE)
    make_partitioned(bench_serving.migrated_database(PARTITIONED_DATABASE))
    for method in ("server_copy", "partition_swap"):  # both databases full, the server's caches warm
        prepare(method, windows(data)["month"], params)


def prepare(method: str, window: Window, params: dict) -> None:
    """Untimed: the table `method` loads into, in the state before `window`'s load: empty for a
    backfill; else every gold row, the window's with a stale load_id (or, for the server's COPY,
    deleted); then vacuumed and checkpointed, so no run pays for the one before."""
    import psycopg

    data = gold_data()
    everything = Window("everything", dt.date.fromisoformat(data["start"]), dt.date.fromisoformat(data["end"]))
    with psycopg.connect(database(method), autocommit=True) as conn:
        _drop_strays(conn)
        if window.empty_before or not _full(conn, data):
            _empty(conn, METHODS[method].partitioned)
            if not window.empty_before and METHODS[method].partitioned:
                partition_swap(conn, gold_rows(everything), everything, params["partition"])
            elif not window.empty_before:
                server_copy(conn, everything, _csv(windows(data)["backfill"]))
        if not window.empty_before:
            if method == "server_copy":
                conn.execute(f"DELETE FROM mart.daily_prices WHERE {_window_sql(window)}")
            else:
                conn.execute(f"UPDATE mart.daily_prices SET load_id = %s WHERE {_window_sql(window)}",
                             (STALE_LOAD_ID,))  # fmt: skip
        conn.execute("VACUUM (ANALYZE) mart.daily_prices")
        conn.execute("CHECKPOINT")


def database(method: str) -> str:
    return bench_serving._dsn(METHODS[method].database)


def _full(conn, data: dict) -> bool:
    return conn.execute("SELECT count(*) FROM mart.daily_prices").fetchone()[0] == data["rows"]


def _empty(conn, partitioned: bool) -> None:
    if not partitioned:
        conn.execute("TRUNCATE mart.daily_prices")
        return
    for name in attached(conn).values():
        conn.execute(f"DROP TABLE mart.{name}")


def _drop_strays(conn) -> None:
    """Tables a failed run left behind: staging, partitions built and never attached."""
    conn.execute(f"DROP TABLE IF EXISTS {STAGING}")
    strays = conn.execute(
        "SELECT relname FROM pg_class c WHERE relnamespace = 'mart'::regnamespace AND relkind = 'r' "
        "AND relname LIKE 'daily\\_prices\\_p%' AND NOT relispartition"
    ).fetchall()
    for (name,) in strays:
        conn.execute(f"DROP TABLE mart.{name}")


def content(dsn: str) -> tuple[int, str]:
    """(rows, md5) of the whole mart.daily_prices in key order, as the serving load hashes its rows."""
    import psycopg

    from spark_jobs.serving import mart_checksum

    with psycopg.connect(dsn, autocommit=True) as conn:
        return mart_checksum(conn, _mart(), None)


def verify(dsn: str, data: dict) -> None:
    """Raise ContentMismatch unless the mart holds exactly gold's rows (a stale row left in the
    window, a lost or a changed one all change the md5)."""
    held = content(dsn)
    if held != (data["rows"], data["md5"]):
        raise ContentMismatch(f"mart.daily_prices holds {held[0]} rows (md5 {held[1]}) where gold has "
                              f"{data['rows']} rows (md5 {data['md5']})")  # fmt: skip


def run(method: str, window_name: str, params: dict) -> dict:
    """One measured load: prepare (untimed), load `window_name` by `method` (timed), verify (untimed)."""
    import psycopg

    import spark_jobs.serving  # noqa: F401 - imported (pyspark with it) before the clock starts, not inside it

    data = gold_data()
    window = windows(data)[window_name]
    prepare(method, window, params)
    rows = gold_rows(window)
    with psycopg.connect(database(method), autocommit=True) as conn:
        started = time.perf_counter()
        if method == "server_copy":
            phases = server_copy(conn, window, _csv(window))
        elif method == "partition_swap":
            phases = partition_swap(conn, rows, window, params["partition"])
        else:
            phases = insert_select(conn, rows, window, params["partition"] if METHODS[method].partitioned else None)
        seconds = time.perf_counter() - started
    verify(database(method), data)
    return {"seconds": round(seconds, 3), "rows": rows.num_rows, "rows_per_s": round(rows.num_rows / seconds),
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in phases.items()}}  # fmt: skip


CASES = {f"{m}_{w}": functools.partial(run, m, w) for w in ("backfill", "month", "day") for m in METHODS}
TARGETS = [
    target
    for w in ("backfill", "month", "day")
    for target in (
        {"name": f"{w}: partition swap / INSERT ... SELECT", "ratio": [f"partition_swap_{w}", f"insert_select_{w}"],
         "metric": "seconds", "why": "below 1 the partition swap loads the window faster than today's load"},
        {"name": f"{w}: INSERT ... SELECT / server COPY", "ratio": [f"insert_select_{w}", f"server_copy_{w}"],
         "metric": "seconds", "why": "today's load against the server's own COPY of the window's rows"},
        {"name": f"{w}: partition swap / server COPY", "ratio": [f"partition_swap_{w}", f"server_copy_{w}"],
         "metric": "seconds"},
    )
]  # fmt: skip
FINDINGS = """\
**Decision: do not partition mart.daily_prices; keep the staging + DELETE + INSERT ... SELECT swap.**
(Since then the load drops the staging write: DELETE and COPY straight into the mart in one
transaction, which keeps the MVCC guarantee below; see docs/serving.md.)
Medians of one run (500 symbols x 5 years, monthly partitions, load average 2.5-6.8; a run an hour
earlier on a quieter machine gave the same order):

| window (rows) | INSERT ... SELECT (a) | partition swap (b) | hybrid | server COPY (c) | (b)/(a) | (a)/(c) |
|---|---|---|---|---|---|---|
| backfill (627,500) | 12.5 s | 8.57 s | 15.5 s | 10.4 s | 0.69 (earlier run 0.81) | 1.20 (earlier 1.82) |
| month (11,000) | 0.52 s | 0.29 s | 0.53 s | 0.24 s | 0.56 | 2.2 |
| day (500) | 0.15 s | 0.25 s | 0.12 s | 0.07 s | 1.65 | 2.0 |

- The swap wins only where it replaces whole partitions: 0.6-0.8x for the backfill and a calendar
  month. Its COPY into plain *logged* tables (3.2 s, WAL included) plus building the two indexes
  afterwards (1.4 s) costs about what (a) pays to stage unlogged (2.9 s) and INSERT with index
  maintenance (4.8 s) minus the second write; both then check the window's md5 against the rows
  streamed (4.4 s in (a), inside the swap; 3.4 s in (b), per partition before it). The ATTACH of
  60 partitions takes 0.1 s: every one adopts the indexes built beforehand and skips its validation
  scan (the CHECK constraint equal to the bounds; checked on every run from PostgreSQL's DEBUG1 line).
- The daily window, the load every day pays, gets slower: replacing 500 rows means rebuilding the
  month's partition (10,500 rows carried over from the old one). Delete + insert into the
  partitioned table (the hybrid) is no faster than into the flat table. Saving 1-4 s of a 40-67 s
  backfill does not pay for the rest.
- It weakens the atomic window. DETACH holds ACCESS EXCLUSIVE on the parent until commit, so readers
  wait for the swap instead of reading the old rows; a long report query holds the swap off, and
  every query after it queues behind the swap's lock request (a `lock_timeout` and a retry are
  needed). Autovacuum picking up the fresh tables stalled one measured 60-partition swap for 22.8 s
  under that lock (now avoided: `autovacuum_enabled = false` until attached). Worse, a REPEATABLE
  READ or SERIALIZABLE transaction whose snapshot predates the load sees the swapped window
  **empty** (the new partition's rows are newer than its snapshot), where DELETE + INSERT keeps
  serving it the old rows (MVCC): `tests/bench/test_mart_partitions.py` shows both. READ COMMITTED
  statements do see the old or the new window, never a mix (same test file).
- The gold ranges a load replaces besides its window (`ops.gold_changes`: a split recomputes a
  symbol's whole history) cut across every date partition: one symbol's change would rebuild all 60.

The larger lever on (a) is the in-transaction content check (a third of the backfill's load time
here), not index maintenance.

If the trade-offs change (say, monthly backfill chunks dominate and no reader uses snapshots older
than a load), the change to `spark_jobs/serving.py` would be, for `daily_prices` only:
(1) a migration re-creating `mart.daily_prices` `PARTITION BY RANGE (trade_date)` with monthly
partitions, rows moved in one transaction; (2) `MartTable` gains a partition grain; `_stage` builds,
per month the window covers entirely, `CREATE TABLE mart.daily_prices_pYYYYMMDD_<audit_id> (LIKE
mart.daily_prices) WITH (autovacuum_enabled = false)`, binary COPY of that month's rows (md5 per
partition), then the primary key and `trade_date` index derived from the parent's, and a CHECK
constraint equal to the bounds, then `mart_checksum` of the new table against its md5; months the
window covers in part, and the symbol ranges, keep today's staging + DELETE + INSERT; (3) `_swap`
takes `LOCK TABLE mart.daily_prices IN ACCESS EXCLUSIVE MODE` under `SET LOCAL lock_timeout`,
DETACHes the old partitions and ATTACHes the new ones, and fails the attempt (retried) if an ATTACH
did not report its constraint as implied; after commit it resets autovacuum and drops the detached
tables; (4) `recover_abandoned` also drops partitions a killed loader built and never attached.
"""
