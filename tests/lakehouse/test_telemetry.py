"""Telemetry: the same events reach Application Insights in Azure and the ops store locally.

Local tests write through the real OpenTelemetry SDK into a dedicated PostgreSQL database. The
Azure test configures the real ``azure-monitor-opentelemetry`` distro with a fake connection
string whose ingestion endpoint is a closed local port (Azure itself is the only thing mocked),
in a subprocess because the distro owns the process-wide OpenTelemetry providers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from lakehouse import telemetry
from lakehouse.alert_rules import by_name
from lakehouse.job_summary import JobSummary
from lakehouse.settings import load_settings
from tests.databases import migrated_database
from tests.local.ops_store_db import reset

ROOT = Path(__file__).resolve().parents[2]
FAKE_CONNECTION_STRING = (
    "InstrumentationKey=00000000-0000-4000-8000-000000000000;"
    "IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/"
)


@pytest.fixture(scope="module")
def ops_dsn(pg_dsn: str) -> Iterator[str]:
    with migrated_database(pg_dsn, "obs_telemetry") as dsn:
        yield dsn
        telemetry.shutdown()


@pytest.fixture
def local_telemetry(ops_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Telemetry configured for the ops store, on an empty table."""
    monkeypatch.delenv(telemetry.CONNECTION_STRING_ENV, raising=False)
    reset(ops_dsn)
    assert telemetry.configure(None, "test-notebooks", dsn=ops_dsn) == "ops_store"
    yield ops_dsn
    telemetry.shutdown()


def events(dsn: str, **where: str) -> list[dict]:
    clause = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM ops.telemetry_events WHERE {clause} ORDER BY id", where).fetchall()


def test_spans_metrics_and_events_all_carry_the_run_id(local_telemetry: str) -> None:
    """A notebook's span, the metrics and the DQ event recorded inside it are found by the ADF run id."""
    with telemetry.span("notebook.bronze_to_silver", run_id="obs-run-1", window="2024-01-02") as outer:
        telemetry.record("rows_read", 10, table="bronze.daily_bars")
        telemetry.record("rows_read", 5, table="bronze.daily_bars")
        telemetry.record("rows_written", 12, table="silver.daily_bars")
        with telemetry.span("silver.merge", table="silver.daily_bars"):
            telemetry.event("dq_result", table_name="silver.daily_bars", rule="prices_positive", passed=True)
    telemetry.flush()

    rows = events(local_telemetry, run_id="obs-run-1")
    spans = {r["name"]: r for r in rows if r["kind"] == "span"}
    assert set(spans) == {"notebook.bronze_to_silver", "silver.merge"}
    outer_id = f"{outer.get_span_context().span_id:016x}"
    assert spans["silver.merge"]["parent_span_id"] == outer_id
    assert spans["notebook.bronze_to_silver"]["service"] == "test-notebooks"
    assert spans["notebook.bronze_to_silver"]["attributes"]["window"] == "2024-01-02"
    assert spans["notebook.bronze_to_silver"]["duration_ms"] >= spans["silver.merge"]["duration_ms"] >= 0

    metrics = {(r["name"], r["attributes"]["table"]): r["value"] for r in rows if r["kind"] == "metric"}
    assert metrics == {("rows_read", "bronze.daily_bars"): 15.0, ("rows_written", "silver.daily_bars"): 12.0}

    (log,) = [r for r in rows if r["kind"] == "log"]
    assert log["name"] == "dq_result"
    assert log["attributes"] == {
        "run_id": "obs-run-1",
        "event": "dq_result",
        "table_name": "silver.daily_bars",
        "rule": "prices_positive",
        "passed": True,
    }
    assert log["trace_id"] == spans["silver.merge"]["trace_id"]
    assert log["span_id"] == spans["silver.merge"]["span_id"]
    assert events(local_telemetry) == rows, "nothing was recorded without the run id"


def test_a_failing_step_is_recorded_as_an_error_span_and_still_raises(local_telemetry: str) -> None:
    with pytest.raises(ZeroDivisionError), telemetry.span("notebook.silver_to_gold", run_id="obs-run-2"):
        _ = 1 / 0
    telemetry.flush()
    (row,) = events(local_telemetry, run_id="obs-run-2")
    assert (row["kind"], row["status"]) == ("span", "ERROR")
    assert "division by zero" in row["body"]


