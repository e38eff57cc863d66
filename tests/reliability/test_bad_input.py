"""Bad input never slips through and is never lost: each case is quarantined by a named rule,
accepted (as data, or as a revision), rejected as a file with its reason, or stops the job with
a clear message, and its window reconciles from RAW to the mart.

All cases of bad_bars.CASES land as their own symbols in ONE lake (through the real ingestion),
the four jobs run once (then a second delivery for the two-run cases), and each test reads its
case's outcome, so the whole catalogue costs one pipeline run.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from pyspark.sql import functions as F

from lakehouse import trading_calendar
from lakehouse.lake import Lake
from lakehouse.settings import Settings, load_settings
from spark_jobs import jobs, quality, reconcile, serving, silver
from spark_jobs.quality import DataQualityError
from spark_jobs.tables import Tables, contract
from tests.databases import migrated_database
from tests.reliability import bad_bars
from tests.reliability.bad_bars import (
    BAD_DAY,
    CASES,
    FAILING,
    FIRST_INGEST,
    QUOTES,
    SECOND_INGEST,
    TRADE_WINDOW,
    TWO_RUN,
)

FIRST, SECOND = FIRST_INGEST.isoformat(), SECOND_INGEST.isoformat()


@dataclass
class Outcomes:
    """What the lake holds per symbol after the runs, read once for every case."""

    spark: object
    settings: Settings
    dsn: str
    summaries: dict
    bronze_rows: dict[str, int] = field(default_factory=dict)
    quarantine: dict[str, list[dict]] = field(default_factory=dict)
    silver: dict[str, dict[str, dict]] = field(default_factory=dict)
    securities: dict[str, dict] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)
    gold: dict[str, dict[str, dict]] = field(default_factory=dict)
    mart: dict[str, dict[str, tuple]] = field(default_factory=dict)
    warned: dict[str, set[str]] = field(default_factory=dict)
    after_first: dict[str, dict[str, dict]] = field(default_factory=dict)
    quotes: dict[str, dict[str, list]] = field(default_factory=dict)  # symbol -> bronze / silver / quarantine / mart

    def reconcile(self, symbol: str, dataset: str = "daily_bars", end: str = FIRST) -> reconcile.Reconciliation:
        return reconcile.reconcile(self.spark, self.settings, FIRST, end, dataset=dataset, symbols=[symbol],
                                   pg_dsn=self.dsn)  # fmt: skip


def _path_symbol(source_file: str) -> str:
    return source_file.split("/")[3]


def _run(spark, settings: Settings, day: str, run_id: str) -> dict:
    today = dt.date.fromisoformat(day)
    return {
        "bronze": jobs.run_raw_to_bronze(spark, settings, day, day, run_id),
        "silver": jobs.run_bronze_to_silver(spark, settings, day, day, run_id, today=today),
        "gold": jobs.run_silver_to_gold(spark, settings, *TRADE_WINDOW, run_id),
        "mart": serving.run_gold_to_postgres(
            spark, settings, start_date=TRADE_WINDOW[0], end_date=TRADE_WINDOW[1], run_id=run_id
        ),
    }


def _warned(spark, tables: Tables, settings: Settings, day: str) -> dict[str, set[str]]:
    """Symbols each warn rule flagged in the bronze rows of `day`, by the rules' own expressions."""
    cal = trading_calendar.calendar(settings.exchange_calendar)
    sessions = silver.sessions_frame(spark, [ts.date() for ts in cal.sessions])
    found: dict[str, set[str]] = {}
    bars = tables.read(contract("bronze", "daily_bars")).filter(F.col("ingest_date") == F.lit(day).cast("date"))
    typed = {
        "silver.daily_bars": silver.typed_daily_bars(
            bars, tables.read(contract("silver", "daily_bars")), sessions, dt.date.fromisoformat(day)
        ),
        "silver.securities": silver.typed_securities(
            tables.read(contract("bronze", "security_overview")).filter(F.col("ingest_date") == F.lit(day).cast("date"))
        ),
    }
    for table, df in typed.items():
        for rule in quality.RULES[table]:
            if rule.severity != "warn":
                continue
            hit = df.filter(~F.coalesce(F.expr(rule.expectation), F.lit(False))).select("path_symbol").distinct()
            found.setdefault(rule.name, set()).update(r.path_symbol for r in hit.collect())
    return found


