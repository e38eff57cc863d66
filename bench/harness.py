"""One method for every benchmark: a warm-up run, then N measured runs, each in a fresh process.

A benchmark is a module `bench/bench_<name>.py` with

    CASES: dict[str, Callable[[dict], dict]]   # case name -> function(params) -> metrics
    DEFAULTS: dict                              # default params (sizes), overridable per run
    setup(params) -> None                       # optional, untimed: builds deterministic input data

and, optionally,

    RUNS: int        # measured runs per case when neither --runs nor BENCH_RUNS says (default 5)
    CASE_RUNS: dict  # case -> measured runs, for a case too slow for RUNS (--runs / BENCH_RUNS still win)
    WARMUP: int      # warm-up runs per case (default 1)
    QUICK: dict      # param overrides for `--quick`, a smoke test at tiny sizes (1 run, no warm-up)
    TARGETS: list    # the targets, as data, evaluated on medians by `python -m bench.report`:
                     #   {"name": "mart load / COPY", "ratio": ["project_load", "server_copy"],
                     #    "metric": "seconds", "max": 1.3}
                     #   {"name": "backfill wall", "case": "backfill", "metric": "wall_s", "max": 60}
                     # ("min" instead of "max" for a floor; "why": the reason the target exists)
    FINDINGS: str    # markdown: what profiling found (the measured reason for a miss), shown by the report

A case may also return a "notes" string (shown by the report) next to its numbers.

Each run executes one case in a child process (`python -m bench.harness --child ...`), so peak
RSS is per run: the child's VmHWM, plus the high-water marks of its descendants still alive when
the case returns (a JVM, say) and of the largest one it waited for, plus the peak of the embedded
Sail server, which does the Spark work in its own process; its high-water mark is reset before
each run through /proc/<pid>/clear_refs. The case measures what it times itself and returns it as
`{"seconds": ..., ...}`; the harness records the child's wall time, the 1-minute load average
before the run and the share of CPU time stolen by the hypervisor during it (on a shared virtual
machine the largest source of noise) as well. Results go to bench/results/<name>.json (`--quick`: bench/results/quick/);
`python -m bench.report` turns them into docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
QUICK_RESULTS = RESULTS / "quick"
REPO = BENCH_DIR.parent
DEFAULT_RUNS = 5


# Every 15 minutes of the widest session range: 500 symbols a poll fit 75 calls a minute.
BENCH_POLL_SCHEDULE = "0 */15 13-20 * * 1-5"


def machine() -> dict:
    """What the figures were measured on, and how busy it was when they started."""
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
        "load_average_before": load_average(),
    }


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages: other work on the machine inflates every figure."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs: time a hypervisor gave to other machines shows as steal."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    """Live descendants of `pid` (children, grandchildren, ...) from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reset_hwm(pid: int) -> None:
    with contextlib.suppress(OSError):  # not Linux, or not allowed: the peak then spans the server's life
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def run_child(module: str, case: str, params: dict, env: dict, server_pids: list[int]) -> dict:
    """One measured run in a fresh process; returns the case's metrics plus wall time and peak RSS."""
    for pid in server_pids:
        _reset_hwm(pid)
    cmd = [sys.executable, "-m", "bench.harness", "--child", module, case, json.dumps(params)]
    load_before = os.getloadavg()[0]
    steal_before, total_before = cpu_times()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    steal_after, total_after = cpu_times()
    if proc.returncode != 0:
        raise RuntimeError(f"{module}:{case} failed:\n{proc.stderr[-4000:]}")
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    client_kb = metrics.pop("_peak_rss_kb")
    servers_kb = sum(_vm_hwm_kb(pid) for pid in server_pids)
    metrics["wall_s"] = round(wall, 3)
    metrics["peak_rss_mb"] = round((client_kb + servers_kb) / 1024, 1)
    metrics["peak_rss_client_mb"] = round(client_kb / 1024, 1)
    metrics["load_1m_before"] = round(load_before, 2)
    metrics["cpu_steal_pct"] = round(100 * (steal_after - steal_before) / max(total_after - total_before, 1), 1)
    return metrics


