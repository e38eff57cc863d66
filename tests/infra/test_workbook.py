"""The Azure Monitor workbook: deployable JSON whose queries read what the platform emits."""

from __future__ import annotations

import json
import re
from pathlib import Path

from infra.monitoring import WORKBOOK_DIR, MonitoringArgs
from lakehouse import telemetry

BOOK = WORKBOOK_DIR / "lakehouse.workbook.json"


def queries(items: list[dict]) -> list[dict]:
    out = []
    for item in items:
        if item["type"] == 12:
            out += queries(item["content"]["items"])
        elif item["type"] == 3:
            out.append(item["content"])
    return out


def test_the_workbook_is_picked_up_by_the_monitoring_component() -> None:
    args = MonitoringArgs(
        resource_group_name="rg", location="westeurope", name_stem="x", tags={}, workspace_id="ws",
        alert_emails=[], diagnostic_targets=[], metric_scopes={},
    )  # fmt: skip
    assert BOOK in [Path(p) for p in args.workbook_files]


def test_every_query_is_a_log_analytics_query_over_the_time_range_parameter() -> None:
    book = json.loads(BOOK.read_text())
    assert book["version"] == "Notebook/1.0"
    found = queries(book["items"])
    assert len(found) == 11
    for q in found:
        assert (q["queryType"], q["resourceType"]) == (0, "microsoft.operationalinsights/workspaces"), q["title"]
        assert q["timeContextFromParameter"] == "TimeRange"


def test_the_queries_read_the_events_and_metrics_lakehouse_telemetry_emits() -> None:
    """A renamed metric or event would leave a chart silently empty; names must match the code."""
    text = "\n".join(q["query"] for q in queries(json.loads(BOOK.read_text())["items"]))
    lists = re.findall(r"\| where Name (?:in \(([^)]*)\)|== ('\w+'))", text)
    metric_names = set(re.findall(r"'(\w+)'", " ".join(a + b for a, b in lists)))
    assert metric_names == {"rows_read", "rows_written", "rows_quarantined", "api_calls", "retries"}
    assert metric_names <= set(telemetry.METRICS)
    assert set(re.findall(r"Properties\['event'\]\) == '(\w+)'", text)) == {"dq_result", "table_loaded"}
    for column in ("table_name", "rule", "severity", "passed", "failed_count", "run_id"):
        assert f"Properties['{column}']" in text, column
    assert {"ADFPipelineRun", "ADFActivityRun", "AppTraces", "AppMetrics"} <= set(
        re.findall(r"\b(ADF\w+|App\w+)\b", text)
    )
