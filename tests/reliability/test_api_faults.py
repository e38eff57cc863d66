"""Market-API faults end to end: the real Function app against the synthetic API with faults on,
then the lake jobs and the mart load, then reconciliation.

Outcome asserted for every case: after the call ADF makes (with its activity retries when the call
fails), every symbol is either landed or reported failed with a reason of an expected kind; RAW holds
no error or throttle body as data; a rerun of the same run id once the API is healthy lands exactly
the missing symbols (permanent failures stay failed); and RAW = BRONZE = SILVER (+ QUARANTINE),
GOLD = MART for the window, with nothing lost or duplicated. The unit-level outcome of each fault
kind is pinned in tests/functions/test_faults.py; this suite measures storms of them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse.lake import Lake
from lakehouse.settings import load_settings
from local import function_host
from local.market_api import Fault, MarketApiConfig, MarketApiServer, running
from spark_jobs import jobs, reconcile, serving
from spark_jobs.tables import Tables, contract
from tests.databases import migrated_database

pytestmark = pytest.mark.reliability

KEY = "FAULTS-SENTINEL-KEY-5d2e"
SYMBOLS = ("AAPL", "MSFT", "KO", "JPM", "XOM", "PG", "V", "NVDA")
ADF_ACTIVITY_RETRIES = 2  # pl_ingest_market_data: the ingest activity's policy.retry
ERROR_KEYS = {"Error Message", "Note", "Information"}


@dataclass(frozen=True)
class ApiFault:
    """One storm: how the API misbehaves and which failure kinds a symbol may end with."""

    id: str
    title: str
    expected: str
    config: dict
    kinds: frozenset[str]
    permanent: dict[str, str] = field(default_factory=dict)  # symbol -> kind that a rerun cannot fix
    still: tuple[Fault, ...] = ()  # faults the API keeps answering with on the rerun


CASES = (
    ApiFault("429-storm", "HTTP 429 on 60% of requests", "retried with backoff; leftovers reported 'throttled'",
             {"faults": (Fault("http_429", ratio=0.6),)}, frozenset({"throttled"})),
    ApiFault("5xx-40", "HTTP 500/503 on ~40% of requests", "retried; leftovers reported 'server_error'",
             {"faults": (Fault("http_500", ratio=0.2), Fault("http_503", ratio=0.25))}, frozenset({"server_error"})),
    ApiFault("5xx-outage", "HTTP 503 on every request (an outage)",
             "the call answers 503, ADF retries it twice, every symbol reported 'server_error'; landed on rerun",
             {"faults": (Fault("http_503"),)}, frozenset({"server_error"})),
    ApiFault("timeouts", "30% of answers slower than the client timeout", "retried; leftovers reported 'timeout'",
             {"faults": (Fault("timeout", ratio=0.3, delay=0.6),)}, frozenset({"timeout"})),
    ApiFault("truncated", "40% of answers truncated JSON", "retried; leftovers reported 'truncated'",
             {"faults": (Fault("truncated", ratio=0.4),)}, frozenset({"truncated"})),
    ApiFault("http-200-errors", "HTTP-200 'Error Message' for KO, 'Note' throttling on 40%",
             "KO failed 'not_found' without retries; throttled ones retried; no body lands as data",
             {"faults": (Fault("error_message", symbols=frozenset({"KO"})), Fault("note", ratio=0.4))},
             frozenset({"not_found", "throttled"}), {"KO": "not_found"},
             (Fault("error_message", symbols=frozenset({"KO"})),)),
    ApiFault("quota-mid-run", "daily quota of 5 calls runs out mid-run ('Information')",
             "first 5 landed; the rest reported 'quota_exhausted' without further requests; landed the next day",
             {"calls_per_day": 5}, frozenset({"quota_exhausted"})),
)  # fmt: skip


@pytest.fixture(scope="module")
def market_api() -> Iterator[MarketApiServer]:
    with running(MarketApiConfig(seed=23, api_key=KEY)) as server:
        yield server


@pytest.fixture
def api_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, market_api: MarketApiServer, endpoints) -> Path:
    """The Function app's environment on a fresh lake: one symbol at a time (a reproducible request
    order, so the seeded faults hit the same requests every run), 4 attempts, millisecond backoffs."""
    market_api.configure(faults=(), calls_per_minute=None, calls_per_day=None, unknown_symbols=frozenset())
    home = tmp_path / "home"
    env = {
        "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_ENVIRONMENT": "local", "LAKEHOUSE_PROVIDER": "synthetic",
        "ALPHAVANTAGE_BASE_URL": market_api.url, "ALPHAVANTAGE_API_KEY": KEY, "LAKEHOUSE_SYMBOLS": ",".join(SYMBOLS),
        "LAKEHOUSE_INGEST_CONCURRENCY": "1", "LAKEHOUSE_INGEST_TIMEOUT_SECONDS": "0.3",
        "LAKEHOUSE_INGEST_RETRY_ATTEMPTS": "4", "LAKEHOUSE_INGEST_BACKOFF_INITIAL_SECONDS": "0.01",
        "LAKEHOUSE_INGEST_BACKOFF_MAX_SECONDS": "0.05", "LAKEHOUSE_INGEST_BACKOFF_JITTER_SECONDS": "0.01",
        "LAKEHOUSE_SPARK_REMOTE": endpoints.spark_remote,
    }  # fmt: skip
    for name in ("LAKEHOUSE_LAKE_ROOT", "LAKEHOUSE_PG_DSN", "LAKEHOUSE_INGEST_CALLS_PER_MINUTE",
                 "LAKEHOUSE_INGEST_CALLS_PER_DAY", "LAKEHOUSE_INGEST_DEADLINE_SECONDS"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return home


def call_as_adf(run_id: str) -> tuple[list[int], dict]:
    """POST /api/ingest as the ADF activity does: retried while the call fails (non-2xx)."""
    body = {"dataset": "daily_bars", "symbols": list(SYMBOLS), "run_id": run_id}
    statuses = []
    for _ in range(1 + ADF_ACTIVITY_RETRIES):
        response = function_host.invoke_http("ingest", body=body)
        statuses.append(response.status_code)
        if response.ok:
            break
    return statuses, response.json()


def raw_payloads(raw: Path) -> list[Path]:
    return sorted(p for p in raw.rglob("*.json") if p.relative_to(raw).parts[0] not in {"_manifests", "eventhubs"})


def assert_raw_holds_only_data(raw: Path) -> None:
    for path in raw_payloads(raw):
        data = json.loads(path.read_bytes())
        assert not ERROR_KEYS & set(data) and "Time Series (Daily)" in data, path
    assert not list(raw.rglob("*.tmp")), "temporary files left behind"
    for path in raw.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"API key in {path}"


def run_pipeline(spark_, pg_dsn: str) -> reconcile.Reconciliation:
    """raw_to_bronze -> bronze_to_silver -> silver_to_gold -> the daily_prices mart, then reconcile."""
    settings = load_settings()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    jobs.run_raw_to_bronze(spark_, settings, today, today, "faults-1")
    jobs.run_bronze_to_silver(spark_, settings, today, today, "faults-1")
    bars = Tables(spark_, Lake.from_settings(settings)).read(contract("silver", "daily_bars"))
    span = bars.agg(F.min("trade_date").alias("lo"), F.max("trade_date").alias("hi")).first()
    jobs.run_silver_to_gold(spark_, settings, span.lo, span.hi, "faults-1")
    with migrated_database(pg_dsn, "faults") as dsn:
        window = serving.DateWindow.parse(span.lo, span.hi)
        serving.load(spark_, Lake.from_settings(settings), dsn, window=window, load_id="faults-1",
                     tables=["daily_prices"])  # fmt: skip
        return reconcile.reconcile(spark_, settings, today, today, pg_dsn=dsn)


@pytest.mark.parametrize("fault", CASES, ids=lambda f: f.id)
def test_api_fault_storm(api_env: Path, market_api: MarketApiServer, spark, pg_dsn: str, case, fault: ApiFault):
    c = case("api fault", fault.title, expected=fault.expected)
    raw = api_env / "lake" / "raw"
    market_api.configure(**fault.config)
    statuses, answer = call_as_adf("storm-1")
    requests = list(market_api.requests)

    landed = {f["symbol"] for f in answer["files"]}
    failed = {f["symbol"]: f for f in answer["failures"]}
    assert landed | set(failed) == set(SYMBOLS) and not landed & set(failed)
    for failure in failed.values():
        assert failure["kind"] in fault.kinds and len(failure["reason"]) > 20, failure
    assert statuses[-1] == (200 if landed else 503), "the call fails only when no symbol landed"
    assert len(statuses) == (1 if landed else 1 + ADF_ACTIVITY_RETRIES), "ADF retries a failed call only"
    for symbol, kind in fault.permanent.items():
        assert failed[symbol]["kind"] == kind and failed[symbol]["retryable"] is False
        assert sum(r.symbol == symbol for r in requests) == 1, "a permanent error is not retried"
    if "calls_per_day" in fault.config:
        assert len(landed) == fault.config["calls_per_day"]
        assert len(requests) == fault.config["calls_per_day"] + 1, "the exhausted quota is asked once"
    assert_raw_holds_only_data(raw)
    per_symbol = Counter(r.symbol for r in requests)
    injected = Counter(r.fault for r in requests if r.fault)

    market_api.configure(faults=fault.still, calls_per_day=None)  # the API recovered (or the next day's quota)
    _, rerun = call_as_adf("storm-1")
    statuses_rerun = {f["symbol"]: f["status"] for f in rerun["files"]}
    assert {s for s, st in statuses_rerun.items() if st == "existing"} == landed
    assert {s for s, st in statuses_rerun.items() if st == "written"} == set(failed) - set(fault.permanent)
    assert {f["symbol"]: f["kind"] for f in rerun["failures"]} == fault.permanent
    assert {r.symbol for r in market_api.requests} == set(failed), "the rerun asks only for the missing symbols"
    assert_raw_holds_only_data(raw)

    manifest = json.loads((raw / rerun["manifest"]).read_text())
    manifest_records = sum(f["records"] for f in manifest["files"])
    c.observe(
        f"first call HTTP {statuses}: {len(landed)} landed, {len(failed)} failed "
        f"({dict(Counter(f['kind'] for f in failed.values()))}); rerun landed {len(failed) - len(fault.permanent)}, "
        f"{len(fault.permanent)} permanent",
        requests=len(requests), retries=len(requests) - len(per_symbol), faults_injected=sum(injected.values()),
        symbols_ok=len(landed), symbols_failed=len(failed),
        symbols_final=len(SYMBOLS) - len(fault.permanent),
    )  # fmt: skip
    counts = run_pipeline(spark, pg_dsn)
    assert counts.raw_records == counts.bronze_rows == manifest_records
    assert counts.silver_rows == counts.bronze_rows and counts.quarantine_rows == 0
    assert counts.gold_rows == counts.mart_rows == counts.details["silver_keys"]
    c.reconcile(counts)
