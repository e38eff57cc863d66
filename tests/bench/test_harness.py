"""The benchmark harness: fresh process per run, honest peak RSS, median/min/max."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.harness import REPO, plan, run_child, summarize

FAKE = """
import time
def allocate(params):
    t = time.perf_counter()
    blob = bytearray(params["mb"] * 1024 * 1024)
    blob[::4096] = b"x" * len(blob[::4096])   # touch every page so it is resident
    return {"seconds": time.perf_counter() - t, "bytes": len(blob)}
CASES = {"allocate": allocate}
"""


def test_each_run_reports_the_peak_rss_of_its_own_process(tmp_path: Path) -> None:
    (tmp_path / "fake_bench.py").write_text(FAKE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    small = run_child("fake_bench", "allocate", {"mb": 50}, env, server_pids=[])
    large = run_child("fake_bench", "allocate", {"mb": 400}, env, server_pids=[])
    assert small["bytes"] == 50 * 2**20 and large["bytes"] == 400 * 2**20
    # A fresh interpreter is ~10-40 MB; the touched buffer must show on top of it, per run.
    assert 50 <= small["peak_rss_mb"] < 50 + 150
    assert 400 <= large["peak_rss_mb"] < 400 + 150
    assert large["wall_s"] >= large["seconds"]


def test_summary_is_median_min_max_of_numeric_metrics() -> None:
    runs = [{"seconds": 3.0, "rows": 10, "ok": True}, {"seconds": 1.0, "rows": 10, "ok": True},
            {"seconds": 2.0, "rows": 10, "ok": True}]  # fmt: skip
    assert summarize(runs) == {
        "seconds": {"median": 2.0, "min": 1.0, "max": 3.0},
        "rows": {"median": 10, "min": 10, "max": 10},
    }


def test_child_failure_is_reported_with_its_error(tmp_path: Path) -> None:
    source = "def boom(p):\n    raise ValueError('no data for window')\nCASES = {'boom': boom}\n"
    (tmp_path / "broken_bench.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    with pytest.raises(RuntimeError, match="no data for window"):
        run_child("broken_bench", "boom", {}, env, server_pids=[])


SPAWNER = '''
import subprocess, sys
HOLD = """import os, time
parent = os.getppid()
b = bytearray(%d * 2**20); b[::4096] = b'x' * len(b[::4096])
print(1, flush=True)
while os.getppid() == parent:  # gone with the run's process
    time.sleep(0.05)
"""
def spawn(params):
    code = HOLD
    proc = subprocess.Popen([sys.executable, "-c", code % params["mb"]], stdout=subprocess.PIPE)
    proc.stdout.readline()   # the child has touched its memory
    return {"seconds": 0.0, "child": proc.pid}
CASES = {"spawn": spawn}
'''


def test_a_descendant_still_running_when_the_case_returns_counts_in_the_peak(tmp_path: Path) -> None:
    """The JVM of a classic PySpark session is such a descendant: its memory is the run's memory."""
    (tmp_path / "spawn_bench.py").write_text(SPAWNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    run = run_child("spawn_bench", "spawn", {"mb": 300}, env, server_pids=[])
    assert run["peak_rss_mb"] >= 300 + 10  # the descendant's 300 MB plus the run's own interpreter
    assert 0.0 <= run["cpu_steal_pct"] <= 100.0 and run["load_1m_before"] >= 0.0


# A stand-in bench module: sizes, a run count of its own, quick sizes.
Module = SimpleNamespace(DEFAULTS={"symbols": 500, "years": 5}, QUICK={"symbols": 3}, RUNS=3)


def test_runs_come_from_the_command_line_else_the_module_else_five() -> None:
    assert plan(Module, None, {}, quick=False) == ({"symbols": 500, "years": 5}, 3, 1)
    assert plan(Module, 7, {"years": 1}, quick=False) == ({"symbols": 500, "years": 1}, 7, 1)
    assert plan(object(), None, {}, quick=False) == ({}, 5, 1)


def test_quick_mode_uses_the_modules_tiny_sizes_one_run_and_no_warm_up() -> None:
    assert plan(Module, None, {}, quick=True) == ({"symbols": 3, "years": 5}, 1, 0)


def test_a_fresh_bench_home_gets_a_migrated_serving_database(tmp_path, endpoints, monkeypatch) -> None:
    """`python -m bench.harness scaling` on a fresh home failed: ops.dq_results did not exist."""
    import psycopg

    from bench.harness import bench_services
    from lakehouse.settings import load_settings
    from tests.databases import fresh_database

    with fresh_database(endpoints.pg_dsn, "bench") as dsn:
        monkeypatch.setenv("LAKEHOUSE_PG_DSN", dsn)
        monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", endpoints.spark_remote)
        with bench_services(load_settings(home=tmp_path / "bench")) as eps, psycopg.connect(eps.pg_dsn) as conn:
            found = conn.execute("SELECT to_regclass('ops.dq_results'), to_regclass('mart.daily_prices')").fetchone()
    assert found == ("ops.dq_results", "mart.daily_prices")
