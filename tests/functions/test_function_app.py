"""The Function app, called as the host calls it (app.get_functions(), real HttpRequest and
TimerRequest), against the synthetic market API over loopback HTTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from pathlib import Path

import exchange_calendars as xcals
import fastavro
import pandas as pd
import pytest
import requests

from local import function_host
from local.market_api import MarketApiServer
from tests.functions.conftest import SENTINEL_KEY, assert_raw_holds_only_data, payload_files

OLD_WINDOW = {"start_date": "2024-01-02", "end_date": "2024-01-31"}


def recent_window(sessions: int = 5) -> dict[str, str]:
    """The last few closed XNYS sessions, computed from exchange_calendars directly."""
    closed = closed_sessions(30)
    return {"start_date": closed[-sessions].date().isoformat(), "end_date": closed[-1].date().isoformat()}


def closed_sessions(days: int) -> list[pd.Timestamp]:
    cal = xcals.get_calendar("XNYS")
    now = pd.Timestamp.now(tz="UTC")
    today = now.tz_localize(None).normalize()
    return [s for s in cal.sessions_in_range(today - pd.Timedelta(days=days), today) if cal.session_close(s) <= now]


def post_ingest(body: dict) -> tuple[int, dict]:
    response = function_host.invoke_http("ingest", method="POST", body=body)
    return response.status_code, response.json()


def direct_body(api: MarketApiServer, **params: str) -> bytes:
    """What the server answers for a query, fetched independently of the client under test."""
    return requests.get(api.url, params={**params, "apikey": SENTINEL_KEY}, timeout=10).content


def test_app_indexes_the_three_functions_with_their_triggers():
    functions = function_host.functions()
    assert set(functions) == {"ingest", "ingest_daily", "poll_quotes"}
    http = functions["ingest"].get_bindings()[0].get_dict_repr()
    assert (http["type"], http["route"], http["authLevel"].value) == ("httpTrigger", "ingest", "function")
    assert [m.value for m in http["methods"]] == ["POST"]
    assert function_host.timer_schedules() == {
        "ingest_daily": "0 30 22 * * 1-5",
        "poll_quotes": "0 * 13-20 * * 1-5",
    }


def test_ingest_lands_the_bytes_the_api_returned_with_a_manifest(ingest_env: Path, api: MarketApiServer):
    window = recent_window()
    status, answer = post_ingest({"dataset": "daily_bars", "symbols": ["AAPL", "KO"], "run_id": "run-1", **window})
    assert status == 200, answer
    today = dt.datetime.now(dt.UTC).date().isoformat()
    expected_paths = [f"synthetic/daily_bars/ingest_date={today}/{s}/run-1.json" for s in ("AAPL", "KO")]
    assert [f["path"] for f in answer["files"]] == expected_paths
    assert answer["outputsize"] == "compact" and answer["files_written"] == 2 and answer["failures"] == []
    for path in expected_paths:
        symbol = path.split("/")[3]
        landed = (ingest_env / path).read_bytes()
        expected = direct_body(
            api, function="TIME_SERIES_DAILY_ADJUSTED", symbol=symbol, outputsize="compact", datatype="json"
        )
        assert landed == expected
    manifest = json.loads((ingest_env / answer["manifest"]).read_text())
    assert answer["manifest"] == f"_manifests/daily_bars/ingest_date={today}/run-1.json"
    for entry in manifest["files"]:
        body = (ingest_env / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(body).hexdigest()
        assert entry["bytes"] == len(body)
        assert entry["records"] == len(json.loads(body)["Time Series (Daily)"]) == 100
        assert entry["http_status"] == 200
        assert entry["request"] == {
            "function": "TIME_SERIES_DAILY_ADJUSTED", "symbol": entry["symbol"], "outputsize": "compact",
            "datatype": "json",
        }  # fmt: skip
    assert answer["records"] == 200
    assert answer["records_in_window"] == 10  # 5 sessions x 2 symbols


def test_an_old_window_fetches_full_history_and_later_chunks_reuse_it(ingest_env: Path, api: MarketApiServer):
    first = post_ingest({"dataset": "daily_bars", "symbols": ["MSFT"], "run_id": "bf-1", **OLD_WINDOW})[1]
    assert first["outputsize"] == "full" and first["files_written"] == 1
    assert first["files"][0]["records"] > 1000
    calls_after_first = len(api.requests)

    status, second = post_ingest(
        {
            "dataset": "daily_bars",
            "symbols": ["MSFT"],
            "run_id": "bf-2",
            "start_date": "2024-02-01",
            "end_date": "2024-02-29",
        }
    )
    assert status == 200
    assert len(api.requests) == calls_after_first  # nothing downloaded again
    assert second["files_written"] == 0 and second["files_reused"] == 1
    assert second["files"][0]["reused_from"] == first["files"][0]["path"]
    assert second["records_in_window"] == 20  # XNYS sessions in February 2024
    manifest = json.loads((ingest_env / second["manifest"]).read_text())
    assert manifest["files"][0]["status"] == "reused"
    assert manifest["files"][0]["reused_from"] == first["files"][0]["path"]
    assert len(payload_files(ingest_env)) == 1


def test_rerunning_a_run_id_does_not_duplicate_files_or_fetch_again(ingest_env: Path, api: MarketApiServer):
    body = {"dataset": "security_master", "symbols": ["AAPL", "KO"], "run_id": "same-run"}
    first = post_ingest(body)[1]
    requests_after_first = len(api.requests)
    status, second = post_ingest(body)
    assert status == 200
    assert len(api.requests) == requests_after_first
    assert [f["status"] for f in second["files"]] == ["existing", "existing"]
    assert [f["path"] for f in second["files"]] == [f["path"] for f in first["files"]]
    assert len(payload_files(ingest_env)) == 2


def test_security_master_lands_overview_records(ingest_env: Path, api: MarketApiServer):
    status, answer = post_ingest({"dataset": "security_master", "symbols": ["JPM"], "run_id": "sm-1"})
    assert status == 200
    landed = json.loads((ingest_env / answer["files"][0]["path"]).read_bytes())
    assert {"Symbol", "Name", "Exchange", "Currency", "Country", "Sector", "Industry"} <= set(landed)
    assert landed["Symbol"] == "JPM" and answer["records"] == 1


def test_invalid_symbols_fail_alone_and_never_reach_a_url(ingest_env: Path, api: MarketApiServer):
    status, answer = post_ingest(
        {"dataset": "daily_bars", "symbols": ["AAPL", "../etc", "aapl", "BRK.B"], "run_id": "v-1", **recent_window(2)}
    )
    assert status == 200
    assert sorted(f["symbol"] for f in answer["files"]) == ["AAPL", "BRK.B"]
    assert sorted((f["symbol"], f["kind"]) for f in answer["failures"]) == [
        ("../etc", "invalid_symbol"), ("aapl", "invalid_symbol"),
    ]  # fmt: skip
    assert sorted(r.symbol for r in api.requests) == ["AAPL", "BRK.B"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"dataset": "prices"}, "dataset"),
        ({"start_date": "2024-13-01"}, "start_date"),
        ({"start_date": "2024-02-01", "end_date": "2024-01-01"}, "end_date"),
        ({"symbols": []}, "symbols"),
        ({"symbols": ["lower"]}, "symbol"),
        ({"run_id": "../x"}, "run_id"),
        ({"window": "1y"}, "window"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(ingest_env: Path, api: MarketApiServer, body: dict, named: str):
    status, answer = post_ingest(body)
    assert status == 400
    assert named in answer["error"]
    assert api.requests == []


def test_body_that_is_not_json_is_refused(ingest_env: Path):
    response = function_host.invoke_http("ingest", body=b"{not json")
    assert response.status_code == 400


def test_the_call_fails_when_no_symbol_succeeded(ingest_env: Path, api: MarketApiServer):
    api.configure(unknown_symbols=frozenset({"NOPE", "GONE"}))
    status, answer = post_ingest(
        {"dataset": "daily_bars", "symbols": ["NOPE", "GONE"], "run_id": "f-1", **recent_window(1)}
    )
    assert status == 502
    assert [(f["symbol"], f["kind"]) for f in answer["failures"]] == [("GONE", "not_found"), ("NOPE", "not_found")]
    assert payload_files(ingest_env) == []
    manifest = json.loads((ingest_env / answer["manifest"]).read_text())
    assert manifest["files"] == [] and len(manifest["failures"]) == 2


def test_synthetic_provider_refuses_the_public_endpoint(ingest_env: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ALPHAVANTAGE_BASE_URL", "https://www.alphavantage.co/query")
    status, answer = post_ingest({"symbols": ["AAPL"]})
    assert status == 500 and "ALPHAVANTAGE_BASE_URL" in answer["error"]


def test_the_daily_load_has_one_scheduler_the_ingest_daily_timer_is_off_by_default(
    ingest_env: Path, api: MarketApiServer
):
    """tr_daily ingests then transforms at 22:30 UTC; the timer firing too would double quota and RAW."""
    function_host.run_timer("ingest_daily")
    assert api.requests == [] and payload_files(ingest_env) == []


def test_ingest_daily_lands_every_daily_dataset_of_the_latest_session(
    ingest_env: Path, api: MarketApiServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("LAKEHOUSE_INGEST_DAILY_ENABLED", "true")
    function_host.run_timer("ingest_daily")
    latest = closed_sessions(10)[-1]
    run_id = f"daily-{latest:%Y%m%d}"
    files = payload_files(ingest_env)
    landed = sorted(p.relative_to(ingest_env).parts[1] for p in files)
    assert landed == ["daily_bars"] * 3 + ["dividends"] * 3 + ["security_master"] * 3 + ["splits"] * 3
    assert {p.name for p in files} == {f"{run_id}.json"}
    bars = json.loads(next(p for p in files if "daily_bars" in p.parts).read_bytes())
    assert latest.date().isoformat() in bars["Time Series (Daily)"]
    assert {r.params.get("outputsize") for r in api.requests if r.function.startswith("TIME_SERIES")} == {"compact"}


def test_ingest_daily_fails_the_invocation_when_nothing_landed(
    ingest_env: Path, api: MarketApiServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("LAKEHOUSE_INGEST_DAILY_ENABLED", "true")
    api.configure(unknown_symbols=frozenset({"AAPL", "MSFT", "KO"}))
    with pytest.raises(RuntimeError, match="no symbol succeeded"):
        function_host.run_timer("ingest_daily")


# Event Hubs Capture's Avro schema, as documented by Microsoft (written out here, not imported).
CAPTURE_FIELDS = [
    ("SequenceNumber", "long"),
    ("Offset", "string"),
    ("EnqueuedTimeUtc", "string"),
    ("SystemProperties", {"type": "map", "values": ["long", "double", "string", "bytes"]}),
    ("Properties", {"type": "map", "values": ["long", "double", "string", "bytes", "null"]}),
    ("Body", ["null", "bytes"]),
]
CAPTURE_PATH = re.compile(
    r"^eventhubs/local/market-quotes/(\d+)/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{2})/(\d{2})\.avro$"
)


def test_poll_quotes_writes_capture_files_one_event_per_quote(ingest_env: Path, api: MarketApiServer):
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    function_host.run_timer("poll_quotes")
    files = sorted(ingest_env.rglob("*.avro"))
    assert files
    events = []
    for path in files:
        rel = path.relative_to(ingest_env).as_posix()
        match = CAPTURE_PATH.match(rel)
        assert match, rel
        stamp = dt.datetime(*map(int, match.groups()[1:]), tzinfo=dt.UTC)
        assert before <= stamp <= dt.datetime.now(dt.UTC)
        with open(path, "rb") as fh:
            reader = fastavro.reader(fh)
            schema = reader.writer_schema
            assert schema["name"] == "Microsoft.ServiceBus.Messaging.EventData"
            assert [(f["name"], f["type"]) for f in schema["fields"]] == CAPTURE_FIELDS
            for record in reader:
                events.append((int(match.group(1)), record))
    by_symbol = {}
    for partition, record in events:
        body = json.loads(record["Body"])
        assert record["SystemProperties"]["x-opt-partition-key"] == body["symbol"]
        assert set(body) == {"symbol", "fetched_at", "run_id", "entitlement", "quote"}
        assert body["entitlement"] == "delayed"  # the premium plan's quotes, 15 minutes late
        by_symbol[body["symbol"]] = (partition, body)
    assert sorted(by_symbol) == ["AAPL", "KO", "MSFT"]
    for symbol, (_, body) in by_symbol.items():
        served = json.loads(direct_body(api, function="GLOBAL_QUOTE", symbol=symbol, datatype="json"))["Global Quote"]
        assert list(body["quote"]) == list(served)  # the quote object as Alpha Vantage spells it
        assert body["quote"]["01. symbol"] == symbol
    # sequence numbers are 0..n-1 per partition
    per_partition: dict[int, list[int]] = {}
    for partition, record in events:
        per_partition.setdefault(partition, []).append(record["SequenceNumber"])
    assert all(sorted(seqs) == list(range(len(seqs))) for seqs in per_partition.values())


def test_the_api_key_never_reaches_raw_answers_or_logs(
    ingest_env: Path, api: MarketApiServer, caplog: pytest.LogCaptureFixture
):
    from local.market_api import Fault

    api.configure(
        api_key=SENTINEL_KEY,
        faults=(Fault("reset", symbols={"MSFT"}), Fault("http_500", symbols={"KO"}, times=1)),
    )
    caplog.set_level(logging.DEBUG)
    answers = [
        post_ingest({"dataset": "daily_bars", "symbols": ["AAPL", "MSFT", "KO"], "run_id": "k-1", **recent_window(2)}),
        post_ingest({"dataset": "security_master", "symbols": ["AAPL"], "run_id": "k-2"}),
    ]
    function_host.run_timer("poll_quotes")
    assert answers[0][1]["failures"][0]["kind"] == "connection"  # MSFT: the error text was sanitised
    assert any(r.key_present for r in api.requests)  # the key was sent...
    text = json.dumps(answers) + caplog.text
    for path in ingest_env.rglob("*"):
        if path.is_file():
            text += path.read_bytes().decode("latin-1")
    assert "apikey=***" in caplog.text  # urllib3 logged the request URLs at DEBUG, redacted
    assert SENTINEL_KEY not in text  # ...and appears nowhere we keep
    assert_raw_holds_only_data(ingest_env)


def test_security_master_of_the_same_day_is_reused_by_later_runs(ingest_env: Path, api: MarketApiServer):
    first = post_ingest({"dataset": "security_master", "symbols": ["KO"], "run_id": "sm-a"})[1]
    status, second = post_ingest({"dataset": "security_master", "symbols": ["KO"], "run_id": "sm-b"})
    assert status == 200
    assert second["files"][0]["reused_from"] == first["files"][0]["path"]
    assert sum(r.function == "OVERVIEW" for r in api.requests) == 1


@pytest.mark.parametrize(
    ("dataset", "function", "date_field"),
    [("splits", "SPLITS", "effective_date"), ("dividends", "DIVIDENDS", "ex_dividend_date")],
)
def test_corporate_actions_land_as_received_with_one_record_per_event(
    ingest_env: Path, api: MarketApiServer, dataset: str, function: str, date_field: str
):
    symbols = ["MSFT", "KO", "AAPL"]
    status, answer = post_ingest({"dataset": dataset, "symbols": symbols, "run_id": f"ca-{dataset}"})
    assert status == 200 and answer["failures"] == []
    events = {}
    for entry in answer["files"]:
        landed = (ingest_env / entry["path"]).read_bytes()
        assert landed == direct_body(api, function=function, symbol=entry["symbol"])
        assert entry["path"].startswith(f"synthetic/{dataset}/") and entry["status"] == "written"
        events[entry["symbol"]] = json.loads(landed)["data"]
        assert entry["records"] == len(events[entry["symbol"]])
    assert answer["records"] == sum(len(e) for e in events.values()) > 0
    assert all(date_field in e for e in events["MSFT"] + events["KO"])
    manifest = json.loads((ingest_env / answer["manifest"]).read_bytes())
    assert {(f["symbol"], f["records"], f["request"]["function"]) for f in manifest["files"]} == {
        (s, len(events[s]), function) for s in symbols
    }


def test_corporate_actions_of_the_same_day_are_reused_by_later_runs(ingest_env: Path, api: MarketApiServer):
    first = post_ingest({"dataset": "splits", "symbols": ["KO"], "run_id": "sp-a"})[1]
    status, second = post_ingest({"dataset": "splits", "symbols": ["KO"], "run_id": "sp-b"})
    assert status == 200
    assert second["files"][0]["reused_from"] == first["files"][0]["path"]
    assert second["files"][0]["records"] == first["files"][0]["records"]
    assert sum(r.function == "SPLITS" for r in api.requests) == 1


def test_corporate_actions_of_an_unknown_symbol_fail_that_symbol_alone(ingest_env: Path, api: MarketApiServer):
    api.configure(unknown_symbols=frozenset({"KO"}))
    status, answer = post_ingest({"dataset": "dividends", "symbols": ["KO", "MSFT"], "run_id": "dv-u"})
    assert status == 200
    assert [f["symbol"] for f in answer["files"]] == ["MSFT"]
    assert [(f["symbol"], f["kind"]) for f in answer["failures"]] == [("KO", "not_found")]
