"""Peers on the same data in the same run: DuckDB for the gold step, JVM PySpark for RAW -> GOLD.

Setup makes a template lake (:mod:`bench.datasets`: `symbols` x `years` of daily bars through the
project's three jobs). Each peer is paired with the project case that does the same work on the
same input, and must give the same answers (:func:`compare`, relative 1e-9) or its run fails:

- ``project_gold`` / ``duckdb_gold``: silver -> gold daily prices and monthly performance. The
  project runs ``run_silver_to_gold`` on Sail (it also writes dim_date and the watermark). DuckDB
  runs what a single-machine user would write instead: silver read with `deltalake` into Arrow,
  one SQL query per table on 2 threads, results written back as Delta with `deltalake`.
- ``project_raw_to_gold`` / ``jvm_raw_to_gold``: the three notebooks' jobs, RAW -> GOLD. The JVM
  peer runs the very same job functions on a classic ``local[2]`` PySpark session with parquet in
  place of Delta (Delta's jars cannot be fetched here): :class:`ParquetTables` stands in for
  `spark_jobs.tables.Tables`, so only the storage format differs (and parquet writes no
  transaction log, which favours the JVM). The JVM's start-up is timed apart (``jvm_start_s``).

PostgreSQL's own COPY, the serving peer, is in ``bench_serving`` next to the load it bounds.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from bench import datasets

DEFAULTS = {"symbols": 125, "years": 5}  # 157k bars; the JVM's time is mostly fixed cost (see FINDINGS)
QUICK = {"symbols": 3, "years": 1}
RUNS = 2
CASE_RUNS = {"jvm_raw_to_gold": 1}  # minutes per run, almost all of it fixed cost
WARMUP = 0  # setup's template build ran the project's jobs on the same files; every JVM starts cold anyway
TARGETS = [
    {"name": "gold step: project (Sail) / DuckDB", "ratio": ["project_gold", "duckdb_gold"], "metric": "seconds",
     "max": 2.0, "why": "what a single-machine user might write instead; the project should not cost much more"},
    {"name": "RAW -> GOLD: JVM PySpark local[2] / project (Sail)", "ratio": ["jvm_raw_to_gold", "project_raw_to_gold"],
     "metric": "seconds", "min": 5.0, "why": "the embedded engine's reason to exist"},
    {"name": "RAW -> GOLD incl. JVM start: JVM PySpark / project", "ratio": ["jvm_raw_to_gold", "project_raw_to_gold"],
     "metric": ["seconds_with_start", "seconds"]},
]  # fmt: skip
FINDINGS = """\
The JVM's time is mostly fixed cost, not rows: compare its per-layer seconds (`*_s`) with the
project's at the same size, and note that they barely shrink with the data (`--quick`: 750 rows
took minutes). Every job issues many small actions (reconciliation counts, data-quality
aggregates, watermarks, `first()` / `collect()` of plans), and a fresh JVM plans, code-generates
and JIT-compiles each one cold; `jvm_start_s` (session start) is timed apart and excluded from the
target ratio. The JVM peer writes parquet without a transaction log or MERGE, so it does less
I/O than the project and the ratio is conservative.
DuckDB's gold is two SQL queries over Arrow in one process; the project's `silver_to_gold` also
plans over Spark Connect, merges into Delta through a staged table, writes dim_date and the
watermark and records telemetry, a fixed cost of a few seconds that weighs most at small sizes.
"""
DAILY_KEYS = ("symbol", "trade_date")
MONTHLY_KEYS = ("symbol", "month")


class PeerMismatch(AssertionError):
    """A peer computed different results from the project's: its timing would compare unequal work."""


def _template() -> Path:
    return datasets.data_dir("peers") / "template"


def setup(params: dict) -> None:
    datasets.build_template(_template(), params["symbols"], params["years"])


# --------------------------------------------------------------------------- comparing results


