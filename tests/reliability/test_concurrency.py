"""Concurrency: runs started together end with consistent tables.

What the engine does, pinned first: Sail 0.7.2 (delta-rs underneath) commits concurrent blind
appends to one Delta table all; of concurrent MERGEs or replaceWhere overwrites exactly one
commits and the others fail ("Failed to commit transaction"), with no retry and no lost update.
So two jobs writing the same table at once either duplicate rows (two bronze loads both find a
RAW file new and both append it) or fail. The layer pipelines that write the lake therefore
declare ADF's pipeline ``concurrency: 1`` (Azure queues a run beyond it; the local runner makes
it wait on a PostgreSQL advisory lock shared by every process on the ops database), while
ingestion and the mart load (which swaps under table locks) run concurrently.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time

import psycopg
import pytest

from tests.databases import migrated_database
from tests.reliability import pipeline_runs
from tests.reliability.pipeline_runs import Outcome, Scenario

LAYER_PIPELINES = ("pl_raw_to_bronze", "pl_bronze_to_silver", "pl_silver_to_gold")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, endpoints) -> tuple[Scenario, Outcome]:
    return pipeline_runs.reference(tmp_path_factory.getbasetemp(), endpoints.spark_remote, endpoints.pg_dsn)


def _slot_pipeline(root, concurrency: int | None) -> None:
    """A pipeline that holds its run for 1 s: a Wait activity."""
    doc = {"name": "pl_slot", "properties": {
        "activities": [{"name": "Hold", "type": "Wait", "dependsOn": [], "userProperties": [],
                        "typeProperties": {"waitTimeInSeconds": 1}}],
        "parameters": {}, "variables": {}, "annotations": [],
    }}  # fmt: skip
    if concurrency is not None:
        doc["properties"]["concurrency"] = concurrency
    (root / "pipeline").mkdir(parents=True, exist_ok=True)
    (root / "pipeline" / "pl_slot.json").write_text(json.dumps(doc))


def _together(n: int, target) -> list:
    """target(0) .. target(n - 1) on n threads released at once; their results in that order."""
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        results[i] = target(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _overlapping(runs) -> int:
    """Pairs of runs whose [start, end] intervals overlap."""
    spans = sorted((r.start, r.end) for r in runs)
    return sum(1 for (_, end), (start, _) in itertools.pairwise(spans) if start < end)


def test_runs_of_a_pipeline_with_concurrency_1_are_queued_one_after_the_other(case, tmp_path, endpoints):
    """The cheap one for `make test`: ADF's pipeline `concurrency` through the runner's advisory lock,
    each run on its own PostgreSQL session as separate processes would be; the same pipeline
    without the setting overlaps, so the check can fail."""
    from local.adf.context import RunContext
    from local.adf.runner import run_pipeline
    from local.run_store import PostgresConcurrencyGate, PostgresRunStore

    c = case("concurrency", "3 runs of a pipeline with concurrency 1 started together (runner's advisory lock)",
             expected="they run one after the other (ADF queues the rest); without the setting they "
                      "overlap")  # fmt: skip
    with migrated_database(endpoints.pg_dsn, "conc") as dsn:
        found = {}
        for limit, folder in ((1, tmp_path / "limited"), (None, tmp_path / "unlimited")):
            _slot_pipeline(folder, limit)

            def one(_: int, folder=folder):
                ctx = RunContext(adf_root=folder, recorder=PostgresRunStore(dsn),
                                 concurrency=PostgresConcurrencyGate(dsn, poll=0.05))  # fmt: skip
                return run_pipeline("pl_slot", {}, ctx)

            started = time.monotonic()
            runs = _together(3, one)
            found[limit] = (runs, round(time.monotonic() - started, 2))
        limited, unlimited = found[1][0], found[None][0]
        c.observe(f"concurrency 1: {_overlapping(limited)} overlapping pairs, {found[1][1]} s for 3 runs of 1 s; "
                  f"no setting: {_overlapping(unlimited)} overlapping pairs, {found[None][1]} s",
                  seconds_limited=found[1][1], seconds_unlimited=found[None][1])  # fmt: skip
        assert [r.status for r in limited + unlimited] == ["Succeeded"] * 6
        assert _overlapping(limited) == 0 and found[1][1] >= 3.0
        assert _overlapping(unlimited) == 2 and found[None][1] < 2.5


@pytest.mark.reliability
def test_sail_commits_concurrent_appends_all_and_exactly_one_of_concurrent_merges(case, spark, endpoints, tmp_path):
    """Pins the engine's behaviour the design rests on, so an upgrade that changes it is noticed."""
    from deltalake import DeltaTable

    from local.spark import connect

    c = case("concurrency", "Sail/Delta: 3 concurrent appends, 3 concurrent MERGEs, 3 concurrent replaceWhere "
             "on one table", expected="appends all commit; of MERGEs and of replaceWheres exactly one commits, "
             "the others fail with a commit error; no lost or partial commit")  # fmt: skip
    outcomes = {}
    for mode in ("append", "merge", "replace"):
        path = str(tmp_path / mode)
        spark.range(0, 10).selectExpr("id", "'base' AS tag").write.format("delta").save(path)
        sessions = [connect(endpoints.spark_remote) for _ in range(3)]

        def write(i: int, s, path=path, mode=mode) -> str:
            try:
                if mode == "append":
                    s.range(100 * (i + 1), 100 * (i + 1) + 50).selectExpr("id", f"'w{i}' AS tag") \
                        .write.format("delta").mode("append").save(path)
                elif mode == "merge":
                    s.range(0, 2000).selectExpr("id", f"'w{i}' AS tag").createOrReplaceTempView(f"src{i}")
                    s.sql(f"MERGE INTO delta.`{path}` AS t USING src{i} AS s ON t.id = s.id "
                          "WHEN MATCHED THEN UPDATE SET tag = s.tag WHEN NOT MATCHED THEN INSERT *").collect()
                else:
                    s.range(0, 2000).selectExpr("id", f"'w{i}' AS tag").write.format("delta") \
                        .mode("overwrite").option("replaceWhere", "id >= 0").save(path)
                return "committed"
            except Exception as exc:
                return f"failed: {str(exc)[:60]}"
            finally:
                s.stop()

        results = _together(3, lambda i, sessions=sessions, write=write: write(i, sessions[i]))
        table = DeltaTable(path)
        rows = spark.read.format("delta").load(path)
        tags = {r.tag: r["count"] for r in rows.groupBy("tag").count().collect()}
        outcomes[mode] = {"committed": results.count("committed"), "versions": table.version(), "tags": tags,
                          "errors": sorted({r for r in results if r != "committed"})}  # fmt: skip
    c.observe("; ".join(f"{m}: {o['committed']} committed, table at version {o['versions']}, rows by writer {o['tags']}"
                        for m, o in outcomes.items()))  # fmt: skip
    assert outcomes["append"]["committed"] == 3 and outcomes["append"]["versions"] == 3
    assert outcomes["append"]["tags"] == {"base": 10, "w0": 50, "w1": 50, "w2": 50}
    for mode in ("merge", "replace"):
        o = outcomes[mode]
        assert o["committed"] == 1 and o["versions"] == 1, o
        assert len(o["tags"]) == 1 and sum(o["tags"].values()) == 2000, o  # one writer's rows, whole
        assert all("commit" in e.lower() for e in o["errors"]), o


