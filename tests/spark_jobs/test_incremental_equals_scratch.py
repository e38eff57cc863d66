"""Incremental runs against a recompute from scratch: after a sequence of daily runs, every gold and
silver value equals what one run over the same RAW files in a fresh lake gives.

A full refresh on the same lake is not that check: it merges what it recomputes over what is stored
and never removes a row, so a row the data no longer supports survives it too.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import psycopg
from deltalake import DeltaTable
from pydantic import SecretStr

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from lakehouse.trading_calendar import sessions
from spark_jobs import serving
from spark_jobs.serving import MART_TABLES
from tests.databases import migrated_database
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


def _moved(bar: Bar, **values) -> Bar:
    return Bar(**{**bar.__dict__, **values})


def _scaled(bar: Bar, by: float) -> Bar:
    """`bar` with its four prices times `by`: a revision that stays a valid bar."""
    return _moved(bar, **{k: round(getattr(bar, k) * by, 4) for k in ("open", "high", "low", "close")})


def test_compact_files_that_repeat_stored_bars_leave_silver_as_a_recompute_does(pipeline, raw_lake, tmp_path):
    """Silver leaves out a compact payload's bars equal to what it holds before typing them
    (silver.unchanged_bars). Next to such bars a daily run sends: a stored bar twice in its file (the
    later copy revised), a bar quarantined before (again invalid; now valid), a revision of the
    volume alone, a file whose last bar is the stored one, a gap of sessions filled late, and one
    day in two files of the run (the later file revising it; the earlier one). Silver's bars and
    quarantine equal a recompute from scratch over the same files."""
    days = [d.isoformat() for d in DAYS[:50]]
    bars = {s: random_walk_bars(DAYS[:50], seed=90 + i) for i, s in enumerate(("DUP", "BAD", "FIX", "VOL", "GAP",
                                                                              "LAST", "TWO", "OWT"))}  # fmt: skip
    broken = {
        s: {**bars[s], days[10]: _moved(bars[s][days[10]], low=bars[s][days[10]].high * 1.1)} for s in ("BAD", "FIX")
    }  # fmt: skip  (low above high: ohlc_consistent quarantines it)

    def send(symbol, ingest, run, first, last, series=None, extra=()):
        series = bars[symbol] if series is None else series
        pairs = [(d, series[d]) for d in days[first:last] if d in series] + list(extra)
        raw_lake.file("daily_bars", symbol, ingest, run, _bars_body(symbol, pairs), len(pairs))

    for s in bars:
        series = broken.get(s, {d: b for d, b in bars[s].items() if s != "GAP" or d != days[25]})
        send(s, "2024-03-01", "a", 0, 40, series)
    pipeline.run("2024-03-01", run_id="history")
    assert len(pipeline.rows("silver", "quarantine")) == 2  # BAD and FIX on day 10

    vol = {**bars["VOL"], days[30]: _moved(bars["VOL"][days[30]], volume=bars["VOL"][days[30]].volume + 7)}
    revised = _scaled(bars["DUP"][days[30]], 1.02)
    send("DUP", "2024-03-04", "b", 20, 45, extra=[(days[30], revised)])  # day 30 twice, the later copy revised
    send("BAD", "2024-03-04", "b", 5, 45, broken["BAD"])  # day 10 still invalid
    send("FIX", "2024-03-04", "b", 5, 45)  # day 10 valid now
    send("VOL", "2024-03-04", "b", 20, 45, vol)
    send("GAP", "2024-03-04", "b", 20, 45)  # day 25 arrives
    send("LAST", "2024-03-04", "b", 20, 40)  # every bar stored, the last one too
    two = {**bars["TWO"], days[32]: _scaled(bars["TWO"][days[32]], 0.98)}
    send("TWO", "2024-03-04", "b", 20, 45)  # day 32 as stored ...
    send("TWO", "2024-03-04", "c", 30, 35, two)  # ... and revised in a later file of the run
    owt = {**bars["OWT"], days[32]: _scaled(bars["OWT"][days[32]], 0.98)}
    send("OWT", "2024-03-04", "b", 30, 35, owt)  # day 32 revised ...
    send("OWT", "2024-03-04", "c", 20, 45)  # ... and as stored in a later file of the run
    pipeline.run("2024-03-04", run_id="daily")
    skipped = DeltaTable(
        str(Lake.from_settings(pipeline.settings).local_path("ops", "_staging", "silver_unchanged_daily_bars"))
    )
    left_out = {(r["symbol"], r["trade_date"].isoformat()) for r in skipped.to_pyarrow_table().to_pylist()}
    assert {s for s, _ in left_out} == set(bars)  # every attack sits next to bars the shortcut left out
    assert {d for s, d in left_out if s == "LAST"} == set(days[20:39])  # never the file's last bar

    scratch = from_scratch(pipeline, tmp_path, "2024-03-01", "2024-03-04")
    got, want = (values(p, "silver", "daily_bars", "symbol", "trade_date") for p in (pipeline, scratch))
    assert {(r["symbol"], r["trade_date"].isoformat()): r["close"] for r in got if r["trade_date"] == DAYS[32]}[
        ("OWT", days[32])
    ] == bars["OWT"][days[32]].close
    assert got == want
    quarantined = ("quarantine", "record_key", "record_values", "source_file")
    q_got, q_want = ([{k: v for k, v in r.items() if k != "quarantined_at"} for r in values(p, "silver", *quarantined)]
                     for p in (pipeline, scratch))  # fmt: skip
    assert len(q_want) == 3 and q_got == q_want
    for table, key in (("fct_daily_prices", "trade_date"), ("fct_monthly_performance", "month")):
        assert values(pipeline, "gold", table, "symbol", key) == values(scratch, "gold", table, "symbol", key), table


def _with_adjusted_close(bar: Bar, adjusted_close: float) -> dict:
    """`bar` as a TIME_SERIES_DAILY_ADJUSTED entry whose adjusted close is `adjusted_close`."""
    return {
        "1. open": f"{bar.open:.4f}", "2. high": f"{bar.high:.4f}", "3. low": f"{bar.low:.4f}",
        "4. close": f"{bar.close:.4f}", "5. adjusted close": f"{adjusted_close:.4f}", "6. volume": str(bar.volume),
        "7. dividend amount": f"{bar.dividend:.4f}", "8. split coefficient": f"{bar.split:.1f}",
    }  # fmt: skip


def test_revisions_gold_reads_next_to_revisions_it_skips_equal_a_recompute_from_scratch(
    pipeline, raw_lake, tmp_path, monkeypatch
):
    """Gold skips the silver revisions of bars it does not read (gold.unread_revisions: the adjusted
    close a provider rewrites before each event). Among such revisions a daily run brings a revised
    close on the day before a dividend's ex-date (the dividend factor reads that close), a revised
    close inside the moving averages' lookback of the later rows, and a symbol whose only revisions
    are adjusted closes (ahead of a new dividend): gold's factors, daily and monthly rows equal a
    recompute from scratch, and only the adjusted-close revisions were skipped."""
    from spark_jobs import gold

    days = [d.isoformat() for d in DAYS[:211]]
    bars = {"PREV": random_walk_bars(DAYS[:211], seed=111, events={150: {"dividend": 1.5}}),
            "MAVG": random_walk_bars(DAYS[:211], seed=112, events={60: {"dividend": 0.5}}),
            "ADJ": random_walk_bars(DAYS[:211], seed=113, events={205: {"dividend": 0.8}})}  # fmt: skip
    for symbol, series in bars.items():
        raw_lake.daily_bars(symbol, {d: series[d] for d in days[:201]}, "2024-03-01")
    pipeline.run("2024-03-01", run_id="history")

    revised = {"PREV": 149, "MAVG": 180}  # the close alone of these bars is revised
    rewritten = {"PREV": 150, "MAVG": 180, "ADJ": 205}  # the adjusted close of the bars before is rewritten
    for symbol, series in bars.items():
        sent: dict[str, Bar | dict] = {}
        for i in range(100, 211):
            bar = series[days[i]]
            if revised.get(symbol) == i:  # the close alone, within the day's range
                bar = _moved(bar, close=round((bar.low + bar.high) / 2, 4))
            sent[days[i]] = _with_adjusted_close(bar, bar.close * 0.97) if i < rewritten[symbol] else bar
        raw_lake.daily_bars(symbol, sent, "2024-03-04", run_id="run2")
    unread = []
    skip = gold.unread_revisions

    def recorded(*args):
        found = skip(*args)
        unread.extend((r.symbol, r.trade_date.isoformat()) for r in found.collect())
        return found

    monkeypatch.setattr(gold, "unread_revisions", recorded)
    pipeline.run("2024-03-04", run_id="daily")
    assert sorted(unread) == sorted(
        [("ADJ", d) for d in days[100:201]] + [("MAVG", d) for d in days[100:180]]
        + [("PREV", d) for d in days[100:149]]
    )  # fmt: skip

    scratch = from_scratch(pipeline, tmp_path, "2024-03-01", "2024-03-04")
    factors = ("adjustment_factors", "symbol", "ex_date")  # to the bit: see tables.STATS_COLUMNS
    assert values(pipeline, "gold", *factors) == values(scratch, "gold", *factors)
    for table, key in (("fct_daily_prices", "trade_date"), ("fct_monthly_performance", "month")):
        assert values(pipeline, "gold", table, "symbol", key) == values(scratch, "gold", table, "symbol", key), table


def _mart(dsn: str, table: str) -> list[dict]:
    from psycopg.rows import dict_row

    keys = ", ".join(MART_TABLES[table].keys)
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        rows = conn.execute(f"SELECT * FROM mart.{table} ORDER BY {keys}").fetchall()
    return [{k: v for k, v in r.items() if k not in RUN_COLUMNS} for r in rows]


def _served(pipeline: Pipeline, table: str) -> list[dict]:
    """Every gold row of the mart table `table` as the mart serves it (serving.served)."""
    from spark_jobs.tables import Tables

    mart = MART_TABLES[table]
    rows = serving.served(Tables(pipeline.spark, Lake.from_settings(pipeline.settings)),
                          pipeline.table("gold", mart.gold), mart).orderBy(*mart.keys)  # fmt: skip
    return [{k: v for k, v in r.asDict().items() if k not in RUN_COLUMNS} for r in rows.collect()]


def test_a_late_split_far_before_the_served_window_rescales_every_mart_row(pipeline, raw_lake, pg_dsn, tmp_path):
    """The mart load replaces its window plus the ranges gold recomputed. A split reported late, 80
    sessions before a daily load's window, changes the current factor of its symbol's whole history:
    after that load the whole mart (not only the window) equals gold as served, and gold equals a
    recompute from scratch; the other symbol's rows are as they were."""
    days = [d.isoformat() for d in DAYS[:126]]
    late = random_walk_bars(DAYS[:126], seed=121, events={40: {"split": 2.0}})
    keep = random_walk_bars(DAYS[:126], seed=122, events={30: {"dividend": 0.6}})
    unflagged = {**late, days[40]: _moved(late[days[40]], split=1.0)}  # the prices halve, unannounced
    raw_lake.daily_bars("LATE", {d: unflagged[d] for d in days[:121]}, "2024-03-01")
    raw_lake.daily_bars("KEEP", {d: keep[d] for d in days[:121]}, "2024-03-01")
    with migrated_database(pg_dsn, "late") as dsn:
        served = Pipeline(pipeline.spark, pipeline.settings.model_copy(update={"pg_dsn": SecretStr(dsn)}))
        served.run("2024-03-01", run_id="history")
        serving.run_gold_to_postgres(served.spark, served.settings, start_date=days[0], end_date=days[120],
                                     run_id="history")  # fmt: skip
        before = [r for r in _mart(dsn, "daily_prices") if r["symbol"] == "KEEP"]

        raw_lake.daily_bars("LATE", {d: late[d] for d in days[30:]}, "2024-03-04", run_id="run2")
        raw_lake.daily_bars("KEEP", {d: keep[d] for d in days[100:]}, "2024-03-04", run_id="run2")
        served.run("2024-03-04", run_id="daily")
        serving.run_gold_to_postgres(served.spark, served.settings, start_date=days[121], end_date=days[125],
                                     run_id="daily")  # fmt: skip
        for table in ("daily_prices", "monthly_performance"):
            assert _mart(dsn, table) == _served(served, table), table
        daily = _mart(dsn, "daily_prices")
        assert [r for r in daily if r["symbol"] == "KEEP"][:121] == before
        assert {round(r["adj_close"] / r["close"], 9) for r in daily if r["symbol"] == "LATE"
                and r["trade_date"] < DAYS[40]} == {0.5}  # fmt: skip

    scratch = from_scratch(pipeline, tmp_path, "2024-03-01", "2024-03-04")
    for table, key in (
        ("adjustment_factors", "ex_date"), ("fct_daily_prices", "trade_date"), ("fct_monthly_performance", "month")
    ):  # fmt: skip
        assert values(pipeline, "gold", table, "symbol", key) == values(scratch, "gold", table, "symbol", key), table