def test_job_summary_becomes_row_metrics_per_table(local_telemetry: str) -> None:
    """A job's summary maps to rows_read/written/quarantined per table; counters it does not keep are not recorded."""
    summary = JobSummary.model_validate({
        "job": "bronze_to_silver",
        "run_id": "obs-run-3",
        "start_date": "2024-03-05",
        "end_date": "2024-03-05",
        "tables": {
            "silver.daily_bars": {"rows_read": 100, "valid": 97, "rows_quarantined": 3, "inserted": 90, "revised": 2,
                                  "rows_written": 92},
            "silver.quotes": {"rows_read": 4, "valid": 4, "rows_quarantined": 0, "inserted": 4, "revised": 0,
                              "rows_written": 4},
            "gold.dim_date": {"rows_written": 1},
        },
        "seconds": 1.5,
    })  # fmt: skip
    telemetry.record_job_summary(summary)
    telemetry.flush()
    got = {
        (r["name"], r["attributes"].get("table")): r["value"]
        for r in events(local_telemetry, run_id="obs-run-3")
        if r["kind"] == "metric"
    }
    assert got == {
        ("rows_read", "silver.daily_bars"): 100.0,
        ("rows_written", "silver.daily_bars"): 92.0,
        ("rows_quarantined", "silver.daily_bars"): 3.0,
        ("rows_read", "silver.quotes"): 4.0,
        ("rows_written", "silver.quotes"): 4.0,
        ("rows_quarantined", "silver.quotes"): 0.0,
        ("rows_written", "gold.dim_date"): 1.0,
        ("duration_ms", None): 1500.0,
    }


def test_dq_results_become_events_and_a_failed_rule_count(local_telemetry: str) -> None:
    results = [
        {"table_name": "silver.daily_bars", "rule": "prices_positive", "severity": "quarantine", "passed": False,
         "failed_count": 2, "sample_keys": ["AAPL|2024-01-02"]},
        {"table_name": "silver.daily_bars", "rule": "keys_not_null", "severity": "quarantine", "passed": True,
         "failed_count": 0, "sample_keys": []},
    ]  # fmt: skip
    assert telemetry.record_dq_results(results, run_id="obs-run-4") == 2
    telemetry.flush()
    rows = events(local_telemetry, run_id="obs-run-4")
    logs = sorted((r["attributes"]["rule"], r["attributes"]["passed"], r["status"]) for r in rows if r["kind"] == "log")
    assert logs == [("keys_not_null", True, "INFO"), ("prices_positive", False, "WARNING")]
    assert [(r["name"], r["value"]) for r in rows if r["kind"] == "metric"] == [("dq_rules_failed", 1.0)]


def test_secret_attributes_are_masked_before_they_are_stored(local_telemetry: str) -> None:
    telemetry.event("api_call", run_id="obs-run-5", api_key="sk-live-123", symbol="AAPL", status=200)
    telemetry.flush()
    (row,) = events(local_telemetry, run_id="obs-run-5")
    assert row["attributes"]["api_key"] == "***"
    assert "sk-live-123" not in json.dumps(row, default=str)


def test_unknown_metrics_and_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown metric 'rows_writen'; known: rows_read, rows_written"):
        telemetry.record("rows_writen", 1)
    with pytest.raises(ValueError, match="counter; got negative value -3"):
        telemetry.record("rows_read", -3)


