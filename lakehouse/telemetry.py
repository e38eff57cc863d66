"""Telemetry of every step (spans, metrics, events), through OpenTelemetry.

The Function app and the notebooks call four things: :func:`configure` once, :func:`span` around a
step, :func:`record` for a number (rows read, API calls, ...), :func:`event` for a structured fact
(a DQ outcome, a retry). Everything carries the ADF run id (``run_id``), set explicitly or inherited
from the enclosing span.

Where the events go is decided once, by :func:`configure`:

- ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set (Azure): ``configure_azure_monitor`` from the
  ``azure-monitor-opentelemetry`` distro; spans become requests/dependencies, events AppTraces with
  their attributes as ``Properties``, metrics customMetrics.
- otherwise, with a PostgreSQL DSN (local): OpenTelemetry SDK providers whose exporters write every
  span, log record and metric data point to ``ops.telemetry_events`` (migration
  ``spark_jobs/sql/020_ops_telemetry.sql``), so the local ops store holds what Azure would.
- neither: the OpenTelemetry API's no-op implementations; calls cost almost nothing.

Local providers are private to this module (not the OpenTelemetry globals), so a process can be
re-configured, e.g. by tests; Azure Monitor owns the globals and is configured once per process.
"""

from __future__ import annotations

import atexit
import contextvars
import datetime as dt
import functools
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.trace import Span

from lakehouse.ops_store import TELEMETRY_EVENTS

if TYPE_CHECKING:
    from lakehouse.job_summary import JobSummary
    from lakehouse.settings import Settings

_log = logging.getLogger(__name__)

Mode = Literal["azure_monitor", "ops_store", "disabled"]
MODES: tuple[str, ...] = get_args(Mode)
CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
SCOPE = "lakehouse"
RUN_ID = "run_id"


@dataclass(frozen=True)
class MetricSpec:
    """One metric the platform records: an OpenTelemetry counter or histogram."""

    kind: Literal["counter", "histogram"]
    unit: str
    description: str


# The metrics of the platform, as data. ``record`` refuses other names, so a typo cannot create a
# metric no dashboard or alert looks at.
METRICS: dict[str, MetricSpec] = {
    "rows_read": MetricSpec("counter", "{row}", "Rows a step read from its input."),
    "rows_written": MetricSpec("counter", "{row}", "Rows a step inserted or changed in its output."),
    "rows_quarantined": MetricSpec("counter", "{row}", "Rows a step sent to quarantine."),
    "dq_rules_failed": MetricSpec("counter", "{rule}", "Data-quality rules that did not pass."),
    "api_calls": MetricSpec("counter", "{call}", "Calls to the market-data API."),
    "retries": MetricSpec("counter", "{retry}", "Retried attempts (API calls, activities)."),
    "files_written": MetricSpec("counter", "{file}", "Files landed in the lake."),
    "duration_ms": MetricSpec("histogram", "ms", "Duration of a step."),
}

# Attribute names whose values must never leave the process (masked, not dropped, so the
# attribute's presence is still visible).
_SECRET_KEY = re.compile(r"(api_?key|apikey|password|secret|token|connection_?string|credential)", re.I)
_MASK = "***"

_run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("lakehouse_run_id", default=None)


class TelemetryConfigurationError(ValueError):
    """Telemetry cannot be configured as asked; the message names the setting."""


@dataclass
class _Runtime:
    mode: Mode
    service: str
    key: tuple
    tracer: trace.Tracer
    meter: metrics.Meter
    logger: _logs.Logger
    instruments: dict[str, Any]
    providers: tuple[Any, ...]


_runtime: _Runtime | None = None
_azure_configured_key: tuple | None = None
_atexit_registered = False


# --------------------------------------------------------------------------------- configuration