def _layer_runs(dsn: str):
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pipeline, started_at, ended_at, status FROM ops.pipeline_runs WHERE pipeline = ANY(%s)",
            (list(LAYER_PIPELINES),),
        ).fetchall()

    class Span:
        def __init__(self, start, end):
            self.start, self.end = start, end

    return {p: [Span(s, e) for q, s, e, _ in rows if q == p] for p in LAYER_PIPELINES}, [r[3] for r in rows]


def _reconciled(spark, scenario: Scenario, start: str, end: str, outcome: Outcome) -> dict:
    from spark_jobs.reconcile import reconcile

    today = dt.datetime.now(dt.UTC).date()
    counts = reconcile(spark, scenario.settings(), today - dt.timedelta(days=7), today, trade_start=start,
                       trade_end=end, pg_dsn=scenario.dsn).as_dict()  # fmt: skip
    counts["duplicate_rows"] += outcome.lake_duplicate_keys + outcome.mart_duplicate_keys
    return counts


@pytest.mark.reliability
def test_two_runs_of_the_same_window_started_together_end_as_one_run(case, spark, tmp_path, endpoints, reference):
    c = case("concurrency", "two pl_lakehouse_daily runs of the same window started together (two processes)",
             expected="both succeed; layer pipelines queued one at a time; silver, gold and marts equal one "
                      "uninterrupted run; bronze holds each landed file once (distinct rows equal)")  # fmt: skip
    with migrated_database(endpoints.pg_dsn, "same") as dsn:
        scenario = Scenario(tmp_path / "home", dsn, endpoints.spark_remote)
        started = time.monotonic()
        procs = [pipeline_runs.start_child(scenario) for _ in range(2)]
        runs = [pipeline_runs.finish_child(p, started) for p in procs]
        assert [r.returncode for r in runs] == [0, 0], [r.output[-2000:] for r in runs]
        spans, statuses = _layer_runs(dsn)
        overlaps = {p: _overlapping(s) for p, s in spans.items()}
        outcome = Outcome.of(scenario, distinct_bronze=True)
        expected = Outcome.of(reference[0], distinct_bronze=True)
        differences = outcome.differences(expected)
        c.observe(f"both succeeded in {max(r.seconds for r in runs)} s; layer runs {len(statuses)}, overlapping "
                  f"pairs {overlaps}; {len(differences)} table checksums differ",
                  tables_differing=len(differences))  # fmt: skip
        assert all(n == 2 for n in map(len, spans.values())) and set(statuses) == {"Succeeded"}
        assert overlaps == dict.fromkeys(LAYER_PIPELINES, 0)
        assert differences == {}, differences
        c.reconcile(_reconciled(spark, scenario, scenario.start, scenario.end, outcome))


