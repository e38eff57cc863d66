"""Running pl_lakehouse_daily for one window of one scenario: killed in a child process, or to the end.

A scenario has a lake of its own (LAKEHOUSE_HOME) and a database of its own, on the run's Sail and
PostgreSQL. A run that is to be killed is the real CLI (``lakehouse adf run``) in a child process,
armed with a failpoint (lakehouse.failpoints); a run that is to finish may run in this process,
through the same local platform the CLI uses, which saves the child's start-up.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from lakehouse import trading_calendar
from lakehouse.lake import Lake
from lakehouse.settings import Settings, load_settings

SYMBOLS = ("AAPL", "MSFT", "AMZN")
PIPELINE = "pl_lakehouse_daily"
CHILD_TIMEOUT = 300


def recent_window(sessions_back: int = 20) -> tuple[str, str]:
    """The last `sessions_back` sessions before today: inside the 100 sessions the ingestion fetches
    with ``outputsize=compact``, so a run moves 3 x 100 bars instead of 3 full histories."""
    today = dt.datetime.now(dt.UTC).date()
    days = trading_calendar.sessions(today - dt.timedelta(days=3 * sessions_back), today - dt.timedelta(days=1))
    return days[-sessions_back].isoformat(), days[-1].isoformat()


START, END = recent_window()
@dataclass
class Scenario:
    """One lake and one database; what a pipeline run of the scenario sees."""

    home: Path
    dsn: str
    spark_remote: str | None  # None: the home's own embedded Sail (started and restarted by local.services)
    start: str = START
    end: str = END
    symbols: tuple[str, ...] = SYMBOLS
    failpoint_log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.failpoint_log = self.home / "failpoints.jsonl"

    @property
    def params(self) -> dict[str, str]:
        return {"startDate": self.start, "endDate": self.end, "symbols": ",".join(self.symbols)}

    def env(self) -> dict[str, str]:
        """The environment of a run: this scenario's home and database, no real API settings."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ALPHAVANTAGE_", "LAKEHOUSE_"))}  # fmt: skip
        env.update({"LAKEHOUSE_HOME": str(self.home), "LAKEHOUSE_PG_DSN": self.dsn})
        if self.spark_remote:
            env["LAKEHOUSE_SPARK_REMOTE"] = self.spark_remote
        return env

    def settings(self) -> Settings:
        overrides = {"home": self.home, "pg_dsn": self.dsn}
        if self.spark_remote:
            overrides["spark_remote"] = self.spark_remote
        return load_settings(**overrides)

    @property
    def lake(self) -> Lake:
        return Lake.from_settings(self.settings())

    def failpoints_hit(self) -> list[dict]:
        if not self.failpoint_log.exists():
            return []
        return [json.loads(line) for line in self.failpoint_log.read_text().splitlines() if line.strip()]


@dataclass
class ChildRun:
    returncode: int
    output: str
    seconds: float

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def start_child(scenario: Scenario, failpoint: str | None = None, also_kill: list[int] | None = None,
                params: dict[str, str] | None = None, pipeline: str = PIPELINE) -> subprocess.Popen:  # fmt: skip
    """Start ``lakehouse adf run <pipeline>`` (default: the master, for the scenario's window) in a child."""
    env = scenario.env()
    if failpoint:
        env["LAKEHOUSE_FAILPOINTS"] = failpoint
        env["LAKEHOUSE_FAILPOINT_LOG"] = str(scenario.failpoint_log)
    if also_kill:
        env["LAKEHOUSE_FAILPOINT_ALSO_KILL"] = ",".join(map(str, also_kill))
    cli = Path(sys.executable).with_name("lakehouse")
    args = [str(cli), "adf", "run", pipeline]
    for name, value in (params or scenario.params).items():
        args += ["-p", f"{name}={value}"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[2])  # fmt: skip


def finish_child(proc: subprocess.Popen, started: float) -> ChildRun:
    try:
        output, _ = proc.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return ChildRun(proc.returncode, output, round(time.monotonic() - started, 2))


def run_child(scenario: Scenario, failpoint: str | None = None, also_kill: list[int] | None = None) -> ChildRun:
    started = time.monotonic()
    return finish_child(start_child(scenario, failpoint, also_kill), started)


