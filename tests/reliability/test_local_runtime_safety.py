"""The local runtime harms nothing it does not own, and fails fast when what it needs is gone.

Each case starts its own services under a private LAKEHOUSE_HOME through the `lakehouse` CLI
(the lifecycle is what it tests): a copied home, a registry naming someone else's process, a live
server without its registry, two commands sharing a server, SIGTERM, a killed Sail server, a home
with a space, an unreadable registry. The CLI cases that need no service of their own
(`--symbols`, `sql --json`, a damaged Delta table) use the session's servers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from typer.testing import CliRunner

from lakehouse.inputs import split_symbols
from lakehouse.settings import load_settings
from local import services
from tests.reliability.pipeline_runs import recent_window

CLI = [sys.executable, "-m", "local.cli"]
REPO = Path(__file__).resolve().parents[2]


def cli_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "ALPHAVANTAGE_"))}
    return {**env, "LAKEHOUSE_HOME": str(home), **(extra or {})}


def lakehouse(home: Path, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=cli_env(home, extra),
                          timeout=240, cwd=REPO)  # fmt: skip


def start_lakehouse(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(home), cwd=REPO)  # fmt: skip


def status(home: Path) -> dict[str, dict]:
    out = lakehouse(home, "services", "status", "--json")
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)}


def processes_under(home: Path) -> list[psutil.Process]:
    """Live processes whose command line names a path inside `home` (its Sail and PostgreSQL)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(str(home) in arg for arg in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def no_traceback(out: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory for homes whose PostgreSQL runs as another user (as root: `pgserver`).

    Not under pytest's temporary root: every pytest session that starts resets that root to mode
    0700, which would cut a running server off from its data directory.
    """
    path = Path(tempfile.mkdtemp(prefix="lakehouse-runtime-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def homes() -> Iterator[list[Path]]:
    """Homes a test starts services in; each is brought down (and checked empty) at the end."""
    made: list[Path] = []
    yield made
    for home in made:
        lakehouse(home, "services", "down")
    leftovers = [p for home in made for p in processes_under(home)]
    for proc in leftovers:  # a failed test must not leave servers running for the next one
        proc.kill()
    assert not leftovers, f"processes left behind: {leftovers}"


# ---------------------------------------------------------------- 6. a copied home


def test_a_copied_home_writes_into_its_own_database_not_the_originals(case, base, homes):
    c = case("local runtime", "`cp -a` of a home while its services run, then a write in the copy",
             expected="the copy refuses the original's servers (they serve another directory), starts its own; "
                      "the original's database never sees the write and its servers keep running")  # fmt: skip
    original, copy = base / "original", base / "copy"
    homes.extend([original, copy])
    assert lakehouse(original, "services", "up").returncode == 0
    before = status(original)
    subprocess.run(["cp", "-a", str(original), str(copy)], check=True)

    out = lakehouse(copy, "sql", "CREATE TABLE public.written_in_copy (x int)")
    assert out.returncode == 0, out.stderr

    with psycopg.connect(before["postgres"]["url"]) as conn:
        in_original = conn.execute("SELECT to_regclass('public.written_in_copy')").fetchone()[0]
    assert in_original is None, "the copy wrote into the original's database"
    seen = lakehouse(copy, "sql", "SELECT to_regclass('public.written_in_copy')::text AS t", "--json")
    assert json.loads(seen.stdout) == [{"t": "written_in_copy"}]
    after = status(original)
    assert {n: (r["state"], r["pid"]) for n, r in after.items()} == {
        n: ("running", r["pid"]) for n, r in before.items()
    }
    c.observe("the write landed in the copy's own PostgreSQL; the original's servers untouched",
              foreign_writes=0)  # fmt: skip


# ---------------------------------------------------------------- 7. signals only to our processes


def test_a_foreign_pid_in_the_registry_is_never_signalled(case, base, homes):
    c = case("local runtime", "services.json names an unrelated process (and its child) with a dead port",
             expected="`services up` leaves that process and its child alone and starts its own servers")  # fmt: skip
    home = base / "home"
    homes.append(home)
    home.mkdir()
    victim = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    try:
        wait_until(lambda: psutil.Process(victim.pid).children(), 10, "the victim's child")
        child = psutil.Process(victim.pid).children()[0]
        dead_port = services.free_port()
        entry = {"pid": victim.pid, "port": dead_port, "log": "", "started_at": 0.0}
        registry = {
            "spark": {"name": "spark", "url": f"sc://127.0.0.1:{dead_port}", **entry},
            "postgres": {"name": "postgres", "url": f"postgresql://postgres@127.0.0.1:{dead_port}/x", **entry,
                         "home": str(home), "token": "0123456789abcdef"},
        }  # fmt: skip
        (home / "services.json").write_text(json.dumps(registry))

        out = lakehouse(home, "services", "up")
        assert out.returncode == 0, out.stderr
        assert victim.poll() is None and child.is_running(), "services up signalled a process it did not start"
        assert {r["state"] for r in status(home).values()} == {"running"}
        assert victim.pid not in {r["pid"] for r in status(home).values()}
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    c.observe("the unrelated process and its child survived; own servers started", foreign_signals=0)


def test_a_live_server_whose_registry_was_lost_keeps_its_pid_file(case, base, homes):
    c = case("local runtime", "services.json deleted while PostgreSQL runs, then `services up`",
             expected="postmaster.pid of the live server is not deleted, the server keeps running and "
                      "answering; up fails naming it; `services down` still stops it")  # fmt: skip
    home = base / "home"
    homes.append(home)
    assert lakehouse(home, "services", "up").returncode == 0
    running = status(home)["postgres"]
    pidfile = home / "postgres" / "data" / "postmaster.pid"
    (home / "services.json").unlink()

    out = lakehouse(home, "services", "up")
    no_traceback(out)
    time.sleep(1)
    assert pidfile.exists() and int(pidfile.read_text().splitlines()[0]) == running["pid"]
    assert psutil.pid_exists(running["pid"])
    with psycopg.connect(running["url"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert out.returncode == 1 and f"pid {running['pid']}" in out.stderr, out.stderr

    down = lakehouse(home, "services", "down")
    assert down.returncode == 0, down.stderr
    wait_until(lambda: not processes_under(home), 30, "the servers of the home to stop")
    c.observe("the live server kept its pid file and kept answering; down stopped it", foreign_signals=0)


# ---------------------------------------------------------------- 8. leases


def test_a_command_ending_does_not_stop_a_server_another_command_uses(case, base, homes):
    c = case("local runtime", "`sql pg_sleep(6)` started first, a longer `sql` on the same home ends after it",
             expected="the first command's exit leaves PostgreSQL running for the second; the last one out "
                      "stops it")  # fmt: skip
    home = base / "home"
    homes.append(home)
    first = start_lakehouse(home, "sql", "SELECT pg_sleep(6) AS slept")
    wait_until(lambda: status(home)["postgres"]["state"] == "running", 60, "the first command's PostgreSQL")
    second = start_lakehouse(home, "sql", "SELECT pg_sleep(14) AS slept", "--json")
    _, err_first = first.communicate(timeout=60)
    assert first.returncode == 0, err_first
    assert status(home)["postgres"]["state"] == "running", "the first command stopped a server still in use"
    out_second, err_second = second.communicate(timeout=60)
    assert second.returncode == 0, err_second
    assert len(json.loads(out_second)) == 1
    wait_until(lambda: not processes_under(home), 30, "the last command to stop PostgreSQL")
    assert status(home)["postgres"]["state"] == "stopped"
    c.observe("the second command finished on the server the first had started; nothing left running")


# ---------------------------------------------------------------- 9. SIGTERM


def test_sigterm_ends_a_command_like_ctrl_c_and_releases_its_services(case, base, homes):
    c = case("local runtime", "SIGTERM to a command that started PostgreSQL for itself",
             expected="the command exits promptly through its cleanup, stopping the server it started")  # fmt: skip
    home = base / "home"
    homes.append(home)
    proc = start_lakehouse(home, "sql", "SELECT pg_sleep(120)")
    wait_until(lambda: status(home)["postgres"]["state"] == "running", 60, "the command's PostgreSQL")
    time.sleep(1)  # the query is sent
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err, err[-3000:]
    wait_until(lambda: not processes_under(home), 30, "the command's services to be released")
    assert status(home)["postgres"]["state"] == "stopped"
    c.observe("the command exited and released its PostgreSQL")


def test_sigterm_raises_the_interrupt_a_run_records_as_cancelled():
    """The handler `main` installs turns SIGTERM into KeyboardInterrupt, which the ADF runner records
    as Cancelled (local.adf) before the interrupt unwinds the platform."""
    from local import cli

    saved = signal.signal(signal.SIGTERM, cli._interrupt)
    try:
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    finally:
        signal.signal(signal.SIGTERM, saved)


# ---------------------------------------------------------------- 10. a dead Spark server


def test_a_dead_spark_server_fails_calls_in_seconds_and_is_restarted(case, base, homes):
    from local.spark import connect

    c = case("local runtime", "Sail killed under a connected session",
             expected="the next call fails within 60 s (not the client's 10-minute retry); the dead server "
                      "is started again and answers")  # fmt: skip
    home = base / "home"
    homes.append(home)
    settings = load_settings(home=home)
    started, _ = services.up(settings, ("spark",))
    session = connect(started["spark"].url)
    outcome: dict[str, object] = {}

    def call() -> None:
        t0 = time.monotonic()
        try:
            session.range(3).count()
            outcome["result"] = "answered"
        except Exception as exc:  # the failure is the point
            outcome["result"] = type(exc).__name__
        outcome["seconds"] = time.monotonic() - t0

    try:
        assert session.range(3).count() == 3
        psutil.Process(started["spark"].pid).kill()
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "a call to a dead server still hangs after 60 s"
        assert outcome["result"] != "answered"
        restarted = services.restart_if_dead(settings, "spark")
        assert restarted is not None and restarted.pid != started["spark"].pid
        fresh = connect(restarted.url)
        try:
            assert fresh.range(4).count() == 4
        finally:
            fresh.stop()
    finally:
        with_timeout = threading.Thread(target=session.stop, daemon=True)
        with_timeout.start()
        with_timeout.join(timeout=30)
    c.observe(f"the call failed after {outcome['seconds']:.1f} s; the restarted server answered")


# A backfill of two chunks (the window split in two), on the home's own Sail (started, restarted and
# stopped by local.services) and the session's PostgreSQL.
SAIL_BACKFILL_WINDOW = recent_window(10)
BACKFILL_BOUND_S = 420  # a clean 2-chunk backfill takes well under a minute; a hang is caught, not waited out
GIVE_UP_BOUND_S = 120  # from the first kill to the failed run, when Sail dies again after its restart


def backfill_params(symbols: tuple[str, ...]) -> dict[str, str]:
    import datetime as dt

    first, last = (dt.date.fromisoformat(d) for d in SAIL_BACKFILL_WINDOW)
    half = ((last - first).days + 2) // 2
    return {"startDate": first.isoformat(), "endDate": last.isoformat(), "chunkDays": str(half),
            "symbols": ",".join(symbols)}  # fmt: skip


class SailKiller:
    """SIGKILLs the home's Sail server, and nothing else, once chunk 1's bronze_to_silver is under way.

    The moment: a new data file of silver.daily_bars exists (a Delta write in flight), or 20 s after
    the notebook started if none appears. The process killed is the one services.json records,
    checked to be this home's (its start token and directory) before the signal. With `again`,
    every Sail started after that (a restart) is killed as soon as the registry records it.
    """

    def __init__(self, settings: Any, again: bool = False) -> None:
        self.settings = settings
        self.again = again
        self.killed: list[int] = []
        self.first_kill_at: float | None = None
        self.observed: object = None
        self._armed = False
        self._done = threading.Event()

    def on_event(self, event: str, record: Any) -> None:
        silver = event == "activity_started" and getattr(record, "pipeline", None) == "pl_bronze_to_silver"
        if silver and not self._armed:
            self._armed = True
            threading.Thread(target=self._kill_mid_write, daemon=True).start()

    def stop(self) -> None:
        self._done.set()

    def _kill_mid_write(self) -> None:
        from lakehouse.failpoints import DeltaWriteStarted
        from lakehouse.lake import Lake

        poll = DeltaWriteStarted(Lake.from_settings(self.settings).table("silver", "daily_bars"))()
        deadline = time.monotonic() + 20
        while not self._done.is_set() and time.monotonic() < deadline:
            self.observed = poll()
            if self.observed:
                break
            time.sleep(0.002)
        self.observed = self.observed or "no data file within 20 s; killed then"
        self._kill_recorded()
        self.first_kill_at = time.monotonic()
        while self.again and not self._done.is_set():
            self._kill_recorded()
            time.sleep(0.02)

    def _kill_recorded(self) -> None:
        info = services.Registry(self.settings.home_dir).read().get("spark")
        if info is None or info.pid in self.killed:
            return
        proc = services.proven_ours(info.pid, info.token, self.settings.home_dir / "spark")
        if proc is not None:
            proc.kill()
            self.killed.append(info.pid)


def run_backfill_bounded(
    scenario: Any, params: dict[str, str], killer: SailKiller | None, bound: float
) -> dict[str, Any]:
    """Run pl_backfill in this process on the scenario's platform, on a thread joined with a bound:
    a run that hangs fails the test instead of holding it."""
    from local.adf.runner import run_pipeline
    from local.runtime import local_platform
    from tests.reliability import pipeline_runs

    seen: dict[str, Any] = {}

    def go() -> None:
        started = time.monotonic()
        try:
            with pipeline_runs.scenario_environment(scenario), local_platform(load_settings()) as platform:
                context = platform.run_context(on_event=killer.on_event if killer else None)
                seen["run"] = run_pipeline("pl_backfill", params, context)
                seen["restarts"] = list(getattr(getattr(platform, "engine", None), "restarts", []))
        except BaseException as exc:  # reported by the test, never swallowed
            seen["raised"] = exc
        finally:
            seen["seconds"] = round(time.monotonic() - started, 1)
            seen["ended_at"] = time.monotonic()
            if killer is not None:
                killer.stop()

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(timeout=bound)
    if killer is not None:
        killer.stop()
    assert not worker.is_alive(), f"the backfill still runs {bound} s after it started: it hangs on the dead engine"
    if "raised" in seen:
        raise seen["raised"]
    return seen


@pytest.fixture(scope="module")
def clean_backfill(tmp_path_factory, spark, endpoints):
    """One uninterrupted 2-chunk backfill of the window (the session's Sail): its tables and counts."""
    from tests.databases import migrated_database
    from tests.reliability.pipeline_runs import Outcome, Scenario

    with migrated_database(endpoints.pg_dsn, "cleanbackfill") as dsn:
        scenario = Scenario(tmp_path_factory.mktemp("clean-backfill") / "home", dsn, endpoints.spark_remote,
                            *SAIL_BACKFILL_WINDOW)  # fmt: skip
        seen = run_backfill_bounded(scenario, backfill_params(scenario.symbols), None, BACKFILL_BOUND_S)
        assert seen["run"].status == "Succeeded", seen["run"].error
        yield Outcome.of(scenario), backfill_counts(spark, scenario)


def backfill_counts(spark, scenario) -> dict[str, int]:
    """spark_jobs.reconcile over the backfill: ingested today, the window's trade dates."""
    import datetime as dt

    from spark_jobs.reconcile import reconcile

    today = dt.datetime.now(dt.UTC).date()
    counts = reconcile(spark, scenario.settings(), today - dt.timedelta(days=7), today,
                       trade_start=scenario.start, trade_end=scenario.end, pg_dsn=scenario.dsn)  # fmt: skip
    return counts.as_dict()


@pytest.mark.reliability
def test_only_sail_killed_mid_backfill_is_restarted_and_the_backfill_completes(case, spark, base, homes, endpoints,
                                                                                clean_backfill):  # fmt: skip
    from tests.databases import migrated_database
    from tests.reliability.pipeline_runs import Outcome, Scenario

    c = case("local runtime", "SIGKILL of only the Sail server mid Delta commit, in chunk 1 of a 2-chunk backfill",
             expected="the runtime sees the dead engine, restarts Sail on the same home (proven ours), reconnects "
                      "and runs bronze_to_silver once more; the backfill succeeds; every table equals a clean "
                      "backfill's; 0 lost, 0 duplicate",
             crash_point="bronze_to_silver, chunk 1 of 2: only Sail killed mid Delta commit")  # fmt: skip
    clean, clean_counts = clean_backfill
    home = base / "home"
    homes.append(home)
    with migrated_database(endpoints.pg_dsn, "sailkill") as dsn:
        scenario = Scenario(home, dsn, None, *SAIL_BACKFILL_WINDOW)  # the home's own Sail
        settings = scenario.settings()
        killer = SailKiller(settings)
        seen = run_backfill_bounded(scenario, backfill_params(scenario.symbols), killer, BACKFILL_BOUND_S)
        run = seen["run"]
        assert len(killer.killed) == 1, "Sail was not killed: the moment was missed"
        assert run.status == "Succeeded", run.error
        assert len(seen["restarts"]) == 1, seen["restarts"]
        outcome = Outcome.of(scenario)
        differences = outcome.differences(clean)
        counts = backfill_counts(spark, scenario)
    c.observe(
        f"Sail (pid {killer.killed[0]}) killed at: {killer.observed}; restarted once "
        f"({seen['restarts'][0].reason}); the backfill succeeded in {seen['seconds']} s; "
        f"{len(differences)} of {len(clean.lake) + len(clean.marts)} table checksums differ from a clean backfill; "
        f"duplicate keys: lake {outcome.lake_duplicate_keys}, marts {outcome.mart_duplicate_keys}",
        restarts=len(seen["restarts"]), tables_differing=len(differences),
    )  # fmt: skip
    assert differences == {}, differences
    assert outcome.lake_duplicate_keys == 0 and outcome.mart_duplicate_keys == 0
    counts["duplicate_rows"] += outcome.lake_duplicate_keys + outcome.mart_duplicate_keys
    assert counts == clean_counts, (counts, clean_counts)
    c.reconcile(counts)


@pytest.mark.reliability
def test_sail_killed_again_right_after_its_restart_fails_the_backfill_fast_naming_sail(case, base, homes, endpoints):
    from tests.databases import migrated_database
    from tests.reliability.pipeline_runs import Scenario

    c = case("local runtime", "Sail killed mid-backfill, and its restarted server killed as soon as it is up",
             expected=f"one restart, no second: the backfill fails within {GIVE_UP_BOUND_S} s of the first "
                      "kill with an error naming the Sail server; the next chunk fails at once; no server left "
                      "behind")  # fmt: skip
    home = base / "home"
    homes.append(home)
    with migrated_database(endpoints.pg_dsn, "sailagain") as dsn:
        scenario = Scenario(home, dsn, None, *SAIL_BACKFILL_WINDOW)
        killer = SailKiller(scenario.settings(), again=True)
        seen = run_backfill_bounded(scenario, backfill_params(scenario.symbols), killer, BACKFILL_BOUND_S)
    run = seen["run"]
    assert killer.first_kill_at is not None, "Sail was not killed: the moment was missed"
    after_kill = seen["ended_at"] - killer.first_kill_at
    message = (run.error or {}).get("message", "")
    assert run.status == "Failed"
    assert "Sail" in message and "died again" in message, message
    assert len(killer.killed) == 2, f"expected the first server and one restart killed, got {killer.killed}"
    assert len(seen["restarts"]) == 1, seen["restarts"]
    assert after_kill < GIVE_UP_BOUND_S, f"the run took {after_kill:.0f} s after the kill to fail"
    chunks = [r for r in run.child_runs if r.pipeline == "pl_lakehouse_daily"]
    assert [r.status for r in chunks] == ["Failed", "Failed"]
    later = [a for a in activity_runs(chunks[1]) if a.activity_type == "DatabricksNotebook"]
    assert later and all((a.error or {}).get("errorCode") == "SparkEngineGone" for a in later), later
    assert all((a.end - a.start).total_seconds() < 1 for a in later), "chunk 2's notebooks waited on the engine"
    named = message[message.index("the embedded Sail") :]
    c.observe(f"Sail restarted once, the restart killed too; the backfill failed {after_kill:.1f} s after the "
              f"first kill; chunk 2's {len(later)} notebook attempts failed at once (SparkEngineGone). Error: "
              f"{named[:400]}", restarts=len(seen["restarts"]), seconds_to_fail=round(after_kill, 1))  # fmt: skip


def activity_runs(run: Any) -> list[Any]:
    """Every activity run of a pipeline run and of the runs it executed."""
    return [*run.activity_runs, *(a for child in run.child_runs for a in activity_runs(child))]


# ---------------------------------------------------------------- 11. the smaller ones


def test_a_home_with_a_space_starts_and_stops_cleanly(case, base, homes):
    c = case("local runtime", "LAKEHOUSE_HOME containing a space",
             expected="both servers start, answer, and stop")  # fmt: skip
    home = base / "a home with spaces"
    homes.append(home)
    out = lakehouse(home, "services", "up")
    assert out.returncode == 0, out.stderr
    rows = status(home)
    assert {r["state"] for r in rows.values()} == {"running"}
    with psycopg.connect(rows["postgres"]["url"]) as conn:
        assert conn.execute("SELECT 6 * 7").fetchone() == (42,)
    assert lakehouse(home, "services", "down").returncode == 0
    wait_until(lambda: not processes_under(home), 30, "the servers to stop")
    c.observe("both servers ran under the spaced home and stopped")


def test_postgres_failing_to_start_leaves_no_sail_behind(base, monkeypatch, homes):
    home = base / "home"
    homes.append(home)
    settings = load_settings(home=home)

    def refuse(self, *args):
        raise services.ServiceError("PostgreSQL did not start (injected)")

    monkeypatch.setattr(services.PostgresService, "start", refuse)
    with pytest.raises(services.ServiceError, match="injected"):
        services.up(settings)
    assert processes_under(home) == []
    assert services.Registry(home.resolve()).read() == {}


def test_an_unreadable_registry_is_named_and_services_down_still_stops_the_servers(case, base, homes):
    c = case("local runtime", "garbage in services.json while the servers run",
             expected="status fails in a few lines naming the file, no traceback; `services down` stops both "
                      "servers (found by their directory and start marks) and sets the file aside")  # fmt: skip
    home = base / "home"
    homes.append(home)
    assert lakehouse(home, "services", "up").returncode == 0
    (home / "services.json").write_text("{not json at all")

    out = lakehouse(home, "services", "status")
    no_traceback(out)
    assert out.returncode == 1
    assert "services.json is not a services registry" in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 5, out.stderr

    down = lakehouse(home, "services", "down")
    no_traceback(down)
    assert down.returncode == 0, down.stderr
    wait_until(lambda: not processes_under(home), 30, "the servers to stop")
    assert (home / "services.json.unreadable").exists()
    assert {r["state"] for r in status(home).values()} == {"stopped"}
    c.observe("status named the file; down stopped both servers without the registry")


@pytest.fixture
def recorded_backfill(monkeypatch):
    """The parameters `lakehouse backfill` would run pl_backfill with, without running it."""
    from local import cli

    calls: list[dict] = []

    def run_pipeline(name, params, context):
        calls.append(dict(params))

    monkeypatch.setattr("local.adf.runner.run_pipeline", run_pipeline)
    monkeypatch.setattr(cli, "_run_pipeline_command", lambda start, progress=None: start(None))
    return calls


@pytest.mark.parametrize("given", ["", ",", " , "])
def test_an_empty_symbols_option_is_refused_however_it_is_spelled(given, recorded_backfill, lakehouse_env):
    from local.cli import app

    result = CliRunner().invoke(app, ["backfill", "--start", "2024-03-04", "--end", "2024-03-08", "--symbols", given])
    assert result.exit_code == 2, result.output
    assert "--symbols is empty" in result.output
    assert recorded_backfill == []


def test_symbols_the_cli_accepts_are_symbols_ingestion_accepts(recorded_backfill, lakehouse_env):
    from local.cli import app

    result = CliRunner().invoke(
        app, ["backfill", "--start", "2024-03-04", "--end", "2024-03-08", "--symbols", " AAPL, MSFT ,AAPL"]
    )
    assert result.exit_code == 0, result.output
    [params] = recorded_backfill
    valid, rejected = split_symbols(params["symbols"].split(","))
    assert rejected == []
    assert valid == ["AAPL", "MSFT"]


def test_a_fresh_home_weekend_window_loads_nothing_and_succeeds(spark, endpoints, tmp_path):
    from lakehouse.lake import Lake
    from spark_jobs import serving
    from spark_jobs.job_params import DateWindow
    from tests.databases import migrated_database

    with migrated_database(endpoints.pg_dsn, "freshhome") as dsn:
        results = serving.load(spark, Lake(str(tmp_path / "lake")), dsn,
                               window=DateWindow.parse("2024-03-09", "2024-03-10"), load_id="weekend-1")  # fmt: skip
        assert results and {r.status for r in results} == {"skipped"}
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM mart.daily_prices").fetchone() == (0,)


@pytest.mark.reliability
def test_a_fresh_home_backfill_of_a_weekend_succeeds(case, base, homes):
    c = case("local runtime", "fresh home, backfill of a weekend (no session)",
             expected="the run succeeds with nothing to load (no GoldTableMissing)")  # fmt: skip
    home = base / "home"
    homes.append(home)
    out = lakehouse(home, "backfill", "--start", "2024-03-09", "--end", "2024-03-10", "--symbols", "AAPL")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "status: Succeeded" in out.stdout
    c.observe("Succeeded; the mart stayed empty", lost_rows=0)


def test_a_damaged_delta_commit_names_its_table_and_reconcile_prints_no_traceback(spark, endpoints, tmp_path):
    from lakehouse.lake import Lake
    from spark_jobs.tables import Tables, UnreadableTable, contract

    home = tmp_path / "home"
    lake = Lake(str(home / "lake"))
    silver = contract("silver", "daily_bars")
    location = lake.table("silver", "daily_bars")
    spark.range(3).write.format("delta").save(location)
    spark.range(3, 5).write.format("delta").mode("append").save(location)
    commit = lake.local_path("silver", "daily_bars") / "_delta_log" / "00000000000000000001.json"
    commit.write_text(commit.read_text()[:40])

    with pytest.raises(UnreadableTable, match=r"silver\.daily_bars"):
        Tables(spark, lake).read(silver)

    extra = {"LAKEHOUSE_SPARK_REMOTE": endpoints.spark_remote, "LAKEHOUSE_PG_DSN": endpoints.pg_dsn}
    out = lakehouse(home, "reconcile", "--start", "2024-03-04", "--end", "2024-03-08", extra=extra)
    no_traceback(out)
    assert out.returncode == 1
    assert "silver.daily_bars" in out.stderr


def test_sql_json_keeps_every_column_and_value_exact(endpoints, tmp_path):
    query = (
        "SELECT 1 AS a, 2 AS a, interval '1 mon 2 days 03:04:05.5' AS span, interval '26:00' AS hours, "
        "'NaN'::float8 AS nan, '-Infinity'::float8 AS neg, 123456789012345678.91::numeric AS big, "
        "12345678901234567890::numeric AS whole, 0.1::numeric AS tenth"
    )
    out = lakehouse(tmp_path / "home", "sql", query, "--json", extra={"LAKEHOUSE_PG_DSN": endpoints.pg_dsn})
    assert out.returncode == 0, out.stderr

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    from decimal import Decimal

    [row] = json.loads(out.stdout, parse_constant=refuse, parse_float=Decimal)
    assert row == {
        "a": 1, "a_2": 2, "span": "P1M2DT3H4M5.5S", "hours": "PT26H", "nan": "NaN",
        "neg": "-Infinity", "big": Decimal("123456789012345678.91"), "whole": 12345678901234567890,
        "tenth": Decimal("0.1"),
    }  # fmt: skip
