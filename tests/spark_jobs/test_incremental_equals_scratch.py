"""Incremental runs against a recompute from scratch: after a sequence of daily runs, every gold and
silver value equals what one run over the same RAW files in a fresh lake gives.

A full refresh on the same lake is not that check: it merges what it recomputes over what is stored
and never removes a row, so a row the data no longer supports survives it too.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from lakehouse.trading_calendar import sessions
from tests.spark_jobs.conftest import Pipeline
from tests.spark_jobs.raw_files import Bar, random_walk_bars
from tests.spark_jobs.test_gold_corporate_actions import dividends_body, splits_body

DAYS = sessions(dt.date(2023, 1, 3), dt.date(2024, 2, 29))
# What a recompute leaves as it is: lineage and the run that wrote a row.
RUN_COLUMNS = {"load_id", "updated_at", "revision", "source_file", "ingest_run_id", "ingested_at", "ingest_date"}


def from_scratch(pipeline: Pipeline, tmp_path, start: str, end: str) -> Pipeline:
    """A fresh lake holding a copy of `pipeline`'s RAW files, run once over the ingestion dates."""
    settings = load_settings(home=tmp_path / "scratch", spark_remote=pipeline.settings.spark_remote)
    source, target = (Lake.from_settings(s).local_path("raw") for s in (pipeline.settings, settings))
    shutil.copytree(source, target, copy_function=shutil.copy2)  # mtimes kept: the same ingestion order
    scratch = Pipeline(pipeline.spark, settings)
    scratch.run(start, end, run_id="scratch")
    return scratch


def values(pipeline: Pipeline, layer: str, table: str, *key: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in RUN_COLUMNS} for r in pipeline.rows(layer, table, *key)]


def test_a_split_the_provider_withdraws_leaves_no_factor_behind(pipeline, raw_lake, tmp_path):
    """A premium series reports a 2-for-1 split on a bar, then revises that bar's split coefficient
    back to 1 (the prices never moved: the split was a data error). From scratch gold has no event
    that day; the daily run must drop the stored factor, not keep adjusting by it."""
    bars = random_walk_bars(DAYS, seed=51, events={30: {"dividend": 0.4}})
    wrong_day = DAYS[200].isoformat()
    wrong = {**bars, wrong_day: Bar(**{**bars[wrong_day].__dict__, "split": 2.0})}
    raw_lake.daily_bars("OOPS", {d: b for d, b in wrong.items() if d <= DAYS[250].isoformat()}, "2024-03-01")
    pipeline.run("2024-03-01", run_id="history")
    assert [r["ex_date"] for r in pipeline.rows("gold", "adjustment_factors", "ex_date")] == [DAYS[30], DAYS[200]]

    raw_lake.daily_bars("OOPS", {d: b for d, b in bars.items() if d >= DAYS[192].isoformat()}, "2024-03-04")
    pipeline.run("2024-03-04", run_id="daily")

    scratch = from_scratch(pipeline, tmp_path, "2024-03-01", "2024-03-04")
    assert [r["ex_date"] for r in scratch.rows("gold", "adjustment_factors", "ex_date")] == [DAYS[30]]
    for table, key in (("adjustment_factors", "ex_date"), ("fct_daily_prices", "trade_date")):
        assert values(pipeline, "gold", table, "symbol", key) == values(scratch, "gold", table, "symbol", key), table


