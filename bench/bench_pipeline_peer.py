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
# The peer's stage beside each of the project's (None: the peer has no such stage).
PEER_STAGES = {"raw_to_bronze_s": "read_s", "bronze_to_silver_s": "silver_s", "silver_to_gold_s": "gold_s",
               "gold_to_postgres_s": "load_s"}  # fmt: skip
TARGETS = [
    {"name": "backfill: project / DuckDB pipeline", "ratio": ["project_backfill", "duckdb_backfill"],
     "metric": "seconds", "max": 1.5,
     "why": "the same work written for one machine without Spark: the project's layers should cost little more",
     "breakdown": {"cases": ["project_backfill", "duckdb_backfill"],
                   "rows": [[label, [metric, PEER_STAGES.get(metric)]] for label, metric in bench_e2e.STAGES]}},
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

RAW -> BRONZE and BRONZE -> SILVER profiled (issue 20), a timer on every Spark action, the jobs
called directly on 500 symbols x 5 years of RAW (all four datasets, 678,000 bronze bars) and then a
daily run of compact payloads (100 sessions, 1 new), quiet machine (load 1-2), before any change:
raw_to_bronze 7.7 s = parsing 2.5 (json.loads 1.45 of it, in C), the 8 Delta appends 1.9, and on
the driver about 3.5 the Spark Connect client paid: `contract.check` asking the engine for the schema
of each batch (the whole Arrow batch serialized and sent once more just for that: 2.0 s) and Arrow
arrays built from Python lists (1.5 s, half of it the same lineage value once per row). Now rows
built on the driver are checked against the contract's Arrow schema locally (`Tables.append_arrow`)
and lineage is repeated per file in Arrow (since sent once per file, joined in the engine):
bronze identical, client CPU 6.2 -> 4.9 s in one pair of
runs but 6.35 -> 5.9 s (client + Sail 7.8 -> 7.7) in a pair at load 9, where the wall times (17.5 vs
19.4 s) are noise: a small gain, not the stage's cost. orjson
would cut the 1.45 s of decoding but is in none of the deployed pins (requirements.txt,
functions/requirements.txt, the Databricks runtime): not used. bronze_to_silver 18.9 s = the staged
typing, rules and windows of the bars 10.8, the route counts 4.2 (4 aggregations; corporate actions'
`known_bars` window over every bronze bar and its range join bars x events), the appends 3.3.
Daily on 5 years 4.0 s: the routed stage of 50,000 re-sent bars 0.9, the MERGE of 198 revised bars
0.9 (a dividend on the new day revises the 99 earlier adjusted closes of its symbol; Sail rewrites
the table's files), counts 0.6, appends 0.6, the classify pass 0.6. Not done: comparing the compact
bars with silver before validating (a bar equal to the stored one may still be the file's last bar
that the stale rule reads, or a duplicate whose later copy decides the winner: the filter must keep
those), and staging the corporate-action typing once.
Run of 2026-12-02 08:15 (the previous machine, AMD EPYC, quiet): project 38.8 s against DuckDB
15.5 s: 2.50 (2.00 without the ingestion's API calls); stages (project / DuckDB): ingest 7.7 / none,
RAW -> BRONZE 6.8 / read 4.6-5.1, BRONZE -> SILVER 9.3 / 1.4-1.5, SILVER -> GOLD 4.6 / 1.3-1.5,
GOLD -> POSTGRES 9.0 / 7.4-7.8, runner 1.2. Changed since (transforms.md "Fourth pass" and "Fifth
pass", serving.md, ingestion.md): silver's typing holds no wide frame (its windows and left-side
joins held the 627,500 typed bars three times; now aggregates on the keys, joined with the narrow
side held) and stages 29 columns instead of 49 (Sail CPU 7.5-8.2 -> 5.0-5.1 s, Sail peak 1.1 GB ->
0.64); raw_to_bronze parses the next batch while the previous one is appended; the mart load COPies
straight into the mart inside its transaction (no staging write); gold's moving averages gated by
one row number.
Run of 2026-12-02 11:56, on a replacement machine about twice as fast (Intel Xeon, 2 cores): project
16.0 s against DuckDB 8.18 s: 1.96 (1.45 without the ingestion's API calls).
Run of 2026-12-02 12:24 (load 0.5-1.5): project 16.3 s against DuckDB 8.6-9.2 s: **1.83** (target
1.5: missed); without the ingestion's API calls 12.1 s: **1.36**. Peak RSS 1,811 MB (1,932-2,008
before this session; the peak is no longer silver's staging; the DuckDB peer's own peak is 2,130).
Stage by stage (project / DuckDB): ingest 4.15 s / none (2,000 HTTP requests, 213 MB, parsed and
hashed; profiled in docs/ingestion.md: client-bound, the daily bars' histories 1.65-2.2 s and the
three small datasets' 1,500 requests as long again), RAW -> BRONZE 2.6 / read 3.0, BRONZE -> SILVER
3.7 / 0.9, SILVER -> GOLD 1.7 / 0.75, GOLD -> POSTGRES 3.6 / 4.1, runner 0.43. The project now reads
RAW and loads the marts as fast as DuckDB; the ingestion, which the peer does not do, is what the
ratio misses by, then silver (Sail's typing, rules and routing over 627,500 rows, 4x) and gold (its
windows, 2.3x). Not done: the previous close from a narrow parse, the ingestion's JSON parse
(orjson: not on the Databricks runtime, not a drop-in, ~0.3 s measured; docs/ingestion.md).
Run of 2026-12-02 21:35 (load 1-1.8; the machine about 2.5x slower than at 12:24, both pipelines
alike): project 41.6 s against DuckDB 22.0-23.6 s: **1.82** (target 1.5: missed); without the
ingestion's API calls 29.3 s: **1.29** (1.36 at 12:24, after this session's bronze lineage and silver
previous-close changes). Peak RSS 1,378 MB (1,811). Stage by stage (project / DuckDB): ingest 12.3 s /
none, RAW -> BRONZE 6.3 / read 6.2-7.4, BRONZE -> SILVER 7.5 / 2.0-2.1, SILVER -> GOLD 4.2 / 2.0-2.1,
GOLD -> POSTGRES 9.6 / load 11.4-11.7, runner 1.4. The ratio is missed by the ingestion (2,000 HTTP requests the
peer does not make; client-bound, docs/ingestion.md) and then silver (3.6x the peer) and gold (2x).
What silver spends now (docs/transforms.md, eighth pass): full-size operations over 628k bars (the
per-file duplicate count's aggregate, the previous close's sort on five keys, the date parse); the
next lever found there is carrying the per-file duplicate count from raw_to_bronze (which already
counts a file's keys) instead of recomputing it, a bronze contract change not made here.
Changed since (docs/transforms.md: ninth pass, fixed cost of a daily run, gold round 6): bronze
carries each file's facts, counted while parsing RAW (a bar's key count in its file, the file's latest
date where every date is plain), and silver reads them instead of two aggregates over the 628k bars
(bronze_to_silver Sail CPU 7.7 -> 6.7 s, each fact about half, paired runs); one query lists every
table's pending files; the harness compiles the project's modules before the runs.
Run of 2026-12-03 06:56 (the hypervisor took 14-22 % of the CPU during the project's runs against
3-5 % during the peer's): project 49.8-53.0 s against DuckDB 24.8-25.4 s: 2.05 (1.38 without the
ingestion's 16.8 s); ten minutes earlier (steal 9.5 %) 45.5 s against 19.2-22.4 s: 2.19.
This run (2026-12-03 07:19, load 1.7-2.3, steal 0.5-3.7 %; the machine as slow as at 21:35: DuckDB
21.0-21.5 s against 22.0-23.6): project 34.1-35.0 s: **1.62** (1.82 at 21:35; target 1.5: missed);
without the ingestion's API calls 24.4-25.3 s: **1.17** (1.29). Peak RSS 1,475-1,537 MB. Stage by
stage (project / DuckDB): ingest 9.6-9.7 s / none, RAW -> BRONZE 5.1-6.0 / read 6.1-6.7, BRONZE -> SILVER
5.3-5.5 / 1.6-1.7, SILVER -> GOLD 3.6-4.0 / 1.8, GOLD -> POSTGRES 8.0-10.0 / load 10.6-11.7, runner
0.8-1.1. The project reads RAW and loads the marts faster than the peer; the ratio is missed by the
ingestion's 2,000 requests (a third of the peer's whole run; what would cut them, a leaner HTTP
client and orjson, was measured and declined: docs/ingestion.md), then silver (3.2x the peer: Sail's
typing, rules and routing of 628k rows against one DuckDB query) and gold (2x). Without the
ingestion 1.5 would be met with room (1.17).
Run of 2026-12-03 08:50 (`make bench` on a fresh clone of 037a934, load 1.9-2.9, steal 0.1-0.2 %):
project 33.8 s against DuckDB 16.0-19.6 s: **1.90** (target 1.5: missed); without the ingestion's API
calls 24.0 s: **1.35**. The peer's two runs differed by 3.7 s, nearly all of it its COPY into the
indexed mart tables (7.0 against 10.1 s), so this ratio moves by about 0.2 with PostgreSQL's COPY
alone: 1.62 at 07:19 the day's first run, 1.90 here, with the project at 34.5 and 33.8 s. Stage by
stage (project / DuckDB): ingest 9.8 / none, RAW -> BRONZE 5.8 / read 5.8, BRONZE -> SILVER 5.9 /
1.5, SILVER -> GOLD 3.5 / 1.7, GOLD -> POSTGRES 7.6 / load 8.6, runner 1.0 (docs/performance.md,
"Where the targets' time goes", renders this split from every run). To meet 1.5 here the project
would need 26.7 s, 7.2 s less: more than everything but the ingestion's 9.8 s, which the peer does
not do. Profiled this session (per-process CPU from /proc every 0.5 s through one project backfill):
during the ingestion one core is idle (the Function app's client, on one interpreter, at 1.0 core,
the market API at 0.1-0.2), during RAW -> BRONZE 0.55 of a core (the driver parses at 1.0, Sail
appends at 0.4), silver and gold keep both cores busy in Sail, the mart load keeps them busy until
the content check, which PostgreSQL runs on one (the last 3-4 s). Using the idle core in the
ingestion would take a second Python worker process in the Function app, which the quota design
rules out (docs/ingestion.md, one rate limiter per key per process) and which buys nothing against
the real, quota-bound API.
Run of 2026-12-03 12:55 (load 1.3-1.7, steal 0-0.3 %): project 34.9 s against DuckDB 18.1-20.0 s:
**1.83** (1.28 without the ingestion). The project's BRONZE -> SILVER 5.2 s against 5.9 before this
session's change (its two previous-bar warning rules marked over the staged rows: -11 % CPU in 8
alternating pairs, docs/transforms.md tenth pass); the rest as before (ingest 10.6, RAW -> BRONZE 5.7
/ read 5.6, SILVER -> GOLD 4.1 / 1.8, GOLD -> POSTGRES 8.1 / load 9.8). To meet 1.5 the project would
need 28.7 s here: 6.2 s less, still more than everything but the ingestion. The ingestion's client
was profiled per request (docs/ingestion.md): requests' per-call preparation is 0.4-0.5 of its
3.5-4 ms CPU a request; a prepared-request path cut it 7-14 % and was not kept; the payload's
mkdir, open, fsync and rename are the larger part.
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