def _read(out: Outcomes, tables: Tables) -> None:
    out.bronze_rows = {}
    for table in ("daily_bars", "security_overview"):
        for r in tables.read(contract("bronze", table)).groupBy("path_symbol").count().collect():
            out.bronze_rows[r.path_symbol] = out.bronze_rows.get(r.path_symbol, 0) + int(r["count"])
    out.quarantine = {}
    for r in tables.read(contract("silver", "quarantine")).collect():
        out.quarantine.setdefault(_path_symbol(r.source_file), []).append(r.asDict())
    out.silver = {}
    for r in tables.read(contract("silver", "daily_bars")).collect():
        out.silver.setdefault(r.symbol, {})[r.trade_date.isoformat()] = r.asDict()
    out.securities = {r.symbol: r.asDict() for r in tables.read(contract("silver", "securities")).collect()}
    out.rejected = {}
    for r in tables.read(contract("bronze", "rejected_files")).collect():
        out.rejected.setdefault(_path_symbol(r.source_file), []).append(r.reason)
    out.gold = {}
    for r in tables.read(contract("gold", "fct_daily_prices")).collect():
        out.gold.setdefault(r.symbol, {})[r.trade_date.isoformat()] = r.asDict()
    with psycopg.connect(out.dsn) as conn:
        rows = conn.execute("SELECT symbol, trade_date, close, load_id FROM mart.daily_prices").fetchall()
        latest = dict(conn.execute("SELECT symbol, price FROM mart.latest_quotes").fetchall())
    out.mart = {}
    for symbol, day, close, load_id in rows:
        out.mart.setdefault(symbol, {})[day.isoformat()] = (close, load_id)
    out.quotes = {c.symbol: {"bronze": [], "silver": [], "quarantine": [], "mart": []} for c in QUOTES}

    def owner(symbol: str | None, text: str) -> str | None:
        return symbol if symbol in out.quotes else next((s for s in out.quotes if text.startswith(s)), None)

    for r in tables.read(contract("bronze", "quotes")).collect():
        if (who := owner(r.symbol, r.body)) is not None:
            out.quotes[who]["bronze"].append(r.sequence_number)
    for r in tables.read(contract("silver", "quotes")).collect():
        out.quotes[r.symbol]["silver"].append(r.price)
    for r in tables.read(contract("silver", "quarantine")).filter("source_table = 'quotes'").collect():
        if (who := owner(r.symbol, json.loads(r.record_values).get("body") or "")) is not None:
            out.quotes[who]["quarantine"].append(r.rule)
    for symbol, price in latest.items():
        if symbol in out.quotes:
            out.quotes[symbol]["mart"].append(price)


@pytest.fixture(scope="module")
def lake(spark, pg_dsn: str, endpoints, tmp_path_factory: pytest.TempPathFactory):
    """One lake with every case landed, after the first run and the second delivery."""
    home = tmp_path_factory.mktemp("bad-input")
    with migrated_database(pg_dsn, "badin") as dsn:
        settings = load_settings(home=home, spark_remote=endpoints.spark_remote, pg_dsn=dsn)
        raw_root = Lake.from_settings(settings).local_path("raw")
        tables = Tables(spark, Lake.from_settings(settings))
        first = {c.symbol: c.first for c in TWO_RUN}
        answers = {}
        for dataset in ("daily_bars", "security_master"):
            bodies = {c.symbol: c.body for c in CASES if c.dataset == dataset}
            if dataset == "daily_bars":
                bodies |= first
            answers[dataset] = bad_bars.land(raw_root, dataset, bodies, FIRST_INGEST, "run-1")
        at = dt.datetime.combine(FIRST_INGEST, dt.time(15, 0), tzinfo=dt.UTC)
        answers["quotes"] = bad_bars.publish_quotes(raw_root, home / "state" / "eventhubs", at)
        out = Outcomes(spark, settings, dsn, {"landed": answers})
        out.summaries["first"] = _run(spark, settings, FIRST, "run-1")
        out.warned = _warned(spark, tables, settings, FIRST)
        _read(out, tables)
        out.after_first = {c.symbol: out.silver.get(c.symbol, {}) for c in TWO_RUN}
        later = {c.symbol: c.later for c in TWO_RUN}
        out.summaries["landed_later"] = bad_bars.land(raw_root, "daily_bars", later, SECOND_INGEST, "run-2")
        out.summaries["second"] = _run(spark, settings, SECOND, "run-2")
        _read(out, tables)
        yield out


def test_every_case_was_landed_by_the_ingestion_with_a_manifest(lake: Outcomes):
    """The RAW files are the ingestion's own: one manifest per run listing every case's file."""
    landed = lake.summaries["landed"]
    daily = {c.symbol for c in CASES if c.dataset == "daily_bars"} | {c.symbol for c in TWO_RUN}
    assert {f["symbol"] for f in landed["daily_bars"]["files"]} == daily
    assert {f["symbol"] for f in landed["security_master"]["files"]} == {
        c.symbol for c in CASES if c.dataset == "security_master"
    }
    assert landed["daily_bars"]["failures"] == [] and landed["security_master"]["failures"] == []
    assert landed["quotes"] == len(QUOTES)
    assert len(CASES) + len(FAILING) + len(TWO_RUN) + len(QUOTES) >= 25


