"""The whole backfill against a DuckDB-only pipeline on the same RAW files, in the same run.

- ``project_backfill``: the project's backfill from an empty lake and an empty database to loaded
  marts, exactly as ``bench_e2e``'s ``backfill`` case runs it (`pl_backfill` through the local ADF
  runner, the Function app against the synthetic market API, the notebooks on Sail, the marts in
  PostgreSQL), in a work directory of this benchmark.
- ``duckdb_backfill``: :mod:`bench.duckdb_pipeline` on the RAW files that run landed, from an empty
  database of its own to loaded marts. Only the project pays for the ingestion's calls to the
  market API (the peer reads what they landed): ``seconds_without_ingest`` gives the ratio without them.

After its run the peer's marts must equal the project's: every row of mart.daily_prices and
mart.monthly_performance, keys exactly, every value to 1e-9 relative, the same schema_version
(load_id names each side's run). A mismatch fails the run and names the first differing row.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from bench import bench_e2e

DEFAULTS = {key: bench_e2e.DEFAULTS[key] for key in ("symbols", "years", "month_sessions", "chunk_days", "seed")}
QUICK = {"symbols": 3, "years": 1}
# setup runs the project's backfill once, untimed: it warms Sail and fills the market API's cache.
RUNS = 1
CASE_RUNS = {"duckdb_backfill": 2}
WARMUP = 0
TARGETS = [
    {"name": "backfill: project / DuckDB pipeline", "ratio": ["project_backfill", "duckdb_backfill"],
     "metric": "seconds", "max": 1.5,
     "why": "the same work written for one machine without Spark: the project's layers should cost little more"},
    {"name": "project backfill peak RSS (client + Sail)", "case": "project_backfill", "metric": "peak_rss_mb",
     "max": 2048},
    {"name": "backfill without the ingestion's API calls: project / DuckDB pipeline",
     "ratio": ["project_backfill", "duckdb_backfill"], "metric": ["seconds_without_ingest", "seconds"],
     "why": "the peer reads what the ingestion landed; this is the ratio of the work both do"},
]  # fmt: skip
FINDINGS = """\
Measured once at 500 symbols x 5 years (627,500 bars, 1,500 RAW files, 214 MB), with another test
suite running on the machine for part of it: the project 75.8 s, the DuckDB pipeline 20.4 and 26.2 s,
equal to 1.1e-10 relative (on returns near zero, where the subtraction in `ratio - 1` leaves few
significant digits). Where the peer's time goes: reading RAW 8.0 s (DuckDB's JSON reader turning the
series objects into maps is about 4 s of it, the sha256 checks against the manifests 0.4 s, the
exchange calendar 0.5 s), silver 2.1-2.9 s, gold 2.0-3.7 s, COPY into the indexed mart tables
7.8-11.4 s: the same PostgreSQL index maintenance the project's load pays. The project's stages: ingest
23.3 s (HTTP to the synthetic API, which the peer does not do), bronze_to_silver 21.1, gold_to_postgres
12.0, raw_to_bronze 9.8, silver_to_gold 6.9, runner 2.6; without the ingestion it is 52.5 s, 2.3x the
peer. Its peak RSS, 2.5 GB, is the client's 1.26 GB (the local platform, the ADF runner and the
in-process Function app) plus the Sail server's.
"""
PEER_DATABASE = "pipeline_peer_duckdb"
PROJECT_DATABASE = "e2e_run_backfill"  # where bench_e2e's backfill loads its marts
KEYS = {"daily_prices": ("symbol", "trade_date"), "monthly_performance": ("symbol", "month")}
TEXT_COLUMNS = ("load_id", "schema_version")


@contextlib.contextmanager
def own_home() -> Iterator[Path]:
    """bench_e2e's state (plan, lake, market cache) under this benchmark's folder, not bench_e2e's."""
    outer = os.environ.get("LAKEHOUSE_HOME", str(Path(__file__).resolve().parents[1] / ".lakehouse" / "bench"))
    home = Path(outer) / "pipeline_peer"
    os.environ["LAKEHOUSE_HOME"] = str(home)
    try:
        yield home
    finally:
        os.environ["LAKEHOUSE_HOME"] = outer


