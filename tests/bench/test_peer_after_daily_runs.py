"""After a sequence of hostile daily runs, the project's marts equal the stateless DuckDB peer's.

The peer (bench/duckdb_pipeline.py) shares no code with the project's incremental machinery: it
reads every RAW payload at once, keeps the latest valid ingestion of each key and computes the
marts from scratch. The project runs each day as its daily pipeline does (raw_to_bronze,
bronze_to_silver, silver_to_gold over the day's ingestion date, then gold_to_postgres over the day's
session), so silver's skip of unchanged bars and processed files, gold's recompute plan, forward
factors and unread revisions, and serving's window plus changed ranges do the work. The marts must
agree to 1e-9 relative (bench_pipeline_peer.check_marts), after every day.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from bench import bench_peers, duckdb_pipeline
from bench.bench_pipeline_peer import check_marts
from lakehouse.lake import Lake
from lakehouse.trading_calendar import sessions
from spark_jobs import serving
from tests.databases import fresh_database, migrated_database
from tests.spark_jobs.conftest import Pipeline
from tests.spark_jobs.raw_files import Bar, RawLake, random_walk_bars
from tests.spark_jobs.test_gold_corporate_actions import dividends_body, splits_body

DAYS = sessions(dt.date(2024, 1, 2), dt.date(2024, 6, 28))
HISTORY = 60  # sessions 0..59 land on the first day; each later day brings the next session


def _entry(bar: Bar, adjusted_close: float | None = None) -> dict:
    """`bar` as a TIME_SERIES_DAILY_ADJUSTED entry (adjusted close = close unless given)."""
    adj = bar.close if adjusted_close is None else adjusted_close
    return {
        "1. open": f"{bar.open:.4f}", "2. high": f"{bar.high:.4f}", "3. low": f"{bar.low:.4f}",
        "4. close": f"{bar.close:.4f}", "5. adjusted close": f"{adj:.4f}", "6. volume": str(bar.volume),
        "7. dividend amount": f"{bar.dividend:.4f}", "8. split coefficient": f"{bar.split:.1f}",
    }  # fmt: skip


def _series_body(symbol: str, pairs: list[tuple[dt.date, dict]]) -> bytes:
    """An adjusted-series body with its (date, entry) pairs in the given order, a date possibly twice."""
    series = ", ".join(f'"{d.isoformat()}": {json.dumps(e)}' for d, e in pairs)
    meta = {"1. Information": "Daily Time Series with Splits and Dividend Events", "2. Symbol": symbol,
            "3. Last Refreshed": max(d for d, _ in pairs).isoformat(), "4. Output Size": "Compact",
            "5. Time Zone": "US/Eastern"}  # fmt: skip
    return f'{{"Meta Data": {json.dumps(meta)}, "Time Series (Daily)": {{{series}}}}}'.encode()


def _moved(bar: Bar, **values) -> Bar:
    return Bar(**{**bar.__dict__, **values})


@dataclass
class Days:
    """One lake and one serving database run day by day, and a peer database beside them."""

    pipeline: Pipeline
    raw: RawLake
    project_dsn: str
    peer_dsn: str

    def bars(self, symbol: str, ingest: dt.date, pairs: list[tuple[dt.date, dict]], run_id: str = "r") -> None:
        self.raw.file("daily_bars", symbol, ingest.isoformat(), run_id, _series_body(symbol, pairs), len(pairs))

    def actions(self, symbol: str, ingest: dt.date, known: dict[str, Bar], **amounts: float) -> None:
        """The SPLITS and DIVIDENDS bodies of a free key on `ingest`, listing the events of `known`."""
        day = ingest.isoformat()
        self.raw.file("splits", symbol, day, day, *splits_body(symbol, known))
        self.raw.file("dividends", symbol, day, day, *dividends_body(symbol, known, **amounts))

    def run(self, ingest: dt.date, first: dt.date, last: dt.date, run_id: str = "", full_refresh: bool = False) -> dict:
        """The daily pipeline of `ingest` and the mart load of the sessions `first`..`last`."""
        run_id = run_id or f"day-{ingest.isoformat()}"
        summary = self.pipeline.run(ingest.isoformat(), run_id=run_id, full_refresh=full_refresh)
        serving.run_gold_to_postgres(self.pipeline.spark, self.pipeline.settings, start_date=first, end_date=last,
                                     run_id=run_id)  # fmt: skip
        return summary

    def mart(self, query: str) -> list[tuple]:
        """Rows of `query` on the project's serving database."""
        import psycopg

        with psycopg.connect(self.project_dsn) as conn:
            return conn.execute(query).fetchall()

    def check(self) -> float:
        """The peer over every RAW file so far, into its database, then the marts compared."""
        duckdb_pipeline.run(Lake.from_settings(self.pipeline.settings).local_path("raw"), self.peer_dsn,
                            provider=self.raw.provider, load_id="duckdb")  # fmt: skip
        return check_marts(self.project_dsn, self.peer_dsn)


