"""Schedules and settings that work after the first deploy: a bounded reprocessing trigger, the
triggers each stack starts, and the telemetry target of the job clusters."""

from __future__ import annotations

import datetime as dt

import pytest

from infra import preview, stack_config
from local.adf.factory import Factory
from local.adf_triggers import AdfDefinitionError, resolve_trigger

MAX_REPROCESS_WINDOWS = 92  # one quarter of daily windows


@pytest.fixture(scope="module")
def factory() -> Factory:
    return Factory.load()


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def started_triggers(stack: str) -> set[str]:
    seen = {}
    preview.run_program(lambda: seen.setdefault("cfg", stack_config.load()), preview.stack_config(stack))
    return set(seen["cfg"].start_triggers)


def test_the_reprocessing_trigger_replays_a_bounded_range(factory):
    tp = factory.trigger("tr_reprocess_window")["properties"]["typeProperties"]
    start, end = when(tp["startTime"]), when(tp["endTime"])
    windows = (end - start) / dt.timedelta(hours=int(tp["interval"]))
    assert windows == int(windows) and 1 <= windows <= MAX_REPROCESS_WINDOWS


def test_the_reprocessing_trigger_gives_no_window_after_its_end_time(factory):
    end = when(factory.trigger("tr_reprocess_window")["properties"]["typeProperties"]["endTime"])
    last = resolve_trigger("tr_reprocess_window", end - dt.timedelta(seconds=1), factory)
    assert last.window == (end - dt.timedelta(days=1), end)
    with pytest.raises(AdfDefinitionError, match="endTime"):
        resolve_trigger("tr_reprocess_window", end, factory)


def test_prod_starts_the_weekly_maintenance_where_the_data_lives():
    assert {"tr_daily", "tr_maintenance_weekly"} <= started_triggers("prod")


def test_every_stack_starts_only_schedule_triggers_and_never_the_reprocessing_one(factory):
    for stack in ("dev", "prod"):
        started = started_triggers(stack)
        assert "tr_reprocess_window" not in started, stack
        assert all(factory.trigger(t)["properties"]["type"] == "ScheduleTrigger" for t in started), stack


def test_job_clusters_get_the_application_insights_connection_string_the_settings_read(factory):
    """Without it notebook telemetry (DQ results included) has nowhere to go in Azure."""
    from lakehouse.settings import Settings

    env = factory.linked_services["ls_databricks"]["properties"]["typeProperties"]["newClusterSparkEnvVars"]
    name = Settings.model_fields["applicationinsights_connection_string"].validation_alias.choices[0]
    assert env[name] == "{{secrets/lakehouse/appinsights-connection-string}}"