@pytest.mark.reliability
def test_two_different_windows_run_together_equal_running_them_one_after_the_other(case, spark, tmp_path, endpoints):
    first, second = _halves()
    c = case("concurrency", f"windows {first[0]}..{first[1]} and {second[0]}..{second[1]} started together",
             expected="both succeed; lake (bronze by distinct rows) and marts equal the two windows run one after "
                      "the other")  # fmt: skip
    with migrated_database(endpoints.pg_dsn, "winA") as dsn_a, migrated_database(endpoints.pg_dsn, "winB") as dsn_b:
        together = Scenario(tmp_path / "together", dsn_a, endpoints.spark_remote)
        started = time.monotonic()
        procs = [pipeline_runs.start_child(together, params=_params(w)) for w in (first, second)]
        runs = [pipeline_runs.finish_child(p, started) for p in procs]
        assert [r.returncode for r in runs] == [0, 0], [r.output[-2000:] for r in runs]
        in_turn = Scenario(tmp_path / "in-turn", dsn_b, endpoints.spark_remote)
        for window in (first, second):
            in_turn.start, in_turn.end = window
            assert pipeline_runs.run_in_process(in_turn).status == "Succeeded"
        outcome = Outcome.of(together, distinct_bronze=True)
        differences = outcome.differences(Outcome.of(in_turn, distinct_bronze=True))
        c.observe(f"both succeeded in {max(r.seconds for r in runs)} s together; {len(differences)} table "
                  "checksums differ from one after the other", tables_differing=len(differences))  # fmt: skip
        assert differences == {}, differences
        c.reconcile(_reconciled(spark, together, first[0], second[1], outcome))


def _halves() -> tuple[tuple[str, str], tuple[str, str]]:
    from lakehouse import trading_calendar

    start, end = dt.date.fromisoformat(pipeline_runs.START), dt.date.fromisoformat(pipeline_runs.END)
    days = trading_calendar.sessions(start, end)
    middle = len(days) // 2
    return (days[0].isoformat(), days[middle - 1].isoformat()), (days[middle].isoformat(), days[-1].isoformat())


def _params(window: tuple[str, str]) -> dict[str, str]:
    return {"startDate": window[0], "endDate": window[1], "symbols": ",".join(pipeline_runs.SYMBOLS)}