@pytest.fixture
def days(pipeline_on_pg: Pipeline, pg_dsn: str) -> Iterator[Days]:
    with fresh_database(pg_dsn, "peer") as peer_dsn:
        yield Days(pipeline_on_pg, RawLake(Lake.from_settings(pipeline_on_pg.settings)),
                   pipeline_on_pg.settings.pg_dsn.get_secret_value(), peer_dsn)  # fmt: skip


@pytest.fixture
def pipeline_on_pg(spark, tmp_path, endpoints, clean_environment, pg_dsn) -> Iterator[Pipeline]:
    from lakehouse.settings import load_settings

    with migrated_database(pg_dsn, "project") as dsn:
        settings = load_settings(home=tmp_path / "home", spark_remote=endpoints.spark_remote)
        yield Pipeline(spark, settings.model_copy(update={"pg_dsn": SecretStr(dsn)}))


def test_revised_quarantined_duplicated_new_and_vanished_bars_over_five_daily_runs_serve_what_the_peer_computes(
    days: Days,
) -> None:
    """Premium (adjusted) series, one file per symbol and day, compact files overlapping stored bars:

    - REV: a close revised on day 1; the same bar re-sent invalid on day 3 (quarantined: day 1's stays);
      on day 4 back to its first values, and the close of March's last session revised (April's
      monthly return reads it).
    - PEAK: the highest close of the history revised down to its low on day 2 (every later drawdown).
    - QRT: a bar quarantined in the history and on day 1, re-sent valid on day 2.
    - DUP: a date twice in day 1's file (the later copy revised: it wins); on day 2 twice again, the later
      copy invalid (the earlier, valid copy wins).
    - ADJ: a dividend on day 3's session, its compact file rewriting every earlier adjusted close (a
      column gold does not read); on day 4 the provider withdraws it (dividend back to 0, adjusted
      closes restored).
    - GONE: stops appearing after the history.  NEW: lists on day 2 from session 50; day 3's compact
      file brings 30 earlier sessions (history before its first stored day).
    - BADP: day 2's new bar has a negative volume (quarantined for good); day 3 brings the next session.
    """
    symbols = ("REV", "QRT", "DUP", "ADJ", "GONE", "NEW", "BADP", "PEAK")
    walk = {s: random_walk_bars(DAYS[: HISTORY + 5], seed=300 + i) for i, s in enumerate(symbols)}
    walk["ADJ"] = random_walk_bars(DAYS[: HISTORY + 5], seed=310, events={HISTORY + 2: {"dividend": 0.8}})
    bar = {s: {dt.date.fromisoformat(d): b for d, b in series.items()} for s, series in walk.items()}

    def entries(symbol: str, first: int, last: int, **override: dict) -> list[tuple[dt.date, dict]]:
        """Sessions first..last of `symbol` as entries; `override` maps 's<index>' to an entry."""
        return [(DAYS[i], override.get(f"s{i}", _entry(bar[symbol][DAYS[i]]))) for i in range(first, last + 1)]

    def broken(symbol: str, i: int) -> dict:
        b = bar[symbol][DAYS[i]]
        return _entry(_moved(b, low=round(b.high * 1.1, 4)))  # low above high: ohlc_consistent

    no_dividend = _entry(_moved(bar["ADJ"][DAYS[HISTORY + 2]], dividend=0.0))
    h = HISTORY - 1
    today = [DAYS[h + k] for k in range(5)]  # the ingestion date of day k is its newest session

    # day 0: the history
    for s in ("REV", "DUP", "ADJ", "GONE", "BADP", "PEAK"):
        days.bars(s, today[0], entries(s, 0, h))
    days.bars("QRT", today[0], entries("QRT", 0, h, s55=broken("QRT", 55)))
    days.run(today[0], DAYS[0], today[0])
    assert days.check() <= 1e-9

    # day 1: a revised close, a quarantined bar again, a date twice
    revised = _moved(bar["REV"][DAYS[50]], close=round((bar["REV"][DAYS[50]].low + bar["REV"][DAYS[50]].high) / 2, 4))
    days.bars("REV", today[1], entries("REV", 20, h + 1, s50=_entry(revised)))
    days.bars("QRT", today[1], entries("QRT", 20, h + 1, s55=broken("QRT", 55)))
    dup = bar["DUP"][today[1]]
    days.bars("DUP", today[1], [*entries("DUP", 20, h + 1), (today[1], _entry(_moved(dup, close=dup.high)))])
    for s in ("ADJ", "BADP", "PEAK"):
        days.bars(s, today[1], entries(s, 20, h + 1))
    days.run(today[1], today[1], today[1])
    assert days.check() <= 1e-9
    assert days.mart(f"SELECT close FROM mart.daily_prices WHERE symbol = 'DUP' AND trade_date = '{today[1]}'") == [
        (dup.high,)
    ]  # the later copy; later files send the first values again

    # day 2: the quarantined bar valid, a valid copy before an invalid one, a new listing, a bad new bar
    days.bars("REV", today[2], entries("REV", 20, h + 2, s50=_entry(revised)))
    days.bars("QRT", today[2], entries("QRT", 20, h + 2))
    days.bars("DUP", today[2], [*entries("DUP", 20, h + 2), (today[2], broken("DUP", h + 2))])
    days.bars("ADJ", today[2], entries("ADJ", 20, h + 2))
    days.bars("NEW", today[2], entries("NEW", 50, h + 2))
    top = max(range(20, h + 1), key=lambda i: bar["PEAK"][DAYS[i]].close)
    lowered = _moved(bar["PEAK"][DAYS[top]], close=bar["PEAK"][DAYS[top]].low)
    days.bars("PEAK", today[2], entries("PEAK", 20, h + 2, **{f"s{top}": _entry(lowered)}))
    days.bars("BADP", today[2], entries("BADP", 20, h + 2, **{f"s{h + 2}": {**_entry(bar["BADP"][today[2]]),
                                                                            "6. volume": "-5"}}))  # fmt: skip
    days.run(today[2], today[2], today[2])
    assert days.check() <= 1e-9

    # day 3: REV's revised bar re-sent invalid; ADJ's dividend with every earlier adjusted close rewritten
    days.bars("REV", today[3], entries("REV", 20, h + 3, s50=broken("REV", 50)))
    days.bars("ADJ", today[3], [(d, _entry(bar["ADJ"][d], bar["ADJ"][d].close * 0.97) if d < today[3] else e)
                                for d, e in entries("ADJ", 20, h + 3)])  # fmt: skip
    for s in ("QRT", "DUP", "NEW"):
        days.bars(s, today[3], entries(s, 20, h + 3))
    days.bars("PEAK", today[3], entries("PEAK", 20, h + 3, **{f"s{top}": _entry(lowered)}))
    days.bars("BADP", today[3], [(d, e) for d, e in entries("BADP", 20, h + 3) if d != today[2]])  # a gap now
    days.run(today[3], today[3], today[3])
    assert days.check() <= 1e-9
    assert days.mart("SELECT count(*) FROM mart.daily_prices WHERE symbol = 'ADJ' AND adj_close < close") == [(h + 3,)]

    # day 4: ADJ's dividend withdrawn; REV's bar back to its first values, March's last close revised
    days.bars("ADJ", today[4], entries("ADJ", 20, h + 4, **{f"s{h + 3}": no_dividend}))
    march = bar["REV"][today[1]]
    days.bars("REV", today[4], entries("REV", 20, h + 4, **{f"s{h + 1}": _entry(_moved(march, close=march.low))}))
    for s in ("QRT", "DUP", "NEW"):
        days.bars(s, today[4], entries(s, 20, h + 4))
    days.bars("PEAK", today[4], entries("PEAK", 20, h + 4, **{f"s{top}": _entry(lowered)}))
    days.bars("BADP", today[4], [(d, e) for d, e in entries("BADP", 20, h + 4) if d != today[2]])
    days.run(today[4], today[4], today[4])
    assert days.check() <= 1e-9
    # the attacks landed: what the marts serve
    close = dict(days.mart("SELECT symbol || ' ' || trade_date, close FROM mart.daily_prices"))
    assert close[f"DUP {today[1]}"] == dup.close and close[f"DUP {today[2]}"] == bar["DUP"][today[2]].close
    assert close[f"QRT {DAYS[55]}"] == bar["QRT"][DAYS[55]].close and f"BADP {today[2]}" not in close
    assert close[f"REV {DAYS[50]}"] == bar["REV"][DAYS[50]].close and close[f"REV {today[1]}"] == march.low
    assert close[f"PEAK {DAYS[top]}"] == lowered.close
    assert days.mart(
        "SELECT symbol, count(*), max(trade_date) FROM mart.daily_prices WHERE symbol IN ('GONE', 'NEW')"
        " GROUP BY symbol ORDER BY symbol"
    ) == [("GONE", h + 1, today[0]), ("NEW", h + 4 - 20 + 1, today[4])]
    assert days.mart("SELECT count(*) FROM mart.daily_prices WHERE symbol = 'ADJ' AND adj_close <> close") == [(0,)]


