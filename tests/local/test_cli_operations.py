"""`lakehouse doctor` and `services status` on configured (external) services: connected, masked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from local.reachability import Unreachable, check_postgres, check_spark, mask_spark_remote

CLI = [sys.executable, "-m", "local.cli"]
TOKEN = "dapi-sentinel-0123456789abcdef"


def run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_spark_token_is_masked_and_other_parameters_kept() -> None:
    masked = mask_spark_remote(f"sc://host.example:443/;use_ssl=true;token={TOKEN};x-databricks-cluster-id=1")
    assert masked == "sc://host.example:443/;use_ssl=true;token=*****;x-databricks-cluster-id=1"


def test_services_status_and_doctor_never_print_the_spark_token(lakehouse_env: Path) -> None:
    remote = f"{os.environ['LAKEHOUSE_SPARK_REMOTE']}/;token={TOKEN}"
    env = {**os.environ, "LAKEHOUSE_SPARK_REMOTE": remote}
    for args in (("services", "status", "--json"), ("services", "status"), ("doctor", "--json"), ("doctor",)):
        out = run(*args, env=env)
        assert TOKEN not in out.stdout + out.stderr, args
    rows = {r["name"]: r for r in json.loads(run("services", "status", "--json", env=env).stdout)}
    assert rows["spark"]["url"].endswith("token=*****")


def test_doctor_fails_an_external_service_that_does_not_answer(lakehouse_env: Path) -> None:
    port = closed_port()
    env = {**os.environ, "LAKEHOUSE_PG_DSN": f"postgresql://u:pw-sentinel@127.0.0.1:{port}/db",
           "LAKEHOUSE_SPARK_REMOTE": f"sc://127.0.0.1:{port}"}  # fmt: skip
    out = run("doctor", "--json", env=env)
    checks = {c["check"]: c for c in json.loads(out.stdout)}
    assert out.returncode == 1
    assert checks["service postgres"]["status"] == "fail"
    assert checks["service spark"]["status"] == "fail"
    assert str(port) in checks["service spark"]["detail"]
    assert "pw-sentinel" not in out.stdout + out.stderr


def test_doctor_connects_to_a_live_external_service(lakehouse_env: Path) -> None:
    out = run("doctor", "--json", env=dict(os.environ))
    checks = {c["check"]: c for c in json.loads(out.stdout)}
    assert checks["service postgres"]["status"] == "ok"
    assert "PostgreSQL 1" in checks["service postgres"]["detail"]  # the server's version: it answered
    assert "SELECT 1 answered" in checks["service spark"]["detail"]


def test_checks_fail_fast_on_an_address_that_never_answers() -> None:
    import time

    began = time.monotonic()
    for check, target in ((check_spark, "sc://10.255.255.1:15002"),
                          (check_postgres, "postgresql://u@10.255.255.1:5432/db")):  # fmt: skip
        try:
            check(target, timeout=2)
        except Unreachable as exc:
            assert "10.255.255.1" in str(exc) or "cannot connect" in str(exc)
        else:
            raise AssertionError(f"{target} reported reachable")
    assert time.monotonic() - began < 15


def test_status_on_a_fresh_home_lists_gold_tables_and_exits_1_with_a_verdict(lakehouse_env: Path) -> None:
    out = run("status", "--now", "2024-03-05T23:00", env=dict(os.environ))
    assert out.returncode == 1, out.stderr
    first = out.stdout.splitlines()[0]
    assert first.startswith("unhealthy: ") and "empty or missing table" in first
    assert "gold.fct_daily_prices" in out.stdout
    report = json.loads(run("status", "--json", "--now", "2024-03-05T23:00", env=dict(os.environ)).stdout)
    assert report["healthy"]["ok"] is False
    assert "gold.fct_daily_prices" in report["healthy"]["stale_tables"]


def test_a_command_on_an_unreachable_external_service_fails_fast_naming_the_setting(lakehouse_env: Path) -> None:
    import time

    for where in ("10.255.255.1:5432", f"127.0.0.1:{closed_port()}"):
        env = {**os.environ, "LAKEHOUSE_PG_DSN": f"postgresql://u:pw-sentinel@{where}/db"}
        began = time.monotonic()
        out = run("sql", "SELECT 1", env=env)
        assert time.monotonic() - began < 30
        assert out.returncode == 1
        assert "LAKEHOUSE_PG_DSN" in out.stderr and where.split(":")[0] in out.stderr
        assert "pw-sentinel" not in out.stdout + out.stderr and "Traceback" not in out.stderr
    env = {**os.environ, "LAKEHOUSE_SPARK_REMOTE": f"sc://127.0.0.1:{closed_port()}"}
    out = run("reconcile", "--start", "2024-01-02", "--end", "2024-01-03", env=env)
    assert out.returncode == 1 and "LAKEHOUSE_SPARK_REMOTE" in out.stderr and "Traceback" not in out.stderr


def test_demo_refuses_more_symbols_than_the_universe_has(lakehouse_env: Path) -> None:
    out = run("demo", "--symbols", "5000", env=dict(os.environ))
    assert out.returncode == 2
    assert "--symbols" in out.stderr and "1..20" in out.stderr and "LAKEHOUSE_SYMBOLS" in out.stderr
    out = run("demo", "--symbols", "3", env={**os.environ, "LAKEHOUSE_SYMBOLS": "AAPL,MSFT"})
    assert out.returncode == 2 and "1..2" in out.stderr
    assert not lakehouse_env.exists(), "refused before anything was created"


def test_a_new_home_is_announced_with_its_absolute_path(lakehouse_env: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "LAKEHOUSE_HOME": "rel-home"}
    first = subprocess.run([*CLI, "services", "status"], capture_output=True, text=True, env=env, cwd=work, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"created LAKEHOUSE_HOME at {work / 'rel-home'}" in " ".join(first.stderr.split())
    again = subprocess.run([*CLI, "services", "status"], capture_output=True, text=True, env=env, cwd=work, timeout=120)
    assert "created LAKEHOUSE_HOME" not in again.stderr


def _commands():
    import typer.main

    from local.cli import app

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield path, cmd

    return list(walk(typer.main.get_command(app), []))


def test_help_describes_every_option_and_shows_no_bool_type() -> None:
    undescribed = [(" ".join(path), p.name) for path, cmd in _commands() for p in cmd.params if not p.help]
    assert undescribed == []
    for path, _ in _commands():
        out = subprocess.run([*CLI, *path, "-h"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (path, out.stderr)
        assert "<bool>" not in out.stdout and "-h, --help" in out.stdout, path


def test_version_and_completion_are_offered() -> None:
    from importlib.metadata import version

    out = subprocess.run([*CLI, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"lakehouse {version('market-lakehouse')}"
    top = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "--install-completion" in top and "--show-completion" in top


def test_adf_list_names_every_pipeline_and_trigger_with_parameters() -> None:
    out = subprocess.run([*CLI, "adf", "list", "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    root = Path(__file__).resolve().parents[2] / "adf"
    assert [p["name"] for p in found["pipelines"]] == sorted(f.stem for f in (root / "pipeline").glob("*.json"))
    assert [t["name"] for t in found["triggers"]] == sorted(f.stem for f in (root / "trigger").glob("*.json"))
    backfill = {p["name"]: p for p in next(e for e in found["pipelines"] if e["name"] == "pl_backfill")["parameters"]}
    assert backfill["startDate"] == {"name": "startDate", "type": "String", "default": None, "required": True}
    assert backfill["chunkDays"]["required"] is False
    daily = next(t for t in found["triggers"] if t["name"] == "tr_daily")
    assert daily["pipelines"] == ["pl_lakehouse_daily"] and "runDate" in daily["parameters"]
    text = subprocess.run([*CLI, "adf", "list"], capture_output=True, text=True, timeout=60).stdout
    assert "pl_backfill -p startDate=<String> -p endDate=<String> [-p chunkDays=92]" in text


def test_alerts_answers_like_status_in_json_and_text_and_both_refuse_a_bad_now(lakehouse_env: Path) -> None:
    from lakehouse.alert_rules import ALERT_RULES

    text = run("alerts", "--now", "2024-03-05T23:00", env=dict(os.environ))
    answer = run("alerts", "--json", "--now", "2024-03-05T23:00", env=dict(os.environ))
    results = json.loads(answer.stdout)
    assert [r["name"] for r in results] == [r.name for r in ALERT_RULES]
    assert text.returncode == answer.returncode == (1 if any(r["fires"] for r in results) else 0), text.stderr
    assert all(r["name"] in text.stdout for r in results)
    for command in ("status", "alerts"):
        bad = run(command, "--now", "tuesday", env=dict(os.environ))
        assert bad.returncode == 2 and "--now" in bad.stderr and "not an ISO-8601 time" in bad.stderr, bad.stderr
