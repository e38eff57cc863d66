"""The mart-partitions benchmark at 3 symbols x 1 year: every method leaves exactly gold's rows, a
partition swap is one atomic step for readers, and what it costs readers that an INSERT ... SELECT
does not."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bench import bench_mart_partitions as bench
from local import services

TINY = {**bench.DEFAULTS, "symbols": 3, "years": 1}


@pytest.fixture(scope="module")
def data(endpoints: services.Endpoints) -> Iterator[dict]:
    """The benchmark's setup on the session's PostgreSQL, its data under a home the server can read
    (not pytest's temporary root, which other pytest processes reset to mode 0700)."""
    home = Path(tempfile.mkdtemp(prefix="mart-partitions-"))
    home.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKEHOUSE_HOME", str(home))
        mp.setenv("LAKEHOUSE_PG_DSN", endpoints.pg_dsn)
        bench.setup(TINY)
        yield bench.gold_data()
    shutil.rmtree(home, ignore_errors=True)


def _everything(data: dict) -> bench.Window:
    return bench.Window("everything", dt.date.fromisoformat(data["start"]), dt.date.fromisoformat(data["end"]))


def test_partitions_cover_a_window_with_whole_months_or_years() -> None:
    assert bench.partitions(dt.date(2024, 12, 31), dt.date(2025, 2, 1), "month") == [
        (dt.date(2024, 12, 1), dt.date(2025, 1, 1)),
        (dt.date(2025, 1, 1), dt.date(2025, 2, 1)),
        (dt.date(2025, 2, 1), dt.date(2025, 3, 1)),
    ]
    assert bench.partitions(dt.date(2025, 12, 31), dt.date(2025, 12, 31), "year") == [
        (dt.date(2025, 1, 1), dt.date(2026, 1, 1))
    ]
    with pytest.raises(ValueError, match="partition must be one of month, year, got 'week'"):
        bench.partitions(dt.date(2025, 1, 1), dt.date(2025, 1, 2), "week")


@pytest.mark.parametrize("case", list(bench.CASES))
def test_every_method_leaves_the_mart_holding_exactly_gold_rows(data: dict, case: str) -> None:
    metrics = bench.CASES[case](TINY)  # verifies the whole table's md5 itself, raising on a difference
    method, window = case.rsplit("_", 1)
    assert metrics["rows"] == bench.gold_rows(bench.windows(data)[window]).num_rows > 0
    assert bench.content(bench.database(method)) == (data["rows"], data["md5"])


def test_the_flat_and_the_partitioned_mart_hold_the_same_rows(data: dict) -> None:
    bench.CASES["insert_select_month"](TINY)
    bench.CASES["partition_swap_day"](TINY)
    flat = bench.content(bench.database("insert_select"))
    partitioned = bench.content(bench.database("partition_swap"))
    assert flat == partitioned == (data["rows"], data["md5"])


@pytest.mark.parametrize(
    "damage",
    ["SET adj_close = adj_close * (1 + 1e-12) WHERE ctid = (SELECT min(ctid) FROM mart.daily_prices)",
     "SET load_id = 'stale-load' WHERE trade_date = (SELECT max(trade_date) FROM mart.daily_prices)"],
    ids=["one value off by 1e-12", "the window's old rows left"],
)  # fmt: skip
def test_the_content_check_fails_on_a_row_that_differs_from_gold(data: dict, damage: str) -> None:
    dsn = bench.database("insert_select")
    bench.CASES["insert_select_day"](TINY)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute(f"UPDATE mart.daily_prices {damage}").rowcount >= 1
    with pytest.raises(bench.ContentMismatch, match=rf"holds {data['rows']} rows \(md5 \w+\) where gold has"):
        bench.verify(dsn, data)
    bench.prepare("insert_select", bench.windows(data)["backfill"], TINY)  # empty: the next run reloads


def test_attached_partitions_adopt_the_built_indexes(data: dict) -> None:
    """ATTACH under the lock must not build indexes: the ones built beforehand become the parent's."""
    bench.CASES["partition_swap_month"](TINY)
    with psycopg.connect(bench.database("partition_swap")) as conn:
        parent = conn.execute("SELECT count(*) FROM pg_index WHERE indrelid = 'mart.daily_prices'::regclass").fetchone()
        per_partition = conn.execute(
            "SELECT c.relname, count(x.indexrelid), count(h.inhparent) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid LEFT JOIN pg_index x ON x.indrelid = c.oid "
            "LEFT JOIN pg_inherits h ON h.inhrelid = x.indexrelid "
            "WHERE i.inhparent = 'mart.daily_prices'::regclass GROUP BY c.relname"
        ).fetchall()
    assert parent[0] == 2  # the primary key and the trade_date index of the migrations
    assert len(per_partition) == len(bench.partitions(_everything(data).start, _everything(data).end, "month"))
    assert all(indexes == adopted == parent[0] for _, indexes, adopted in per_partition), per_partition


def test_a_reader_sees_the_old_or_the_new_window_never_a_mix(data: dict) -> None:
    """A READ COMMITTED reader polls the window while a swap of every partition pauses after each
    ATTACH: it must see all rows stale or none, never some partitions swapped and others not."""
    everything = _everything(data)
    bench.prepare("partition_swap", everything, TINY)  # every row stale
    dsn = bench.database("partition_swap")
    seen: list[tuple[int, int, float]] = []
    stop = threading.Event()

    def read() -> None:
        with psycopg.connect(dsn, autocommit=True) as reader:
            while not stop.is_set():
                started = time.perf_counter()
                stale, total = reader.execute(
                    "SELECT count(*) FILTER (WHERE load_id = %s), count(*) FROM mart.daily_prices",
                    (bench.STALE_LOAD_ID,),
                ).fetchone()
                seen.append((stale, total, time.perf_counter() - started))

    pause = 0.15
    thread = threading.Thread(target=read)
    thread.start()
    try:
        while not seen:
            time.sleep(0.01)
        with psycopg.connect(dsn, autocommit=True) as conn:
            metrics = bench.partition_swap(conn, bench.gold_rows(everything), everything, "month",
                                           inside_swap=lambda _: time.sleep(pause))  # fmt: skip
        after = len(seen)
        while len(seen) == after:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    rows = data["rows"]
    assert metrics["partitions"] >= 12
    mixed = [(stale, total) for stale, total, _ in seen if total != rows or stale not in (0, rows)]
    assert not mixed, f"a reader saw a partly swapped window: {mixed[:5]}"
    assert seen[0][:2] == (rows, rows) and seen[-1][:2] == (0, rows)
    # Readers wait for the swap (it holds ACCESS EXCLUSIVE on the parent), they are not served the old rows.
    assert max(d for *_, d in seen) >= pause
    bench.verify(dsn, data)


@pytest.mark.parametrize(("method", "visible"), [("insert_select", "old"), ("partition_swap", "none")])
def test_a_repeatable_read_reader_older_than_the_load_sees_the_old_window_only_without_partitions(
    data: dict, method: str, visible: str
) -> None:
    """A transaction whose snapshot predates the load keeps seeing the old rows of a DELETE + INSERT
    (MVCC), but after a swap it reads the new partition, whose rows its snapshot cannot see: the
    window looks empty. Partition swaps keep the atomic window for statements, not for snapshots."""
    window = bench.windows(data)["month"]
    bench.prepare(method, window, TINY)
    dsn = bench.database(method)
    with psycopg.connect(dsn) as reader:
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM ops.load_audit").fetchone()  # the snapshot, no lock on the mart
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = bench.gold_rows(window)
            if method == "partition_swap":
                bench.partition_swap(conn, rows, window, "month")
            else:
                bench.insert_select(conn, rows, window)
        stale, total = reader.execute(
            "SELECT count(*) FILTER (WHERE load_id = %s), count(*) FROM mart.daily_prices "
            "WHERE trade_date BETWEEN %s AND %s",
            (bench.STALE_LOAD_ID, window.start, window.end),
        ).fetchone()
    assert (stale, total) == ((rows.num_rows, rows.num_rows) if visible == "old" else (0, 0))
    bench.verify(dsn, data)