def configure(
    settings: Settings | None = None,
    service_name: str = "lakehouse",
    *,
    dsn: str | None = None,
    connection_string: str | None = None,
    export_interval_s: float = 30.0,
) -> Mode:
    """Set where telemetry goes for this process; calling again with the same target is a no-op.

    Args:
        settings: the platform settings (default read from the environment for the Azure target
            only); its ``pg_dsn`` is the local ops store, its ``applicationinsights_connection_string``
            the Azure target.
        service_name: ``service.name`` of the emitter (``functions``, ``notebooks``, ``cli``).
        dsn: the ops store DSN, overriding ``settings.pg_dsn`` (the local runner knows it).
        connection_string: Application Insights connection string, overriding settings and the
            ``APPLICATIONINSIGHTS_CONNECTION_STRING`` environment variable.
        export_interval_s: how often local metrics are written (spans and logs are batched;
            everything is also written by :func:`flush`, at the end of an outermost span, and at exit).

    Returns:
        The mode chosen: ``azure_monitor``, ``ops_store`` or ``disabled``.

    Raises:
        TelemetryConfigurationError: the connection string is not an Application Insights one.
    """
    global _runtime
    conn = connection_string or _connection_string(settings)
    if conn:
        _check_connection_string(conn)
        key: tuple = ("azure_monitor", service_name, conn)
    else:
        local_dsn = dsn or _settings_dsn(settings)
        key = ("ops_store", service_name, local_dsn) if local_dsn else ("disabled", service_name)
    if _runtime is not None and _runtime.key == key:
        return _runtime.mode
    shutdown()
    if key[0] == "azure_monitor":
        _runtime = _configure_azure(service_name, conn, key)
    elif key[0] == "ops_store":
        _runtime = _configure_ops_store(service_name, key[2], key, export_interval_s)
    else:
        _runtime = _configure_disabled(service_name, key)
    _register_atexit()
    return _runtime.mode


def mode() -> Mode:
    """Where telemetry currently goes (``disabled`` before :func:`configure`)."""
    return _runtime.mode if _runtime is not None else "disabled"


def _connection_string(settings: Settings | None) -> str | None:
    if settings is None:
        from lakehouse.settings import load_settings

        settings = load_settings()
    secret = settings.applicationinsights_connection_string
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None


def _settings_dsn(settings: Settings | None) -> str | None:
    value = getattr(settings, "pg_dsn", None) if settings is not None else None
    return value.get_secret_value() if value is not None else None


def _check_connection_string(conn: str) -> None:
    """An Application Insights connection string: ``Key=Value`` pairs with an InstrumentationKey."""
    parts: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in conn.split(";"))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise TelemetryConfigurationError(
                f"{CONNECTION_STRING_ENV}: expected Key=Value pairs separated by ';' (a part has no value)"
            )
        parts[name.strip().lower()] = value.strip()
    if "instrumentationkey" not in parts:
        raise TelemetryConfigurationError(f"{CONNECTION_STRING_ENV}: no InstrumentationKey in the connection string")


def _resource(service_name: str):
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": service_name, "service.namespace": SCOPE})


def _instruments(meter: metrics.Meter) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for name, spec in METRICS.items():
        if spec.kind == "counter":
            made[name] = meter.create_counter(name, unit=spec.unit, description=spec.description)
        else:
            made[name] = meter.create_histogram(name, unit=spec.unit, description=spec.description)
    return made


def _configure_azure(service_name: str, conn: str, key: tuple) -> _Runtime:
    global _azure_configured_key
    from azure.monitor.opentelemetry import configure_azure_monitor

    if _azure_configured_key is None:
        # Owns the OpenTelemetry globals; the distro allows one configuration per process.
        configure_azure_monitor(
            connection_string=conn,
            resource=_resource(service_name),
            logger_name=SCOPE,  # Python loggers under "lakehouse" also go to AppTraces
            # Every span of a run is kept: the distro's default rate-limited sampler (5 traces/s)
            # drops spans of short bursts such as a notebook's steps. OTEL_TRACES_SAMPLER overrides.
            sampling_ratio=1.0,
        )
        _azure_configured_key = key
    elif _azure_configured_key != key:
        _log.warning("Azure Monitor is already configured in this process; keeping the first configuration")
    # The distro owns the global providers (and flushes them at exit), so the runtime keeps none.
    providers = (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider())
    return _assemble("azure_monitor", service_name, key, *providers, owned=False)