def compare(expected, actual, keys: tuple[str, ...], columns: tuple[str, ...], rel: float = 1e-9) -> float:
    """Largest relative difference between two Arrow tables over `columns`, matched on `keys`.

    Raises:
        PeerMismatch: different row counts or keys, a NULL on one side only, or a value off by more
            than `rel` (relative; absolute 1e-12 near zero). The message names the row and column.
    """
    import numpy as np

    order = [(k, "ascending") for k in keys]
    a, b = expected.sort_by(order), actual.sort_by(order)
    if a.num_rows != b.num_rows:
        raise PeerMismatch(f"{a.num_rows} rows expected, peer has {b.num_rows}")
    for k in keys:
        if not a.column(k).combine_chunks().equals(b.column(k).combine_chunks().cast(a.schema.field(k).type)):
            raise PeerMismatch(f"key column {k} differs between the project's rows and the peer's")

    def where(i: int, c: str) -> str:
        key = tuple(a.column(k)[i].as_py() for k in keys)
        return f"{c} at {key}: project {a.column(c)[i].as_py()!r}, peer {b.column(c)[i].as_py()!r}"

    worst = 0.0
    for c in columns:
        x = np.asarray(a.column(c).cast("double").to_numpy(zero_copy_only=False), dtype=float)  # NULL -> NaN
        y = np.asarray(b.column(c).cast("double").to_numpy(zero_copy_only=False), dtype=float)
        missing_x, missing_y = np.isnan(x), np.isnan(y)
        if (one_sided := np.flatnonzero(missing_x != missing_y)).size:
            raise PeerMismatch(where(int(one_sided[0]), c))
        x, y = x[~missing_x], y[~missing_x]
        diff = np.abs(x - y)
        scale = np.maximum(np.abs(x), np.abs(y))
        off = np.where(scale > 1e-12, diff / np.where(scale > 1e-12, scale, 1.0), diff)
        if (bad := np.flatnonzero((off > rel) & (diff > 1e-12))).size:
            i = int(np.flatnonzero(~missing_x)[bad[0]])
            raise PeerMismatch(f"{where(i, c)} (relative {off[bad[0]]:.2e})")
        worst = max(worst, float(off.max(initial=0.0)))
    return worst


def _project_gold(name: str, served: bool = False):
    """The gold table `name` of the benchmark's template lake (see :func:`gold_table`)."""
    from lakehouse.lake import Lake

    return gold_table(Lake(str(_template() / "lake")), name, served)


def gold_table(lake, name: str, served: bool = False):
    """The project's gold table `name` of `lake`, as stored (forward frame), or as the mart serves it.

    Served: the columns spark_jobs.gold.current_frame rescales, times each symbol's current factor
    (the forward factor of its last event in gold.adjustment_factors, as spark_jobs.gold.current_factors
    reads it), in Arrow: this process runs no Spark (the DuckDB peer's RSS is measured).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from spark_jobs import gold
    from spark_jobs.tables import is_table, read_arrow

    rows = read_arrow(lake.table("gold", name))
    factors_path = lake.table("gold", "adjustment_factors")
    if not served or not gold.FORWARD_COLUMNS.get(name) or not is_table(factors_path):
        return rows
    factors = read_arrow(factors_path).select(["symbol", "ex_date", "forward_factor"])
    last = factors.group_by("symbol").aggregate([("ex_date", "max")]).rename_columns(["symbol", "ex_date"])
    current = last.join(factors, ["symbol", "ex_date"]).select(["symbol", "forward_factor"])
    order = pa.array(range(rows.num_rows))
    joined = rows.append_column("_order", order).join(current, "symbol", join_type="left outer").sort_by("_order")
    factor = pc.fill_null(joined.column("forward_factor"), 1.0)

    def rescaled(column: str):
        return pc.multiply(joined.column(column), factor)

    columns = gold.current_frame(name, rows.column_names, joined.column, rescaled)
    return pa.table(columns, schema=rows.schema)


def _check_gold(daily, monthly, served: bool) -> float:
    """The largest relative difference of `daily` and `monthly` from the project's gold (see _project_gold)."""
    from spark_jobs import gold

    return max(
        compare(_project_gold("fct_daily_prices", served), daily, DAILY_KEYS, gold.DAILY_VALUES),
        compare(_project_gold("fct_monthly_performance", served), monthly, MONTHLY_KEYS, gold.MONTHLY_VALUES),
    )


# --------------------------------------------------------------------------- DuckDB

