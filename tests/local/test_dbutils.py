"""The dbutils shim behaves like Databricks' for what the notebooks use."""

from __future__ import annotations

import pytest

from local.dbutils import DBUtils, InputWidgetNotDefined, NotebookExit, SecretNotFound


def test_a_passed_parameter_overrides_the_widget_default():
    dbutils = DBUtils({"start_date": "2024-03-01"})
    dbutils.widgets.text("start_date", "2020-01-01")
    dbutils.widgets.text("full_refresh", "false")
    assert dbutils.widgets.get("start_date") == "2024-03-01"
    assert dbutils.widgets.get("full_refresh") == "false"


def test_a_passed_parameter_is_readable_without_a_widget():
    assert DBUtils({"run_id": "r-1"}).widgets.get("run_id") == "r-1"


def test_reading_an_undefined_widget_fails_naming_it():
    with pytest.raises(InputWidgetNotDefined, match="No input widget named end_date is defined"):
        DBUtils().widgets.get("end_date")


def test_a_dropdown_refuses_a_value_outside_its_choices():
    dbutils = DBUtils({"full_refresh": "maybe"})
    dbutils.widgets.dropdown("full_refresh", "false", ["true", "false"])
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        dbutils.widgets.get("full_refresh")


def test_notebook_exit_stops_with_a_string_value_that_except_exception_cannot_swallow():
    dbutils = DBUtils()
    with pytest.raises(NotebookExit) as exited:
        try:
            dbutils.notebook.exit({"rows": 3})
        except Exception:  # a notebook's broad handler must not catch the exit
            pytest.fail("exit was swallowed")
    assert exited.value.value == "{'rows': 3}"


def test_secrets_come_from_the_environment_under_the_settings_names():
    dbutils = DBUtils(environ={"LAKEHOUSE_PG_DSN": "postgresql://x"})
    assert dbutils.secrets.get("lakehouse", "pg-dsn") == "postgresql://x"
    with pytest.raises(SecretNotFound, match="set the environment variable LAKEHOUSE_API_KEY"):
        dbutils.secrets.get("lakehouse", "api.key")