def test_late_revised_future_and_off_calendar_corporate_actions_over_five_daily_runs_serve_what_the_peer_computes(
    days: Days,
) -> None:
    """Free-key series (no split or dividend fields) with the SPLITS and DIVIDENDS payloads each day:

    - LSPL: a 2-for-1 split 30 sessions back, first listed on day 2 (its bars halved all along).
    - LDIV: a dividend ex on day 1's session, first listed on day 3; on day 4 its amount is revised and
      so is the close before its ex-date (the factor's previous close).
    - WDIV: a dividend in the history's payload that later payloads no longer list (no row says it
      is gone: silver keeps its latest ingestion, on both sides).
    - FUTR: a dividend declared on day 1 for day 3's session (after the last bar: it adjusts nothing
      until its ex-date's bar lands, with an unchanged payload).
    - HOLI: a dividend ex on Good Friday 2024-03-29 (no session), declared on day 1 before the next
      session exists; WKND: one ex on a Saturday inside the history.
    - GAPD: a dividend whose previous session is missing from the history, filled on day 2.
    - QACT: a dividend quarantined on day 1 (at least half the previous close), re-sent valid on day 2.
    - PLAIN: no events at all, beside them.
    """
    h = HISTORY - 1
    holiday, saturday = dt.date(2024, 3, 29), dt.date(2024, 3, 9)
    events = {"LSPL": {30: {"split": 2.0}}, "LDIV": {h + 1: {"dividend": 0.9}}, "WDIV": {40: {"dividend": 0.6}},
              "FUTR": {h + 3: {"dividend": 0.7}}, "GAPD": {45: {"dividend": 0.5}}, "QACT": {50: {"dividend": 0.4}},
              "HOLI": {}, "WKND": {}, "PLAIN": {}}  # fmt: skip
    walk = {s: random_walk_bars(DAYS[: HISTORY + 6], seed=400 + i, events=e) for i, (s, e) in enumerate(events.items())}
    plain = {s: {d: _moved(b, split=1.0, dividend=0.0) for d, b in series.items()} for s, series in walk.items()}
    off_calendar = {"HOLI": {holiday.isoformat(): Bar(1, 1, 1, 1, 1, dividend=0.45)},
                    "WKND": {saturday.isoformat(): Bar(1, 1, 1, 1, 1, dividend=0.35)}}  # fmt: skip
    today = [DAYS[h + k] for k in range(5)]

    def send(symbol: str, k: int, first: int, known=(), skip=(), close: dict | None = None, **amounts: float) -> None:
        """Day k's compact bars from session `first` (less `skip`) and the actions known then."""
        pairs = [(DAYS[i], _entry((close or {}).get(i, plain[symbol][DAYS[i].isoformat()])))
                 for i in range(first, h + k + 1) if i not in skip]  # fmt: skip
        days.bars(symbol, today[k], pairs)
        acts = {DAYS[i].isoformat(): walk[symbol][DAYS[i].isoformat()] for i in known}
        declared = off_calendar.get(symbol, {}) if symbol != "HOLI" or k >= 1 else {}  # HOLI's: from day 1
        days.actions(symbol, today[k], {**acts, **declared}, **amounts)

    everyone = ("LSPL", "LDIV", "WDIV", "FUTR", "GAPD", "QACT", "HOLI", "WKND", "PLAIN")
    known = {0: {"WDIV": (40,), "GAPD": (45,)},
             1: {"FUTR": (h + 3,), "GAPD": (45,), "QACT": (50,)},
             2: {"LSPL": (30,), "FUTR": (h + 3,), "GAPD": (45,), "QACT": (50,)},
             3: {"LSPL": (30,), "LDIV": (h + 1,), "FUTR": (h + 3,), "GAPD": (45,), "QACT": (50,)}}  # fmt: skip
    known[4] = known[3]
    amounts = {1: {"QACT": {DAYS[50].isoformat(): 1000.0}}, 4: {"LDIV": {today[1].isoformat(): 1.1}}}
    for k in range(5):
        for s in everyone:
            skip = (44,) if s == "GAPD" and k < 2 else ()
            close = None
            if s == "LDIV" and k == 4:
                before = plain[s][DAYS[h].isoformat()]
                close = {h: _moved(before, close=before.low)}
            send(s, k, 0 if k == 0 else 20, known[k].get(s, ()), skip, close, **amounts.get(k, {}).get(s, {}))
        days.run(today[k], DAYS[0] if k == 0 else today[k], today[k])
        assert days.check() <= 1e-9, f"day {k}"

    def dividend(symbol: str, amount: float, before: int, close: float | None = None) -> float:
        """The factor of a dividend by hand: 1 - amount / the close of session `before`."""
        return 1 - amount / (close or plain[symbol][DAYS[before].isoformat()].close)

    first = {
        "LSPL": 0.5, "LDIV": dividend("LDIV", 1.1, h, plain["LDIV"][DAYS[h].isoformat()].low),
        "WDIV": dividend("WDIV", 0.6, 39), "FUTR": dividend("FUTR", 0.7, h + 2), "GAPD": dividend("GAPD", 0.5, 44),
        "QACT": dividend("QACT", 0.4, 49), "HOLI": dividend("HOLI", 0.45, h + 1), "WKND": dividend("WKND", 0.35, 46),
        "PLAIN": 1.0,
    }  # fmt: skip
    served = dict(days.mart(f"SELECT symbol, adj_close / close FROM mart.daily_prices WHERE trade_date = '{DAYS[0]}'"))
    assert served == pytest.approx(first, rel=1e-9)  # every event applied once, by hand


