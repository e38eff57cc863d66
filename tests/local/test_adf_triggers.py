"""Triggers resolve their parameter expressions as ADF would at a given time."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from local.adf.factory import Factory
from local.adf.records import AdfDefinitionError
from local.adf_triggers import resolve_trigger

UTC = dt.UTC


def test_a_schedule_trigger_passes_the_scheduled_date():
    pipeline, parameters = resolve_trigger("tr_daily", "2024-03-05T22:30:00Z")
    assert (pipeline, parameters) == ("pl_lakehouse_daily", {"runDate": "2024-03-05"})


def test_a_time_off_the_schedule_is_flagged_but_still_resolved():
    firing = resolve_trigger("tr_daily", dt.datetime(2024, 3, 9, 22, 30))  # a Saturday, naive = UTC
    assert firing.on_schedule is False
    assert firing.parameters == {"runDate": "2024-03-09"}
    assert firing.scheduled_time == dt.datetime(2024, 3, 9, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "window_start"),
    [
        ("2024-03-05T00:00:00Z", "2024-03-05"),
        ("2024-03-05T23:59:59Z", "2024-03-05"),
        ("2024-03-06T00:00:00Z", "2024-03-06"),
    ],
)
def test_a_tumbling_window_trigger_gives_the_window_containing_the_time(at, window_start):
    firing = resolve_trigger("tr_reprocess_window", at)
    assert firing.pipeline == "pl_lakehouse_daily"
    assert firing.parameters == {"startDate": window_start, "endDate": window_start}
    start = dt.datetime.fromisoformat(window_start).replace(tzinfo=UTC)
    assert firing.window == (start, start + dt.timedelta(days=1))


def test_a_time_before_a_tumbling_window_start_is_refused():
    with pytest.raises(AdfDefinitionError, match="before the trigger's startTime"):
        resolve_trigger("tr_reprocess_window", "2023-12-31T12:00:00Z")


def test_an_unknown_trigger_is_refused_with_the_available_names():
    with pytest.raises(AdfDefinitionError, match=r"no trigger 'tr_hourly'.*tr_daily"):
        resolve_trigger("tr_hourly", "2024-03-05T22:30:00Z")


def test_unknown_trigger_properties_are_refused(tmp_path):
    (tmp_path / "trigger").mkdir()
    (tmp_path / "pipeline").mkdir()
    doc = {
        "name": "tr_odd",
        "properties": {
            "type": "ScheduleTrigger",
            "pipelines": [
                {
                    "pipelineReference": {"referenceName": "pl_x", "type": "PipelineReference"},
                    "parameters": {"when": "@trigger().outputs.body"},
                }
            ],
            "typeProperties": {"recurrence": {"frequency": "Day", "interval": 1}},
        },
    }
    (tmp_path / "trigger" / "tr_odd.json").write_text(json.dumps(doc))
    pipeline = {
        "name": "pl_x",
        "properties": {
            "activities": [{"name": "Wait", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}],
            "parameters": {"when": {"type": "String"}},
        },
    }
    (tmp_path / "pipeline" / "pl_x.json").write_text(json.dumps(pipeline))
    with pytest.raises(AdfDefinitionError, match=r"trigger\(\)\.outputs\.body is not available"):
        resolve_trigger("tr_odd", "2024-03-05T00:00:00Z", Factory.load(tmp_path))
