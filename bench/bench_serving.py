"""Gold -> PostgreSQL: the mart load against the server's own COPY FROM file of the same rows.

Setup writes a deterministic gold fct_daily_prices Delta table (`symbols` x `years` of sessions,
the contract's columns, realistic value spread and NULLs), the same rows as a CSV file, and a
fresh migrated database `bench_serving` on the harness's PostgreSQL. Every case starts from the
state it needs (untimed) and times from the first byte to commit, into ``mart.daily_prices`` with
its primary key and index:

- ``server_copy``: ``COPY mart.daily_prices FROM '<file>'`` run by the server itself: the floor
  for getting these rows into this table.
- ``project_load``: ``spark_jobs.serving.load`` into an empty window: one swap transaction that
  deletes the window, reads gold through Spark Connect (Sail) as Arrow and binary-COPies it straight
  into the mart, then checks the content and writes the audit row.
- ``project_reload``: the same load when the window already holds every row (full-window replace).
- ``row_by_row``: one INSERT per row in one transaction over `subset` rows (the naive baseline).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from bench import datasets

DEFAULTS = {"symbols": 500, "years": 5, "subset": 20_000}  # 629k mart rows
QUICK = {"symbols": 5, "years": 1, "subset": 200}
RUNS = 2
WARMUP = 0  # setup ends with one untimed server_copy and project_load
DATABASE = "bench_serving"
TARGETS = [
    {"name": "mart load / server-side COPY FROM file", "ratio": ["project_load", "server_copy"],
     "metric": "seconds", "max": 1.3,
     "why": "the load adds Spark reading and an atomic swap; it should cost little over the floor"},
    {"name": "full-window replace / server-side COPY", "ratio": ["project_reload", "server_copy"],
     "metric": "seconds"},
    {"name": "row-by-row INSERT (extrapolated) / mart load", "ratio": ["row_by_row", "project_load"],
     "metric": ["extrapolated_seconds", "seconds"]},
]  # fmt: skip
FINDINGS = """\
Where the mart load's time goes is recorded per run (`delete_s`, `read_s`, `copy_s`, `verify_s`,
`swap_s`, from `TableLoad.seconds`; the COPY streams while gold is read, so `copy_s` includes the
read). Until issue 20 the load COPied the rows into an UNLOGGED staging table and then, in the swap
transaction, ran `INSERT ... SELECT` into the indexed `mart.daily_prices`: two writes of every row,
the second as expensive as the server's own COPY (quiet run 2026-12-02: 6.75 s = read 2.35 and
staging 2.7 overlapped, INSERT ... SELECT 2.9, content check 0.9-1.2; ratio 1.50 against the
server's 4.5 s after migration 062's byte-order keys made that floor fall). The load now deletes
the window and COPies the gold rows straight into the mart inside the swap transaction: written
once, and the server's insert into the indexed table overlaps the read of gold. Readers still see
the old window until the commit (MVCC); the transaction's locks, which block only other loads and
writers, now last through the read. Measured old and new code alternating on the same data (14
rounds, the server's COPY in each, machine shared, load average 8-13): empty-window load / server
COPY 1.67 -> 1.24 (medians; new / old paired 0.75), CPU of Sail + PostgreSQL + loader 5.87 -> 5.31 s
(PostgreSQL 2.66 -> 2.10 s); a full-window replace (`project_reload`) is unchanged (paired 1.08,
0.58-2.44; equal CPU): its cost is the unique-index checks against the deleted window's dead
entries, in either design. The next lever is the in-transaction content check (1-2 s of a backfill).
This run (2026-12-02 11:55, on a replacement machine about twice as fast: Intel Xeon, 2 cores, load
0.6-1.4): load 3.05 s (read 1.83, COPY 2.36 overlapping it, content check 0.65) against the server's
COPY 2.6 s: **1.18** (target 1.3: met).
"""


def _dir() -> Path:
    return datasets.data_dir("serving")


def _dsn(database: str = DATABASE) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(**{**conninfo_to_dict(os.environ["LAKEHOUSE_PG_DSN"]), "dbname": database})


def gold_table(symbols: int, years: int):
    """Gold fct_daily_prices rows with the contract's columns, values spread as real prices are."""
    import numpy as np
    import pyarrow as pa

    from lakehouse.trading_calendar import sessions
    from spark_jobs.tables import contract

    days = sessions(datasets.END.replace(year=datasets.END.year - years) + dt.timedelta(days=1), datasets.END)
    n_days = len(days)
    rng = np.random.default_rng(42)
    rets = rng.normal(0.0003, 0.018, size=(symbols, n_days))
    adj = 20 * np.exp(rng.normal(1.5, 0.8, size=(symbols, 1)) + np.cumsum(rets, axis=1))
    close = adj * 1.0123
    daily_return = np.exp(rets) - 1
    daily_return[:, 0] = np.nan
    n = symbols * n_days

    def col(a, kind=None):
        return pa.array(a.reshape(-1), kind or pa.float64(), from_pandas=True)  # NaN -> NULL

    def moving(w):
        return np.where(np.arange(n_days) >= w - 1, adj * 0.998, np.nan)

    columns = {
        "symbol": pa.array(np.repeat(datasets.symbols(symbols), n_days)),
        "trade_date": pa.array(np.tile(np.array(days, dtype="datetime64[D]"), symbols), pa.date32()),
        "open": col(close * 0.997), "high": col(close * 1.011), "low": col(close * 0.989), "close": col(close),
        "adj_close": col(adj), "volume": col(rng.integers(10_000, 50_000_000, size=(symbols, n_days)), pa.int64()),
        "daily_return": col(daily_return), "log_return": col(np.log1p(daily_return)),
        "ma_20": col(moving(20)), "ma_50": col(moving(50)), "ma_200": col(moving(200)),
        "volatility_20d": col(np.where(np.arange(n_days) >= 19, np.abs(rets) * 4.47, np.nan)),
        "high_52w": col(np.maximum.accumulate(adj, axis=1)), "low_52w": col(np.minimum.accumulate(adj, axis=1)),
        "drawdown": col(adj / np.maximum.accumulate(adj, axis=1) - 1),
        "load_id": pa.array(["bench-gold"] * n), "schema_version": pa.array(["1.0.0"] * n),
    }  # fmt: skip
    return pa.table({name: columns[name] for name in contract("gold", "fct_daily_prices").column_names})


def server_readable_csv(table, csv: Path) -> None:
    """`table` as header-less CSV the server process itself reads (``COPY ... FROM '<file>'``): it
    runs as another user when the benchmark runs as root, so the file and its folders get read access."""
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, str(csv), pacsv.WriteOptions(include_header=False))
    for path in (csv, *csv.parents):
        if path == Path("/"):
            break
        os.chmod(path, os.stat(path).st_mode | 0o005 | (0o001 if path.is_dir() else 0))