def _case_rows(case: bad_bars.BadCase) -> int:
    """Records in the case's payload, counted from the bytes (what bronze must hold)."""
    return reconcile.count_records(case.body, case.dataset)


@pytest.mark.parametrize("bad", CASES, ids=lambda c: c.symbol)
def test_bad_input_case(lake: Outcomes, case, bad: bad_bars.BadCase):
    c = case("bad input", bad.title, expected=bad.expected)
    records = _case_rows(bad)
    quarantined = lake.quarantine.get(bad.symbol, [])
    rejected = lake.rejected.get(bad.symbol, [])
    assert lake.bronze_rows.get(bad.symbol, 0) == records
    if bad.outcome == "quarantined":
        if bad.dataset == "daily_bars":
            got = sorted(q["record_key"].split("|")[1] for q in quarantined)
            assert got == sorted(bad.bad_dates)
            in_silver = set(lake.silver.get(bad.symbol, {}))
            assert not in_silver & set(bad.bad_dates)
            assert len(in_silver) == records - len(bad.bad_dates)
        else:
            assert len(quarantined) == 1 and bad.symbol not in lake.securities
        assert {q["rule"] for q in quarantined} == {bad.rule}
        assert all(q["source_file"].split("/")[3] == bad.symbol for q in quarantined)
        observed = f"{len(quarantined)} quarantined by {bad.rule}; {records - len(quarantined)} in silver"
    elif bad.outcome == "accepted":
        assert quarantined == [] and rejected == []
        if bad.dataset == "daily_bars":
            assert len(lake.silver[bad.symbol]) == len({d for d in _dates(bad.body)})
        else:
            assert bad.symbol in lake.securities
        if bad.rule:
            assert bad.symbol in lake.warned[bad.rule]
        observed = f"{records} records accepted" + (f"; warn rule {bad.rule} counted them" if bad.rule else "")
    elif bad.outcome == "rejected":
        assert len(rejected) == 1 and bad.rule in rejected[0], rejected
        assert quarantined == [] and bad.symbol not in lake.silver and bad.symbol not in lake.securities
        observed = f"rejected: {rejected[0].split(': ', 1)[-1][:90]}"
    else:  # no_records
        assert (records, rejected, quarantined) == (0, [], []) and bad.symbol not in lake.silver
        observed = "no records, nothing rejected or quarantined"
    c.observe(observed, records=records)
    counts = lake.reconcile(bad.symbol, bad.dataset)
    if bad.dataset == "daily_bars":
        assert counts.bronze_rows == counts.silver_rows + counts.quarantine_rows
        assert counts.gold_rows == counts.mart_rows == len(lake.gold.get(bad.symbol, {}))
    c.reconcile(counts)


def _dates(body: bytes) -> list[str]:
    return [d for d, _ in json.loads(body, object_pairs_hook=list)[-1][1]]


def test_daily_values_of_accepted_odd_formats_equal_the_plain_ones(lake: Outcomes):
    """JSON numbers, padded strings and oldest-first order parse to the same values as clean bars."""
    for symbol in ("JSONNUM", "SPACES", "ORDER", "EXTRA"):
        expected = bad_bars.good_bars(symbol)
        got = {d: (r["open"], r["high"], r["low"], r["close"], r["volume"]) for d, r in lake.silver[symbol].items()}
        assert got == {d: (b.open, b.high, b.low, b.close, b.volume) for d, b in expected.items()}, symbol
    order = lake.gold["ORDER"]
    days = sorted(order)
    assert order[days[1]]["daily_return"] == pytest.approx(order[days[1]]["close"] / order[days[0]]["close"] - 1)


def test_a_duplicate_date_in_one_file_keeps_the_later_record(lake: Outcomes):
    pairs = json.loads(next(c.body for c in CASES if c.symbol == "DUPDATE"), object_pairs_hook=list)[-1][1]
    first, last = (dict(v) for d, v in pairs if d == BAD_DAY)
    assert first["4. close"] != last["4. close"]
    assert lake.silver["DUPDATE"][BAD_DAY]["close"] == float(last["4. close"])


