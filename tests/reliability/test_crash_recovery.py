"""Crash recovery: pl_lakehouse_daily killed with SIGKILL at every activity boundary and in the middle
of every kind of write, then rerun for the same window, ends with the same lake and marts as a run
that was never interrupted, with no duplicate row anywhere and nothing left looking like it is
still going.

How a kill is placed: failpoints (lakehouse.failpoints) armed in the environment of a child process
running the real CLI, ``lakehouse adf run pl_lakehouse_daily``. "Mid Delta commit" is the moment a
write's new data files exist and ``_delta_log`` has no new version yet (the failpoint's watcher
thread kills as soon as it sees that, and logs what it saw). Two variants:

- the client is killed and the Spark engine (the session's Sail server) lives on, and may finish
  the write it was given: the rerun starts once the lake's logs are quiet;
- the engine is killed with its client (a private Sail server for the scenario, killed by the
  failpoint first): its half-written files stay behind uncommitted, and the rerun's platform
  start finds the recorded server dead and starts a new one.

The comparison: the order-independent content checksums of every Delta table and every mart
table (tests/reliability/checksums.py says which run columns are left out, and why), against one
uninterrupted run of the same window; then spark_jobs.reconcile over the window's layers.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.databases import migrated_database
from tests.reliability import pipeline_runs
from tests.reliability.pipeline_runs import Outcome, Scenario

MASTER = "after_activity:pl_lakehouse_daily"

# failpoint, crash point as the report names it, what was killed
BOUNDARIES = [
    (f"{MASTER}/Ingest market data", "after ingest"),
    (f"{MASTER}/Load bronze", "after raw_to_bronze"),
    (f"{MASTER}/Load silver", "after bronze_to_silver"),
    (f"{MASTER}/Load gold", "after silver_to_gold"),
    (f"{MASTER}/Load postgres", "after gold_to_postgres (before the run recorded its end)"),
]
DELTA_COMMITS = [
    ("delta_commit:bronze.daily_bars", "raw_to_bronze: Delta commit of bronze.daily_bars (append)"),
    ("delta_commit:silver.daily_bars", "bronze_to_silver: Delta commit of silver.daily_bars (MERGE)"),
    ("delta_commit:gold.fct_daily_prices", "silver_to_gold: Delta commit of gold.fct_daily_prices (MERGE)"),
]
PG_LOAD = [
    ("pg_load:copy", "gold_to_postgres: mid-COPY into the mart inside the replace transaction (window deleted)"),
    ("pg_load:swap", "gold_to_postgres: inside the replace transaction (deleted and re-inserted, not committed)"),
]
ENGINE_KILLS = [
    ("delta_commit:silver.daily_bars", "bronze_to_silver: Sail server and client killed mid Delta commit"),
    ("delta_commit:gold.fct_daily_prices", "silver_to_gold: Sail server and client killed mid Delta commit"),
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, endpoints) -> tuple[Scenario, Outcome]:
    return pipeline_runs.reference(tmp_path_factory.getbasetemp(), endpoints.spark_remote, endpoints.pg_dsn)


@pytest.fixture
def scenario(tmp_path, endpoints):
    with migrated_database(endpoints.pg_dsn, "crash") as dsn:
        yield Scenario(tmp_path / "home", dsn, endpoints.spark_remote)


def reconcile_window(spark, scenario: Scenario) -> dict:
    """The layers of the window, counted by spark_jobs.reconcile (ingestion window: the lookback)."""
    from spark_jobs.reconcile import reconcile

    today = dt.datetime.now(dt.UTC).date()
    counts = reconcile(spark, scenario.settings(), today - dt.timedelta(days=7), today,
                       trade_start=scenario.start, trade_end=scenario.end, pg_dsn=scenario.dsn)  # fmt: skip
    return counts.as_dict()


def crash_then_rerun(spark, scenario: Scenario, failpoint: str, also_kill: list[int] | None = None) -> dict:
    """Kill a run at `failpoint`, rerun the window to the end; what was seen on the way."""
    killed = pipeline_runs.run_child(scenario, failpoint, also_kill)
    hits = scenario.failpoints_hit()
    assert killed.killed, f"expected SIGKILL at {failpoint}, got rc={killed.returncode}:\n{killed.output[-3000:]}"
    assert [h["failpoint"] for h in hits] == [failpoint]
    pipeline_runs.wait_until_lake_quiet(scenario.home / "lake")
    observed = hits[0].get("observed")
    if failpoint.startswith("delta_commit:") and isinstance(observed, dict):
        layer, table = failpoint.removeprefix("delta_commit:").split(".")
        log = Path(scenario.lake.table(layer, table).removeprefix("file://")) / "_delta_log"
        version = max((int(p.stem) for p in log.glob("*.json")), default=-1)
        observed["engine_committed_after_kill"] = version > observed["version_now"]
    after_kill = pipeline_runs.ops_state(scenario.dsn)
    started = time.monotonic()
    rerun = pipeline_runs.run_in_process(scenario)
    assert rerun.status == "Succeeded", rerun.error
    return {
        "killed_after_s": killed.seconds,
        "observed_at_kill": hits[0].get("observed", hits[0].get("when")),
        "left_in_progress": after_kill["in_progress"],
        "rerun_s": round(time.monotonic() - started, 1),
        "ops": pipeline_runs.ops_state(scenario.dsn),
    }


def assert_recovered(c, spark, scenario: Scenario, reference: Outcome, seen: dict, crash_point: str) -> None:
    outcome = Outcome.of(scenario)
    differences = outcome.differences(reference)
    ops = seen["ops"]
    c.observe(
        f"killed after {seen['killed_after_s']} s ({_describe(seen['observed_at_kill'])}); "
        f"{seen['left_in_progress']} run records left InProgress, marked Failed (RunAbandoned) on the rerun; "
        f"rerun succeeded in {seen['rerun_s']} s; "
        f"{len(differences)} of {len(reference.lake) + len(reference.marts)} table checksums differ from the "
        f"uninterrupted run; duplicate keys: lake {outcome.lake_duplicate_keys}, marts {outcome.mart_duplicate_keys}",
        tables_compared=len(reference.lake) + len(reference.marts),
        tables_differing=len(differences),
    )
    assert differences == {}, f"{crash_point}: tables differ from the uninterrupted run: {differences}"
    assert outcome.lake_duplicate_keys == 0 and outcome.mart_duplicate_keys == 0
    assert ops["in_progress"] == 0, ops
    assert ("Succeeded", None, 1) in ops["top_level_runs"], ops
    assert ops["staging_tables"] == 0 and "running" not in ops["load_audit"], ops
    counts = reconcile_window(spark, scenario)
    counts["duplicate_rows"] += outcome.lake_duplicate_keys + outcome.mart_duplicate_keys
    c.reconcile(counts)


def _describe(observed) -> str:
    if isinstance(observed, dict):
        engine = observed.get("engine_committed_after_kill")
        tail = (
            ""
            if engine is None
            else ("; the engine then committed the orphaned write" if engine else "; the write was never committed")
        )
        return f"{observed.get('state')}, {observed.get('new_data_files')} new data files{tail}"
    return str(observed)


@pytest.mark.reliability
@pytest.mark.parametrize(("failpoint", "crash_point"), BOUNDARIES + DELTA_COMMITS + PG_LOAD,
                         ids=[fp for fp, _ in BOUNDARIES + DELTA_COMMITS + PG_LOAD])  # fmt: skip
def test_a_run_killed_then_rerun_ends_as_if_never_interrupted(case, spark, scenario, reference, failpoint, crash_point):
    c = case("crash recovery", f"SIGKILL {crash_point}, then rerun the window",
             expected="rerun succeeds; every lake and mart table's content checksum equals the uninterrupted "
                      "run's; no duplicate key; killed runs marked Failed (RunAbandoned); no staging left",
             crash_point=crash_point)  # fmt: skip
    seen = crash_then_rerun(spark, scenario, failpoint)
    assert_recovered(c, spark, scenario, reference[1], seen, crash_point)
    abandoned = [r for r in seen["ops"]["top_level_runs"] if r[1] == "RunAbandoned"]
    assert abandoned == [("Failed", "RunAbandoned", 1)], seen["ops"]


@pytest.mark.reliability
@pytest.mark.parametrize(("failpoint", "crash_point"), ENGINE_KILLS, ids=[fp for fp, _ in ENGINE_KILLS])
def test_the_engine_killed_mid_commit_is_restarted_and_the_rerun_ends_as_if_never_interrupted(
    case, spark, tmp_path, endpoints, reference, failpoint, crash_point
):
    from local import services

    c = case("crash recovery", f"SIGKILL of Sail and the run, {crash_point}, then rerun",
             expected="uncommitted files stay invisible; the rerun's platform restarts the dead Sail server; "
                      "tables equal the uninterrupted run's", crash_point=crash_point)  # fmt: skip
    with migrated_database(endpoints.pg_dsn, "engine") as dsn:
        scenario = Scenario(tmp_path / "home", dsn, spark_remote=None)  # the home's own Sail, via local.services
        settings = scenario.settings()
        started, _ = services.up(settings, ("spark",))
        engine_pid = started["spark"].pid
        try:
            seen = crash_then_rerun(spark, scenario, failpoint, also_kill=[engine_pid])
            # Usually the watcher catches the write between its data files and its commit; on a busy
            # machine it may see both at once: the ledger says which happened.
            assert seen["observed_at_kill"]["state"] in ("data files written, commit not yet", "already committed")
            assert seen["observed_at_kill"]["engine_committed_after_kill"] is False  # it died with the client
            assert not psutil.pid_exists(engine_pid)
            # the rerun's platform found the recorded server dead, started one and stopped it at its end
            assert "spark" not in services.Registry(scenario.home).read()
            assert (scenario.home / "services" / "spark.log").exists()
            assert_recovered(c, spark, scenario, reference[1], seen, crash_point)
        finally:
            services.down(settings)


def test_a_load_killed_inside_its_swap_leaves_the_old_rows_and_the_next_load_recovers(case, reference, endpoints):
    """The cheap one for `make test`: on the reference's loaded marts, a rerun of pl_gold_to_postgres is
    killed inside its replace transaction; readers still see the rows of before; the audit rows it
    left 'running' and its run left 'InProgress' are cleaned up by the next command, whose load ends
    equal. The load COPies straight into the marts: no staging table exists at any point."""
    from lakehouse.settings import load_settings
    from local.adf.runner import run_pipeline
    from local.runtime import local_platform

    scenario, expected = reference
    c = case("crash recovery", "SIGKILL inside the mart swap transaction of a reload, then load again",
             expected="marts unchanged after the kill (atomic swap); next load marks the abandoned audit failed, "
                      "ends with equal marts; no staging table at any point",
             crash_point="gold_to_postgres: replace transaction (reload of loaded marts)")  # fmt: skip
    before = Outcome.of(scenario).marts
    params = {"startDate": scenario.start, "endDate": scenario.end, "runId": "crash-in-swap"}
    proc = pipeline_runs.start_child(scenario, "pg_load:swap", params=params, pipeline="pl_gold_to_postgres")
    killed = pipeline_runs.finish_child(proc, time.monotonic())
    assert killed.killed, killed.output[-3000:]
    after_kill = pipeline_runs.ops_state(scenario.dsn)
    assert Outcome.of(scenario).marts == before == expected.marts
    assert after_kill["load_audit"].get("running") == 3 and after_kill["staging_tables"] == 0, after_kill
    with pipeline_runs.scenario_environment(scenario), local_platform(load_settings()) as platform:
        run = run_pipeline("pl_gold_to_postgres", params | {"runId": "after-crash"}, platform.run_context())
    assert run.status == "Succeeded", run.error
    ops = pipeline_runs.ops_state(scenario.dsn)
    with psycopg.connect(scenario.dsn) as conn:
        abandoned = conn.execute(
            "SELECT count(*) FROM ops.load_audit WHERE load_id = 'crash-in-swap' AND status = 'failed' "
            "AND error LIKE 'abandoned:%'"
        ).fetchone()[0]
    c.observe(f"after the kill: marts unchanged, {after_kill['load_audit'].get('running')} audit rows 'running', "
              f"{after_kill['staging_tables']} staging tables; after the next load: {abandoned} audit rows marked "
              f"abandoned, {ops['staging_tables']} staging tables, marts equal",
              staging_left=ops["staging_tables"])  # fmt: skip
    assert abandoned == 3 and ops["staging_tables"] == 0 and "running" not in ops["load_audit"]
    assert ("InProgress", None, 1) in after_kill["top_level_runs"]  # the killed run, until the next command
    assert ("Failed", "RunAbandoned", 1) in ops["top_level_runs"] and ops["in_progress"] == 0, ops
    assert Outcome.of(scenario).marts == expected.marts