def setup(params: dict) -> None:
    """Fix the dates and run the project's backfill once (untimed warm-up of Sail and the market cache)."""
    with own_home():
        work = bench_e2e.work_dir()
        work.mkdir(parents=True, exist_ok=True)
        (work / "plan.json").write_text(json.dumps(bench_e2e.Plan.make(params).as_dict()))
        bench_e2e.backfill(params)


def project_backfill(params: dict) -> dict:
    """pl_backfill of `years` years, empty lake and database to loaded marts (bench_e2e's backfill case)."""
    with own_home():
        metrics = bench_e2e.backfill(params)
    return {**metrics, "seconds_without_ingest": round(metrics["seconds"] - metrics["ingest_s"], 3)}


def raw_root() -> Path:
    """The raw container of the project's last backfill run (call inside :func:`own_home`)."""
    return bench_e2e.work_dir() / "run_backfill" / "lake" / "raw"


def duckdb_backfill(params: dict) -> dict:
    """The DuckDB pipeline on the project's RAW files, empty database to loaded marts, then the equality check."""
    from bench import duckdb_pipeline

    with own_home():
        root = raw_root()
        if not root.is_dir():
            raise RuntimeError(f"no RAW at {root}: run project_backfill first (setup does)")
        dsn = bench_e2e.recreate_database(PEER_DATABASE)
        started = time.perf_counter()
        metrics = duckdb_pipeline.run(root, dsn, load_id="duckdb-backfill")
        seconds = time.perf_counter() - started
        worst = check_marts(bench_e2e._dsn(PROJECT_DATABASE), dsn)
    return {**metrics, "seconds": round(seconds, 3), "max_relative_difference": worst}


# ---------------------------------------------------------------- the equality check


def mart_table(dsn: str, table: str):
    """Every row of mart.`table` as an Arrow table, read with PostgreSQL's COPY (shortest exact float text)."""
    import io

    import psycopg
    import pyarrow as pa
    from pyarrow import csv

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        types = cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'mart' AND table_name = %s ORDER BY ordinal_position", (table,)
        ).fetchall()  # fmt: skip
        with cur.copy(f"COPY (SELECT * FROM mart.{table}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
    arrow = {"text": pa.string(), "date": pa.date32(), "double precision": pa.float64(), "bigint": pa.int64(),
             "integer": pa.int32()}  # fmt: skip
    options = csv.ConvertOptions(column_types={n: arrow[t] for n, t in types}, strings_can_be_null=True)
    return csv.read_csv(io.BytesIO(data), convert_options=options)


def check_marts(project_dsn: str, peer_dsn: str, rel: float = 1e-9) -> float:
    """The largest relative difference between the project's and the peer's marts.

    Raises:
        bench.bench_peers.PeerMismatch: a row missing on one side, a key or value that differs, a
            NULL on one side only, a different schema_version, or no load_id; the message names
            the table and the first differing row.
    """
    from bench.bench_peers import PeerMismatch, compare

    worst = 0.0
    for table, keys in KEYS.items():
        expected, actual = mart_table(project_dsn, table), mart_table(peer_dsn, table)
        values = tuple(c for c in expected.column_names if c not in keys and c not in TEXT_COLUMNS)
        if expected.column_names != actual.column_names:
            raise PeerMismatch(f"mart.{table}: columns {expected.column_names} != {actual.column_names}")
        try:
            worst = max(worst, compare(expected, actual, keys, values, rel))
        except PeerMismatch as exc:
            raise PeerMismatch(f"mart.{table}: {exc}") from None
        for side, rows in (("project", expected), ("peer", actual)):
            if rows.column("load_id").null_count:
                raise PeerMismatch(f"mart.{table}: {side} rows without a load_id")
        versions = [set(rows.column("schema_version").to_pylist()) for rows in (expected, actual)]
        if versions[0] != versions[1]:
            raise PeerMismatch(f"mart.{table}: schema_version {versions[0]} (project) != {versions[1]} (peer)")
    return worst


CASES = {"project_backfill": project_backfill, "duckdb_backfill": duckdb_backfill}
