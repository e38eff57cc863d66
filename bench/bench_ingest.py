"""Ingestion throughput: N symbols of full daily history through the synthetic market API.

The server runs as its own process (as the real API is remote); the Function app's `ingest` is
invoked in-process through the local Functions host, exactly as ADF's Azure Function activity
calls it locally. Three phases:

1. daily: one call for the whole universe, latest session (outputsize=compact), on an empty lake;
2. backfill: full histories, in calls of `--call-size` symbols (old window -> outputsize=full);
3. reuse: the next backfill chunk for the same symbols (answered from RAW, no download).

Writes ``bench/results/ingest.json``: requests/s, MB/s, symbols/s, peak RSS of the ingesting
process and of the server, and the largest call that fits ADF's 230 s with a 2x margin.

    .venv/bin/python bench/bench_ingest.py [--symbols 500] [--call-size 100] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

ADF_BUDGET_SECONDS = 230.0
MARGIN = 2.0  # a safe call uses at most half of ADF's budget


def vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of a process (Linux VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def start_server(seed: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.market_api", "--port", "0", "--seed", str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    return proc, json.loads(line)["url"]


def phase(name: str, calls: list[dict], invoke) -> dict:
    started = time.perf_counter()
    answers, durations = [], []
    for body in calls:
        t0 = time.perf_counter()
        response = invoke("ingest", method="POST", body=body)
        durations.append(round(time.perf_counter() - t0, 2))
        answer = response.json()
        if response.status_code != 200 or answer["failures"]:
            raise SystemExit(f"{name}: call failed: {response.status_code} {json.dumps(answer)[:500]}")
        answers.append(answer)
    seconds = time.perf_counter() - started
    symbols = sum(a["symbols_succeeded"] for a in answers)
    written = sum(a["files_written"] for a in answers)
    megabytes = sum(a["bytes"] for a in answers) / 1e6
    return {
        "phase": name,
        "calls": len(calls),
        "symbols": symbols,
        "requests": written,
        "files_reused": sum(a["files_reused"] for a in answers),
        "records": sum(a["records"] for a in answers),
        "seconds": round(seconds, 2),
        "call_seconds": durations,
        "requests_per_s": round(written / seconds, 2),
        "symbols_per_s": round(symbols / seconds, 2),
        "megabytes": round(megabytes, 1),
        "mb_per_s": round(megabytes / seconds, 2),
        "outputsize": answers[0]["outputsize"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--call-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ingest.json")
    args = parser.parse_args()

    load_before = [round(x, 2) for x in os.getloadavg()]  # the machine may be shared: record it
    home = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    server, url = start_server(args.seed)
    os.environ.update(
        {
            "LAKEHOUSE_HOME": str(home),
            "LAKEHOUSE_PROVIDER": "synthetic",
            "ALPHAVANTAGE_BASE_URL": url,
            "ALPHAVANTAGE_API_KEY": "bench",  # pragma: allowlist secret (the synthetic server takes any key)
            "LAKEHOUSE_INGEST_CONCURRENCY": str(args.concurrency),
            "LAKEHOUSE_INGEST_DEADLINE_SECONDS": "3600",
            "LAKEHOUSE_EVENTHUB_NAMESPACE": "local",
        }
    )
    os.environ.pop("LAKEHOUSE_LAKE_ROOT", None)
    from lakehouse import trading_calendar
    from local.function_host import invoke_http

    symbols = [f"SYM{i:03d}" for i in range(args.symbols)]
    chunks = [symbols[i : i + args.call_size] for i in range(0, len(symbols), args.call_size)]
    latest = trading_calendar.latest_session()
    try:
        results = [
            phase(
                "daily_compact",
                [
                    {
                        "dataset": "daily_bars",
                        "symbols": symbols,
                        "start_date": latest.isoformat(),
                        "end_date": latest.isoformat(),
                        "run_id": "bench-daily",
                    }
                ],
                invoke_http,
            ),
            phase(
                "backfill_full",
                [
                    {
                        "dataset": "daily_bars",
                        "symbols": c,
                        "start_date": "2015-01-02",
                        "end_date": "2015-06-30",
                        "run_id": f"bench-full-{i}",
                    }
                    for i, c in enumerate(chunks)
                ],
                invoke_http,
            ),
            phase(
                "backfill_next_chunk_reused",
                [
                    {
                        "dataset": "daily_bars",
                        "symbols": c,
                        "start_date": "2015-07-01",
                        "end_date": "2015-12-31",
                        "run_id": f"bench-reuse-{i}",
                    }
                    for i, c in enumerate(chunks)
                ],
                invoke_http,
            ),
        ]
        raw_bytes = sum(p.stat().st_size for p in (home / "lake" / "raw").rglob("*.json"))
        full = results[1]
        report = {
            "benchmark": "ingest",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "system": platform.system(),
                "load_average_before": load_before,
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            },
            "symbols": args.symbols,
            "call_size": args.call_size,
            "concurrency": args.concurrency,
            "phases": results,
            "raw_megabytes_on_disk": round(raw_bytes / 1e6, 1),
            "peak_rss_mb": {
                "ingest_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "market_api_server": vm_hwm_mb(server.pid),
            },
            "adf_budget_seconds": ADF_BUDGET_SECONDS,
            "safe_call_symbols": {
                "full_history": int(full["symbols_per_s"] * ADF_BUDGET_SECONDS / MARGIN),
                "compact": int(results[0]["symbols_per_s"] * ADF_BUDGET_SECONDS / MARGIN),
                "alpha_vantage_75_per_minute": int(75 / 60 * ADF_BUDGET_SECONDS / MARGIN),
            },
        }
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