def test_events_on_missing_bars_disagreeing_sources_reruns_and_a_refresh_over_four_days_serve_what_the_peer_computes(
    days: Days,
) -> None:
    """Corporate actions whose inputs move under them, and the runs an operator adds:

    - QEX: a dividend whose ex-date bar is quarantined in the history (the event still applies), valid on day 2.
    - KGAP: a dividend after a gap of 21 sessions (no close within PREVIOUS_CLOSE_DAYS: factor 1), the gap
      filled on day 2 (the factor now reads the close before the ex-date).
    - CONF: a premium series whose bar says a 2-for-1 split, the SPLITS payload landing on day 1 says 3:
      the action wins from then on.
    - ANNO: a split announced on day 1 for a session before the symbol's first bar, which lists on day 2.
    - TWIN: two files of one day for one symbol, the later revising a bar.
    - Day 1 run twice; after day 3, day 1 run again with full_refresh and its window served again.
    """
    h = HISTORY - 1
    names = ("QEX", "KGAP", "CONF", "ANNO", "TWIN")
    events = {"QEX": {45: {"dividend": 0.5}}, "KGAP": {50: {"dividend": 0.6}}, "CONF": {30: {"split": 2.0}}}
    walk = {s: random_walk_bars(DAYS[: HISTORY + 4], seed=600 + i, events=events.get(s)) for i, s in enumerate(names)}
    bar = {s: {dt.date.fromisoformat(d): b for d, b in series.items()} for s, series in walk.items()}
    free = {s: {d: _moved(b, split=1.0, dividend=0.0) for d, b in bar[s].items()} for s in ("QEX", "KGAP")}
    today = [DAYS[h + k] for k in range(4)]

    def pairs(symbol: str, first: int, last: int, skip=range(0), **override: dict) -> list[tuple[dt.date, dict]]:
        series = free.get(symbol, bar[symbol])
        return [
            (DAYS[i], override.get(f"s{i}", _entry(series[DAYS[i]]))) for i in range(first, last + 1) if i not in skip
        ]

    def act(symbol: str, k: int, known: dict[dt.date, Bar]) -> None:
        days.actions(symbol, today[k], {d.isoformat(): b for d, b in known.items()})

    qex_bad = _entry(_moved(free["QEX"][DAYS[45]], low=round(free["QEX"][DAYS[45]].high * 1.1, 4)))
    conf_action = {DAYS[30]: _moved(bar["CONF"][DAYS[30]], split=3.0)}
    anno_action = {DAYS[10]: _moved(bar["ANNO"][DAYS[10]], split=4.0)}
    twin = _moved(bar["TWIN"][DAYS[h]], close=bar["TWIN"][DAYS[h]].low)

    # day 0
    days.bars("QEX", today[0], pairs("QEX", 0, h, s45=qex_bad))
    act("QEX", 0, {DAYS[45]: walk["QEX"][DAYS[45].isoformat()]})
    days.bars("KGAP", today[0], pairs("KGAP", 0, h, skip=range(29, 50)))
    act("KGAP", 0, {DAYS[50]: walk["KGAP"][DAYS[50].isoformat()]})
    for s in ("CONF", "TWIN"):
        days.bars(s, today[0], pairs(s, 0, h))
    days.run(today[0], DAYS[0], today[0])
    assert days.check() <= 1e-9

    def day(k: int) -> None:
        days.bars("QEX", today[k], pairs("QEX", 20, h + k, **({"s45": qex_bad} if k < 2 else {})))
        act("QEX", k, {DAYS[45]: walk["QEX"][DAYS[45].isoformat()]})
        days.bars("KGAP", today[k], pairs("KGAP", 0 if k >= 2 else 50, h + k))
        act("KGAP", k, {DAYS[50]: walk["KGAP"][DAYS[50].isoformat()]})
        days.bars("CONF", today[k], pairs("CONF", 20, h + k))
        act("CONF", k, conf_action)
        act("ANNO", k, anno_action)
        if k >= 2:
            days.bars("ANNO", today[k], pairs("ANNO", 20, h + k))
        days.bars("TWIN", today[k], pairs("TWIN", 20, h + k), run_id="a")
        days.bars("TWIN", today[k], pairs("TWIN", h - 5, h + k, **{f"s{h}": _entry(twin)}), run_id="b")

    day(1)
    days.run(today[1], today[1], today[1])
    assert days.check() <= 1e-9
    days.run(today[1], today[1], today[1], run_id="day-1-again")
    assert days.check() <= 1e-9
    for k in (2, 3):
        day(k)
        days.run(today[k], today[k], today[k])
        assert days.check() <= 1e-9, f"day {k}"
    days.run(today[1], today[1], today[3], run_id="repair", full_refresh=True)
    assert days.check() <= 1e-9

    def dividend(symbol: str, amount: float, before: int) -> float:
        return 1 - amount / free[symbol][DAYS[before]].close

    want = {"QEX": dividend("QEX", 0.5, 44), "KGAP": dividend("KGAP", 0.6, 49), "CONF": 1 / 3, "ANNO": 1.0,
            "TWIN": 1.0}  # fmt: skip
    assert dict(
        days.mart(f"SELECT symbol, adj_close / close FROM mart.daily_prices WHERE trade_date = '{DAYS[20]}'")
    ) == (pytest.approx(want, rel=1e-9))


