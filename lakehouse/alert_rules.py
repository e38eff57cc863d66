"""The platform's alert rules, defined once as data.

The infrastructure deploys each rule to Azure Monitor (a metric alert or a scheduled log query
alert); the local `lakehouse alerts` command evaluates the same rules against the local ops store
(the ``ops`` schema of the serving PostgreSQL). A rule therefore carries both definitions side by
side, so adding or changing a rule changes both runtimes at once.

Local evaluation contract (applied by the local runtime's evaluator): run ``LocalCheck.sql``
with the named parameters ``now`` (timestamptz, the evaluation time) and ``window`` (an interval
equal to ``LocalCheck.window``) and ``due_session`` (date: the latest XNYS session that closed at
least ``window`` before ``now``); each returned row is one piece of evidence; the rule fires when
the number of rows is greater than ``LocalCheck.fires_above``. Evidence is bounded by ``now`` on
both sides (``> now - window`` and ``<= now``), so evaluating at a past ``now`` ignores later rows.
Rules that watch a platform metric with no local counterpart have ``local=None`` and say so in ``local_note``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, get_args

from lakehouse.ops_store import ACTIVITY_RUNS, DQ_RESULTS, PIPELINE_RUNS

Severity = Literal[0, 1, 2, 3, 4]  # Azure Monitor: 0 critical, 1 error, 2 warning, 3 informational, 4 verbose
Kind = Literal["metric", "log"]
Operator = Literal["GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual", "Equal"]
# The resource a metric alert is scoped to; the infrastructure maps each to a deployed resource id.
MetricTarget = Literal["data_factory", "function_app", "app_insights", "event_hubs", "postgres"]

SEVERITIES: tuple[int, ...] = get_args(Severity)
KINDS: tuple[str, ...] = get_args(Kind)
OPERATORS: tuple[str, ...] = get_args(Operator)
METRIC_TARGETS: tuple[str, ...] = get_args(MetricTarget)

# The pipeline whose freshness is watched and how stale it may get (a trading day's run plus slack).
DAILY_PIPELINE = "pl_lakehouse_daily"
FRESHNESS_LIMIT = timedelta(hours=26)

# Data freshness: a run that succeeds and loads nothing new leaves the mart behind the calendar.
# The mart must hold every XNYS session that closed more than MART_LOAD_GRACE ago (the daily run
# starts 22:30 UTC, 1.5 h after the winter close); the serving job emits MART_FRESHNESS_EVENT
# with the table's latest trade date after each load, which is what the Azure query reads.
MART_FRESHNESS_TABLE = "mart.daily_prices"
MART_FRESHNESS_EVENT = "mart_freshness"
MART_LOAD_GRACE = timedelta(hours=4)
# The Azure query has no exchange calendar: weekdays, and the later (winter, 21:00 UTC) close.
_KQL_DUE_AFTER_HOURS = 21 + int(MART_LOAD_GRACE.total_seconds() // 3600)


@dataclass(frozen=True)
class MetricCondition:
    """An Azure Monitor platform-metric criterion (evaluated by a metric alert)."""

    target: MetricTarget
    namespace: str
    metric: str
    aggregation: Literal["Average", "Count", "Maximum", "Minimum", "Total"]
    operator: Operator
    threshold: float
    window: timedelta = timedelta(minutes=15)
    frequency: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class LogCondition:
    """A KQL query over the Log Analytics workspace (evaluated by a scheduled query rule).

    The query's result row count is compared with ``threshold`` using ``operator``.
    """

    query: str
    operator: Operator
    threshold: float
    window: timedelta
    frequency: timedelta


@dataclass(frozen=True)
class LocalCheck:
    """How the local `lakehouse alerts` evaluates the rule against the ops store."""

    sql: str
    window: timedelta
    fires_above: int = 0


@dataclass(frozen=True)
class AlertRule:
    """One alert: what it watches in Azure and how the same condition is checked locally."""

    name: str
    description: str
    severity: Severity
    kind: Kind
    azure: MetricCondition | LogCondition
    local: LocalCheck | None
    local_note: str = ""

    def __post_init__(self) -> None:
        expected = MetricCondition if self.kind == "metric" else LogCondition
        if self.kind not in KINDS or not isinstance(self.azure, expected):
            raise ValueError(f"alert rule {self.name!r}: kind {self.kind!r} needs a {expected.__name__}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert rule {self.name!r}: severity must be one of {SEVERITIES}")
        if self.local is None and not self.local_note:
            raise ValueError(f"alert rule {self.name!r}: say in local_note why there is no local check")


_NO_LOCAL_METRIC = "platform metric of the Azure service; nothing equivalent runs locally"

# Azure Monitor's metric namespace of each target: the target names the service, so a rule need not.
METRIC_NAMESPACES: dict[MetricTarget, str] = {
    "data_factory": "Microsoft.DataFactory/factories",
    "function_app": "Microsoft.Web/sites",
    "app_insights": "microsoft.insights/components",
    "event_hubs": "Microsoft.EventHub/namespaces",
    "postgres": "Microsoft.DBforPostgreSQL/flexibleServers",
}


def _in_window(column: str) -> str:
    """The evidence bound of the local contract: after ``now - window`` and not after ``now``."""
    return f"{column} > %(now)s - %(window)s AND {column} <= %(now)s"


def _metric_rule(
    name: str,
    description: str,
    severity: Severity,
    target: MetricTarget,
    metric: str,
    aggregation: Literal["Average", "Count", "Maximum", "Minimum", "Total"],
    threshold: float = 0,
    local: LocalCheck | None = None,
    **timing: timedelta,
) -> AlertRule:
    """A metric rule that fires above ``threshold``; without a local check it says why (``_NO_LOCAL_METRIC``).

    ``timing`` takes the condition's ``window`` and ``frequency`` where they differ from the defaults.
    """
    azure = MetricCondition(target, METRIC_NAMESPACES[target], metric, aggregation, "GreaterThan", threshold, **timing)
    note = "" if local else _NO_LOCAL_METRIC
    return AlertRule(name, description, severity, "metric", azure, local, note)


def _log_rule(
    name: str,
    description: str,
    severity: Severity,
    query: str,
    local: LocalCheck,
    *,
    window: timedelta,
    frequency: timedelta,
    local_note: str = "",
) -> AlertRule:
    """A log rule that fires when the KQL query returns any row (as the local check does)."""
    azure = LogCondition(query, "GreaterThan", 0, window, frequency)
    return AlertRule(name, description, severity, "log", azure, local, local_note)


_HOUR = timedelta(hours=1)
_QUARTER_HOUR = timedelta(minutes=15)

ALERT_RULES: tuple[AlertRule, ...] = (
    _metric_rule(
        "adf-pipeline-failed", "A Data Factory pipeline run failed.", 1,
        "data_factory", "PipelineFailedRuns", "Total", window=_HOUR, frequency=_QUARTER_HOUR,
        local=LocalCheck(
            f"SELECT run_id, pipeline, status, ended_at FROM {PIPELINE_RUNS} "
            f"WHERE status = 'Failed' AND {_in_window('ended_at')}",
            _HOUR,
        ),
    ),
    _metric_rule(
        "function-http-5xx", "The ingestion Function app answered with server errors (HTTP 5xx).", 2,
        "function_app", "Http5xx", "Total",
    ),
    _metric_rule(
        "function-failures", "Function executions failed (ingestion could not land RAW for a call).", 1,
        "app_insights", "requests/failed", "Count",
        local=LocalCheck(
            f"SELECT pipeline_run_id AS run_id, pipeline, activity, status, ended_at FROM {ACTIVITY_RUNS} "
            f"WHERE activity_type = 'AzureFunctionActivity' AND status = 'Failed' AND {_in_window('ended_at')}",
            _HOUR,
        ),
    ),
    _metric_rule(
        "eventhubs-throttled", "Event Hubs throttled requests: the namespace needs more throughput units.", 2,
        "event_hubs", "ThrottledRequests", "Total",
    ),
    _metric_rule(
        "postgres-cpu-high", "The serving PostgreSQL server's CPU is above 80%.", 2,
        "postgres", "cpu_percent", "Average", threshold=80,
    ),
    _metric_rule(
        "postgres-storage-high", "The serving PostgreSQL server's storage is more than 80% used.", 1,
        "postgres", "storage_percent", "Average", threshold=80,
    ),
    # Azure: weekdays approximate trading days (Tuesday-Saturday UTC follow a Monday-Friday
    # session's evening run); exchange holidays are known only to the local check, which uses
    # the XNYS calendar through `lakehouse.trading_calendar`.
    _log_rule(
        "daily-load-stale",
        f"No successful {DAILY_PIPELINE} run within {FRESHNESS_LIMIT.total_seconds() / 3600:.0f} "
        "hours on a trading day.",
        1,
        "let last_success = toscalar(ADFPipelineRun\n"
        f"    | where PipelineName == '{DAILY_PIPELINE}' and Status == 'Succeeded'\n"
        "    | summarize max(TimeGenerated));\n"
        "print last_success\n"
        "| where dayofweek(now()) between (2d .. 6d)\n"
        f"| where isnull(last_success) or last_success < ago({int(FRESHNESS_LIMIT.total_seconds() // 3600)}h)",
        LocalCheck(
            f"SELECT max(ended_at) AS last_success FROM {PIPELINE_RUNS} "
            f"WHERE pipeline = '{DAILY_PIPELINE}' AND status = 'Succeeded' AND ended_at <= %(now)s "
            "HAVING coalesce(max(ended_at), '-infinity'::timestamptz) < %(now)s - %(window)s",
            FRESHNESS_LIMIT,
        ),
        window=timedelta(days=2),
        frequency=_HOUR,
        local_note="the evaluator skips this rule when the evaluation day follows no XNYS session",
    ),
    # Azure: the latest trade date the serving job reported (no report within the window is
    # stale too), against the latest weekday whose 21:00 UTC close is more than the grace ago.
    _log_rule(
        "mart-data-stale",
        f"{MART_FRESHNESS_TABLE} lacks an XNYS session that closed more than "
        f"{MART_LOAD_GRACE.total_seconds() / 3600:.0f} hours ago (runs may succeed and load nothing new).",
        1,
        f"let due_day = startofday(ago({_KQL_DUE_AFTER_HOURS}h));\n"
        "let due = case(dayofweek(due_day) == 6d, due_day - 1d,\n"
        "    dayofweek(due_day) == 0d, due_day - 2d, due_day);\n"
        "AppTraces\n"
        f"| where tostring(Properties['event']) == '{MART_FRESHNESS_EVENT}'\n"
        f"| where tostring(Properties['table']) == '{MART_FRESHNESS_TABLE}'\n"
        "| summarize latest_trade_date = max(todatetime(tostring(Properties['latest_trade_date'])))\n"
        "| where isnull(latest_trade_date) or latest_trade_date < due",
        LocalCheck(
            "SELECT max(trade_date) AS latest_trade_date, %(due_session)s::date AS due_session "
            f"FROM {MART_FRESHNESS_TABLE} "
            "HAVING coalesce(max(trade_date), '-infinity'::date) < %(due_session)s::date",
            MART_LOAD_GRACE,
        ),
        window=timedelta(days=7),
        frequency=_HOUR,
    ),
    _log_rule(
        "data-quality-failures",
        "A job reported data-quality rules with severity 'fail' that did not pass.",
        1,
        "AppTraces\n"
        "| where tostring(Properties['event']) == 'dq_result'\n"
        "| where tostring(Properties['severity']) == 'fail'\n"
        "| where tolower(tostring(Properties['passed'])) == 'false'",
        LocalCheck(
            f"SELECT run_id, table_name, rule, failed_count FROM {DQ_RESULTS} "
            f"WHERE severity = 'fail' AND NOT passed AND {_in_window('evaluated_at')}",
            _HOUR,
        ),
        window=_HOUR,
        frequency=_QUARTER_HOUR,
    ),
)


def by_name(name: str) -> AlertRule:
    """The rule called ``name``; a clear error lists the known names otherwise."""
    for rule in ALERT_RULES:
        if rule.name == name:
            return rule
    raise KeyError(f"unknown alert rule {name!r}; known: {', '.join(r.name for r in ALERT_RULES)}")
