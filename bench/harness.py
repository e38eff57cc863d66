"""One method for every benchmark: a warm-up run, then N measured runs, each in a fresh process.

A benchmark is a module `bench/bench_<name>.py` with

    CASES: dict[str, Callable[[dict], dict]]   # case name -> function(params) -> metrics
    DEFAULTS: dict                              # default params (sizes), overridable per run
    setup(params) -> None                       # optional, untimed: builds deterministic input data

Each run executes one case in a child process (`python -m bench.harness --child ...`), so peak
RSS is per run (the child's VmHWM and its largest child's, plus the peak of the embedded Sail server, which does
the Spark work in its own process; its high-water mark is reset before each run through
/proc/<pid>/clear_refs). The case measures what it times itself and returns it as
`{"seconds": ..., ...}`; the harness records the child's wall time as well.
Results go to bench/results/<name>.json; `python -m bench.report` turns them into docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
REPO = BENCH_DIR.parent


def machine() -> dict:
    """What the figures were measured on."""
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_hwm(pid: int) -> None:
    with contextlib.suppress(OSError):  # not Linux, or not allowed: the peak then spans the server's life
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def run_child(module: str, case: str, params: dict, env: dict, server_pids: list[int]) -> dict:
    """One measured run in a fresh process; returns the case's metrics plus wall time and peak RSS."""
    for pid in server_pids:
        _reset_hwm(pid)
    cmd = [sys.executable, "-m", "bench.harness", "--child", module, case, json.dumps(params)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{module}:{case} failed:\n{proc.stderr[-4000:]}")
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    client_kb = metrics.pop("_peak_rss_kb")
    servers_kb = sum(_vm_hwm_kb(pid) for pid in server_pids)
    metrics["wall_s"] = round(wall, 3)
    metrics["peak_rss_mb"] = round((client_kb + servers_kb) / 1024, 1)
    metrics["peak_rss_client_mb"] = round(client_kb / 1024, 1)
    return metrics


def summarize(runs: list[dict]) -> dict:
    """Median, min and max of every numeric metric over the measured runs."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out = {}
    for key in keys:
        values = [r[key] for r in runs if key in r]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def run_benchmark(name: str, runs: int, overrides: dict, cases: list[str] | None) -> dict:
    from lakehouse.settings import load_settings
    from local import services

    module = f"bench.bench_{name}"
    mod = importlib.import_module(module)
    params = {**getattr(mod, "DEFAULTS", {}), **overrides}
    home = Path(os.environ.get("LAKEHOUSE_BENCH_HOME", REPO / ".lakehouse" / "bench"))
    settings = load_settings(home=home)
    result = {
        "benchmark": name,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "method": f"1 warm-up run, then {runs} measured runs, each in a fresh process",
        "params": params,
        "cases": {},
    }
    with services.running(settings) as eps:
        env = {
            **os.environ,
            "LAKEHOUSE_HOME": str(home),
            "LAKEHOUSE_SPARK_REMOTE": eps.spark_remote,
            "LAKEHOUSE_PG_DSN": eps.pg_dsn,
        }
        server_pids = [r["pid"] for r in services.status(settings) if r["pid"]]
        if hasattr(mod, "setup"):
            subprocess.run(
                [sys.executable, "-m", "bench.harness", "--setup", module, json.dumps(params)],
                cwd=REPO, env=env, check=True,
            )  # fmt: skip
        for case in cases or list(mod.CASES):
            print(f"[bench] {name}:{case} warm-up", file=sys.stderr, flush=True)
            run_child(module, case, params, env, server_pids)
            measured = []
            for i in range(runs):
                measured.append(run_child(module, case, params, env, server_pids))
                print(f"[bench] {name}:{case} run {i + 1}/{runs}: {measured[-1]}", file=sys.stderr, flush=True)
            result["cases"][case] = {"runs": measured, "summary": summarize(measured)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _child(module: str, case: str, params: str) -> None:
    mod = importlib.import_module(module)
    metrics = mod.CASES[case](json.loads(params))
    # The child's own high-water mark (VmHWM starts afresh at exec, unlike ru_maxrss, which keeps the
    # pages a big parent shared before exec), plus its largest waited-for child (a JVM, say).
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    metrics["_peak_rss_kb"] = _vm_hwm_kb(os.getpid()) + children_kb
    sys.stdout.write("\n" + json.dumps(metrics) + "\n")


def _setup(module: str, params: str) -> None:
    importlib.import_module(module).setup(json.loads(params))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _child(*argv[1:4])
        return
    if argv and argv[0] == "--setup":
        _setup(*argv[1:3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all bench_*.py)")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 5)))
    parser.add_argument("--case", action="append", help="only these cases")
    parser.add_argument("--set", action="append", default=[], help="param=value (JSON value)")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    names = args.names or sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))
    for name in names:
        run_benchmark(name, args.runs, overrides, args.case)


if __name__ == "__main__":
    main()