def migrated_database(database: str) -> str:
    """A fresh database `database` on the harness's PostgreSQL with the project's migrations; its DSN."""
    import psycopg

    from spark_jobs import migrations

    with psycopg.connect(_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    migrations.apply(_dsn(database))
    return _dsn(database)


def setup(params: dict) -> None:
    import json
    import shutil

    import pyarrow.compute as pc
    from deltalake import write_deltalake

    from lakehouse.lake import Lake

    root = _dir()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    table = gold_table(params["symbols"], params["years"])
    write_deltalake(Lake(str(root / "lake")).table("gold", "fct_daily_prices"), table, mode="overwrite")
    server_readable_csv(table, root / "daily_prices.csv")
    bounds = pc.min_max(table.column("trade_date")).as_py()
    (root / "data.json").write_text(json.dumps({"rows": table.num_rows, "start": bounds["min"].isoformat(),
                                                "end": bounds["max"].isoformat()}))  # fmt: skip
    migrated_database(DATABASE)
    server_copy(params)  # the warm-up: Sail's first read of the table, the server's caches, the file
    project_load(params)


def _data() -> dict:
    import json

    return json.loads((_dir() / "data.json").read_text())


def _mart_rows() -> int:
    import psycopg

    with psycopg.connect(_dsn()) as conn:
        return conn.execute("SELECT count(*) FROM mart.daily_prices").fetchone()[0]


def _empty_mart() -> None:
    import psycopg

    with psycopg.connect(_dsn(), autocommit=True) as conn:
        conn.execute("TRUNCATE mart.daily_prices")
        conn.execute("CHECKPOINT")


def _project_load(data: dict) -> tuple[float, dict]:
    from lakehouse.lake import Lake
    from local.spark import connect
    from spark_jobs import serving

    spark = connect(os.environ["LAKEHOUSE_SPARK_REMOTE"])
    try:
        window = serving.DateWindow(dt.date.fromisoformat(data["start"]), dt.date.fromisoformat(data["end"]))
        started = time.perf_counter()
        (result,) = serving.load(spark, Lake(str(_dir() / "lake")), _dsn(), window=window, load_id="bench",
                                 tables=["daily_prices"])  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        spark.stop()
    return seconds, result.seconds


def server_copy(params: dict) -> dict:
    import psycopg

    data = _data()
    _empty_mart()
    started = time.perf_counter()
    with psycopg.connect(_dsn()) as conn:
        conn.execute(f"COPY mart.daily_prices FROM '{_dir() / 'daily_prices.csv'}' (FORMAT csv)")
    seconds = time.perf_counter() - started
    return _checked(seconds, data)


def project_load(params: dict) -> dict:
    data = _data()
    _empty_mart()
    seconds, phases = _project_load(data)
    return _checked(seconds, data) | {f"{k}_s": v for k, v in phases.items()}


def project_reload(params: dict) -> dict:
    data = _data()
    if _mart_rows() != data["rows"]:
        _empty_mart()
        _project_load(data)
    seconds, phases = _project_load(data)
    return _checked(seconds, data) | {f"{k}_s": v for k, v in phases.items()}


def row_by_row(params: dict) -> dict:
    import psycopg
    import pyarrow.csv as pacsv

    from spark_jobs.tables import contract

    data = _data()
    names = contract("gold", "fct_daily_prices").column_names
    records: list[tuple] = []
    with pacsv.open_csv(_dir() / "daily_prices.csv", read_options=pacsv.ReadOptions(column_names=names)) as rows:
        for batch in rows:  # the first `subset` rows only
            records += [tuple(r.values()) for r in batch.to_pylist()][: params["subset"] - len(records)]
            if len(records) >= params["subset"]:
                break
    insert = f"INSERT INTO mart.daily_prices ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"
    _empty_mart()
    started = time.perf_counter()
    with psycopg.connect(_dsn()) as conn, conn.cursor() as cur:
        for record in records:
            cur.execute(insert, record)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "rows": len(records), "rows_per_s": round(len(records) / seconds),
            "extrapolated_seconds": round(seconds * data["rows"] / len(records), 1)}  # fmt: skip


def _checked(seconds: float, data: dict) -> dict:
    loaded = _mart_rows()
    if loaded != data["rows"]:
        raise RuntimeError(f"mart.daily_prices holds {loaded} rows after the run, gold has {data['rows']}")
    return {"seconds": round(seconds, 3), "rows": loaded, "rows_per_s": round(loaded / seconds)}


CASES = {"server_copy": server_copy, "project_load": project_load, "project_reload": project_reload,
         "row_by_row": row_by_row}  # fmt: skip
