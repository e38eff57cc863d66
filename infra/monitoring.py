"""Monitoring: the Log Analytics workspace, diagnostic settings, the action group and the alerts.

The alert rules come from :mod:`lakehouse.alert_rules`, the same data the local
`lakehouse alerts` command evaluates; this module only translates them to Azure Monitor.
The workspace is its own component because the Function app's Application Insights is
workspace-based and must exist before the resources that :class:`Monitoring` watches.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pulumi
from pulumi_azure_native import applicationinsights, monitor, operationalinsights

from infra.component import Component, ComponentArgs
from lakehouse.alert_rules import ALERT_RULES, AlertRule, LogCondition, MetricCondition

WORKBOOK_DIR = Path(__file__).resolve().parent / "workbooks"


@dataclass(frozen=True)
class DiagnosticSpec:
    """What a resource kind sends to Log Analytics."""

    logs: bool
    metrics: tuple[str, ...]
    dedicated_tables: bool = False


# Every kind of resource the platform watches, and what its diagnostic setting collects.
# Storage sends logs from its blob service (a sub-resource); the account itself has metrics only.
DIAGNOSTIC_KINDS: dict[str, DiagnosticSpec] = {
    "data_factory": DiagnosticSpec(logs=True, metrics=("AllMetrics",), dedicated_tables=True),
    "function_app": DiagnosticSpec(logs=True, metrics=("AllMetrics",)),
    "storage_account": DiagnosticSpec(logs=False, metrics=("Transaction",)),
    "storage_blob": DiagnosticSpec(logs=True, metrics=("Transaction",)),
    "event_hubs": DiagnosticSpec(logs=True, metrics=("AllMetrics",)),
    "key_vault": DiagnosticSpec(logs=True, metrics=("AllMetrics",)),
    "postgres": DiagnosticSpec(logs=True, metrics=("AllMetrics",)),
    "databricks": DiagnosticSpec(logs=True, metrics=()),
}


def iso_duration(delta: timedelta) -> str:
    """ISO-8601 duration as Azure Monitor expects it (PT5M, PT1H, P2D)."""
    seconds = int(delta.total_seconds())
    if seconds <= 0 or seconds % 60:
        raise ValueError(f"alert windows are whole minutes, got {delta}")
    if seconds % 86400 == 0:
        return f"P{seconds // 86400}D"
    hours, minutes = divmod(seconds // 60, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")


@dataclass
class LogWorkspaceArgs(ComponentArgs):
    workspace_name: str
    retention_days: int = 30


class LogWorkspace(Component):
    """The Log Analytics workspace every diagnostic setting and Application Insights writes to."""

    def __init__(self, name: str, args: LogWorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        self.workspace = operationalinsights.Workspace(
            f"{name}-workspace",
            workspace_name=args.workspace_name,
            sku={"name": "PerGB2018"},
            retention_in_days=args.retention_days,
            **args.placement,
            opts=self.child,
        )
        self.workspace_id = self.workspace.id
        self.register_outputs({"workspace_id": self.workspace_id})


@dataclass(frozen=True)
class DiagnosticTarget:
    """A deployed resource whose logs and metrics go to the workspace."""

    name: str
    kind: str
    resource_id: pulumi.Input[str]


@dataclass
class MonitoringArgs(ComponentArgs):
    name_stem: str
    workspace_id: pulumi.Input[str]
    alert_emails: Sequence[str]
    diagnostic_targets: Sequence[DiagnosticTarget]
    metric_scopes: Mapping[str, pulumi.Input[str]]
    alert_rules: Sequence[AlertRule] = ALERT_RULES
    workbook_files: Sequence[Path] = field(default_factory=lambda: sorted(WORKBOOK_DIR.glob("*.json")))


class Monitoring(Component):
    """Diagnostic settings for every watched resource, an e-mail action group, the alert rules of
    :mod:`lakehouse.alert_rules`, and the workbooks found in `infra/workbooks/` (a workbook is
    deployed by adding its JSON there)."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        unknown = sorted({t.kind for t in args.diagnostic_targets} - set(DIAGNOSTIC_KINDS))
        if unknown:
            raise ValueError(f"Monitoring: no diagnostic spec for resource kinds {unknown}")
        missing_scopes = sorted(
            {r.azure.target for r in args.alert_rules if isinstance(r.azure, MetricCondition)} - set(args.metric_scopes)
        )
        if missing_scopes:
            raise ValueError(f"Monitoring: metric alerts need resources for targets {missing_scopes}")

        self.diagnostics = {}
        for target in args.diagnostic_targets:
            spec = DIAGNOSTIC_KINDS[target.kind]
            self.diagnostics[target.name] = monitor.DiagnosticSetting(
                f"{name}-diag-{target.name}",
                name=f"to-log-analytics-{target.name}",
                resource_uri=target.resource_id,
                workspace_id=args.workspace_id,
                log_analytics_destination_type="Dedicated" if spec.dedicated_tables else None,
                logs=[{"categoryGroup": "allLogs", "enabled": True}] if spec.logs else [],
                metrics=[{"category": m, "enabled": True} for m in spec.metrics],
                opts=self.child,
            )

        self.action_group = monitor.ActionGroup(
            f"{name}-action-group",
            action_group_name=f"{args.name_stem}-alerts",
            resource_group_name=args.resource_group_name,
            location="global",
            group_short_name=args.name_stem.replace("-", "")[:12],
            enabled=True,
            email_receivers=[
                {"name": f"email-{i}", "emailAddress": email, "useCommonAlertSchema": True}
                for i, email in enumerate(args.alert_emails)
            ],
            tags=dict(args.tags),
            opts=self.child,
        )
        self.alerts = {rule.name: self._alert(name, rule, args) for rule in args.alert_rules}
        self.workbooks = [
            applicationinsights.Workbook(
                f"{name}-workbook-{path.stem}",
                resource_name_=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{args.name_stem}/{path.name}")),
                kind="shared",
                category="workbook",
                display_name=path.name.removesuffix(".workbook.json").replace("_", " "),
                serialized_data=path.read_text(encoding="utf-8"),
                source_id=args.workspace_id,
                **args.placement,
                opts=self.child,
            )
            for path in args.workbook_files
        ]
        self.register_outputs(
            {
                "action_group_id": self.action_group.id,
                "alerts": sorted(self.alerts),
                "diagnostics": sorted(self.diagnostics),
            }
        )

    def _alert(self, name: str, rule: AlertRule, args: MonitoringArgs) -> pulumi.Resource:
        cond = rule.azure
        common = {
            "rule_name": f"{args.name_stem}-{rule.name}",
            "resource_group_name": args.resource_group_name,
            "description": rule.description,
            "severity": rule.severity,
            "enabled": True,
            "evaluation_frequency": iso_duration(cond.frequency),
            "window_size": iso_duration(cond.window),
            "tags": dict(args.tags),
            "opts": self.child,
        }
        if isinstance(cond, MetricCondition):
            return monitor.MetricAlert(
                f"{name}-alert-{rule.name}",
                location="global",
                scopes=[args.metric_scopes[cond.target]],
                criteria={
                    "odataType": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                    "allOf": [
                        {
                            "criterionType": "StaticThresholdCriterion",
                            "name": rule.name,
                            "metricNamespace": cond.namespace,
                            "metricName": cond.metric,
                            "operator": cond.operator,
                            "threshold": cond.threshold,
                            "timeAggregation": cond.aggregation,
                        }
                    ],
                },
                actions=[{"actionGroupId": self.action_group.id}],
                auto_mitigate=True,
                **common,
            )
        assert isinstance(cond, LogCondition)
        return monitor.ScheduledQueryRule(
            f"{name}-alert-{rule.name}",
            location=args.location,
            kind="LogAlert",
            scopes=[args.workspace_id],
            criteria={
                "allOf": [
                    {
                        "query": cond.query,
                        "timeAggregation": "Count",
                        "operator": cond.operator,
                        "threshold": cond.threshold,
                        "failingPeriods": {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1},
                    }
                ]
            },
            actions={"actionGroups": [self.action_group.id]},
            auto_mitigate=False,
            **common,
        )
