"""The benchmark harness: fresh process per run, honest peak RSS, median/min/max."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.harness import REPO, run_child, summarize

FAKE = '''
import time
def allocate(params):
    t = time.perf_counter()
    blob = bytearray(params["mb"] * 1024 * 1024)
    blob[::4096] = b"x" * len(blob[::4096])   # touch every page so it is resident
    return {"seconds": time.perf_counter() - t, "bytes": len(blob)}
CASES = {"allocate": allocate}
'''


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
