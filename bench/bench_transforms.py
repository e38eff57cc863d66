"""Benchmark of the transforms: RAW -> GOLD per layer, DuckDB on the same gold step, incremental cost.

Usage: ``python bench/bench_transforms.py [--symbols 500] [--years 5] [--out bench/results/transforms.json]``

1. Writes RAW for N symbols x Y years of daily bars (Alpha Vantage wire format, quarterly
   dividends, a few splits) into a fresh lake, runs raw_to_bronze, bronze_to_silver and
   silver_to_gold on an embedded Sail server (its own process), and records seconds and rows/s
   per layer.
2. Computes fct_daily_prices with DuckDB from the same silver table (read with `deltalake`,
   written back as a Delta table) and checks both engines agree to 1e-9.
3. Daily incremental: a lake holding Y years of history and one holding one month each take the
   same next-day files (last 5 bars per symbol); the full three-job run is timed on both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lakehouse.lake import Lake  # noqa: E402
from lakehouse.settings import load_settings  # noqa: E402
from lakehouse.trading_calendar import sessions  # noqa: E402
from local.services import SailService  # noqa: E402
from local.spark import connect  # noqa: E402
from spark_jobs import jobs  # noqa: E402

DUCKDB_GOLD = """
WITH f AS (
  SELECT *, lag(close) OVER w AS prev_close FROM silver WINDOW w AS (PARTITION BY symbol ORDER BY trade_date)
), g AS (
  SELECT *, CASE WHEN coalesce(dividend_amount, 0) > 0 AND prev_close IS NOT NULL
                 THEN 1 - dividend_amount / prev_close ELSE 1 END / coalesce(split_coefficient, 1) AS factor FROM f
), a AS (
  SELECT *, close * exp(coalesce(sum(CASE WHEN factor > 0 THEN ln(factor) ELSE 0 END) OVER (PARTITION BY symbol
         ORDER BY trade_date ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0)) AS adj_close FROM g
), r AS (
  SELECT *, adj_close / lag(adj_close) OVER w AS ratio FROM a WINDOW w AS (PARTITION BY symbol ORDER BY trade_date)
)
SELECT symbol, trade_date, open, high, low, close, adj_close, volume,
  ratio - 1 AS daily_return, ln(ratio) AS log_return,
  CASE WHEN count(adj_close) OVER w20 = 20 THEN avg(adj_close) OVER w20 END AS ma_20,
  CASE WHEN count(adj_close) OVER w50 = 50 THEN avg(adj_close) OVER w50 END AS ma_50,
  CASE WHEN count(adj_close) OVER w200 = 200 THEN avg(adj_close) OVER w200 END AS ma_200,
  CASE WHEN count(ln(ratio)) OVER w20 = 20 THEN stddev_samp(ln(ratio)) OVER w20 * sqrt(252) END AS volatility_20d,
  max(high) OVER w252 AS high_52w, min(low) OVER w252 AS low_52w,
  adj_close / max(adj_close) OVER (PARTITION BY symbol ORDER BY trade_date ROWS UNBOUNDED PRECEDING) - 1 AS drawdown
FROM r
WINDOW w20 AS (PARTITION BY symbol ORDER BY trade_date ROWS 19 PRECEDING),
       w50 AS (PARTITION BY symbol ORDER BY trade_date ROWS 49 PRECEDING),
       w200 AS (PARTITION BY symbol ORDER BY trade_date ROWS 199 PRECEDING),
       w252 AS (PARTITION BY symbol ORDER BY trade_date ROWS 251 PRECEDING)
"""


def symbols(n: int) -> list[str]:
    out = []
    for i in range(n):
        a, b = divmod(i, 26)
        out.append("S" + chr(65 + a // 26 % 26) + chr(65 + a % 26) + chr(65 + b))
    return out


def series(sym_index: int, days: list[dt.date]) -> list[tuple]:
    """Deterministic bars: random walk, a dividend every 63 bars, a 2:1 split for every 20th symbol."""
    rng = np.random.default_rng(sym_index)
    n = len(days)
    level = 50 + 100 * rng.random() * np.cumprod(1 + rng.normal(0.0003, 0.015, n))
    split_at = n // 2 if sym_index % 20 == 0 else -1
    if split_at > 0:
        level[split_at:] /= 2
    opens = level * (1 + rng.normal(0, 0.004, n))
    highs = np.maximum(opens, level) * (1 + rng.random(n) * 0.01)
    lows = np.minimum(opens, level) * (1 - rng.random(n) * 0.01)
    vols = rng.integers(100_000, 5_000_000, n)
    rows = []
    for i, d in enumerate(days):
        div = 0.25 if (i + sym_index) % 63 == 0 and i > 0 else 0.0
        rows.append(
            (d.isoformat(), opens[i], highs[i], lows[i], level[i], int(vols[i]), div, 2.0 if i == split_at else 1.0)
        )
    return rows


def body(symbol: str, bars: list[tuple]) -> bytes:
    ts = {}
    for d, o, h, lo, c, v, div, sp in reversed(bars):
        ts[d] = {"1. open": f"{o:.4f}", "2. high": f"{h:.4f}", "3. low": f"{lo:.4f}", "4. close": f"{c:.4f}",
                 "5. adjusted close": f"{c:.4f}", "6. volume": str(v), "7. dividend amount": f"{div:.4f}",
                 "8. split coefficient": f"{sp:.1f}"}  # fmt: skip
    meta = {"1. Information": "Daily Time Series with Splits and Dividend Events", "2. Symbol": symbol,
            "3. Last Refreshed": bars[-1][0], "4. Output Size": "Full size", "5. Time Zone": "US/Eastern"}  # fmt: skip
    return json.dumps({"Meta Data": meta, "Time Series (Daily)": ts}, indent=4).encode()


def write_raw(lake: Lake, data: dict[str, list[tuple]], ingest_date: str, run_id: str) -> int:
    root = lake.local_path("raw")
    files = []
    for sym, bars in data.items():
        rel = f"synthetic/daily_bars/ingest_date={ingest_date}/{sym}/{run_id}.json"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = body(sym, bars)
        path.write_bytes(payload)
        files.append({"path": rel, "bytes": len(payload), "symbol": sym, "http_status": 200, "records": len(bars)})
    manifest = root / "_manifests/daily_bars" / f"ingest_date={ingest_date}" / f"{run_id}.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"run_id": run_id, "files": files}))
    return sum(len(b) for b in data.values())


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    elapsed = time.perf_counter() - start
    print(f"[bench] {getattr(fn, '__name__', fn)}: {elapsed:.2f}s", file=sys.stderr, flush=True)
    return elapsed, result


def run_layers(spark, settings, day: str, run_id: str) -> dict:
    out = {}
    for name, fn in (("raw_to_bronze", jobs.run_raw_to_bronze), ("bronze_to_silver", jobs.run_bronze_to_silver),
                     ("silver_to_gold", jobs.run_silver_to_gold)):  # fmt: skip
        seconds, summary = timed(fn, spark, settings, day, day, run_id)
        out[name] = {"seconds": round(seconds, 3), "summary": summary}
    return out


def duckdb_gold(lake: Lake, out_dir: Path) -> tuple[float, object]:
    import duckdb
    from deltalake import DeltaTable, write_deltalake

    start = time.perf_counter()
    silver = DeltaTable(lake.table("silver", "daily_bars")).to_pyarrow_table()  # noqa: F841 - read by DuckDB
    con = duckdb.connect()
    con.execute("SET threads = 2")
    result = con.sql(DUCKDB_GOLD).to_arrow_table()
    write_deltalake(str(out_dir), result, mode="overwrite")
    return time.perf_counter() - start, result


def compare(sail_rows, duck) -> float:
    """Largest relative difference between Sail's and DuckDB's gold over the value columns."""
    duck_sorted = duck.sort_by([("symbol", "ascending"), ("trade_date", "ascending")]).to_pydict()
    worst = 0.0
    cols = ["adj_close", "daily_return", "ma_20", "ma_200", "volatility_20d", "high_52w", "drawdown"]
    assert len(sail_rows) == len(duck_sorted["symbol"]), "row counts differ"
    for i, row in enumerate(sail_rows):
        for c in cols:
            a, b = row[c], duck_sorted[c][i]
            if a is None or b is None:
                assert a is None and b is None, (row["symbol"], row["trade_date"], c, a, b)
                continue
            worst = max(worst, abs(a - b) / max(abs(b), 1e-12) if abs(b) > 1e-12 else abs(a - b))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench/results/transforms.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-transforms-"))
    sail = SailService(work / "sail")
    (work / "sail" / "services").mkdir(parents=True)
    info = sail.start()
    try:
        spark = connect(info.url)
        end = dt.date(2025, 12, 31)
        days = sessions(dt.date(end.year - args.years, 12, 31), end)
        next_days = sessions(end + dt.timedelta(days=1), end + dt.timedelta(days=10))[:1]
        all_days = days + next_days
        names = symbols(args.symbols)
        t0 = time.perf_counter()
        full = {s: series(i, all_days) for i, s in enumerate(names)}
        gen_seconds = time.perf_counter() - t0

        # 1. full history RAW -> GOLD
        big = load_settings(home=work / "big", spark_remote=info.url)
        big_lake = Lake.from_settings(big)
        bars = write_raw(big_lake, {s: b[:-1] for s, b in full.items()}, "2026-01-02", "full")
        raw_bytes = sum(p.stat().st_size for p in big_lake.local_path("raw").rglob("*.json"))
        layers = run_layers(spark, big, "2026-01-02", "bench-full")
        per_layer = {}
        for name, r in layers.items():
            rows = r["summary"].get("rows_written") or r["summary"].get("rows_read") or bars
            per_layer[name] = {"seconds": r["seconds"], "rows": rows, "rows_per_second": round(rows / r["seconds"])}
        reconciled = layers["raw_to_bronze"]["summary"]["rows_written"] == bars

        # 2. the gold step on DuckDB, same silver
        duck_seconds, duck = duckdb_gold(big_lake, work / "duck_gold")
        sail_gold = spark.read.format("delta").load(big_lake.table("gold", "fct_daily_prices"))
        sail_rows = [r.asDict() for r in sail_gold.orderBy("symbol", "trade_date").collect()]
        max_rel_diff = compare(sail_rows, duck)

        # 3. daily incremental on full history vs one month of history
        small = load_settings(home=work / "small", spark_remote=info.url)
        small_lake = Lake.from_settings(small)
        write_raw(small_lake, {s: b[-22:-1] for s, b in full.items()}, "2026-01-02", "month")
        run_layers(spark, small, "2026-01-02", "bench-month")
        increments = {}
        for label, settings, lake in (("history_5y", big, big_lake), ("history_1m", small, small_lake)):
            write_raw(lake, {s: b[-5:] for s, b in full.items()}, "2026-01-05", "daily")
            inc = run_layers(spark, settings, "2026-01-05", f"bench-daily-{label}")
            increments[label] = {
                "seconds": round(sum(r["seconds"] for r in inc.values()), 3),
                "per_layer": {k: v["seconds"] for k, v in inc.items()},
                "gold_rows_written": inc["silver_to_gold"]["summary"]["tables"]["gold.fct_daily_prices"][
                    "rows_written"
                ],
            }
        result = {
            "benchmark": "transforms",
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "engine": "Sail 0.7.2 (Spark Connect, own process)",
            "input": {"symbols": args.symbols, "sessions": len(days), "bars": bars, "raw_files": len(names),
                      "raw_megabytes": round(raw_bytes / 1e6, 1), "generation_seconds": round(gen_seconds, 2)},
            "full_load": {"layers": per_layer, "total_seconds": round(sum(v["seconds"] for v in per_layer.values()), 3),
                          "raw_records_equal_bronze_rows": reconciled},
            "gold_vs_duckdb": {
                "sail_seconds": per_layer["silver_to_gold"]["seconds"], "duckdb_seconds": round(duck_seconds, 3),
                "ratio_sail_over_duckdb": round(per_layer["silver_to_gold"]["seconds"] / duck_seconds, 2),
                "target_ratio": 2.0, "max_relative_difference": max_rel_diff,
                "note": "both read silver from Delta, compute fct_daily_prices and write Delta; Sail also merges "
                        "into the existing table and computes monthly, dim_date, watermarks",
            },
            "daily_incremental": {
                **increments,
                "ratio_5y_over_1m": round(increments["history_5y"]["seconds"] / increments["history_1m"]["seconds"], 2),
                "target_ratio": 1.3,
            },
        }  # fmt: skip
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        spark.stop()
    finally:
        sail.stop(info)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