def test_three_daily_runs_of_late_and_odd_corporate_actions_equal_a_recompute_from_scratch(
    pipeline, raw_lake, tmp_path
):
    """Gold recomputes event factors from each symbol's first change on and takes the earlier ones as
    stored. Attacked over three runs: late actions before every stored event (twice in a row), a split
    and a dividend on one day, events on a symbol's first session, a symbol whose history (and events)
    arrive before its first stored day, a new symbol with events, a dividend revised."""
    evs = {
        "LATE": {20: {"dividend": 0.5}, 50: {"split": 2.0}, 120: {"dividend": 0.7}, 255: {"split": 3.0},
                 10: {"dividend": 0.2}},
        "FIRST": {0: {"split": 2.0, "dividend": 0.3}, 150: {"split": 0.5, "dividend": 0.6}},
        "EARLY": {60: {"dividend": 0.4}, 80: {"split": 4.0}, 150: {"dividend": 0.3}},
        "NEW": {5: {"split": 2.0}, 40: {"dividend": 0.25}},
    }  # fmt: skip
    bars = {s: random_walk_bars(DAYS, seed=60 + i, events=e) for i, (s, e) in enumerate(evs.items())}
    day = {i: d.isoformat() for i, d in enumerate(DAYS)}

    def land(symbol, ingest, first, last, known=None, **dividends):
        """Bars `first`..`last` and the actions the provider knows then (`known`: bar indexes)."""
        span = {d: b for d, b in bars[symbol].items() if day[first] <= d <= day[last]}
        known = evs[symbol] if known is None else known
        acts = {day[i]: bars[symbol][day[i]] for i in known if i <= last}
        raw_lake.daily_bars(symbol, span, ingest, run_id=ingest, adjusted=False)
        raw_lake.file("splits", symbol, ingest, ingest, *splits_body(symbol, acts))
        raw_lake.file("dividends", symbol, ingest, ingest, *dividends_body(symbol, acts, **dividends))

    land("LATE", "2024-03-01", 0, 200, known=[20])
    land("FIRST", "2024-03-01", 0, 200, known=[0])
    land("EARLY", "2024-03-01", 100, 200, known=[150])
    pipeline.run("2024-03-01", run_id="day-1")

    land("LATE", "2024-03-04", 190, 230, known=[20, 50, 120])  # late: before the stored last day
    land("FIRST", "2024-03-04", 190, 230)  # the split and dividend of one day, late
    land("EARLY", "2024-03-04", 50, 230)  # history before the first stored day, with its events
    land("NEW", "2024-03-04", 0, 230)
    pipeline.run("2024-03-04", run_id="day-2")

    land("LATE", "2024-03-05", 225, len(DAYS) - 1, known=[10, 20, 50, 120, 255], **{day[120]: 0.8})  # late again
    land("NEW", "2024-03-05", 225, len(DAYS) - 1)
    summary = pipeline.run("2024-03-05", run_id="day-3")
    assert summary["gold"]["tables"]["gold.adjustment_factors"]["symbols"] == 1  # LATE

    scratch = from_scratch(pipeline, tmp_path, "2024-03-01", "2024-03-05")
    got = values(pipeline, "gold", "adjustment_factors", "symbol", "ex_date")
    want = values(scratch, "gold", "adjustment_factors", "symbol", "ex_date")
    assert {(r["symbol"], r["ex_date"]) for r in want} == {
        (s, DAYS[i]) for s, e in evs.items() for i in e
    }  # fmt: skip
    assert got == want
    for table, key in (("fct_daily_prices", "trade_date"), ("fct_monthly_performance", "month")):
        assert values(pipeline, "gold", table, "symbol", key) == values(scratch, "gold", table, "symbol", key), table


def _bars_body(symbol: str, pairs: list[tuple[str, Bar]]) -> bytes:
    """A TIME_SERIES_DAILY body with its (date, bar) pairs in the given order, a date possibly twice."""
    series = ", ".join(
        f'"{d}": {{"1. open": "{b.open:.4f}", "2. high": "{b.high:.4f}", "3. low": "{b.low:.4f}", '
        f'"4. close": "{b.close:.4f}", "5. volume": "{b.volume}"}}'
        for d, b in pairs
    )
    meta = {"1. Information": "Daily Prices (open, high, low, close) and Volumes", "2. Symbol": symbol,
            "3. Last Refreshed": max(d for d, _ in pairs), "4. Output Size": "Compact",
            "5. Time Zone": "US/Eastern"}  # fmt: skip
    return f'{{"Meta Data": {json.dumps(meta)}, "Time Series (Daily)": {{{series}}}}}'.encode()


