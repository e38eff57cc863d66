"""The `lakehouse` CLI contract: SQL against the serving DB, clear errors, honest stubs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

CLI = [sys.executable, "-m", "local.cli"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env or os.environ.copy(), timeout=180)


def test_sql_json_prints_an_array_of_row_objects(lakehouse_env: Path, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.cli_probe")
        conn.execute("CREATE TABLE public.cli_probe (symbol text, trade_date date, close numeric(12,4))")
        conn.execute("INSERT INTO public.cli_probe VALUES ('AAPL', '2024-07-05', 226.34), ('MSFT', NULL, 467.56)")
    out = run("sql", "SELECT * FROM public.cli_probe ORDER BY symbol", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        {"symbol": "AAPL", "trade_date": "2024-07-05", "close": 226.34},
        {"symbol": "MSFT", "trade_date": None, "close": 467.56},
    ]


def test_sql_error_is_reported_not_a_traceback(lakehouse_env: Path) -> None:
    out = run("sql", "SELECT * FROM no_such_table")
    assert out.returncode != 0
    assert "no_such_table" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_configuration_fails_at_start_up_naming_the_setting(lakehouse_env: Path) -> None:
    env = {**os.environ, "LAKEHOUSE_PROVIDER": "bloomberg"}
    out = run("services", "status", env=env)
    assert out.returncode == 2
    assert "LAKEHOUSE_PROVIDER" in out.stderr and "Traceback" not in out.stderr


def test_non_writable_home_fails_at_start_up(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run("services", "status", env={**os.environ, "LAKEHOUSE_HOME": str(blocker / "home")})
    assert out.returncode == 2
    assert "LAKEHOUSE_HOME" in out.stderr


def test_doctor_reports_each_check(lakehouse_env: Path) -> None:
    out = run("doctor", "--json")
    checks = {c["check"]: c for c in json.loads(out.stdout)}
    assert {"python", "java", ".NET", "disk", "service spark", "service postgres"} <= set(checks)
    assert checks["python"]["status"] == "ok"
    assert checks["service postgres"]["status"] == "ok"  # external: the session's server