@contextlib.contextmanager
def scenario_environment(scenario: Scenario) -> Iterator[None]:
    """This process's environment set to the scenario's for the block (the platform reads it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(scenario.env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_in_process(scenario: Scenario):
    """Run the window to its end in this process, through the local platform; the finished run."""
    from local.adf.runner import run_pipeline
    from local.runtime import local_platform

    with scenario_environment(scenario), local_platform(load_settings()) as platform:
        return run_pipeline(PIPELINE, scenario.params, platform.run_context())


def wait_until_lake_quiet(lake_root: Path, quiet: float = 1.5, timeout: float = 60.0) -> None:
    """Wait until no Delta log under the lake changed for `quiet` seconds.

    After its client is killed, the Spark engine may still finish the write it was given; a rerun
    started meanwhile would race it (see docs/orchestration.md, crash recovery)."""
    def state() -> set[str]:
        return {str(p) for p in lake_root.rglob("_delta_log/*.json")}

    deadline, last, since = time.monotonic() + timeout, state(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = state()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def ops_state(dsn: str) -> dict:
    """What the ops store says about runs, loads and staging tables."""
    with psycopg.connect(dsn) as conn:
        runs = conn.execute(
            "SELECT status, error->>'errorCode', count(*) FROM ops.pipeline_runs "
            "WHERE parent_run_id IS NULL GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        in_progress = conn.execute(
            "SELECT (SELECT count(*) FROM ops.pipeline_runs WHERE status = 'InProgress') + "
            "(SELECT count(*) FROM ops.activity_runs WHERE status = 'InProgress')"
        ).fetchone()[0]
        audits = dict(conn.execute("SELECT status, count(*) FROM ops.load_audit GROUP BY 1").fetchall())
        staging = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging'"
        ).fetchone()[0]
    return {
        "top_level_runs": [(status, code, n) for status, code, n in runs],
        "in_progress": int(in_progress),
        "load_audit": audits,
        "staging_tables": int(staging),
    }


@dataclass
class Outcome:
    """What a scenario's lake and marts hold, in the terms two runs are compared in."""

    lake: dict
    marts: dict
    mart_duplicate_keys: int

    @classmethod
    def of(cls, scenario: Scenario, distinct_bronze: bool = False) -> Outcome:
        """`distinct_bronze`: bronze by distinct rows (runs that each landed the same payload)."""
        from tests.reliability import checksums

        return cls(checksums.lake_sums(scenario.lake, distinct_bronze), checksums.mart_sums(scenario.dsn),
                   checksums.mart_duplicate_keys(scenario.dsn))  # fmt: skip

    @property
    def lake_duplicate_keys(self) -> int:
        return sum(s.duplicate_keys for s in self.lake.values() if s is not None)

    def differences(self, other: Outcome) -> dict[str, tuple]:
        from tests.reliability import checksums

        return checksums.differences(self.lake, other.lake) | checksums.differences(self.marts, other.marts)


_REFERENCES: dict[tuple, tuple[Scenario, Outcome]] = {}


def reference(root: Path, spark_remote: str, server_dsn: str, start: str = START, end: str = END,
              symbols: tuple[str, ...] = SYMBOLS) -> tuple[Scenario, Outcome]:  # fmt: skip
    """One uninterrupted run of the window, done once per test session and shared by the modules
    that compare against it (crash recovery, concurrency). Its database is dropped at exit."""
    key = (start, end, symbols)
    if key not in _REFERENCES:
        from tests.databases import fresh_database

        database = fresh_database(server_dsn, "reference")
        dsn = database.__enter__()
        atexit.register(_drop_quietly, database)
        scenario = Scenario(root / f"reference-{start}-{end}", dsn, spark_remote, start, end, symbols)
        run = run_in_process(scenario)
        assert run.status == "Succeeded", run.error
        _REFERENCES[key] = scenario, Outcome.of(scenario)
    return _REFERENCES[key]


def _drop_quietly(database: contextlib.AbstractContextManager) -> None:
    with contextlib.suppress(Exception):  # an embedded server may already be gone with the session
        database.__exit__(None, None, None)