DUCKDB_DAILY = """
WITH f AS (
  SELECT *, lag(close) OVER w AS prev_close FROM silver WINDOW w AS (PARTITION BY symbol ORDER BY trade_date)
), g AS (
  SELECT *, CASE WHEN coalesce(dividend_amount, 0) > 0 AND prev_close IS NOT NULL
                 THEN 1 - dividend_amount / prev_close ELSE 1 END / coalesce(split_coefficient, 1) AS factor FROM f
), a AS (
  SELECT *, exp(coalesce(sum(CASE WHEN factor > 0 THEN ln(factor) ELSE 0 END) OVER (PARTITION BY symbol
         ORDER BY trade_date ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0)) AS adjustment FROM g
), b AS (
  SELECT *, close * adjustment AS adj_close FROM a
), r AS (
  SELECT *, adj_close / lag(adj_close) OVER w AS ratio FROM b WINDOW w AS (PARTITION BY symbol ORDER BY trade_date)
)
SELECT symbol, trade_date, open, high, low, close, adj_close, volume,
  ratio - 1 AS daily_return, ln(ratio) AS log_return,
  CASE WHEN count(adj_close) OVER w20 = 20 THEN avg(adj_close) OVER w20 END AS ma_20,
  CASE WHEN count(adj_close) OVER w50 = 50 THEN avg(adj_close) OVER w50 END AS ma_50,
  CASE WHEN count(adj_close) OVER w200 = 200 THEN avg(adj_close) OVER w200 END AS ma_200,
  CASE WHEN count(ln(ratio)) OVER w20 = 20 THEN stddev_samp(ln(ratio)) OVER w20 * sqrt(252) END AS volatility_20d,
  max(high * adjustment) OVER w252 AS high_52w, min(low * adjustment) OVER w252 AS low_52w,
  adj_close / max(adj_close) OVER (PARTITION BY symbol ORDER BY trade_date ROWS UNBOUNDED PRECEDING) - 1 AS drawdown,
  'duckdb' AS load_id, '1.0.0' AS schema_version
FROM r
WINDOW w20 AS (PARTITION BY symbol ORDER BY trade_date ROWS 19 PRECEDING),
       w50 AS (PARTITION BY symbol ORDER BY trade_date ROWS 49 PRECEDING),
       w200 AS (PARTITION BY symbol ORDER BY trade_date ROWS 199 PRECEDING),
       w252 AS (PARTITION BY symbol ORDER BY trade_date ROWS 251 PRECEDING)
"""
DUCKDB_MONTHLY = """
WITH m AS (
  SELECT symbol, date_trunc('month', trade_date)::DATE AS month, arg_min(open, trade_date) AS open,
         max(high) AS high, min(low) AS low, arg_max(close, trade_date) AS close,
         arg_max(adj_close, trade_date) AS adj_close, sum(volume)::BIGINT AS volume, count(*)::INT AS trading_days
  FROM daily GROUP BY symbol, month
)
SELECT symbol, month, open, high, low, close, adj_close, volume,
       adj_close / lag(adj_close) OVER (PARTITION BY symbol ORDER BY month) - 1 AS monthly_return, trading_days,
       'duckdb' AS load_id, '1.0.0' AS schema_version
FROM m
"""


