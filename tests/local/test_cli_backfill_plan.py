"""`lakehouse backfill` refuses, at start-up and with the reason, a window the provider plan cannot serve."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from pathlib import Path

from tests.local.test_cli import CLI


def backfill(tmp_path: Path, start: dt.date, plan: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAKEHOUSE_HOME": str(tmp_path / "home"), "ALPHAVANTAGE_PLAN": plan}
    end = start + dt.timedelta(days=30)
    return subprocess.run([*CLI, "backfill", "--start", start.isoformat(), "--end", end.isoformat()],
                          capture_output=True, text=True, env=env, timeout=180)  # fmt: skip


def test_a_five_year_backfill_on_a_free_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    result = backfill(tmp_path, dt.date.today().replace(month=1, day=2) - dt.timedelta(days=5 * 365), "free")
    assert result.returncode == 2, result.stderr
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # without the error box
    assert "ALPHAVANTAGE_PLAN=free" in text and "latest 100 sessions" in text
    assert not (tmp_path / "home" / "lake").exists()  # nothing started, nothing landed