def summarize(runs: list[dict]) -> dict:
    """Median, min and max of every numeric metric over the measured runs."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out = {}
    for key in keys:
        values = [r[key] for r in runs if key in r]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def plan(mod, runs: int | None, overrides: dict, quick: bool) -> tuple[dict, int, int]:
    """(params, measured runs, warm-up runs) of one benchmark module for this invocation."""
    params = {**getattr(mod, "DEFAULTS", {}), **(getattr(mod, "QUICK", {}) if quick else {}), **overrides}
    if quick:
        return params, runs or 1, 0
    return params, runs or getattr(mod, "RUNS", DEFAULT_RUNS), getattr(mod, "WARMUP", 1)


def _description(mod) -> str:
    return (mod.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


@contextlib.contextmanager
def bench_services(settings):
    """The services a benchmark runs on, the serving database migrated: a fresh bench home has
    no ops or mart tables, and the jobs (the DQ results, the mart loads) write into them."""
    from local import services
    from spark_jobs import migrations

    with services.running(settings) as eps:
        migrations.apply(eps.pg_dsn)
        yield eps


def run_benchmark(
    name: str, runs: int | None, overrides: dict, cases: list[str] | None, quick: bool = False,
    results_dir: Path | None = None,
) -> dict:  # fmt: skip
    """Set up, then warm up and measure every case of `bench/bench_<name>.py`; write its results JSON."""
    from lakehouse.settings import load_settings
    from local import services

    module = f"bench.bench_{name}"
    mod = importlib.import_module(module)
    explicit = runs is not None
    params, runs, warmup = plan(mod, runs, overrides, quick)
    home = Path(os.environ.get("LAKEHOUSE_BENCH_HOME", REPO / ".lakehouse" / "bench"))
    settings = load_settings(home=home)
    started = time.perf_counter()
    result = {
        "benchmark": name,
        "description": _description(mod),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "method": f"{warmup} warm-up run(s), then {runs} measured run(s) per case, each in a fresh process"
        + "".join(f"; {n} for {c}" for c, n in getattr(mod, "CASE_RUNS", {}).items() if not explicit and not quick),
        "runs": runs,
        "warmup": warmup,
        "quick": quick,
        "params": params,
        "targets": getattr(mod, "TARGETS", []),
        "findings": getattr(mod, "FINDINGS", ""),
        "cases": {},
    }
    with bench_services(settings) as eps:
        env = {
            **os.environ,
            "LAKEHOUSE_HOME": str(home),
            "LAKEHOUSE_SPARK_REMOTE": eps.spark_remote,
            "LAKEHOUSE_PG_DSN": eps.pg_dsn,
            # Benchmarks ingest up to 500 symbols; the default every-minute quote poll of that many
            # would exceed the premium plan's 75 calls a minute, which the ingestion refuses at start.
            "LAKEHOUSE_POLL_QUOTES_SCHEDULE": os.environ.get("LAKEHOUSE_POLL_QUOTES_SCHEDULE", BENCH_POLL_SCHEDULE),
        }
        server_pids = [r["pid"] for r in services.status(settings) if r["pid"]]
        if hasattr(mod, "setup"):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "bench.harness", "--setup", module, json.dumps(params)],
                cwd=REPO, env=env, check=True,
            )  # fmt: skip
            result["setup_seconds"] = round(time.perf_counter() - t0, 1)
        for case in cases or list(mod.CASES):
            case_runs = runs if explicit or quick else getattr(mod, "CASE_RUNS", {}).get(case, runs)
            for i in range(warmup):
                print(f"[bench] {name}:{case} warm-up {i + 1}/{warmup}", file=sys.stderr, flush=True)
                run_child(module, case, params, env, server_pids)
            measured = []
            for i in range(case_runs):
                measured.append(run_child(module, case, params, env, server_pids))
                print(f"[bench] {name}:{case} run {i + 1}/{case_runs}: {measured[-1]}", file=sys.stderr, flush=True)
            result["cases"][case] = {"runs": measured, "summary": summarize(measured)}
    result["machine"]["load_average_after"] = load_average()
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    out_dir = results_dir or (QUICK_RESULTS if quick else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


class _ChildPeaks:
    """The high-water marks of this process's descendants, sampled while they live.

    ``RUSAGE_CHILDREN``'s ru_maxrss is no measure of a child started by fork + exec: Linux keeps
    the parent's resident size at the fork as the child's maximum (a 500 MB process running
    ``true`` reports a 511 MB child), so the market API server, spawned when the client held about
    200 MB, was counted at that size although it peaks near 130 MB. VmHWM starts afresh at exec,
    so sampling it from /proc while each descendant lives gives its own peak. A descendant that
    lives less than one interval is missed: the ones that matter (a JVM, a server) live longer.
    """

    INTERVAL_S = 0.25

    def __init__(self) -> None:
        import threading

        self._own_cmdline = self._cmdline(os.getpid())
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-child-peaks", daemon=True)
        self._thread.start()

    @staticmethod
    def _cmdline(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""

    def sample(self) -> None:
        for pid in _descendants(os.getpid()):
            if self._cmdline(pid) == self._own_cmdline:  # forked, not yet exec'd: the parent's pages
                continue
            self.peaks[pid] = max(self.peaks.get(pid, 0), _vm_hwm_kb(pid))

    def _loop(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            self.sample()

    def stop(self) -> tuple[int, int]:
        """(sum of the live descendants' peaks, the largest peak of one that has ended), in KB."""
        self._stop.set()
        self._thread.join()
        self.sample()
        live = set(_descendants(os.getpid()))
        live_kb = sum(kb for pid, kb in self.peaks.items() if pid in live)
        ended_kb = max((kb for pid, kb in self.peaks.items() if pid not in live), default=0)
        return live_kb, ended_kb


def _child(module: str, case: str, params: str) -> None:
    mod = importlib.import_module(module)
    peaks = _ChildPeaks()
    metrics = mod.CASES[case](json.loads(params))
    # The child's own high-water mark, plus its live descendants' (a JVM still running) and its
    # largest ended descendant's, each sampled from its own VmHWM (see _ChildPeaks).
    live_kb, ended_kb = peaks.stop()
    metrics["_peak_rss_kb"] = _vm_hwm_kb(os.getpid()) + live_kb + ended_kb
    sys.stdout.write("\n" + json.dumps(metrics, default=str) + "\n")
    sys.stdout.flush()


def _setup(module: str, params: str) -> None:
    importlib.import_module(module).setup(json.loads(params))


def names_in(directory: Path = BENCH_DIR) -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in directory.glob("bench_*.py"))