def duckdb_gold_tables(silver, out: Path | None = None, threads: int = 2):
    """fct_daily_prices and fct_monthly_performance from silver daily bars (Arrow) in DuckDB."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("silver", silver)
    daily = con.sql(DUCKDB_DAILY).to_arrow_table()
    con.register("daily", daily)
    monthly = con.sql(DUCKDB_MONTHLY).to_arrow_table()
    if out is not None:
        from deltalake import write_deltalake

        write_deltalake(str(out / "fct_daily_prices"), daily, mode="overwrite")
        write_deltalake(str(out / "fct_monthly_performance"), monthly, mode="overwrite")
    return daily, monthly


def duckdb_gold(params: dict) -> dict:
    from deltalake import DeltaTable

    from lakehouse.lake import Lake

    out = _template().parent / "runs" / f"duckdb-{uuid.uuid4().hex[:8]}"
    try:
        started = time.perf_counter()
        silver = DeltaTable(Lake(str(_template() / "lake")).table("silver", "daily_bars")).to_pyarrow_table()
        daily, monthly = duckdb_gold_tables(silver, out)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
    worst = _check_gold(daily, monthly, served=True)  # DuckDB computes the current frame directly
    return {"seconds": round(seconds, 3), "rows": daily.num_rows, "max_relative_difference": worst}


def project_gold(params: dict) -> dict:
    from local.spark import connect

    with datasets.scratch_home(_template(), datasets.INPUTS["silver_to_gold"]) as home:
        settings = datasets.settings_for(home)
        spark = connect(settings.spark_remote)
        try:
            seconds, summary = datasets.run_layer(spark, settings, "silver_to_gold", "bench-gold")
        finally:
            spark.stop()
    rows = summary.tables["gold.fct_daily_prices"].rows_written
    return {"seconds": round(seconds, 3), "rows": rows}


# --------------------------------------------------------------------------- RAW -> GOLD on both engines


def project_raw_to_gold(params: dict) -> dict:
    from local.spark import connect

    with datasets.scratch_home(_template(), ("raw",)) as home:
        settings = datasets.settings_for(home)
        spark = connect(settings.spark_remote)
        try:
            layers = {layer: datasets.run_layer(spark, settings, layer, f"bench-{layer}")[0]
                      for layer in datasets.LAYERS}  # fmt: skip
        finally:
            spark.stop()
    return {"seconds": round(sum(layers.values()), 3), **{f"{k}_s": round(v, 3) for k, v in layers.items()}}


def jvm_session(app: str = "bench-peers"):
    """A classic local[2] JVM session tuned as a careful single-machine user would (2 shuffle partitions)."""
    for name in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED"):
        os.environ.pop(name, None)  # functions.col & co. build classic expressions from here on
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .appName(app)
        .config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )


def parquet_tables():
    """`spark_jobs.tables.Tables` with parquet directories in place of Delta tables (first loads only)."""
    from pyspark.sql import functions as F

    from spark_jobs.tables import Tables

    class ParquetTables(Tables):
        def exists(self, contract) -> bool:
            return (Path(self.path(contract).removeprefix("file://")) / "_SUCCESS").exists()

        def read(self, contract):
            if not self.exists(contract):
                return self.empty(contract)
            return self.spark.read.parquet(self.path(contract))

        def stage(self, df, name: str):
            path = self.lake.uri("ops", "_staging", name)
            df.write.mode("overwrite").parquet(path)
            return self.spark.read.parquet(path)

        def delete(self, contract, predicate: str) -> None:
            if self.exists(contract):
                self._rewrite(contract, self.read(contract).filter(~F.coalesce(F.expr(predicate), F.lit(False))))

        def merge(self, source, contract, **kwargs) -> None:
            if not self.exists(contract):
                self.append(contract.check(source), contract)
                return
            if any(kwargs.get(k) for k in ("keys", "matched_condition", "update_set")) or not kwargs.get(
                "update", True
            ):
                raise NotImplementedError(f"{contract.qualified_name}: the parquet peer measures first loads only")
            # A plain upsert of a small table (ops.job_state: silver_to_gold marks its attempt first).
            keys = list(contract.keys)
            kept = self.read(contract).join(source.select(*keys), keys, "left_anti")
            self._rewrite(contract, kept.unionByName(contract.check(source)))

        def _rewrite(self, contract, rows) -> None:
            path = Path(self.path(contract).removeprefix("file://"))
            scratch = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}")
            rows.write.parquet(str(scratch))
            shutil.rmtree(path)
            scratch.rename(path)

        def _writer(self, df, mode: str, contract):
            # Plain parquet, no file_range layout: the JVM peer measures the engine on first loads.
            return df.write.format("parquet").mode(mode)

    return ParquetTables


def jvm_raw_to_gold(params: dict) -> dict:
    import pyarrow.parquet as pq

    from spark_jobs import jobs

    started = time.perf_counter()
    spark = jvm_session()
    spark.range(1).count()
    start_s = time.perf_counter() - started
    jobs.Tables = parquet_tables()  # this process only: the jobs' one Delta I/O class, swapped for parquet
    with datasets.scratch_home(_template(), ("raw",)) as home:
        settings = datasets.settings_for(home)
        layers = {layer: datasets.run_layer(spark, settings, layer, f"bench-{layer}")[0] for layer in datasets.LAYERS}
        gold_dir = home / "lake" / "gold"
        daily = pq.read_table(gold_dir / "fct_daily_prices")
        monthly = pq.read_table(gold_dir / "fct_monthly_performance")
    worst = _check_gold(daily, monthly, served=False)  # the same jobs' forward frame on both sides
    seconds = sum(layers.values())
    # The session stays up: the harness reads the JVM's peak RSS as a live descendant.
    return {"seconds": round(seconds, 3), "seconds_with_start": round(seconds + start_s, 3),
            "jvm_start_s": round(start_s, 3), **{f"{k}_s": round(v, 3) for k, v in layers.items()},
            "rows": daily.num_rows, "max_relative_difference": worst}  # fmt: skip


CASES = {"project_gold": project_gold, "duckdb_gold": duckdb_gold, "project_raw_to_gold": project_raw_to_gold,
         "jvm_raw_to_gold": jvm_raw_to_gold}  # fmt: skip
