"""Ingestion: the Function app's `ingest` landing 500 symbols in RAW from the synthetic market API.

Each run calls `ingest` in-process through the local Functions host (as the local ADF runner's
Azure Function activity does) on an empty scratch lake, against the synthetic Alpha Vantage
server running as its own process (the real API is remote: its work must not share the client's
interpreter). The data set is the end-to-end benchmark's: every symbol listed `years` years
before the as-of session, so a full history is `years` of sessions (500 x 5 years = 628,000
bars); `--set years=null` serves each symbol's own listing since 1999, as Alpha Vantage does.

Cases:

- ``backfill_full``: the backfill's first chunk, one call for every symbol, window older than
  100 sessions, so `outputsize=full`;
- ``daily_compact``: the daily run, one call, the latest session (`outputsize=compact`);
- ``next_chunk_reused``: the backfill's next chunk the same ingest day, answered from the full
  histories already in RAW (linked from the template `setup` lands); nothing is downloaded;
- ``security_master``: the OVERVIEW call that follows the daily bars in every chunk.

The server keeps rendered series in a cache directory that `setup` fills, so measured runs time
the client (the project's code), not the stand-in's JSON formatting. ``cache=false`` times both.
Each run reports the call's seconds, requests/s, MB/s, and the CPU seconds of the ingesting
process and of the server process, to show whose work the time is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import datasets
from lakehouse.contracts.raw_layout import manifest_folder
from lakehouse.lake import Lake

DEFAULTS = {"symbols": 500, "years": 5, "seed": 7, "concurrency": 4, "cache": True, "reuse_years": 1}
QUICK = {"symbols": 12, "years": 1}
RUNS = 2  # with make bench's 20-minute budget; --runs 5 for a closer look
WARMUP = 0  # setup already made these same calls: the server's cache and the page cache are warm
ADF_BUDGET_SECONDS = 230.0
MARGIN = 2.0  # a safe call uses at most half of ADF's budget
TARGETS = [
    {
        "name": "ingest 500 full histories (backfill's first chunk)",
        "case": "backfill_full",
        "metric": "seconds",
        "max": 10,
        "why": "the 60 s end-to-end backfill leaves ingestion about a sixth; the rest is Spark and PostgreSQL",
    },
]
FINDINGS = """Profiled before optimizing (docs/ingestion.md, Performance): the synthetic server's JSON
formatting (~60 ms a full history) ran in the ingesting process, sharing its GIL, and the client spent
~30 ms a history in pure-Python overhead (per-bar date formatting, 10 KB reads) next to `json.loads`.
Now the server is its own process with a body cache and the overhead is gone; `json.loads` is the
largest client cost left, then the per-request cost of `requests` and the fsync of each payload.
The daily run's 2,000 small requests (issue 20) are bound by the client's Python on one interpreter, the
HTTP stack about half of it; the fsyncs overlap across threads. orjson (2x on a full history) was measured
and not taken: not on the Databricks 17.3 runtime nor in the app's pins, for at most 0.3 s of a backfill."""


# ---------------------------------------------------------------- data set and dates


def bench_symbols(n: int) -> list[str]:
    """`n` distinct valid tickers, the same for every run (IAAA, IAAB, ...)."""
    return datasets.symbols(n, prefix="I")


def work_dir() -> Path:
    home = Path(os.environ.get("LAKEHOUSE_HOME", Path(__file__).resolve().parents[1] / ".lakehouse" / "bench"))
    return home / "data" / "ingest"


def make_plan(params: dict) -> dict:
    """Dates of the data set: served as of the latest closed session; histories `years` long."""
    from lakehouse import trading_calendar

    as_of = trading_calendar.latest_session()
    listed = None
    if params["years"] is not None:
        listed = trading_calendar.sessions(as_of.replace(year=as_of.year - params["years"]), as_of)[0]
    first = listed or dt.date(2015, 1, 2)
    reuse_start = first.replace(year=first.year + params["reuse_years"])
    return {
        "as_of": as_of.isoformat(),
        "listed_from": listed.isoformat() if listed else None,
        "full_window": [first.isoformat(), as_of.isoformat()],
        "next_window": [reuse_start.isoformat(), reuse_start.replace(year=reuse_start.year + 1).isoformat()],
        "daily_window": [as_of.isoformat(), as_of.isoformat()],
    }


def load_plan() -> dict:
    path = work_dir() / "plan.json"
    if not path.exists():
        raise FileNotFoundError(f"no ingest benchmark plan at {path}: the benchmark's setup() writes it first")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- one call on a scratch lake


