"""Benchmark of the gold -> PostgreSQL load: 630k daily price rows (500 symbols x 5 years).

Measured in one run on the same server and the same empty ``mart.daily_prices`` (with its primary
key and index), each timed from the first byte to commit:

- ``server_copy``: PostgreSQL's own server-side ``COPY mart.daily_prices FROM '<file>'`` of a CSV
  file holding the same rows: the floor for getting these rows into this table.
- ``project_load``: ``spark_jobs.serving.load`` end to end: read the gold Delta table through
  Spark Connect (Sail) into Arrow, COPY into an UNLOGGED staging table, then the swap transaction
  (delete window, insert, checksum, audit). Target: <= 1.3x ``server_copy``.
- ``project_reload``: the same load again, when the window is already full (630k rows deleted too).
- ``row_by_row``: one INSERT statement per row in one transaction over a subset, extrapolated.

Usage: ``python bench/bench_serving.py [--symbols 500] [--years 5] [--repeat 3] [--subset 20000]``.
Writes ``bench/results/serving.json``. Uses the services named by LAKEHOUSE_SPARK_REMOTE /
LAKEHOUSE_PG_DSN, or starts embedded ones under a temporary LAKEHOUSE_HOME.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lakehouse.lake import Lake  # noqa: E402
from lakehouse.settings import load_settings  # noqa: E402
from lakehouse.trading_calendar import sessions  # noqa: E402
from local import services  # noqa: E402
from local.spark import connect  # noqa: E402
from spark_jobs import migrations, serving  # noqa: E402
from tests.spark_jobs.serving_data import GOLD_DDL, fresh_database  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "serving.json"


def gold_table(symbols: int, years: int) -> pa.Table:
    """Synthetic gold fct_daily_prices rows with the contract's columns and realistic value spread."""
    end = dt.date(2024, 12, 31)
    days = sessions(end.replace(year=end.year - years) + dt.timedelta(days=1), end)
    n_days = len(days)
    rng = np.random.default_rng(42)
    rets = rng.normal(0.0003, 0.018, size=(symbols, n_days))
    adj = 20 * np.exp(rng.normal(1.5, 0.8, size=(symbols, 1)) + np.cumsum(rets, axis=1))
    close = adj * 1.0123
    flat = lambda a: a.reshape(-1)  # noqa: E731
    daily_return = np.exp(rets) - 1
    daily_return[:, 0] = np.nan
    ma = lambda w: np.where(np.arange(n_days) >= w - 1, adj * 0.998, np.nan)  # noqa: E731
    to_arrow = lambda a: pa.array(flat(a), pa.float64(), from_pandas=True)  # noqa: E731 - NaN -> NULL
    names = [f"S{i:04d}" for i in range(symbols)]
    columns = {
        "symbol": pa.array(np.repeat(names, n_days)),
        "trade_date": pa.array(np.tile(np.array(days, dtype="datetime64[D]"), symbols), pa.date32()),
        "open": pa.array(flat(close * 0.997)),
        "high": pa.array(flat(close * 1.011)),
        "low": pa.array(flat(close * 0.989)),
        "close": pa.array(flat(close)),
        "adj_close": pa.array(flat(adj)),
        "volume": pa.array(flat(rng.integers(10_000, 50_000_000, size=(symbols, n_days))), pa.int64()),
        "daily_return": to_arrow(daily_return),
        "log_return": to_arrow(np.log1p(daily_return)),
        "ma_20": to_arrow(ma(20)),
        "ma_50": to_arrow(ma(50)),
        "ma_200": to_arrow(ma(200)),
        "volatility_20d": to_arrow(np.where(np.arange(n_days) >= 19, np.abs(rets) * 4.47, np.nan)),
        "high_52w": pa.array(flat(np.maximum.accumulate(adj, axis=1))),
        "low_52w": pa.array(flat(np.minimum.accumulate(adj, axis=1))),
        "drawdown": pa.array(flat(adj / np.maximum.accumulate(adj, axis=1) - 1)),
        "load_id": pa.array(["bench-gold"] * (symbols * n_days)),
        "schema_version": pa.array(["1.0.0"] * (symbols * n_days)),
    }
    names_in_contract = [c.split()[0] for c in GOLD_DDL["fct_daily_prices"].split(", ")]
    return pa.table({name: columns[name] for name in names_in_contract})


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--subset", type=int, default=20_000, help="rows for the row-by-row baseline")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        result = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # ~0.8 GB of lake, CSV and PostgreSQL data
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def run(args: argparse.Namespace, work: Path) -> dict:
    os.chmod(work, 0o755)  # noqa: S103 - the server process (another user when run as root) reads the CSV file
    settings = load_settings(home=os.environ.get("LAKEHOUSE_HOME", work / "home"))
    with services.running(settings) as endpoints, fresh_database(endpoints.pg_dsn) as dsn:
        spark = connect(endpoints.spark_remote)
        migrations.apply(dsn)
        lake = Lake(str(work / "lake"))
        table = gold_table(args.symbols, args.years)
        from deltalake import write_deltalake

        write_deltalake(lake.table("gold", "fct_daily_prices"), table, mode="overwrite")
        csv_path = work / "daily_prices.csv"
        pacsv.write_csv(table, str(csv_path), pacsv.WriteOptions(include_header=False))
        os.chmod(csv_path, 0o644)
        dates = table.column("trade_date")
        import pyarrow.compute as pc

        bounds = pc.min_max(dates).as_py()
        window = serving.Window(bounds["min"], bounds["max"])
        rows = table.num_rows
        print(f"{rows} rows, window {window.start}..{window.end}, CSV {csv_path.stat().st_size / 1e6:.1f} MB")

        def empty_mart() -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("TRUNCATE mart.daily_prices")
                conn.execute("CHECKPOINT")

        def server_copy() -> None:
            with psycopg.connect(dsn) as conn:
                conn.execute(f"COPY mart.daily_prices FROM '{csv_path}' (FORMAT csv)")

        def project_load() -> list[serving.TableLoad]:
            return serving.load(spark, lake, dsn, window=window, load_id="bench", tables=["daily_prices"])

        # Warm-up: the Sail session, the file cache, the Delta log.
        empty_mart()
        project_load()
        copy_s, load_s, reload_s, phases = [], [], [], {"load": [], "reload": []}
        for _ in range(args.repeat):
            empty_mart()
            copy_s.append(timed(server_copy))
            empty_mart()
            for key, times in (("load", load_s), ("reload", reload_s)):
                started = time.perf_counter()
                (result,) = project_load()
                times.append(time.perf_counter() - started)
                phases[key].append(result.seconds)
        with psycopg.connect(dsn) as conn:
            loaded = conn.execute("SELECT count(*) FROM mart.daily_prices").fetchone()[0]
        assert loaded == rows, f"loaded {loaded} rows, expected {rows}"

        subset = table.slice(0, min(args.subset, rows)).to_pylist()
        columns = table.column_names
        insert = f"INSERT INTO mart.daily_prices ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        empty_mart()

        def row_by_row() -> None:
            with psycopg.connect(dsn) as conn, conn.cursor() as cur:
                for record in subset:
                    cur.execute(insert, [record[c] for c in columns])

        subset_s = timed(row_by_row)
        spark.stop()

    copy_med, load_med, reload_med = (statistics.median(x) for x in (copy_s, load_s, reload_s))
    result = {
        "benchmark": "gold fct_daily_prices -> mart.daily_prices",
        "rows": rows,
        "symbols": args.symbols,
        "years": args.years,
        "repeat": args.repeat,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "seconds": {
            "server_copy_from_file": {"median": round(copy_med, 3), "runs": [round(x, 3) for x in copy_s]},
            "project_load_empty_window": {"median": round(load_med, 3), "runs": [round(x, 3) for x in load_s]},
            "project_load_replace_window": {"median": round(reload_med, 3), "runs": [round(x, 3) for x in reload_s]},
            "row_by_row_subset": {"rows": len(subset), "seconds": round(subset_s, 3)},
            "row_by_row_extrapolated": round(subset_s * rows / len(subset), 1),
        },
        "project_phases_seconds": phases,
        "ratio_project_load_to_server_copy": round(load_med / copy_med, 3),
        "ratio_project_reload_to_server_copy": round(reload_med / copy_med, 3),
        "target_ratio": 1.3,
        "speedup_over_row_by_row": round(subset_s * rows / len(subset) / load_med, 1),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return result


if __name__ == "__main__":
    main()
