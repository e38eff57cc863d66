"""`lakehouse alerts`: the deployed alert rules, evaluated on hand-made ops store rows.

The clock is fixed around Tuesday 2024-03-05 (XNYS closes 21:00 UTC before the DST switch);
the daily pipeline's run ends at 22:10 UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from lakehouse import trading_calendar
from lakehouse.alert_rules import ALERT_RULES, DAILY_PIPELINE
from local.alerts import evaluate_alerts, exit_code, firing, format_text, parse_now
from tests.databases import fresh_database, migrated_database
from tests.local import ops_seed as seed
from tests.local.ops_store_db import reset

LOCAL_RULES = {r.name for r in ALERT_RULES if r.local is not None}
METRIC_ONLY = {r.name for r in ALERT_RULES if r.local is None}


@pytest.fixture(scope="module")
def module_dsn(pg_dsn: str) -> Iterator[str]:
    with migrated_database(pg_dsn, "obs_alerts") as dsn:
        yield dsn


@pytest.fixture
def ops_dsn(module_dsn: str) -> str:
    reset(module_dsn)
    return module_dsn


def by_name(results: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in results}


def daily_success(dsn: str, run_id: str = "obs-daily-1", started: str = "2024-03-05 22:00", ended="2024-03-05 22:10"):
    seed.pipeline_run(dsn, run_id, DAILY_PIPELINE, "Succeeded", started, ended)


def mart_through(dsn: str, last: str, sessions: int = 5) -> None:
    """Mart rows for the ``sessions`` XNYS sessions up to ``last``, as a daily load leaves them."""
    days = trading_calendar.sessions(
        dt.date.fromisoformat(last) - dt.timedelta(days=sessions * 2), dt.date.fromisoformat(last)
    )
    seed.daily_prices(dsn, "AAPL", days[-sessions:])


def test_after_a_successful_daily_run_nothing_fires(ops_dsn: str) -> None:
    daily_success(ops_dsn)
    mart_through(ops_dsn, "2024-03-05")
    seed.activity_run(ops_dsn, "obs-daily-1", DAILY_PIPELINE, "ingest_daily_bars", "AzureFunctionActivity",
                      "Succeeded", "2024-03-05 22:00", "2024-03-05 22:02")  # fmt: skip
    seed.dq_result(ops_dsn, "obs-daily-1", "silver.daily_bars", "prices_positive", "quarantine", False, 2,
                   "2024-03-05 22:05")  # fmt: skip
    results = evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 23:00"))
    assert [r["name"] for r in results] == [r.name for r in ALERT_RULES]
    assert firing(results) == []
    states = {r["name"]: r["state"] for r in results}
    assert states == {**dict.fromkeys(LOCAL_RULES, "ok"), **dict.fromkeys(METRIC_ONLY, "skipped")}
    assert "platform metric" in by_name(results)["postgres-cpu-high"]["reason"]


def test_a_failed_pipeline_run_fires_and_names_the_pipeline(ops_dsn: str) -> None:
    seed.pipeline_run(ops_dsn, "obs-daily-2", DAILY_PIPELINE, "Failed", "2024-03-05 22:00", "2024-03-05 22:10",
                      error="activity silver_to_gold failed")  # fmt: skip
    seed.pipeline_run(ops_dsn, "obs-child-2", "pl_silver_to_gold", "Failed", "2024-03-05 22:05",
                      "2024-03-05 22:09", parent="obs-daily-2")  # fmt: skip
    results = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 22:30")))
    failed = results["adf-pipeline-failed"]
    assert failed["fires"] is True
    assert {(e["pipeline"], e["run_id"]) for e in failed["evidence"]} == {
        (DAILY_PIPELINE, "obs-daily-2"),
        ("pl_silver_to_gold", "obs-child-2"),
    }
    assert failed["reason"] == (
        f"2 failed in the last 1h: {DAILY_PIPELINE} (run obs-daily-2); pl_silver_to_gold (run obs-child-2)"
    ), "newest failure first"
    assert "adf-pipeline-failed" in format_text(list(results.values())).splitlines()[-1]


def test_a_failed_run_stops_firing_once_it_is_outside_the_window(ops_dsn: str) -> None:
    seed.pipeline_run(ops_dsn, "obs-daily-3", DAILY_PIPELINE, "Failed", "2024-03-05 22:00", "2024-03-05 22:10")
    assert by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 23:09")))["adf-pipeline-failed"]["fires"]
    assert not by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 23:11")))["adf-pipeline-failed"]["fires"]


def test_the_freshness_alert_fires_once_the_clock_passes_26_hours_after_the_last_success(ops_dsn: str) -> None:
    daily_success(ops_dsn)
    fresh = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-07 00:09")))["daily-load-stale"]
    assert (fresh["state"], fresh["fires"]) == ("ok", False)
    stale = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-07 00:11")))["daily-load-stale"]
    assert (stale["state"], stale["fires"]) == ("firing", True)
    assert stale["reason"] == "no successful run within 26h; last success: 2024-03-05T22:10:00+00:00"


def test_freshness_is_not_judged_on_days_that_follow_no_session(ops_dsn: str) -> None:
    """Friday's run is the last one due until Monday's; Sunday and Monday are skipped, Tuesday is not."""
    daily_success(ops_dsn, "obs-friday", "2024-03-08 22:00", "2024-03-08 22:10")
    sunday = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-10 12:00")))["daily-load-stale"]
    monday = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-11 12:00")))["daily-load-stale"]
    tuesday = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-12 01:00")))["daily-load-stale"]
    assert (sunday["state"], monday["state"], tuesday["state"]) == ("skipped", "skipped", "firing")
    assert "2024-03-09 was no XNYS session" in sunday["reason"]


def test_a_daily_pipeline_that_never_succeeded_is_stale(ops_dsn: str) -> None:
    stale = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 23:00")))["daily-load-stale"]
    assert stale["fires"] and stale["reason"].endswith("last success: never")


def test_dq_failures_fire_only_for_rules_of_severity_fail(ops_dsn: str) -> None:
    seed.dq_result(ops_dsn, "obs-dq-1", "silver.daily_bars", "ohlc_consistent", "warn", False, 4, "2024-03-05 22:05")
    now = seed.at("2024-03-05 22:30")
    assert not by_name(evaluate_alerts(ops_dsn, now=now))["data-quality-failures"]["fires"]
    seed.dq_result(ops_dsn, "obs-dq-1", "silver.daily_bars", "no_duplicate_files", "fail", False, 7,
                   "2024-03-05 22:06")  # fmt: skip
    dq = by_name(evaluate_alerts(ops_dsn, now=now))["data-quality-failures"]
    assert dq["fires"] and dq["evidence_count"] == 1
    assert "silver.daily_bars.no_duplicate_files failed 7 rows (run obs-dq-1)" in dq["reason"]


def test_a_failed_function_activity_fires_the_ingestion_alert(ops_dsn: str) -> None:
    daily_success(ops_dsn, "obs-daily-before", "2024-03-04 22:00", "2024-03-04 22:10")
    mart_through(ops_dsn, "2024-03-04")
    seed.pipeline_run(ops_dsn, "obs-ingest-1", "pl_ingest_market_data", "Failed", "2024-03-05 22:00",
                      "2024-03-05 22:03")  # fmt: skip
    seed.activity_run(ops_dsn, "obs-ingest-1", "pl_ingest_market_data", "ingest_daily_bars",
                      "AzureFunctionActivity", "Failed", "2024-03-05 22:00", "2024-03-05 22:03")  # fmt: skip
    fired = {r["name"]: r for r in firing(evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 22:30")))}
    assert set(fired) == {"function-failures", "adf-pipeline-failed"}
    assert fired["function-failures"]["reason"] == (
        "1 failed in the last 1h: pl_ingest_market_data/ingest_daily_bars (run obs-ingest-1)"
    )


def test_rules_over_tables_that_do_not_exist_yet_are_reported_not_crashed(pg_dsn: str) -> None:
    with fresh_database(pg_dsn, "obs_alerts_empty") as dsn:
        results = evaluate_alerts(dsn, now=seed.at("2024-03-05 23:00"))
    assert {r["name"]: r["state"] for r in results} == {
        **dict.fromkeys(LOCAL_RULES, "error"),
        **dict.fromkeys(METRIC_ONLY, "skipped"),
    }
    assert (
        'relation "ops.pipeline_runs" does not exist (run migrations)'
        in by_name(results)["adf-pipeline-failed"]["reason"]
    )


def test_repeated_failures_are_grouped_per_pipeline_newest_run_named(ops_dsn: str) -> None:
    """A backfill that fails chunk after chunk gives one line per pipeline, not one per run."""
    for i, minute in enumerate(("10", "20", "30")):
        seed.pipeline_run(ops_dsn, f"obs-chunk-{i}", DAILY_PIPELINE, "Failed", f"2024-03-05 22:{minute}",
                          f"2024-03-05 22:{minute}:30")  # fmt: skip
    failed = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 22:45")))["adf-pipeline-failed"]
    assert failed["reason"] == f"3 failed in the last 1h: {DAILY_PIPELINE} (3 runs, latest obs-chunk-2)"
    assert [e["run_id"] for e in failed["evidence"]] == ["obs-chunk-2", "obs-chunk-1", "obs-chunk-0"]


def test_the_command_exits_non_zero_when_a_rule_fires_or_cannot_be_evaluated(ops_dsn: str) -> None:
    daily_success(ops_dsn)
    mart_through(ops_dsn, "2024-03-05")
    assert exit_code(evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 23:00"))) == 0
    assert exit_code(evaluate_alerts(ops_dsn, now=seed.at("2024-03-07 00:11"))) == 1, "stale daily load"
    assert exit_code([{"name": "x", "fires": False, "state": "error"}]) == 1


def test_runs_that_ended_after_now_are_not_counted(ops_dsn: str) -> None:
    """`alerts --now` looks at the past: a failure or a success recorded later does not exist yet."""
    seed.pipeline_run(ops_dsn, "obs-later-fail", DAILY_PIPELINE, "Failed", "2024-03-05 22:00", "2024-03-05 22:10")
    seed.activity_run(ops_dsn, "obs-later-fail", DAILY_PIPELINE, "ingest_daily_bars", "AzureFunctionActivity",
                      "Failed", "2024-03-05 22:00", "2024-03-05 22:08")  # fmt: skip
    seed.dq_result(ops_dsn, "obs-later-fail", "silver.daily_bars", "no_duplicate_files", "fail", False, 7,
                   "2024-03-05 22:09")  # fmt: skip
    before = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 22:05")))
    assert [before[n]["fires"] for n in ("adf-pipeline-failed", "function-failures", "data-quality-failures")] == [
        False, False, False,
    ]  # fmt: skip
    daily_success(ops_dsn, "obs-later-success", "2024-03-06 22:00", "2024-03-06 22:10")
    stale = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-05 22:05")))["daily-load-stale"]
    assert stale["fires"] and stale["reason"].endswith("last success: never")


def test_a_mart_behind_the_latest_closed_session_fires_until_a_daily_load_catches_up(ops_dsn: str) -> None:
    """A daily run that succeeds but loads nothing new is the failure to catch: runs are fresh, data is not."""
    daily_success(ops_dsn, "obs-empty-load", "2024-03-05 22:00", "2024-03-05 22:10")
    mart_through(ops_dsn, "2023-12-29")
    stale = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-06 02:00")))
    assert (stale["daily-load-stale"]["fires"], stale["mart-data-stale"]["state"]) == (False, "firing")
    assert stale["mart-data-stale"]["reason"] == (
        "the mart's latest trade date is 2023-12-29, behind the XNYS session 2024-03-05 that closed more than 4h ago"
    )
    assert stale["mart-data-stale"]["evidence"] == [{"latest_trade_date": "2023-12-29", "due_session": "2024-03-05"}]

    mart_through(ops_dsn, "2024-03-05", sessions=40)  # the daily run (here: a backfill) brings it up to date
    quiet = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-06 02:00")))["mart-data-stale"]
    assert (quiet["state"], quiet["fires"]) == ("ok", False)


def test_a_session_is_due_in_the_mart_only_after_the_load_grace(ops_dsn: str) -> None:
    """2024-03-05 closes 21:00 UTC: the mart may lack it until 01:00 UTC, not after."""
    mart_through(ops_dsn, "2024-03-04")
    assert not by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-06 00:59")))["mart-data-stale"]["fires"]
    assert by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-06 01:01")))["mart-data-stale"]["fires"]


def test_a_mart_that_never_loaded_is_stale(ops_dsn: str) -> None:
    empty = by_name(evaluate_alerts(ops_dsn, now=seed.at("2024-03-06 02:00")))["mart-data-stale"]
    assert empty["fires"] and empty["reason"].startswith("the mart's latest trade date is none")


def test_now_is_read_as_utc_unless_it_names_an_offset() -> None:
    assert parse_now("2024-03-07T00:11") == seed.at("2024-03-07 00:11")
    assert parse_now("2024-03-07T01:11+01:00") == seed.at("2024-03-07 00:11")
    assert parse_now("2024-03-07T00:11:00Z") == seed.at("2024-03-07 00:11")
    assert parse_now("2024-03-07") == dt.datetime(2024, 3, 7, tzinfo=dt.UTC)
    assert parse_now(None) is None
    with pytest.raises(ValueError, match=r"--now: 'yesterday' is not an ISO-8601 time"):
        parse_now("yesterday")


def test_a_real_pipeline_run_with_a_failing_notebook_is_named_by_the_alert(
    ops_dsn: str, spark, lakehouse_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the local ADF runner runs pl_silver_to_gold, whose notebook fails on a bad window,
    records the runs in the ops store, and the alert names that pipeline and run."""
    from local.adf.runner import local_context, run_pipeline
    from local.ops_status import status

    monkeypatch.setenv("LAKEHOUSE_PG_DSN", ops_dsn)
    params = {"startDate": "2024-02-30", "endDate": "2024-03-05", "runId": "obs-e2e"}
    context = local_context(spark, pg_dsn=ops_dsn)
    context.sleep = lambda seconds: None  # the activity's retry interval
    result = run_pipeline("pl_silver_to_gold", params, context)
    assert result.status == "Failed"

    fired = {r["name"]: r for r in firing(evaluate_alerts(ops_dsn))}
    assert "adf-pipeline-failed" in fired
    assert fired["adf-pipeline-failed"]["reason"].startswith(
        f"1 failed in the last 1h: pl_silver_to_gold (run {result.run_id})"
    )
    assert exit_code(list(fired.values())) == 1
    (last,) = [p for p in status(ops_dsn)["pipelines"] if p["pipeline"] == "pl_silver_to_gold"]
    assert (last["run_id"], last["status"]) == (result.run_id, "Failed")
    assert "silver_to_gold" in last["error"]


def test_the_json_look_back_is_in_seconds_like_every_json_duration() -> None:
    """One unit across every --json output: durations in seconds, never Python's timedelta text."""
    from lakehouse.alert_rules import by_name
    from local.alerts import _base

    rule = by_name("daily-load-stale")
    doc = _base(rule, dt.datetime(2024, 3, 5, 23, tzinfo=dt.UTC))
    assert doc["window_seconds"] == rule.local.window.total_seconds() > 0
    assert "window" not in doc