@pytest.mark.parametrize("bad", QUOTES, ids=lambda c: c.symbol)
def test_bad_quote_case(lake: Outcomes, case, bad: bad_bars.QuoteCase):
    c = case("bad input", bad.title, expected=bad.expected)
    got = lake.quotes[bad.symbol]
    assert len(got["bronze"]) == 1, "one event published, one bronze row"
    if bad.rule:
        assert (got["silver"], got["quarantine"], got["mart"]) == ([], [bad.rule], [])
        observed = f"quarantined by {bad.rule}; not in silver, gold or the mart"
    else:
        assert got["quarantine"] == [] and got["silver"] == got["mart"] == [101.0]
        observed = "in silver.quotes and mart.latest_quotes (price 101.0)"
    c.observe(observed)
    lost = len(got["bronze"]) - len(got["silver"]) - len(got["quarantine"])
    c.reconcile({"raw_records": 1, "bronze_rows": len(got["bronze"]), "silver_rows": len(got["silver"]),
                 "quarantine_rows": len(got["quarantine"]), "mart_rows": len(got["mart"]), "lost_rows": lost,
                 "duplicate_rows": 0})  # fmt: skip


@pytest.mark.parametrize("two", TWO_RUN, ids=lambda c: c.symbol)
def test_later_deliveries(lake: Outcomes, case, two: bad_bars.TwoRunCase):
    c = case("bad input", two.title, expected=two.expected)
    before, after = lake.after_first[two.symbol], lake.silver[two.symbol]
    mart = lake.mart[two.symbol]
    if two.symbol == "REVISED":
        new_close = float(json.loads(two.later)["Time Series (Daily)"][BAD_DAY]["4. close"])
        assert (before[BAD_DAY]["revision"], after[BAD_DAY]["revision"]) == (1, 2)
        assert after[BAD_DAY]["close"] == lake.gold[two.symbol][BAD_DAY]["close"] == mart[BAD_DAY][0] == new_close
        assert mart[BAD_DAY][1] == "run-2"
        observed = f"revision 1 -> 2, close {before[BAD_DAY]['close']} -> {new_close} in silver, gold and mart"
    elif two.symbol == "REDELIVER":
        assert after == before and all(r["revision"] == 1 for r in after.values())
        observed = "silver rows unchanged (revision 1, first load_id kept)"
    elif two.symbol == "BADREV":
        assert after == before
        rules = [q["rule"] for q in lake.quarantine[two.symbol]]
        assert rules == ["prices_positive"]
        observed = f"bad revision quarantined by prices_positive; silver keeps close {after[BAD_DAY]['close']}"
    else:  # DELISTED
        kept = [d.isoformat() for d in bad_bars.DELISTED_DAYS]
        assert sorted(after) == sorted(lake.gold[two.symbol]) == sorted(mart) == kept
        assert any("'Error Message'" in r for r in lake.rejected[two.symbol])
        observed = f"{len(kept)} bars up to {kept[-1]} kept in silver, gold and mart; the error body rejected"
    c.observe(observed, revisions=max(r["revision"] for r in after.values()))
    counts = lake.reconcile(two.symbol, end=SECOND)
    assert counts.bronze_rows == counts.silver_rows + counts.quarantine_rows
    c.reconcile(counts)


@pytest.mark.parametrize("bad", FAILING, ids=lambda c: c.symbol)
def test_a_fail_rule_stops_the_silver_job_with_a_clear_message(
    spark, endpoints, tmp_path: Path, case, bad: bad_bars.BadCase
):
    c = case("bad input", bad.title, expected=bad.expected)
    settings = load_settings(home=tmp_path / "home", spark_remote=endpoints.spark_remote)
    raw_root = Lake.from_settings(settings).local_path("raw")
    bad_bars.land(raw_root, bad.dataset, {bad.symbol: bad.body}, FIRST_INGEST, "run-1")
    jobs.run_raw_to_bronze(spark, settings, FIRST, FIRST, "run-1")
    with pytest.raises(DataQualityError, match=rf"{bad.rule}: \d+ rows, e\.g\. .*{bad.symbol}") as err:
        jobs.run_bronze_to_silver(spark, settings, FIRST, FIRST, "run-1", today=FIRST_INGEST)
    tables = Tables(spark, Lake.from_settings(settings))
    table = "daily_bars" if bad.dataset == "daily_bars" else "securities"
    assert tables.read(contract("silver", table)).count() == 0
    assert tables.read(contract("silver", "quarantine")).count() == 0
    c.observe(f"DataQualityError: {str(err.value)[:140]}")
    counts = reconcile.reconcile(spark, settings, FIRST, FIRST, dataset=bad.dataset, through="bronze")
    assert counts.raw_records == counts.bronze_rows == _case_rows(bad)
    c.reconcile(counts)
