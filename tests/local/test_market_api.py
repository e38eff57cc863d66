"""The synthetic market API: Alpha Vantage's wire format, deterministic prices on XNYS sessions,
consistent adjusted series, and the configured quotas and faults."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import socket
import statistics
import time
from collections.abc import Iterator

import exchange_calendars as xcals
import pandas as pd
import pytest
import requests

from local.market_api import Fault, MarketApiConfig, MarketApiServer, MarketModel, running

AS_OF = dt.date(2024, 5, 24)


@pytest.fixture(scope="module")
def server() -> Iterator[MarketApiServer]:
    with running(MarketApiConfig(seed=3, as_of=AS_OF)) as srv:
        yield srv


@pytest.fixture(scope="module")
def model() -> MarketModel:
    return MarketModel(seed=3)


@pytest.fixture
def api(server: MarketApiServer) -> MarketApiServer:
    server.configure(faults=(), calls_per_minute=None, calls_per_day=None, throttle="note", api_key=None, plan=None,
                     burst_per_second=None)  # fmt: skip
    return server


def get(api: MarketApiServer, **params: str) -> requests.Response:
    return requests.get(api.url, params={"apikey": "k", "datatype": "json", **params}, timeout=10)


def series(api: MarketApiServer, symbol: str, *, adjusted: bool = True, outputsize: str = "full") -> dict:
    function = "TIME_SERIES_DAILY_ADJUSTED" if adjusted else "TIME_SERIES_DAILY"
    return get(api, function=function, symbol=symbol, outputsize=outputsize).json()


def test_it_listens_on_a_free_loopback_port_and_stops_cleanly():
    srv = MarketApiServer().start()
    port = srv.port
    assert srv.url == f"http://127.0.0.1:{port}/query"
    srv.stop()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the port is free again


def test_compact_is_the_latest_100_xnys_sessions_newest_first(api: MarketApiServer):
    data = series(api, "AAPL", outputsize="compact")
    cal = xcals.get_calendar("XNYS", start="2023-01-01")
    expected = [d.date().isoformat() for d in cal.sessions_in_range("2023-06-01", AS_OF.isoformat())][-100:][::-1]
    assert list(data["Time Series (Daily)"]) == expected
    assert data["Meta Data"] == {
        "1. Information": "Daily Time Series with Splits and Dividend Events",
        "2. Symbol": "AAPL",
        "3. Last Refreshed": "2024-05-24",
        "4. Output Size": "Compact",
        "5. Time Zone": "US/Eastern",
    }


def test_full_history_covers_every_session_since_listing(api: MarketApiServer):
    bars = series(api, "MSFT")["Time Series (Daily)"]
    dates = sorted(bars)
    cal = xcals.get_calendar("XNYS", start="1999-01-01")
    expected = [d.date().isoformat() for d in cal.sessions_in_range(dates[0], AS_OF.isoformat())]
    assert dates == expected
    assert dates[0] >= "1999-11-01"


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_prices(api: MarketApiServer):
    first = get(api, function="TIME_SERIES_DAILY_ADJUSTED", symbol="KO", outputsize="compact").content
    again = get(api, function="TIME_SERIES_DAILY_ADJUSTED", symbol="KO", outputsize="compact").content
    assert first == again
    with running(MarketApiConfig(seed=4, as_of=AS_OF)) as other:
        different = get(other, function="TIME_SERIES_DAILY_ADJUSTED", symbol="KO", outputsize="compact").content
    assert different != first


def test_a_bar_depends_on_its_date_not_on_the_as_of_date(model: MarketModel):
    """Closes of a day are the same whatever the as-of date (only adjusted closes move)."""
    early = dict(model.daily_rows("JPM", dt.date(2020, 3, 2), adjusted=False, compact=False))
    late = dict(model.daily_rows("JPM", dt.date(2024, 5, 24), adjusted=False, compact=False))
    assert all(late[d] == bar for d, bar in early.items())


@pytest.mark.parametrize("symbol", ["AAPL", "XOM", "KO", "WMT", "BA", "DIS"])
def test_ohlc_relations_and_positive_volumes_hold(api: MarketApiServer, symbol: str):
    for bar in series(api, symbol)["Time Series (Daily)"].values():
        o, h, low, c = (float(bar[k]) for k in ("1. open", "2. high", "3. low", "4. close"))
        assert 0 < low <= min(o, c) <= max(o, c) <= h
        assert int(bar["6. volume"]) > 0


def test_adjusted_closes_follow_total_returns_through_splits_and_dividends(api: MarketApiServer):
    """adj[t] / adj[t-1] = close[t] * split[t] / (close[t-1] - dividend[t]): the CRSP convention, in which
    a dividend scales earlier prices by 1 - dividend / previous close (as gold adjusts)."""
    events = {"split": 0, "dividend": 0}
    for symbol in ["MSFT", "INTC", "KO"]:  # dividend payers and splitters under seed 3
        bars = series(api, symbol)["Time Series (Daily)"]
        days = sorted(bars)
        for prev, day in itertools.pairwise(days):
            b, p = bars[day], bars[prev]
            split, dividend = float(b["8. split coefficient"]), float(b["7. dividend amount"])
            events["split"] += split != 1.0
            events["dividend"] += dividend > 0
            close, prev_close = float(b["4. close"]), float(p["4. close"])
            adj, prev_adj = float(b["5. adjusted close"]), float(p["5. adjusted close"])
            total = close * split / (prev_close - dividend)
            # each printed value is rounded to 4 decimals: allow that much relative error per value
            rounding = 0.00006 * (1 / close + 3 / prev_close + 1 / adj + 1 / prev_adj)
            assert adj / prev_adj == pytest.approx(total, rel=rounding), (symbol, day)
        assert float(bars[days[-1]]["5. adjusted close"]) == float(bars[days[-1]]["4. close"])
    assert events["split"] >= 1 and events["dividend"] >= 20  # the check above was exercised


def test_the_raw_series_is_the_adjusted_series_without_adjustments(api: MarketApiServer):
    raw = series(api, "PG", adjusted=False, outputsize="compact")
    adjusted = series(api, "PG", outputsize="compact")["Time Series (Daily)"]
    assert raw["Meta Data"]["1. Information"] == "Daily Prices (open, high, low, close) and Volumes"
    for day, bar in raw["Time Series (Daily)"].items():
        assert list(bar) == ["1. open", "2. high", "3. low", "4. close", "5. volume"]
        assert bar["4. close"] == adjusted[day]["4. close"] and bar["5. volume"] == adjusted[day]["6. volume"]


def test_overview_and_quote_speak_the_wire_format(api: MarketApiServer):
    overview = get(api, function="OVERVIEW", symbol="V").json()
    assert {"Symbol", "Name", "Exchange", "Currency", "Country", "Sector", "Industry"} <= set(overview)
    assert overview["Symbol"] == "V" and overview["Currency"] == "USD"
    quote = get(api, function="GLOBAL_QUOTE", symbol="V").json()["Global Quote"]
    assert list(quote) == [
        "01. symbol", "02. open", "03. high", "04. low", "05. price", "06. volume",
        "07. latest trading day", "08. previous close", "09. change", "10. change percent",
    ]  # fmt: skip
    close = series(api, "V", outputsize="compact")["Time Series (Daily)"]["2024-05-24"]["4. close"]
    assert quote["07. latest trading day"] == "2024-05-24" and quote["05. price"] == close
    change = float(quote["05. price"]) - float(quote["08. previous close"])
    assert float(quote["09. change"]) == pytest.approx(change, abs=1e-4)


def test_some_companies_change_name_over_time_for_scd2(model: MarketModel):
    renamed = [s for s in (f"S{i}" for i in range(60)) if model.profile(s).renamed_on is not None]
    assert renamed
    p = model.profile(renamed[0])
    before = model.overview(p.symbol, p.renamed_on - dt.timedelta(days=1))
    after = model.overview(p.symbol, p.renamed_on)
    assert before["Name"] != after["Name"]


def test_unknown_symbols_and_functions_answer_like_alpha_vantage(api: MarketApiServer):
    api.configure(unknown_symbols=frozenset({"NOPE"}))
    assert "Error Message" in series(api, "NOPE")
    assert get(api, function="OVERVIEW", symbol="NOPE").json() == {}
    assert get(api, function="GLOBAL_QUOTE", symbol="NOPE").json() == {"Global Quote": {}}
    assert "does not exist" in get(api, function="TIME_SERIES_WEEKLY", symbol="AAPL").json()["Error Message"]


def test_a_missing_or_wrong_key_is_refused(api: MarketApiServer):
    right, wrong = "right-key", "wrong-key"  # pragma: allowlist secret
    api.configure(api_key=right)
    refused = get(api, function="OVERVIEW", symbol="V", apikey=wrong).json()
    assert "apikey" in refused["Error Message"]
    assert get(api, function="OVERVIEW", symbol="V", apikey=right).json()["Symbol"] == "V"
    assert api.requests[-1].key_present and "apikey" not in api.requests[-1].params


def test_per_minute_quota_answers_note_or_429_and_daily_quota_information(api: MarketApiServer):
    api.configure(calls_per_minute=2)
    answers = [get(api, function="OVERVIEW", symbol="V") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200] and "Note" in answers[2].json()
    api.configure(calls_per_minute=1, throttle="http_429")
    answers = [get(api, function="OVERVIEW", symbol="V") for _ in range(2)]
    assert answers[1].status_code == 429 and answers[1].headers["Retry-After"] == "1"
    api.configure(calls_per_day=1)
    answers = [get(api, function="OVERVIEW", symbol="V") for _ in range(2)]
    assert "per day" in answers[1].json()["Information"]


def test_faults_apply_to_their_symbols_the_configured_number_of_times(api: MarketApiServer):
    api.configure(faults=(Fault("http_503", symbols={"AAPL"}, times=2), Fault("truncated", functions={"OVERVIEW"})))
    statuses = [get(api, function="GLOBAL_QUOTE", symbol="AAPL").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert get(api, function="GLOBAL_QUOTE", symbol="KO").status_code == 200
    truncated = get(api, function="OVERVIEW", symbol="KO")
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)
    assert [r.fault for r in api.requests] == ["http_503", "http_503", None, None, "truncated"]


def test_ratio_faults_are_reproducible_for_the_same_request_order(api: MarketApiServer):
    def pattern() -> list[int]:
        api.configure(faults=(Fault("http_500", ratio=0.3),))
        return [get(api, function="GLOBAL_QUOTE", symbol="KO").status_code for _ in range(30)]

    first = pattern()
    assert first == pattern()
    assert 3 <= first.count(500) <= 18


def test_a_reset_drops_the_connection(api: MarketApiServer):
    api.configure(faults=(Fault("reset", times=1),))
    with pytest.raises(requests.ConnectionError):
        get(api, function="GLOBAL_QUOTE", symbol="KO")
    assert get(api, function="GLOBAL_QUOTE", symbol="KO").status_code == 200


def test_an_invalid_fault_is_refused_at_configuration():
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ratio"):
        Fault("http_500", ratio=2)


def test_intraday_quotes_move_within_the_session(model: MarketModel):
    cal = xcals.get_calendar("XNYS", start="2024-01-01")
    open_ = cal.session_open(pd.Timestamp("2024-05-24")).to_pydatetime()
    early = model.quote("AAPL", open_ + dt.timedelta(minutes=5))
    late = model.quote("AAPL", open_ + dt.timedelta(hours=6))
    assert early["07. latest trading day"] == late["07. latest trading day"] == "2024-05-24"
    assert early["05. price"] != late["05. price"]
    assert int(early["06. volume"]) < int(late["06. volume"])


@pytest.mark.parametrize("adjusted", [True, False])
@pytest.mark.parametrize("compact", [True, False])
def test_bulk_formatting_gives_the_same_text_as_the_per_bar_reference(
    model: MarketModel, adjusted: bool, compact: bool
):
    meta = {"2. Symbol": "KO"}
    for symbol in ("KO", "AAPL"):
        reference = render_series_reference(model, symbol, adjusted, compact, meta)
        assert model.daily_body(symbol, AS_OF, adjusted, compact, meta) == reference
        json.loads(reference)


def render_series_reference(model: MarketModel, symbol: str, adjusted: bool, compact: bool, meta: dict) -> bytes:
    from lakehouse.contracts.alpha_vantage import render_series

    return render_series(meta, model.daily_rows(symbol, AS_OF, adjusted, compact))


LISTED = dt.date(2019, 5, 25)  # a Saturday: the listing is the next session, Tuesday 28 May (27th: Memorial Day)


def full_body(url: str, symbol: str) -> bytes:
    params = {"function": "TIME_SERIES_DAILY_ADJUSTED", "symbol": symbol, "outputsize": "full", "apikey": "k"}
    return requests.get(url, params=params, timeout=30).content


def test_listed_from_gives_every_symbol_the_same_history_of_sessions():
    """A benchmark's data set: symbols x sessions bars, whatever each symbol's own listing."""
    cal = xcals.get_calendar("XNYS", start="2019-01-01")
    expected = [d.date().isoformat() for d in cal.sessions_in_range("2019-05-28", AS_OF.isoformat())]
    with running(MarketApiConfig(seed=3, as_of=AS_OF, listed_from=LISTED)) as srv:
        for symbol in ("AAPL", "KO", "ZZTOP"):
            dates = list(json.loads(full_body(srv.url, symbol))["Time Series (Daily)"])
            assert dates[::-1] == expected


def test_a_cached_series_is_served_from_the_cache_directory(tmp_path):
    """The cache is keyed by what makes the body, and a second server reads what the first wrote."""
    config = MarketApiConfig(seed=3, as_of=AS_OF, listed_from=LISTED, cache_dir=tmp_path)
    with running(config) as first:
        rendered = full_body(first.url, "KO")
    (cached,) = tmp_path.rglob("*.json")
    assert cached.read_bytes() == rendered
    assert cached.name == "TIME_SERIES_DAILY_ADJUSTED-full-KO.json"
    assert all(part in cached.parent.name for part in ("seed3", "listed-2019-05-25", f"asof-{AS_OF}"))
    with running(MarketApiConfig(seed=3, as_of=AS_OF, listed_from=LISTED)) as uncached:
        assert full_body(uncached.url, "KO") == rendered  # the cache changes nothing served
    cached.write_bytes(b'{"served": "from the cache"}')
    with running(config) as second:
        assert full_body(second.url, "KO") == b'{"served": "from the cache"}'
        second.configure(faults=(Fault("extra_fields"),))
        assert b"9. exchange" in full_body(second.url, "KO")  # a fault is never answered from the cache
    with running(dataclasses.replace(config, as_of=dt.date(2024, 5, 23))) as other_day:
        assert full_body(other_day.url, "KO") != b'{"served": "from the cache"}'
    overview = {"function": "OVERVIEW", "symbol": "KO", "apikey": "k"}
    with running(config) as third:
        assert requests.get(third.url, params=overview, timeout=10).json()["Symbol"] == "KO"
    (cached_overview,) = tmp_path.rglob("OVERVIEW-*-KO.json")
    assert json.loads(cached_overview.read_bytes())["Symbol"] == "KO"


def test_cached_splits_and_dividends_are_the_bodies_rendered_and_faults_bypass_the_cache(tmp_path):
    """SPLITS and DIVIDENDS need the whole series drawn again once it left the model's cache: kept
    like the other answers, keyed the same way, never answered from the cache when a fault applies."""
    config = MarketApiConfig(seed=3, as_of=AS_OF, listed_from=LISTED, cache_dir=tmp_path)
    with running(dataclasses.replace(config, cache_dir=None)) as uncached:
        expected = {f: get(uncached, function=f, symbol="KO").content for f in ("SPLITS", "DIVIDENDS")}
    with running(config) as first:
        assert {f: get(first, function=f, symbol="KO").content for f in expected} == expected
    for function, body in expected.items():
        (cached,) = tmp_path.rglob(f"{function}-events-KO.json")
        assert cached.read_bytes() == body
        cached.write_bytes(b'{"served": "from the cache"}')
    with running(config) as second:
        assert get(second, function="DIVIDENDS", symbol="KO").content == b'{"served": "from the cache"}'
        second.configure(faults=(Fault("extra_fields"),))
        assert all(e["currency"] == "USD" for e in get(second, function="DIVIDENDS", symbol="KO").json()["data"])


def test_small_answers_are_not_held_back_on_a_keep_alive_connection(api: MarketApiServer):
    """Headers and body are two writes: with Nagle's algorithm on, a small body waited for the
    client's delayed ACK of the headers (40 ms on Linux), so every OVERVIEW, SPLITS and DIVIDENDS
    call of an ingestion took 44 ms while a 430 KB history took 1.3 ms."""
    with requests.Session() as http:
        query = {"function": "OVERVIEW", "symbol": "KO", "apikey": "k"}
        http.get(api.url, params=query, timeout=10).raise_for_status()  # connect, render once
        seconds = []
        for _ in range(15):
            started = time.perf_counter()
            http.get(api.url, params=query, timeout=10).raise_for_status()
            seconds.append(time.perf_counter() - started)
    assert statistics.median(seconds) < 0.02, f"median {statistics.median(seconds) * 1000:.1f} ms a small answer"


def test_running_process_serves_the_same_bytes_as_the_in_process_server(tmp_path):
    """`python -m local.market_api` as its own process (the real API is remote) is the same server,
    data-set options included, and announces its loopback URL."""
    from local.market_api import running_process

    config = MarketApiConfig(seed=3, as_of=AS_OF, listed_from=LISTED, cache_dir=tmp_path)
    with running(dataclasses.replace(config, cache_dir=None)) as in_process:
        expected = full_body(in_process.url, "MSFT")
    with running_process(config) as server:
        assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/query") and server.pid > 0
        assert full_body(server.url, "MSFT") == expected
    assert [p.read_bytes() for p in tmp_path.rglob("*.json")] == [expected]
    with pytest.raises(ValueError, match="faults"), running_process(MarketApiConfig(faults=(Fault("http_500"),))):
        pass


def test_a_free_key_gets_the_premium_only_messages(api: MarketApiServer):
    api.configure(plan="free")
    adjusted = series(api, "AAPL", adjusted=True, outputsize="compact")
    assert "premium endpoint" in adjusted["Information"]
    full = series(api, "AAPL", adjusted=False, outputsize="full")
    refusal = "outputsize=full parameter value is a premium feature for the TIME_SERIES_DAILY endpoint"
    assert refusal in full["Information"]
    assert "Time Series (Daily)" in series(api, "AAPL", adjusted=False, outputsize="compact")
    assert [r.fault for r in api.requests] == ["premium_only", "premium_only", None]
    api.configure(plan="premium")
    assert "Time Series (Daily)" in series(api, "AAPL", adjusted=True, outputsize="full")


def test_more_requests_in_a_second_than_configured_get_the_burst_message(api: MarketApiServer):
    api.configure(burst_per_second=2)
    answers = [get(api, function="OVERVIEW", symbol="V").json() for _ in range(3)]
    assert "Symbol" in answers[0] and "Symbol" in answers[1]
    assert "(1 request per second)" in answers[2]["Information"]


def test_the_demo_key_serves_only_the_documentation_example(api: MarketApiServer):
    assert "demo purposes only" in get(api, function="OVERVIEW", symbol="V", apikey="demo").json()["Information"]
    assert get(api, function="OVERVIEW", symbol="IBM", apikey="demo").json()["Symbol"] == "IBM"


def test_quotes_are_served_as_entitled(api: MarketApiServer):
    close = series(api, "V", outputsize="compact")["Time Series (Daily)"]["2024-05-24"]["4. close"]
    end_of_day = get(api, function="GLOBAL_QUOTE", symbol="V").json()
    assert list(end_of_day) == ["Global Quote"] and end_of_day["Global Quote"]["05. price"] == close
    delayed = get(api, function="GLOBAL_QUOTE", symbol="V", entitlement="delayed").json()
    assert list(delayed) == ["Global Quote - DATA DELAYED BY 15 MINUTES"]
    quote = delayed["Global Quote - DATA DELAYED BY 15 MINUTES"]
    # 15 minutes before the 2024-05-24 close: an intraday price of that session, not its close
    assert quote["07. latest trading day"] == "2024-05-24" and quote["05. price"] != close
    realtime = get(api, function="GLOBAL_QUOTE", symbol="V", entitlement="realtime").json()
    assert list(realtime) == ["Global Quote"]
    api.configure(plan="premium")
    assert "Information" in get(api, function="GLOBAL_QUOTE", symbol="V", entitlement="realtime").json()


UNIVERSE = ("AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "JPM", "JNJ", "V", "PG",
            "XOM", "UNH", "HD", "KO", "PEP", "DIS", "INTC", "CSCO", "WMT", "BA")  # fmt: skip


def test_splits_and_dividends_are_the_events_of_the_adjusted_series(api: MarketApiServer):
    """SPLITS and DIVIDENDS name exactly the days whose bars carry a split coefficient or a dividend,
    with the same values, and the universe holds symbols with several of each and reverse splits."""
    several, reverse = [], []
    for symbol in UNIVERSE:
        bars = series(api, symbol)["Time Series (Daily)"]
        splits = get(api, function="SPLITS", symbol=symbol).json()
        dividends = get(api, function="DIVIDENDS", symbol=symbol).json()
        assert splits["symbol"] == dividends["symbol"] == symbol
        split_days = {e["effective_date"]: float(e["split_factor"]) for e in splits["data"]}
        paid = {e["ex_dividend_date"]: float(e["amount"]) for e in dividends["data"]
                if e["ex_dividend_date"] <= AS_OF.isoformat()}  # fmt: skip
        assert split_days == {d: float(b["8. split coefficient"]) for d, b in bars.items()
                              if float(b["8. split coefficient"]) != 1.0}  # fmt: skip
        assert paid == {d: float(b["7. dividend amount"]) for d, b in bars.items()
                        if float(b["7. dividend amount"]) > 0}  # fmt: skip
        # newest first, as Alpha Vantage lists them
        assert list(split_days) == sorted(split_days, reverse=True)
        for event in dividends["data"]:
            assert event["declaration_date"] <= AS_OF.isoformat()
            assert event["declaration_date"] < event["ex_dividend_date"] < event["record_date"] < event["payment_date"]
        if len(split_days) >= 2 and len(paid) >= 2:
            several.append(symbol)
        reverse += [symbol for f in split_days.values() if f < 1]
    assert several and reverse, (several, reverse)


def test_a_dividend_declared_before_its_ex_date_is_listed_before_it_is_paid(model: MarketModel):
    as_of = dt.date(2024, 5, 24)
    upcoming = [
        e for symbol in UNIVERSE for e in model.dividends(symbol, as_of) if e["ex_dividend_date"] > as_of.isoformat()
    ]
    assert upcoming and all(e["declaration_date"] <= as_of.isoformat() for e in upcoming)
    later = dt.date.fromisoformat(upcoming[0]["ex_dividend_date"])
    assert all(e["ex_dividend_date"] <= later.isoformat() for e in upcoming)


def splitting_recently(model: MarketModel, as_of: dt.date, count: int) -> list[str]:
    """`count` tickers (of SAAA, SAAB, ...) with a split in the latest 100 sessions up to `as_of`."""
    first = model.sessions[model.sessions.index(as_of) - 99].isoformat()
    names = ("S" + "".join(t) for t in itertools.product("ABCDEFGHIJKLMNOPQRSTUVWXYZ", repeat=3))
    found = (n for n in names if any(e["effective_date"] > first for e in model.splits(n, as_of)))
    return list(itertools.islice(found, count))


def test_adjusting_the_raw_series_by_the_events_gives_the_adjusted_series(api: MarketApiServer, model: MarketModel):
    """On a free key the adjusted series is not served: the raw series and the two event lists must
    rebuild it (CRSP convention, computed here from the served values)."""
    api.configure(plan="free")
    split_events = dividend_events = 0
    for symbol in ("XOM", "HD", "INTC", "KO", *splitting_recently(model, AS_OF, 4)):
        raw = series(api, symbol, adjusted=False, outputsize="compact")["Time Series (Daily)"]
        splits = {e["effective_date"]: float(e["split_factor"])
                  for e in get(api, function="SPLITS", symbol=symbol).json()["data"]}  # fmt: skip
        dividends = {e["ex_dividend_date"]: float(e["amount"])
                     for e in get(api, function="DIVIDENDS", symbol=symbol).json()["data"]}  # fmt: skip
        assert {r.fault for r in api.requests} == {None}
        api.configure(plan=None)
        served = series(api, symbol, outputsize="compact")["Time Series (Daily)"]
        api.configure(plan="free")
        days = sorted(raw)
        split_events += sum(d in splits for d in days[1:])
        dividend_events += sum(d in dividends for d in days[1:])
        factor = 1.0
        for later, day in zip(reversed(days), reversed(days[:-1]), strict=False):
            close = float(raw[day]["4. close"])
            factor *= (1 - dividends.get(later, 0.0) / close) / splits.get(later, 1.0)
            adjusted = close * factor
            assert adjusted == pytest.approx(float(served[day]["5. adjusted close"]), rel=2e-5, abs=0.0001), day
    assert split_events >= 4 and dividend_events >= 2  # events inside the 100 sessions were exercised


def test_corporate_actions_of_an_unknown_symbol_are_an_empty_answer(api: MarketApiServer):
    api.configure(unknown_symbols=frozenset({"ZZZZ"}))
    assert get(api, function="SPLITS", symbol="ZZZZ").json() == {}
    assert get(api, function="DIVIDENDS", symbol="ZZZZ").json() == {}