def test_without_a_dsn_or_connection_string_telemetry_is_a_no_op(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(telemetry.CONNECTION_STRING_ENV, raising=False)
    monkeypatch.delenv("LAKEHOUSE_PG_DSN", raising=False)
    try:
        assert telemetry.configure(load_settings(home=tmp_path), "cli") == "disabled"
        with telemetry.span("noop", run_id="obs-run-6"):
            telemetry.record("api_calls", 1)
            telemetry.event("retry", attempt=2)
    finally:
        telemetry.shutdown()


def test_a_malformed_connection_string_is_named_without_echoing_it() -> None:
    with pytest.raises(telemetry.TelemetryConfigurationError) as caught:
        telemetry.configure(None, "functions", connection_string="IngestionEndpoint=https://x/;secretpart")
    message = str(caught.value)
    assert message.startswith("APPLICATIONINSIGHTS_CONNECTION_STRING:")
    assert "secretpart" not in message
    with pytest.raises(telemetry.TelemetryConfigurationError, match="no InstrumentationKey"):
        telemetry.configure(None, "functions", connection_string="IngestionEndpoint=https://x/")


AZURE_PROBE = textwrap.dedent(
    """
    import json, os
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from lakehouse import telemetry
    from lakehouse.settings import load_settings

    mode = telemetry.configure(load_settings(), "functions")
    tracer_provider = trace.get_tracer_provider()
    span_exporters = [type(getattr(p, "span_exporter", p)).__name__
                      for p in tracer_provider._active_span_processor._span_processors]
    keys = [getattr(getattr(p, "span_exporter", None), "_instrumentation_key", None)
            for p in tracer_provider._active_span_processor._span_processors]
    readers = metrics.get_meter_provider()._metric_readers
    metric_exporters = [type(getattr(r, "_exporter", r)).__name__ for r in readers]
    log_processors = _logs.get_logger_provider()._multi_log_record_processor._log_record_processors
    log_exporters = [type(getattr(getattr(p, "_batch_processor", p), "_exporter", p)).__name__ for p in log_processors]
    memory, memory_logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    _logs.get_logger_provider().add_log_record_processor(SimpleLogRecordProcessor(memory_logs))
    with telemetry.span("ingest.daily_bars", run_id="adf-run-42", symbol="AAPL"):
        with telemetry.span("api.call"):
            telemetry.event("retry", attempt=2)
    spans = {s.name: dict(s.attributes) for s in memory.get_finished_spans()}
    logs = [dict(r.log_record.attributes) for r in memory_logs.get_finished_logs()]
    telemetry.record_dq_results([{"table_name": "silver.daily_bars", "rule": "no_duplicate_files",
                                  "severity": "fail", "passed": False, "failed_count": 7}], run_id="adf-run-42")
    from azure.monitor.opentelemetry.exporter.export.logs._exporter import _convert_log_to_envelope
    envelope = _convert_log_to_envelope(memory_logs.get_finished_logs()[-1])
    app_trace = {"base_type": envelope.data.base_type, "properties": dict(envelope.data.base_data.properties)}
    print(json.dumps({"mode": mode, "span_exporters": span_exporters, "keys": keys,
                      "metric_exporters": metric_exporters, "log_exporters": log_exporters,
                      "service": tracer_provider.resource.attributes.get("service.name"), "spans": spans,
                      "logs": logs, "app_trace": app_trace}))
    os._exit(0)  # skip the exit-time export to the fake endpoint
    """
)


@pytest.fixture(scope="module")
def azure_probe(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What a process configured with a (fake) Application Insights connection string set up and sent."""
    tmp_path = tmp_path_factory.mktemp("azure-probe")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "APPLICATIONINSIGHTS_", "OTEL_"))}
    env |= {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": FAKE_CONNECTION_STRING,
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # no calls home to Microsoft:
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",  # neither statsbeat nor OneSettings
        "LAKEHOUSE_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(tmp_path),  # the exporter's offline storage
    }
    done = subprocess.run(
        [sys.executable, "-c", AZURE_PROBE], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_application_insights_exporters_are_configured_when_the_connection_string_is_set(azure_probe: dict) -> None:
    """With APPLICATIONINSIGHTS_CONNECTION_STRING set, spans, metrics and logs go to Azure Monitor."""
    probe = azure_probe
    assert probe["mode"] == "azure_monitor"
    assert "AzureMonitorTraceExporter" in probe["span_exporters"]
    assert "00000000-0000-4000-8000-000000000000" in probe["keys"]
    assert "AzureMonitorMetricExporter" in probe["metric_exporters"]
    assert "AzureMonitorLogExporter" in probe["log_exporters"]
    assert probe["service"] == "functions"
    # the Application Insights sampler stamps its rate: 100 means every span is kept
    assert probe["spans"]["ingest.daily_bars"] == {"run_id": "adf-run-42", "symbol": "AAPL", "_MS.sampleRate": 100.0}
    assert probe["spans"]["api.call"]["run_id"] == "adf-run-42", "a nested span inherits the run id"
    assert probe["logs"] == [{"run_id": "adf-run-42", "event": "retry", "attempt": 2}]


def test_a_failed_dq_rule_reaches_app_insights_as_the_trace_the_dq_alert_queries(azure_probe: dict) -> None:
    """The data-quality-failures rule filters AppTraces on Properties event, severity and passed."""
    query = by_name("data-quality-failures").azure.query
    trace = azure_probe["app_trace"]
    assert trace["base_type"] == "MessageData", "log records without an event marker land in AppTraces"
    props = trace["properties"]
    assert (props["event"], props["severity"], props["run_id"]) == ("dq_result", "fail", "adf-run-42")
    assert "Properties['event']) == 'dq_result'" in query and "Properties['severity']) == 'fail'" in query
    assert props["passed"] == "False", "the exporter stringifies Python booleans"
    assert "tolower(tostring(Properties['passed'])) == 'false'" in query, "so the rule must compare case-blind"


def test_the_mart_load_reports_the_latest_trade_date_the_freshness_alert_reads(local_telemetry: str) -> None:
    """Azure Monitor's mart-data-stale rule reads this event: without it the rule could only ever fire."""
    from lakehouse.alert_rules import MART_FRESHNESS_EVENT, MART_FRESHNESS_TABLE
    from spark_jobs import serving

    with psycopg.connect(local_telemetry, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {MART_FRESHNESS_TABLE}")
        for day in ("2024-03-04", "2024-03-06"):
            conn.execute(
                f"INSERT INTO {MART_FRESHNESS_TABLE} (symbol, trade_date, open, high, low, close, adj_close, volume,"
                " load_id, schema_version) VALUES ('AAPL', %s, 1, 1, 1, 1, 1, 1, 'l', '1')",
                (day,),
            )
    serving._report_freshness(local_telemetry, "obs-run-fresh", attempts=1)
    telemetry.flush()
    (row,) = [r for r in events(local_telemetry, run_id="obs-run-fresh") if r["name"] == MART_FRESHNESS_EVENT]
    assert row["attributes"]["table"] == MART_FRESHNESS_TABLE
    assert row["attributes"]["latest_trade_date"] == "2024-03-06"
