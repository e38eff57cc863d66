"""Bad data that used to pass without a word: a series with missing sessions, a stale series, a
non-positive adjusted close, an implausible dividend. Each is now named by a rule of its own with the
severity the rules section of docs/transforms.md gives it, and `lakehouse reconcile` over the window
fails naming the symbol and the dates (spark_jobs.reconcile.QUALITY_CHECKS), while every row is
accounted for: nothing lost, duplicated or extra."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from lakehouse.trading_calendar import sessions
from spark_jobs import jobs, quality, reconcile
from spark_jobs.tables import Tables, contract
from tests.spark_jobs.raw_files import Bar, RawLake, random_walk_bars
from tests.spark_jobs.test_gold_corporate_actions import land

DAYS = sessions(dt.date(2023, 11, 1), dt.date(2024, 2, 29))
INGESTED = "2024-03-01"  # the session after DAYS[-1]


@pytest.fixture
def lake(spark, endpoints, tmp_path):
    settings = load_settings(home=tmp_path / "home", spark_remote=endpoints.spark_remote)
    return settings, RawLake(Lake.from_settings(settings))


def _to_silver(spark, settings, day: str = INGESTED) -> dict:
    jobs.run_raw_to_bronze(spark, settings, day, day, "run-1")
    summary = jobs.run_bronze_to_silver(spark, settings, day, day, "run-1", today=dt.date(2024, 3, 1))
    return summary.as_dict()


def _reconciled(spark, settings, symbols: list[str] | None = None) -> reconcile.Reconciliation:
    """Gold from the day's silver, then the day's window reconciled through gold."""
    jobs.run_silver_to_gold(spark, settings, INGESTED, INGESTED, "run-1")
    return reconcile.reconcile(spark, settings, INGESTED, INGESTED, symbols=symbols, through="gold")


def _failing(counts: reconcile.Reconciliation) -> dict[str, int]:
    return {k: counts.details[k] for k in reconcile.QUALITY_FAILURES if counts.details[k]}


def _failed(summary: dict, rule: str) -> int:
    return sum(r["failed_count"] for r in summary["dq"]["failed_rules"]
               if r["table"] == "silver.daily_bars" and r["rule"] == rule)  # fmt: skip


def _rule(name: str) -> quality.Rule:
    (rule,) = [r for r in quality.RULES["silver.daily_bars"] if r.name == name]
    return rule


def test_sessions_missing_from_a_series_are_named(spark, lake, case):
    c = case(
        "bad input",
        "3 sessions missing from a series",
        expected="rule no_missing_sessions (warn) fails once, on the bar after the gap; every delivered bar is "
        "kept; reconcile fails with missing_sessions=3 naming GAPS and the 3 dates; FULL alone reconciles clean",
    )
    settings, raw = lake
    gap = DAYS[40:43]
    bars = random_walk_bars(DAYS, seed=5)
    raw.daily_bars("GAPS", {d: b for d, b in bars.items() if dt.date.fromisoformat(d) not in gap}, INGESTED)
    raw.daily_bars("FULL", random_walk_bars(DAYS, seed=6), INGESTED)
    summary = _to_silver(spark, settings)
    results = [r for r in summary["dq"]["failed_rules"] if r["rule"] == "no_missing_sessions"]
    silver = Tables(spark, Lake.from_settings(settings)).read(contract("silver", "daily_bars"))
    kept = silver.filter("symbol = 'GAPS'").count()
    counts = _reconciled(spark, settings)
    (found,) = counts.quality["missing_sessions"]
    c.observe(f"no_missing_sessions failed {_failed(summary, 'no_missing_sessions')} time(s); GAPS bars kept {kept}; "
              f"reconcile ok={counts.ok}: {found['symbol']} missing {', '.join(found['dates'])}",
              **_failing(counts))  # fmt: skip
    c.reconcile(counts)
    assert _rule("no_missing_sessions").severity == "warn"
    assert _failed(summary, "no_missing_sessions") == 1 and results[0]["severity"] == "warn"
    assert kept == len(DAYS) - len(gap)
    assert not counts.ok and _failing(counts) == {"missing_sessions": 3}
    assert (found["symbol"], found["dates"]) == ("GAPS", [d.isoformat() for d in gap])
    assert reconcile.reconcile(spark, settings, INGESTED, INGESTED, symbols=["FULL"], through="gold").ok


def test_a_late_bar_filling_the_gap_is_not_warned_again(spark, lake):
    settings, raw = lake
    gap = DAYS[40]
    bars = random_walk_bars(DAYS, seed=5)
    raw.daily_bars("GAPS", {d: b for d, b in bars.items() if d != gap.isoformat()}, INGESTED)
    assert _failed(_to_silver(spark, settings), "no_missing_sessions") == 1
    raw.daily_bars("GAPS", {gap.isoformat(): bars[gap.isoformat()]}, "2024-03-04", run_id="late")
    later = _to_silver(spark, settings, "2024-03-04")
    assert _failed(later, "no_missing_sessions") == 0


def test_a_series_weeks_behind_its_ingestion_is_stale(spark, lake, case):
    c = case(
        "bad input",
        "a series whose last bar is weeks old",
        expected="rule symbol_not_stale (warn) fails once, on the stale file's last bar; a current series passes; "
        "reconcile fails with stale_symbols=1 naming OLD and its last bar",
    )
    settings, raw = lake
    raw.daily_bars("OLD", random_walk_bars(DAYS[:-20], seed=7), INGESTED)
    raw.daily_bars("NEW", random_walk_bars(DAYS, seed=8), INGESTED)
    summary = _to_silver(spark, settings)
    (result,) = [r for r in summary["dq"]["failed_rules"] if r["rule"] == "symbol_not_stale"]
    counts = _reconciled(spark, settings)
    (stale,) = counts.quality["stale_symbols"]
    c.observe(f"symbol_not_stale failed {result['failed_count']} time(s), severity {result['severity']}; "
              f"reconcile ok={counts.ok}: {stale['symbol']} last bar {stale['last_bar']}, "
              f"{stale['sessions_behind']} sessions behind {stale['as_of']}", **_failing(counts))  # fmt: skip
    c.reconcile(counts)
    assert _rule("symbol_not_stale").severity == "warn"
    assert result["failed_count"] == 1
    assert not counts.ok and _failing(counts) == {"stale_symbols": 1}
    assert (stale["symbol"], stale["last_bar"]) == ("OLD", DAYS[-21].isoformat())


def test_stale_means_more_than_a_week_of_sessions(spark, lake):
    settings, raw = lake
    limit = quality.STALE_SESSIONS
    raw.daily_bars("EDGE", random_walk_bars(DAYS[: len(DAYS) - limit + 1], seed=9), INGESTED)  # `limit` behind
    raw.daily_bars("PAST", random_walk_bars(DAYS[: len(DAYS) - limit], seed=10), INGESTED)  # one more
    summary = _to_silver(spark, settings)
    assert _failed(summary, "symbol_not_stale") == 1


def test_a_non_positive_adjusted_close_is_quarantined(spark, lake, case):
    c = case(
        "bad input",
        "adjusted close of zero or below",
        expected="rule prices_positive quarantines the bar; the other bars of the file are kept; reconcile "
        "accounts for it (quarantine_rows=1) and fails on the session it leaves missing (missing_sessions=1)",
    )
    settings, raw = lake
    bars = random_walk_bars(DAYS[-5:], seed=11)
    bad_day = DAYS[-3].isoformat()
    raw.daily_bars("ADJ", {**bars, bad_day: {**_fields(bars[bad_day]), "5. adjusted close": "-3.25"}}, INGESTED)
    summary = _to_silver(spark, settings)
    quarantine = Tables(spark, Lake.from_settings(settings)).read(contract("silver", "quarantine")).collect()
    rules = {(r.rule, r.record_key.split("|")[1]) for r in quarantine}
    counts = _reconciled(spark, settings)
    c.observe(f"quarantined: {sorted(rules)}; reconcile ok={counts.ok}, missing "
              f"{[f['dates'] for f in counts.quality['missing_sessions']]}", **_failing(counts))  # fmt: skip
    c.reconcile(counts)
    assert ("prices_positive", bad_day) in rules
    assert summary["tables"]["silver.daily_bars"]["rows_quarantined"] == 1
    assert counts.quarantine_rows == 1 and [q["date"] for q in counts.quality["quarantined_accounted"]] == [bad_day]
    assert not counts.ok and _failing(counts) == {"missing_sessions": 1}
    assert [f["dates"] for f in counts.quality["missing_sessions"]] == [[bad_day]]


def test_an_implausible_dividend_is_quarantined_and_fails_reconcile(spark, lake, case):
    c = case(
        "bad input",
        "a dividend of 1000 on a 405 stock",
        expected="rule implausible_corporate_action quarantines the event (accounted, nothing lost); gold's "
        "prices are unadjusted; reconcile fails with unapplied_corporate_actions=1 naming BIG and the ex-date",
    )
    settings, raw = lake
    ex_day = DAYS[-20]
    bars = random_walk_bars(DAYS, seed=12, start=405.0, events={len(DAYS) - 20: {"dividend": 1000.0}})
    land(raw, "BIG", bars, INGESTED)
    summary = _to_silver(spark, settings)
    counts = _reconciled(spark, settings)
    (event,) = counts.quality["unapplied_corporate_actions"]
    gold = Tables(spark, Lake.from_settings(settings)).read(contract("gold", "fct_daily_prices"))
    adjusted = gold.filter("adj_close <> close").count()
    c.observe(f"quarantined {summary['tables']['silver.corporate_actions']['rows_quarantined']} event(s); gold rows "
              f"adjusted {adjusted}; reconcile ok={counts.ok}: {event['symbol']} {event['action']} of "
              f"{event['date']} ({event['rule']})", **_failing(counts))  # fmt: skip
    c.reconcile(counts)
    assert summary["tables"]["silver.corporate_actions"]["rows_quarantined"] == 1 and adjusted == 0
    assert not counts.ok and _failing(counts) == {"unapplied_corporate_actions": 1}
    assert (event["symbol"], event["date"]) == ("BIG", ex_day.isoformat())
    assert event["rule"] == "implausible_corporate_action"


def _fields(bar: Bar) -> dict:
    return {"1. open": str(bar.open), "2. high": str(bar.high), "3. low": str(bar.low), "4. close": str(bar.close),
            "5. adjusted close": str(bar.close), "6. volume": str(bar.volume), "7. dividend amount": "0.0",
            "8. split coefficient": "1.0"}  # fmt: skip
