"""Peers are compared on equal work: their results must match the project's, or the benchmark fails."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from bench import bench_peers, datasets
from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from spark_jobs import gold

ROWS = pa.table({
    "symbol": ["A", "A", "B"],
    "trade_date": [dt.date(2025, 1, 2), dt.date(2025, 1, 3), dt.date(2025, 1, 2)],
    "close": [10.0, 11.0, None],
})  # fmt: skip
KEYS = ("symbol", "trade_date")


def test_equal_tables_in_any_row_order_compare_equal() -> None:
    shuffled = ROWS.take([2, 0, 1])
    assert bench_peers.compare(ROWS, shuffled, KEYS, ("close",)) == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.set_column(2, "close", pa.array([10.0, 11.0 * (1 + 1e-6), None])), r"close at \('A'.*relative"),
        (lambda t: t.set_column(2, "close", pa.array([10.0, 11.0, 0.0])), r"close at \('B'.*project None, peer 0.0"),
        (lambda t: t.slice(0, 2), "3 rows expected, peer has 2"),
        (lambda t: t.set_column(0, "symbol", pa.array(["A", "A", "C"])), "key column symbol differs"),
    ],
    ids=["value off by 1e-6", "NULL on one side", "row missing", "different key"],
)
def test_a_peer_that_disagrees_fails_naming_the_row_and_column(change, message) -> None:
    with pytest.raises(bench_peers.PeerMismatch, match=message):
        bench_peers.compare(ROWS, change(ROWS), KEYS, ("close",))


def test_duckdb_gold_is_the_projects_gold_and_a_changed_value_is_caught(spark, endpoints, tmp_path: Path) -> None:
    """The DuckDB peer's SQL stays equal to spark_jobs.gold: run the project's jobs on a tiny lake and compare."""
    settings = load_settings(home=tmp_path / "home", spark_remote=endpoints.spark_remote, pg_dsn=None)
    lake = Lake.from_settings(settings)
    info = datasets.write_raw(lake.local_path("raw"), 3, 2)
    for layer in datasets.LAYERS:
        datasets.run_layer(spark, settings, layer, f"t-{layer}")
    silver = DeltaTable(lake.table("silver", "daily_bars")).to_pyarrow_table()
    # Gold as the mart serves it: DuckDB computes the current adjusted frame directly.
    project_daily = bench_peers.gold_table(lake, "fct_daily_prices", served=True)
    project_monthly = bench_peers.gold_table(lake, "fct_monthly_performance", served=True)
    daily, monthly = bench_peers.duckdb_gold_tables(silver)
    assert daily.num_rows == info["bars"] == 3 * len(set(silver.column("trade_date").to_pylist()))
    assert bench_peers.compare(project_daily, daily, bench_peers.DAILY_KEYS, gold.DAILY_VALUES) < 1e-9
    assert bench_peers.compare(project_monthly, monthly, bench_peers.MONTHLY_KEYS, gold.MONTHLY_VALUES) < 1e-9
    off = daily.set_column(daily.schema.get_field_index("ma_20"), "ma_20", pc.multiply(daily["ma_20"], 1.001))
    with pytest.raises(bench_peers.PeerMismatch, match="ma_20"):
        bench_peers.compare(project_daily, off, bench_peers.DAILY_KEYS, gold.DAILY_VALUES)


def test_the_jvm_peers_parquet_tables_accept_every_argument_of_the_methods_they_override() -> None:
    """The JVM peer swaps the jobs' Tables for a parquet subclass: an override that no longer takes
    an argument the jobs pass fails only in `make bench` (the writer once lost the contract)."""
    import inspect

    from spark_jobs.tables import Tables

    peer = bench_peers.parquet_tables()
    overridden = [n for n in vars(peer) if not n.startswith("__") and hasattr(Tables, n)]
    assert "_writer" in overridden
    for name in overridden:
        named = [p.name for p in inspect.signature(getattr(Tables, name)).parameters.values()
                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # fmt: skip
        inspect.signature(getattr(peer, name)).bind(**dict.fromkeys(named))  # raises TypeError naming it
