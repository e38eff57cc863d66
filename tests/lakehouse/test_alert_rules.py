"""The alert rules: defined once, valid for Azure Monitor and for the local evaluator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lakehouse.alert_rules import (
    ALERT_RULES,
    DAILY_PIPELINE,
    MART_FRESHNESS_EVENT,
    MART_FRESHNESS_TABLE,
    MART_LOAD_GRACE,
    METRIC_NAMESPACES,
    METRIC_TARGETS,
    AlertRule,
    LocalCheck,
    LogCondition,
    MetricCondition,
    by_name,
)

ISSUE_ALERTS = {  # what the infrastructure issue asks Azure Monitor to watch
    ("Microsoft.DataFactory/factories", "PipelineFailedRuns"),
    ("Microsoft.Web/sites", "Http5xx"),
    ("Microsoft.EventHub/namespaces", "ThrottledRequests"),
    ("Microsoft.DBforPostgreSQL/flexibleServers", "cpu_percent"),
    ("Microsoft.DBforPostgreSQL/flexibleServers", "storage_percent"),
}


def test_rule_names_are_unique_and_usable_in_azure_resource_names():
    names = [r.name for r in ALERT_RULES]
    assert len(names) == len(set(names))
    assert all(n.replace("-", "").isalnum() and n == n.lower() for n in names)


def test_the_issues_metric_alerts_are_all_defined():
    metrics = {(r.azure.namespace, r.azure.metric) for r in ALERT_RULES if isinstance(r.azure, MetricCondition)}
    assert metrics >= ISSUE_ALERTS
    cpu_and_storage = [r.azure for r in ALERT_RULES if isinstance(r.azure, MetricCondition)
                       and r.azure.namespace.endswith("flexibleServers")]  # fmt: skip
    assert {(c.operator, c.threshold) for c in cpu_and_storage} == {("GreaterThan", 80)}
    assert {r.azure.target for r in ALERT_RULES if isinstance(r.azure, MetricCondition)} <= set(METRIC_TARGETS)


def test_freshness_rule_watches_the_daily_pipeline_over_26_hours_in_both_runtimes():
    rule = by_name("daily-load-stale")
    assert isinstance(rule.azure, LogCondition) and rule.local is not None
    assert DAILY_PIPELINE in rule.azure.query and "ago(26h)" in rule.azure.query
    assert rule.local.window == timedelta(hours=26) and DAILY_PIPELINE in rule.local.sql


def test_data_quality_rule_reads_failed_fail_severity_results():
    rule = by_name("data-quality-failures")
    assert rule.kind == "log" and rule.local is not None
    assert "ops.dq_results" in rule.local.sql and "severity = 'fail'" in rule.local.sql


def test_local_checks_query_only_the_ops_schema_with_named_parameters():
    for rule in ALERT_RULES:
        if rule.local is None:
            assert rule.local_note, rule.name
            continue
        sql = rule.local.sql
        assert ";" not in sql, "one statement per rule"
        if rule.name == "mart-data-stale":  # the one rule about the data itself, not the runs
            assert f" {MART_FRESHNESS_TABLE} " in sql and "%(due_session)s" in sql and " ops." not in sql
            continue
        assert " ops." in sql and "%(now)s" in sql and "%(window)s" in sql, rule.name


def test_local_checks_count_nothing_recorded_after_now():
    """`alerts --now` evaluates the past: every time-windowed check is bounded above by now."""
    for rule in ALERT_RULES:
        if (rule.local is not None and "%(window)s" in rule.local.sql) or rule.name == "daily-load-stale":
            assert "<= %(now)s" in rule.local.sql, rule.name


def test_the_mart_freshness_rule_reads_the_mart_locally_and_the_serving_jobs_event_in_azure():
    rule = by_name("mart-data-stale")
    assert rule.kind == "log" and rule.local is not None and rule.local.window == MART_LOAD_GRACE
    assert "mart.daily_prices" in rule.local.sql and "max(trade_date)" in rule.local.sql
    query = rule.azure.query
    assert f"Properties['event']) == '{MART_FRESHNESS_EVENT}'" in query
    assert f"Properties['table']) == '{MART_FRESHNESS_TABLE}'" in query
    assert "isnull(latest_trade_date)" in query, "no report within the window is stale too"
    assert "ago(25h)" in query, "weekday sessions are due 4 h after the 21:00 UTC winter close"


def test_a_rule_whose_kind_and_definition_disagree_is_rejected():
    metric = MetricCondition("postgres", "ns", "m", "Average", "GreaterThan", 1)
    with pytest.raises(ValueError, match="needs a LogCondition"):
        AlertRule("x", "d", 1, "log", metric, LocalCheck("select 1", timedelta(hours=1)))
    with pytest.raises(ValueError, match="local_note"):
        AlertRule("x", "d", 1, "metric", metric, None)
    with pytest.raises(ValueError, match="severity"):
        AlertRule("x", "d", 7, "metric", metric, None, "n/a")


def test_unknown_rule_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="daily-load-stale"):
        by_name("nope")


def test_every_metric_target_names_its_azure_namespace():
    assert set(METRIC_NAMESPACES) == set(METRIC_TARGETS)
