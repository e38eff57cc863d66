"""Embedded services through the CLI: start once, reuse, recover, stop without leftovers.

This module starts its own Sail and PostgreSQL under a private LAKEHOUSE_HOME (the lifecycle is
what it tests); every other test shares the session's servers from conftest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from local.spark import connect

CLI = [sys.executable, "-m", "local.cli"]


def lakehouse(home: Path, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "ALPHAVANTAGE_"))}
    env.update({"LAKEHOUSE_HOME": str(home), **(extra_env or {})})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=180)


def status(home: Path) -> dict[str, dict]:
    out = lakehouse(home, "services", "status", "--json")
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)}


def processes_under(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(home) in cmd:
            found.append(proc)
    return found


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("services-home")
    yield home
    lakehouse(home, "services", "down")


def test_up_starts_sail_and_postgres_on_loopback(home: Path) -> None:
    out = lakehouse(home, "services", "up")
    assert out.returncode == 0, out.stderr
    rows = status(home)
    assert rows["spark"]["state"] == "running"
    assert rows["spark"]["url"].startswith("sc://127.0.0.1:")
    assert rows["postgres"]["state"] == "running"
    assert rows["postgres"]["url"].startswith("postgresql://postgres@127.0.0.1:")


def test_delta_through_sail_and_sql_through_psycopg(home: Path, tmp_path: Path) -> None:
    rows = status(home)
    spark = connect(rows["spark"]["url"])
    try:
        table = str(tmp_path / "delta_roundtrip")
        spark.range(100).selectExpr("id", "id % 7 AS bucket").write.format("delta").save(table)
        got = spark.read.format("delta").load(table).groupBy().sum("bucket").collect()[0][0]
        assert got == sum(i % 7 for i in range(100))
        assert (Path(table) / "_delta_log").is_dir()
    finally:
        spark.stop()
    with psycopg.connect(rows["postgres"]["url"]) as conn:
        assert conn.execute("SELECT current_database(), 6 * 7").fetchone() == ("lakehouse", 42)


def test_a_second_up_reuses_the_running_servers(home: Path) -> None:
    before = status(home)
    out = lakehouse(home, "services", "up")
    assert "already running" in out.stdout
    after = status(home)
    assert {n: r["pid"] for n, r in after.items()} == {n: r["pid"] for n, r in before.items()}


def test_a_killed_server_is_detected_and_restarted(home: Path) -> None:
    old = status(home)["spark"]
    os.kill(old["pid"], signal.SIGKILL)
    psutil.Process(old["pid"]).wait(10) if psutil.pid_exists(old["pid"]) else None
    assert status(home)["spark"]["state"] == "dead"
    out = lakehouse(home, "services", "up")
    assert out.returncode == 0, out.stderr
    new = status(home)["spark"]
    assert new["state"] == "running" and new["pid"] != old["pid"]


def test_a_port_taken_by_someone_else_is_not_reused(home: Path) -> None:
    old = status(home)["postgres"]
    os.kill(old["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    while True:  # the postmaster's children close the port shortly after it dies
        try:
            squatter.bind(("127.0.0.1", old["port"]))
            break
        except OSError:
            assert time.monotonic() < deadline, "port never freed"
            time.sleep(0.2)
    squatter.listen()
    try:
        assert status(home)["postgres"]["state"] == "dead"
        out = lakehouse(home, "services", "up")
        assert out.returncode == 0, out.stderr
        new = status(home)["postgres"]
        assert new["state"] == "running" and new["port"] != old["port"]
        with psycopg.connect(new["url"]) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        squatter.close()


def test_down_leaves_no_process_behind(home: Path) -> None:
    pids = [r["pid"] for r in status(home).values()]
    out = lakehouse(home, "services", "down")
    assert out.returncode == 0, out.stderr
    time.sleep(0.5)
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert processes_under(home) == []
    assert {r["state"] for r in status(home).values()} == {"stopped"}


def test_configured_endpoints_are_used_instead_of_starting_anything(tmp_path: Path) -> None:
    dsn = "postgresql://u:pw@db:5432/x"  # pragma: allowlist secret
    env = {"LAKEHOUSE_SPARK_REMOTE": "sc://127.0.0.1:1", "LAKEHOUSE_PG_DSN": dsn}
    out = lakehouse(tmp_path, "services", "status", "--json", extra_env=env)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["spark"] == {"name": "spark", "state": "external", "url": "sc://127.0.0.1:1",
                             "pid": None, "port": None}  # fmt: skip
    assert rows["postgres"]["state"] == "external"
    assert "pw" not in rows["postgres"]["url"].replace("password", "")
    assert processes_under(tmp_path) == []


def test_restart_if_dead_restarts_only_a_dead_server_of_its_own_and_signals_nothing_else(tmp_path: Path) -> None:
    """What a run's engine calls when its Sail stops answering (local.runtime.SparkEngine)."""
    from lakehouse.settings import load_settings
    from local import services

    settings = load_settings(home=tmp_path / "home")
    registry = services.Registry(settings.home_dir)
    first = services.up(settings, ("spark",), scoped=True)[0]["spark"]
    victim = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        assert services.restart_if_dead(settings, "spark", url=first.url) is None  # healthy: nothing to do
        os.kill(first.pid, signal.SIGKILL)
        psutil.Process(first.pid).wait(10)
        assert not services.serving(settings, "spark", first.url)

        second = services.restart_if_dead(settings, "spark", url=first.url)
        assert second is not None and second.pid != first.pid and second.scoped, second
        assert str(settings.home_dir / "spark") in psutil.Process(second.pid).cmdline()
        assert registry.read()["spark"] == second
        # a second session still on the dead URL is handed the server already restarted, not a third one
        assert services.restart_if_dead(settings, "spark", url=first.url) == second

        # a recorded pid that is not our server (pid reuse) is not signalled, and a server is started
        with registry.locked() as state:
            state.entries["spark"] = dataclasses.replace(second, pid=victim.pid)
        third = services.restart_if_dead(settings, "spark", url=second.url)
        assert third is not None and third.pid not in (victim.pid, second.pid)
        assert victim.poll() is None, "restart_if_dead signalled a process it did not start"
        psutil.Process(second.pid).kill()  # the real second server, now unrecorded: the test's to stop
    finally:
        victim.kill()
        victim.wait()
        services.down(settings)
    with pytest.raises(services.ServiceError, match="no spark server is recorded"):
        services.restart_if_dead(settings, "spark", url=third.url)
    assert processes_under(settings.home_dir) == []