def test_a_daily_run_after_a_month_without_bars_keeps_the_monthly_return_against_the_last_month_with_bars(
    days: Days,
) -> None:
    """A symbol halted for all of February: March's monthly return compares with January (as a backfill
    computes it). The next March session, a daily run, must leave it so."""
    bars = {dt.date.fromisoformat(d): b for d, b in random_walk_bars(DAYS[: HISTORY + 1], seed=700).items()}
    halted = [(d, _entry(b)) for d, b in bars.items() if d.month != 2]
    days.bars("HALT", DAYS[HISTORY - 1], [(d, e) for d, e in halted if d < DAYS[HISTORY]])
    days.run(DAYS[HISTORY - 1], DAYS[0], DAYS[HISTORY - 1])
    assert days.check() <= 1e-9
    march = "SELECT monthly_return FROM mart.monthly_performance WHERE month = '2024-03-01'"
    january = max(d for d in bars if d.month == 1)
    assert days.mart(march) == [(pytest.approx(bars[DAYS[HISTORY - 1]].close / bars[january].close - 1, rel=1e-12),)]
    days.bars("HALT", DAYS[HISTORY], halted[-5:])
    days.run(DAYS[HISTORY], DAYS[HISTORY], DAYS[HISTORY])
    days.check()


def test_a_day_the_project_did_not_serve_fails_the_comparison(days: Days) -> None:
    """The check can fail: a day whose mart load is skipped leaves the mart behind the peer."""
    bars = {dt.date.fromisoformat(d): b for d, b in random_walk_bars(DAYS[: HISTORY + 1], seed=500).items()}
    days.bars("SKIP", DAYS[HISTORY - 1], [(d, _entry(b)) for d, b in bars.items() if d < DAYS[HISTORY]])
    days.run(DAYS[HISTORY - 1], DAYS[0], DAYS[HISTORY - 1])
    assert days.check() <= 1e-9
    days.bars("SKIP", DAYS[HISTORY], [(d, _entry(b)) for d, b in bars.items() if d >= DAYS[20]])
    days.pipeline.run(DAYS[HISTORY].isoformat(), run_id="unserved")  # gold only, no gold_to_postgres
    with pytest.raises(bench_peers.PeerMismatch, match=r"mart\.daily_prices: \d+ rows expected, peer has"):
        days.check()