def test_silver_from_the_bronze_file_facts_equals_silver_computing_them(pipeline, raw_lake, tmp_path, monkeypatch):
    """Silver reads each file's key counts and last date from bronze (found while parsing RAW) instead
    of computing them. Against the same RAW files run with silver computing them (file_facts off):
    duplicate dates within a file, the same day in two files of one batch, a file listing its days
    out of order, then a daily run whose compact files mostly repeat stored bars (the unchanged-day
    shortcut reads the last date) and revise one: silver, its quarantine and the rule counts agree."""
    from spark_jobs import jobs

    bars = random_walk_bars(DAYS[:60], seed=71)
    days = sorted(bars)
    doubled = Bar(**{**bars[days[20]].__dict__, "close": round(bars[days[20]].close * 1.01, 4)})
    raw_lake.file("daily_bars", "DUP", "2024-03-01", "a", _bars_body("DUP", [*bars.items(), (days[20], doubled)]), 61)
    raw_lake.file("daily_bars", "TWO", "2024-03-01", "a", _bars_body("TWO", list(bars.items())[:40]), 40)
    raw_lake.file("daily_bars", "TWO", "2024-03-01", "b", _bars_body("TWO", list(bars.items())[35:][::-1]), 25)
    revised = {**bars, days[50]: Bar(**{**bars[days[50]].__dict__, "close": round(bars[days[50]].close * 0.99, 4)})}
    compact = [(d, revised[d]) for d in days[30:]]
    raw_lake.file("daily_bars", "DUP", "2024-03-04", "c", _bars_body("DUP", [*compact, compact[-1]]), 31)
    raw_lake.file("daily_bars", "TWO", "2024-03-04", "c", _bars_body("TWO", compact), 30)

    seen = []
    facts = jobs._Pending.file_facts

    def recorded(self) -> bool:
        seen.append(facts.fget(self))
        return seen[-1]

    monkeypatch.setattr(jobs._Pending, "file_facts", property(recorded))
    summaries = [pipeline.run(day, run_id=day) for day in ("2024-03-01", "2024-03-04")]
    assert seen == [True, True]  # both runs read the facts from bronze

    settings = load_settings(home=tmp_path / "computed", spark_remote=pipeline.settings.spark_remote)
    shutil.copytree(Lake.from_settings(pipeline.settings).local_path("raw"),
                    Lake.from_settings(settings).local_path("raw"), copy_function=shutil.copy2)  # fmt: skip
    monkeypatch.setattr(jobs._Pending, "file_facts", property(lambda self: False))
    computed = Pipeline(pipeline.spark, settings)
    expected = [computed.run(day, run_id=day) for day in ("2024-03-01", "2024-03-04")]

    def silver_of(p: Pipeline, table: str, *key: str) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("updated_at", "quarantined_at")} for r in p.rows(*table, *key)]

    assert silver_of(pipeline, ("silver", "daily_bars"), "symbol", "trade_date") == silver_of(
        computed, ("silver", "daily_bars"), "symbol", "trade_date"
    )
    assert silver_of(pipeline, ("silver", "quarantine"), "record_key", "source_file") == silver_of(
        computed, ("silver", "quarantine"), "record_key", "source_file"
    )
    for got, want in zip(summaries, expected, strict=True):
        assert got["silver"]["dq"] == want["silver"]["dq"]
        assert got["silver"]["tables"] == want["silver"]["tables"]
    warned = {r["rule"]: r["failed_count"] for r in summaries[0]["silver"]["dq"]["failed_rules"]}
    assert warned["unique_bar_per_file"] == 2  # the two rows of DUP's doubled day


def test_maintenance_keeps_every_scratch_file_newer_than_the_retention(pipeline, raw_lake):
    """A second copy of a job (or one killed and rerun) may still read the scratch tables a run just
    replaced: maintenance at its default retention (168 h) removes no file of them, and every version
    of each stays readable."""
    from deltalake import DeltaTable

    from spark_jobs import jobs

    bars = random_walk_bars(DAYS[:40], seed=81)
    raw_lake.daily_bars("KEEP", bars, "2024-03-01")
    pipeline.run("2024-03-01", run_id="first")
    pipeline.run("2024-03-01", run_id="again", full_refresh=True)  # every stage overwritten once more
    staging = Lake.from_settings(pipeline.settings).local_path("ops", "_staging")
    before = sorted(str(p) for p in staging.rglob("*.parquet"))

    summary = jobs.run_maintenance(pipeline.spark, pipeline.settings, "2024-03-01", "2024-03-01", "maint")
    staged = {n: t for n, t in summary.tables.items() if n.startswith("ops._staging.")}
    assert staged and all(t.vacuumed == 0 for t in staged.values())
    assert sorted(str(p) for p in staging.rglob("*.parquet")) == before
    for name in staged:
        table = DeltaTable(str(staging / name.removeprefix("ops._staging.")))
        for version in range(table.version() + 1):
            table.load_as_version(version)
            table.to_pyarrow_table()  # every file of every version is still there