@contextlib.contextmanager
def market(params: dict, plan: dict) -> Iterator[tuple[str, int]]:
    """The synthetic API as its own process for this data set; yields (URL, pid)."""
    from local import market_api

    config = market_api.MarketApiConfig(
        seed=params["seed"],
        as_of=dt.date.fromisoformat(plan["as_of"]),
        listed_from=dt.date.fromisoformat(plan["listed_from"]) if plan["listed_from"] else None,
        cache_dir=work_dir() / "market_cache" if params["cache"] else None,
    )
    with market_api.running_process(config) as server:
        yield server.url, server.pid


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def scratch_home(template: Path | None = None) -> Iterator[Path]:
    """A fresh LAKEHOUSE_HOME (optionally holding the template's RAW as hard links), removed after."""
    home = work_dir() / "runs" / uuid.uuid4().hex[:12]
    if template is not None:
        shutil.copytree(template, home / "lake" / "raw", copy_function=os.link)
    home.mkdir(parents=True, exist_ok=True)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def call_ingest(params: dict, plan: dict, home: Path, body: dict) -> dict:
    """One POST /api/ingest through the local Functions host; the answer plus timings and CPU."""
    from lakehouse import trading_calendar
    from local.function_host import function_app, invoke_http
    from local.runtime import overridden_environment

    env = {
        "LAKEHOUSE_HOME": str(home),
        "LAKEHOUSE_LAKE_ROOT": str(home / "lake"),
        "LAKEHOUSE_PROVIDER": "synthetic",
        "ALPHAVANTAGE_API_KEY": "bench",  # pragma: allowlist secret (the synthetic server takes any key)
        "LAKEHOUSE_INGEST_CONCURRENCY": str(params["concurrency"]),
        "LAKEHOUSE_INGEST_DEADLINE_SECONDS": "3600",
        "LAKEHOUSE_EVENTHUB_NAMESPACE": "local",
    }
    with contextlib.ExitStack() as stack:
        # The server boots in its own process while this one warms up as a running Functions
        # worker is warm: the app imported, the exchange calendar built.
        with ThreadPoolExecutor(1) as pool:
            booting = pool.submit(stack.enter_context, market(params, plan))
            function_app()
            trading_calendar.calendar()
            url, server_pid = booting.result()
        stack.enter_context(overridden_environment({**env, "ALPHAVANTAGE_BASE_URL": url}))
        server_cpu, client_cpu = _cpu_seconds(server_pid), time.process_time()
        started = time.perf_counter()
        response = invoke_http("ingest", method="POST", body=body)
        seconds = time.perf_counter() - started
        client_cpu, server_cpu = time.process_time() - client_cpu, _cpu_seconds(server_pid) - server_cpu
    answer = response.json()
    if response.status_code != 200 or answer["failures"]:
        raise RuntimeError(f"ingest failed: {response.status_code} {json.dumps(answer)[:800]}")
    return {"answer": answer, "seconds": seconds, "client_cpu_s": client_cpu, "server_cpu_s": server_cpu}


def metrics(call: dict) -> dict:
    answer, seconds = call["answer"], call["seconds"]
    symbols, written = answer["symbols_succeeded"], answer["files_written"]
    megabytes = answer["bytes"] / 1e6
    return {
        "seconds": round(seconds, 3),
        "symbols": symbols,
        "requests": written,
        "files_reused": answer["files_reused"],
        "records": answer["records"],
        "megabytes": round(megabytes, 1),
        "requests_per_s": round(written / seconds, 1),
        "symbols_per_s": round(symbols / seconds, 1),
        "mb_per_s": round(megabytes / seconds, 1),
        "client_cpu_s": round(call["client_cpu_s"], 2),
        "server_cpu_s": round(call["server_cpu_s"], 2),
        "safe_call_symbols": int(symbols / seconds * ADF_BUDGET_SECONDS / MARGIN),
        "outputsize": answer["outputsize"],
    }


def _body(plan: dict, window: str, dataset: str, symbols: list[str], run_id: str) -> dict:
    start, end = plan[window]
    return {"dataset": dataset, "symbols": symbols, "start_date": start, "end_date": end, "run_id": run_id}


# ---------------------------------------------------------------- setup and cases


def setup(params: dict) -> None:
    """Fix the dates, fill the server's cache and land the template RAW the reuse case starts from."""
    from spark_jobs import migrations

    if os.environ.get("LAKEHOUSE_PG_DSN"):  # the Function app records its telemetry in the ops store
        migrations.apply(os.environ["LAKEHOUSE_PG_DSN"])
    root = work_dir()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    plan = make_plan(params)
    (root / "plan.json").write_text(json.dumps(plan, indent=2))
    symbols = bench_symbols(params["symbols"])
    with scratch_home() as home:
        for window, dataset in (("full_window", "daily_bars"), ("daily_window", "daily_bars")):
            call_ingest(params, plan, home, _body(plan, window, dataset, symbols, f"setup-{window}"))
        shutil.copytree(home / "lake" / "raw", root / "template_raw")


def backfill_full(params: dict) -> dict:
    plan = load_plan()
    with scratch_home() as home:
        body = _body(plan, "full_window", "daily_bars", bench_symbols(params["symbols"]), "bench-full")
        return metrics(call_ingest(params, plan, home, body))


def daily_compact(params: dict) -> dict:
    plan = load_plan()
    with scratch_home() as home:
        body = _body(plan, "daily_window", "daily_bars", bench_symbols(params["symbols"]), "bench-daily")
        return metrics(call_ingest(params, plan, home, body))


def next_chunk_reused(params: dict) -> dict:
    """The next chunk of the backfill, the same ingest day as the template's full histories."""
    plan = load_plan()
    with scratch_home(work_dir() / "template_raw") as home:
        # Reuse looks at today's manifests; the template may have been landed on another UTC day.
        raw = Lake(root=str(home / "lake")).local_path("raw")
        manifests = raw / manifest_folder("daily_bars")
        today = raw / manifest_folder("daily_bars", dt.datetime.now(dt.UTC).date())
        if not today.exists():
            (landed,) = manifests.iterdir()
            shutil.copytree(landed, today, copy_function=os.link)
        body = _body(plan, "next_window", "daily_bars", bench_symbols(params["symbols"]), "bench-next")
        result = metrics(call_ingest(params, plan, home, body))
    if result["files_reused"] != params["symbols"]:
        raise RuntimeError(f"expected every symbol reused, got {result['files_reused']}")
    return result


def security_master(params: dict) -> dict:
    plan = load_plan()
    with scratch_home() as home:
        body = _body(plan, "full_window", "security_master", bench_symbols(params["symbols"]), "bench-overview")
        return metrics(call_ingest(params, plan, home, body))


CASES = {
    "backfill_full": backfill_full,
    "daily_compact": daily_compact,
    "next_chunk_reused": next_chunk_reused,
    "security_master": security_master,
}
