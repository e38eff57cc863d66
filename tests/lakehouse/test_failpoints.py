"""Failpoints kill the process only where armed, with SIGKILL, and log what they saw."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from lakehouse import failpoints


def _run(code: str, tmp_path: Path, armed: str | None) -> tuple[int, str, list[dict]]:
    log = tmp_path / "fp.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_FAILPOINT")}
    env["LAKEHOUSE_FAILPOINT_LOG"] = str(log)
    if armed is not None:
        env["LAKEHOUSE_FAILPOINTS"] = armed
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    return proc.returncode, proc.stdout, lines


FAILPOINT = """
    from lakehouse.failpoints import failpoint
    print("before", flush=True)
    failpoint("after_activity:pl_x/Load bronze")
    print("after", flush=True)
"""


def test_an_unarmed_failpoint_does_nothing(tmp_path):
    assert _run(FAILPOINT, tmp_path, None)[:2] == (0, "before\nafter\n")
    assert _run(FAILPOINT, tmp_path, "after_activity:pl_x/Load silver")[:2] == (0, "before\nafter\n")


def test_an_armed_failpoint_kills_with_sigkill_and_logs_its_name(tmp_path):
    rc, out, log = _run(FAILPOINT, tmp_path, "pg_load:swap, after_activity:pl_x/*")
    assert (rc, out) == (-signal.SIGKILL, "before\n")  # nothing after it ran: no finally, no atexit
    assert [(e["failpoint"], e["when"]) for e in log] == [("after_activity:pl_x/Load bronze", "at")]


def test_during_kills_when_a_delta_write_has_data_files_and_no_commit(tmp_path):
    """The watcher sees the new data file of the write in flight before its log entry exists."""
    table = tmp_path / "t"
    (table / "_delta_log").mkdir(parents=True)
    (table / "_delta_log" / "00000000000000000000.json").write_text("{}")
    code = f"""
        import time
        from pathlib import Path
        from lakehouse.failpoints import during, DeltaWriteStarted
        table = Path({str(table)!r})
        with during("delta_commit:silver.daily_bars", DeltaWriteStarted(str(table))):
            (table / "part-0001.parquet").write_bytes(b"x")   # the write's data file
            time.sleep(5)                                     # ... its commit would come here
            (table / "_delta_log" / "00000000000000000001.json").write_text("{{}}")
        print("committed", flush=True)
    """
    rc, out, log = _run(code, tmp_path, "delta_commit:silver.*")
    assert (rc, out) == (-signal.SIGKILL, "")
    assert log[0]["observed"] == {"state": "data files written, commit not yet", "new_data_files": 1,
                                  "version_before": 0, "version_now": 0}  # fmt: skip
    assert not (table / "_delta_log" / "00000000000000000001.json").exists()


def test_during_unarmed_runs_the_block_untouched(tmp_path):
    ran = []
    with failpoints.during("delta_commit:gold.dim_date", failpoints.DeltaWriteStarted(str(tmp_path))):
        ran.append(True)
    assert ran == [True]
