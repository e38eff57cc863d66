"""The monitoring component: diagnostics to Log Analytics and the alert rules as Azure Monitor alerts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from infra.monitoring import DIAGNOSTIC_KINDS, DiagnosticTarget, Monitoring, MonitoringArgs, iso_duration
from lakehouse.alert_rules import ALERT_RULES, LogCondition, MetricCondition

LAW = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/logs"
SCOPES = {target: f"/subscriptions/s/resourceGroups/rg/providers/mock/{target}" for target in
          ("data_factory", "function_app", "app_insights", "event_hubs", "postgres")}  # fmt: skip


def _monitoring(run_component, common, targets=(), workbooks=(), emails=("a@example.com", "b@example.com")):
    args = MonitoringArgs(common.rg, common.location, common.tags, "test", LAW, emails, targets, SCOPES,
                          workbook_files=list(workbooks))  # fmt: skip
    return run_component(lambda: Monitoring("mon", args))


@pytest.mark.parametrize(
    ("delta", "iso"),
    [(timedelta(minutes=5), "PT5M"), (timedelta(hours=1), "PT1H"), (timedelta(minutes=90), "PT1H30M"),
     (timedelta(days=2), "P2D"), (timedelta(hours=26), "PT26H")],
)  # fmt: skip
def test_iso_durations(delta, iso):
    assert iso_duration(delta) == iso


def test_each_target_gets_a_diagnostic_setting_to_the_workspace_with_its_kinds_categories(run_component, common):
    targets = [DiagnosticTarget(kind, kind, f"/ids/{kind}") for kind in DIAGNOSTIC_KINDS]
    run = _monitoring(run_component, common, targets)
    settings = {d.inputs["resourceUri"]: d for d in run.of_type("azure-native:monitor:DiagnosticSetting")}
    assert set(settings) == {f"/ids/{kind}" for kind in DIAGNOSTIC_KINDS}
    for kind, spec in DIAGNOSTIC_KINDS.items():
        setting = settings[f"/ids/{kind}"]
        assert setting.inputs["workspaceId"] == LAW
        assert setting.inputs["logs"] == ([{"categoryGroup": "allLogs", "enabled": True}] if spec.logs else [])
        assert [m["category"] for m in setting.inputs["metrics"]] == list(spec.metrics)
    assert settings["/ids/data_factory"].inputs["logAnalyticsDestinationType"] == "Dedicated"


def test_an_unknown_resource_kind_cannot_be_watched_silently(run_component, common):
    with pytest.raises(ValueError, match="queue"):
        _monitoring(run_component, common, [DiagnosticTarget("q", "queue", "/ids/q")])


def test_every_alert_rule_is_deployed_as_its_kind_with_its_definition(run_component, common):
    run = _monitoring(run_component, common)
    metric = {a.inputs["ruleName"]: a for a in run.of_type("azure-native:monitor:MetricAlert")}
    log = {a.inputs["ruleName"]: a for a in run.of_type("azure-native:monitor:ScheduledQueryRule")}
    assert len(metric) + len(log) == len(ALERT_RULES)
    (group,) = run.of_type("azure-native:monitor:ActionGroup")
    for rule in ALERT_RULES:
        cond = rule.azure
        if isinstance(cond, MetricCondition):
            alert = metric[f"test-{rule.name}"]
            (criterion,) = alert.inputs["criteria"]["allOf"]
            assert (criterion["metricNamespace"], criterion["metricName"]) == (cond.namespace, cond.metric)
            assert (criterion["operator"], criterion["threshold"]) == (cond.operator, cond.threshold)
            assert criterion["timeAggregation"] == cond.aggregation
            assert alert.inputs["scopes"] == [SCOPES[cond.target]]
            assert alert.inputs["windowSize"] == iso_duration(cond.window)
            assert alert.inputs["actions"] == [{"actionGroupId": group.id}]
        else:
            assert isinstance(cond, LogCondition)
            alert = log[f"test-{rule.name}"]
            (criterion,) = alert.inputs["criteria"]["allOf"]
            assert criterion["query"] == cond.query
            assert (criterion["operator"], criterion["threshold"]) == (cond.operator, cond.threshold)
            assert alert.inputs["scopes"] == [LAW]
            assert alert.inputs["actions"] == {"actionGroups": [group.id]}
        assert alert.inputs["severity"] == rule.severity
        assert alert.inputs["description"] == rule.description


def test_action_group_mails_every_configured_recipient(run_component, common):
    (group,) = _monitoring(run_component, common).of_type("azure-native:monitor:ActionGroup")
    assert [r["emailAddress"] for r in group.inputs["emailReceivers"]] == ["a@example.com", "b@example.com"]
    assert len(group.inputs["groupShortName"]) <= 12


def test_workbook_files_are_deployed_to_the_workspace(run_component, common, tmp_path: Path):
    """The hook the observability issue uses: drop a workbook JSON in infra/workbooks/."""
    book = tmp_path / "pipeline_runs.json"
    book.write_text('{"version": "Notebook/1.0", "items": []}')
    (workbook,) = _monitoring(run_component, common, workbooks=[book]).of_type(
        "azure-native:applicationinsights:Workbook"
    )
    assert workbook.inputs["serializedData"] == book.read_text()
    assert workbook.inputs["sourceId"] == LAW