def _configure_ops_store(service_name: str, dsn: str, key: tuple, export_interval_s: float) -> _Runtime:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = _resource(service_name)
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(BatchSpanProcessor(_OpsStoreSpanExporter(dsn)))
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(_OpsStoreLogExporter(dsn)))
    # Delta temporality: each export holds what was recorded since the last one, so rows add up.
    exporter = _OpsStoreMetricExporter(
        dsn,
        preferred_temporality={Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=export_interval_s * 1000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    return _assemble("ops_store", service_name, key, tracer_provider, meter_provider, logger_provider, owned=True)


def _configure_disabled(service_name: str, key: tuple) -> _Runtime:
    providers = (trace.NoOpTracerProvider(), metrics.NoOpMeterProvider(), _logs.NoOpLoggerProvider())
    return _assemble("disabled", service_name, key, *providers, owned=False)


def _assemble(
    mode: Mode,
    service_name: str,
    key: tuple,
    tracer_provider: Any,
    meter_provider: Any,
    logger_provider: Any,
    *,
    owned: bool,
) -> _Runtime:
    """Every mode hands out the same tracer, meter, logger and instruments, named by SCOPE.

    ``owned``: the providers were made here, so flush and shutdown must reach them (traces, then
    logs, then metrics); the others belong to the Azure distro or do nothing.
    """
    meter = meter_provider.get_meter(SCOPE)
    return _Runtime(
        mode=mode,
        service=service_name,
        key=key,
        tracer=tracer_provider.get_tracer(SCOPE),
        meter=meter,
        logger=logger_provider.get_logger(SCOPE),
        instruments=_instruments(meter),
        providers=(tracer_provider, logger_provider, meter_provider) if owned else (),
    )


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(shutdown)
        _atexit_registered = True


def flush(timeout_ms: int = 10_000) -> None:
    """Write everything buffered now (local: to the ops store)."""
    if _runtime is None:
        return
    providers = _runtime.providers or (
        trace.get_tracer_provider(),
        _logs.get_logger_provider(),
        metrics.get_meter_provider(),
    )
    for provider in providers:
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            try:
                force_flush(timeout_ms)
            except Exception:  # telemetry never breaks the step it observes
                _log.warning("telemetry flush failed", exc_info=True)


def shutdown() -> None:
    """Flush and stop the local providers; later calls go to the no-op API until :func:`configure`."""
    global _runtime
    current, _runtime = _runtime, None
    if current is None:
        return
    for provider in current.providers:
        try:
            provider.shutdown()
        except Exception:
            _log.warning("telemetry shutdown failed", exc_info=True)


# --------------------------------------------------------------------------------- emitting


def current_run_id() -> str | None:
    """The run id of the innermost enclosing :func:`span` that had one."""
    return _run_id_var.get()


@contextmanager
def span(name: str, run_id: str | None = None, **attrs: Any) -> Iterator[Span]:
    """A span around one step; exceptions are recorded on it (status ERROR) and re-raised.

    Args:
        name: what the step is, e.g. ``notebook.bronze_to_silver`` or ``ingest.daily_bars``.
        run_id: the ADF run id; default: the enclosing span's.
        **attrs: attributes (strings, numbers, booleans; other values are stringified).
    """
    run_id = run_id or current_run_id()
    token = _run_id_var.set(run_id)
    outermost = not trace.get_current_span().get_span_context().is_valid
    try:
        with _tracer().start_as_current_span(
            name, attributes=attributes(run_id, attrs), record_exception=True, set_status_on_exception=True
        ) as current:
            yield current
    finally:
        _run_id_var.reset(token)
        if outermost and _runtime is not None and _runtime.mode != "disabled":
            # A job cluster or a Function host may stop right after the step: write now.
            flush()


def record(metric: str, value: float, run_id: str | None = None, **attrs: Any) -> None:
    """Add ``value`` to a counter of :data:`METRICS`, or record it on a histogram.

    Raises:
        ValueError: unknown metric name, or a negative value for a counter.
    """
    spec = METRICS.get(metric)
    if spec is None:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if spec.kind == "counter" and value < 0:
        raise ValueError(f"metric {metric!r} is a counter; got negative value {value}")
    instrument = _instrument(metric)
    attributes_ = attributes(run_id or current_run_id(), attrs)
    if spec.kind == "counter":
        instrument.add(value, attributes_)
    else:
        instrument.record(value, attributes_)


_SEVERITIES: dict[str, SeverityNumber] = {
    "DEBUG": SeverityNumber.DEBUG,
    "INFO": SeverityNumber.INFO,
    "WARNING": SeverityNumber.WARN,
    "ERROR": SeverityNumber.ERROR,
}


def event(name: str, run_id: str | None = None, message: str | None = None, level: str = "INFO", **attrs: Any) -> None:
    """A structured log record; its attribute ``event`` is ``name`` (AppTraces ``Properties.event``).

    Args:
        name: the kind of fact, e.g. ``dq_result``, ``api_call``, ``retry``.
        run_id: the ADF run id; default: the enclosing span's.
        message: human-readable text (default: the name).
        level: DEBUG, INFO, WARNING or ERROR (the log record's severity).
    """
    number = _SEVERITIES.get(level.upper())
    if number is None:
        raise ValueError(f"unknown level {level!r}; known: {', '.join(_SEVERITIES)}")
    attrs = {"event": name, **attrs}
    _logger().emit(
        body=message or name,
        severity_number=number,
        severity_text=level.upper(),
        attributes=attributes(run_id or current_run_id(), attrs),
    )


def record_dq_results(results: Iterable[Any], run_id: str | None = None, **attrs: Any) -> int:
    """One ``dq_result`` event per rule outcome, and ``dq_rules_failed`` for those that failed.

    Accepts ``spark_jobs.quality.RuleResult`` objects or mappings with the ``ops.dq_results``
    columns (table_name, rule, severity, passed, failed_count). Returns how many were emitted.
    """
    emitted = 0
    for result in results:
        row = result if isinstance(result, Mapping) else vars(result)
        fields = {k: row[k] for k in ("table_name", "rule", "severity", "passed", "failed_count")}
        event(
            "dq_result",
            run_id,
            message=f"{fields['table_name']}.{fields['rule']}: {'passed' if fields['passed'] else 'failed'}",
            level="INFO" if fields["passed"] else ("ERROR" if fields["severity"] == "fail" else "WARNING"),
            **fields,
            **attrs,
        )
        if not fields["passed"]:
            record("dq_rules_failed", 1, run_id, table=fields["table_name"], severity=fields["severity"], **attrs)
        emitted += 1
    return emitted


def record_job_summary(summary: JobSummary, run_id: str | None = None, **attrs: Any) -> None:
    """Row-count metrics from a job's summary: per table (a ``table`` attribute) rows_read,
    rows_written and rows_quarantined where the job counts them; ``seconds`` as duration_ms."""
    run_id = run_id or summary.run_id or current_run_id()
    common = {"job": summary.job, **attrs}
    for table, counts in summary.tables.items():
        for metric in ("rows_read", "rows_written", "rows_quarantined"):
            value = getattr(counts, metric)
            if value is not None:
                record(metric, value, run_id, table=table, **common)
    record("duration_ms", summary.seconds * 1000.0, run_id, **common)


def job(name: str) -> Callable[[Callable[..., JobSummary]], Callable[..., JobSummary]]:
    """Instrument a notebook's job function ``(spark, settings, ..., run_id, ...) -> summary``.

    The notebooks only read widgets and call the package; this is where their telemetry happens:
    telemetry configured from the job's settings, one ``job.<name>`` span carrying the run id, and
    the summary's row counts recorded as metrics.
    """

    def decorate(fn: Callable[..., JobSummary]) -> Callable[..., JobSummary]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> JobSummary:
            bound = signature.bind(*args, **kwargs)
            run_id = bound.arguments.get("run_id")
            configure(bound.arguments.get("settings"), "notebooks")
            with span(f"job.{name}", run_id=run_id):
                summary = fn(*args, **kwargs)
                record_job_summary(summary, run_id=run_id)
            return summary

        return run

    return decorate


def attributes(run_id: str | None, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """OpenTelemetry-safe attributes: run id first, secrets masked, None dropped, other types as text."""
    out: dict[str, Any] = {RUN_ID: run_id} if run_id else {}
    for key, value in attrs.items():
        if value is None:
            continue
        if _SECRET_KEY.search(key):
            out[key] = _MASK
        elif isinstance(value, bool | int | float | str):
            out[key] = value
        elif isinstance(value, dt.date | dt.datetime):
            out[key] = value.isoformat()
        elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            out[key] = json.dumps(value, default=str, sort_keys=True)
    return out


def _tracer() -> trace.Tracer:
    return _runtime.tracer if _runtime is not None else trace.get_tracer(SCOPE)


def _logger() -> _logs.Logger:
    return _runtime.logger if _runtime is not None else _logs.get_logger(SCOPE)


def _instrument(metric: str) -> Any:
    if _runtime is not None:
        return _runtime.instruments[metric]
    spec = METRICS[metric]
    meter = metrics.get_meter(SCOPE)
    return meter.create_counter(metric) if spec.kind == "counter" else meter.create_histogram(metric)


# --------------------------------------------------------------------------------- local exporters
# Exporters of the OpenTelemetry SDK that write to ops.telemetry_events. They open a connection per
# batch (exports run on the SDK's background threads) and never raise: a failed export is logged
# and reported to the SDK as a failure.

_INSERT = f"""
INSERT INTO {TELEMETRY_EVENTS}
    (kind, name, service, run_id, trace_id, span_id, parent_span_id, started_at, ended_at, observed_at,
     duration_ms, status, value, count, body, attributes)
VALUES (%(kind)s, %(name)s, %(service)s, %(run_id)s, %(trace_id)s, %(span_id)s, %(parent_span_id)s,
        %(started_at)s, %(ended_at)s, %(observed_at)s, %(duration_ms)s, %(status)s, %(value)s, %(count)s,
        %(body)s, %(attributes)s)
"""


def _ts(nanos: int | None) -> dt.datetime | None:
    return None if not nanos else dt.datetime.fromtimestamp(nanos / 1e9, dt.UTC)


def _hex(value: int | None, width: int) -> str | None:
    return f"{value:0{width}x}" if value else None


def _row(kind: str, name: str, service: str, attrs: Mapping[str, Any] | None, **fields: Any) -> dict[str, Any]:
    from psycopg.types.json import Jsonb

    plain = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(attrs or {}).items()}
    row = dict.fromkeys(
        ("trace_id", "span_id", "parent_span_id", "started_at", "ended_at", "observed_at", "duration_ms",
         "status", "value", "count", "body"),
    )  # fmt: skip
    row.update(kind=kind, name=name, service=service, run_id=plain.get(RUN_ID), attributes=Jsonb(plain))
    row.update(fields)
    return row


def _insert(dsn: str, rows: list[dict[str, Any]]) -> bool:
    if not rows:
        return True
    import psycopg

    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn, conn.cursor() as cur:
            cur.executemany(_INSERT, rows)
        return True
    except Exception as exc:  # the ops store may be down; the step being observed must go on
        _log.warning("telemetry: could not write %d events to ops.telemetry_events: %s", len(rows), exc)
        return False


def _service(resource: Any) -> str:
    return str(getattr(resource, "attributes", {}).get("service.name", SCOPE))


class _OpsStoreExporter:
    """Writes a batch as ops-store rows; nothing is buffered, so shutdown and flush have nothing to do."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _OpsStoreSpanExporter(_OpsStoreExporter):
    """Spans as rows (kind ``span``); an error's description goes to ``body``."""

    def export(self, spans: Sequence[Any]):
        from opentelemetry.sdk.trace.export import SpanExportResult

        rows = []
        for s in spans:
            ctx = s.get_span_context()
            ended = s.end_time or s.start_time
            rows.append(
                _row(
                    "span",
                    s.name,
                    _service(s.resource),
                    s.attributes,
                    trace_id=_hex(ctx.trace_id, 32),
                    span_id=_hex(ctx.span_id, 16),
                    parent_span_id=_hex(s.parent.span_id, 16) if s.parent is not None else None,
                    started_at=_ts(s.start_time),
                    ended_at=_ts(s.end_time),
                    observed_at=_ts(ended),
                    duration_ms=(ended - s.start_time) / 1e6,
                    status=s.status.status_code.name,
                    body=s.status.description,
                )
            )
        return SpanExportResult.SUCCESS if _insert(self._dsn, rows) else SpanExportResult.FAILURE


class _OpsStoreLogExporter(_OpsStoreExporter):
    """Log records (events) as rows (kind ``log``), named by their ``event`` attribute."""

    def export(self, batch: Sequence[Any]):
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        rows = []
        for readable in batch:
            rec = readable.log_record
            attrs = dict(rec.attributes or {})
            rows.append(
                _row(
                    "log",
                    str(attrs.get("event") or "log"),
                    _service(readable.resource),
                    attrs,
                    trace_id=_hex(rec.trace_id, 32),
                    span_id=_hex(rec.span_id, 16),
                    observed_at=_ts(rec.timestamp or rec.observed_timestamp) or dt.datetime.now(dt.UTC),
                    status=rec.severity_text,
                    body=None if rec.body is None else str(rec.body),
                )
            )
        return LogRecordExportResult.SUCCESS if _insert(self._dsn, rows) else LogRecordExportResult.FAILURE


class _OpsStoreMetricExporter(MetricExporter):
    """Metric data points as rows (kind ``metric``): a counter's delta in ``value``, a histogram's
    sum in ``value`` and its sample count in ``count``."""

    def __init__(self, dsn: str, preferred_temporality: dict | None = None) -> None:
        super().__init__(preferred_temporality=preferred_temporality)
        self._dsn = dsn

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any):
        from opentelemetry.sdk.metrics.export import MetricExportResult

        rows = []
        for resource_metrics in metrics_data.resource_metrics:
            service = _service(resource_metrics.resource)
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        histogram = hasattr(point, "bucket_counts")
                        value = point.sum if histogram else point.value
                        count = point.count if histogram else None
                        if histogram and not count:
                            continue
                        rows.append(
                            _row(
                                "metric",
                                metric.name,
                                service,
                                point.attributes,
                                started_at=_ts(point.start_time_unix_nano),
                                ended_at=_ts(point.time_unix_nano),
                                observed_at=_ts(point.time_unix_nano) or dt.datetime.now(dt.UTC),
                                value=float(value),
                                count=count,
                            )
                        )
        return MetricExportResult.SUCCESS if _insert(self._dsn, rows) else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None