# The project's packages, as the benchmarks import them from the checkout.
_PACKAGES = ("spark_jobs", "lakehouse", "local", "functions", "bench")


def _compile_project() -> None:
    """Write the project's bytecode once before any run, as installing a package does (pip compiles
    what it installs; the Function host and the cluster load compiled modules). Where
    PYTHONDONTWRITEBYTECODE is set, every fresh process would otherwise compile each module it
    imports from source again (~0.3 s for the jobs and the runner), inside the cases' timings.
    `compileall` writes the files whatever that variable says."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in _PACKAGES:
        compileall.compile_dir(str(root / package), quiet=1)


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
    parser.add_argument("--runs", type=int, default=int(os.environ["BENCH_RUNS"]) if os.environ.get("BENCH_RUNS")
                        else None, help="measured runs per case (default: the module's RUNS, else 5)")  # fmt: skip
    parser.add_argument("--case", action="append", help="only these cases")
    parser.add_argument("--set", action="append", default=[], help="param=value (JSON value)")
    parser.add_argument("--quick", action="store_true", help="smoke test: the modules' QUICK sizes, 1 run, no warm-up")
    parser.add_argument("--results", type=Path, help="directory for the results JSON")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    unknown = [n for n in args.names if n not in names_in()]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; there are: {', '.join(names_in())}")
    _compile_project()
    failed = []
    for name in args.names or names_in():
        try:
            run_benchmark(name, args.runs, overrides, args.case, quick=args.quick, results_dir=args.results)
        except Exception as exc:  # the other benchmarks still run; the command fails at the end
            print(f"[bench] {name} FAILED: {exc}", file=sys.stderr, flush=True)
            failed.append(name)
    if failed:
        sys.exit(f"benchmarks failed (their previous results, if any, were kept): {', '.join(failed)}")


if __name__ == "__main__":
    main()
