"""The job parameters, declared once: widgets for the notebooks, parsing for the jobs."""

from __future__ import annotations

import datetime as dt

import pytest

from local.dbutils import DBUtils
from spark_jobs.job_params import DateWindow, declare_widgets, parse_flag, widget_values


def test_widgets_default_when_adf_passes_nothing_and_take_what_it_passes() -> None:
    unset = DBUtils()
    declare_widgets(unset)
    assert widget_values(unset) == {"start_date": "", "end_date": "", "run_id": "manual", "full_refresh": "false"}
    passed = {"start_date": "2024-03-01", "end_date": "2024-03-05", "run_id": "r-1", "full_refresh": "true"}
    given = DBUtils(passed)
    declare_widgets(given)
    assert widget_values(given) == passed


def test_a_window_is_inclusive_and_its_bad_bounds_are_named() -> None:
    window = DateWindow.parse("2024-03-01", dt.date(2024, 3, 5))
    assert (window.start, window.end) == (dt.date(2024, 3, 1), dt.date(2024, 3, 5))
    assert window.predicate("trade_date") == "`trade_date` BETWEEN DATE'2024-03-01' AND DATE'2024-03-05'"
    with pytest.raises(ValueError, match="start_date must be YYYY-MM-DD, got '03/01/2024'"):
        DateWindow.parse("03/01/2024", "2024-03-05")
    with pytest.raises(ValueError, match="end_date 2024-02-01 is before start_date 2024-03-01"):
        DateWindow.parse("2024-03-01", "2024-02-01")


@pytest.mark.parametrize(("given", "expected"), [("true", True), (" TRUE ", True), ("false", False), ("", False)])
def test_full_refresh_flag(given: str, expected: bool) -> None:
    assert parse_flag(given) is expected


def test_a_full_refresh_flag_that_is_neither_true_nor_false_is_refused() -> None:
    with pytest.raises(ValueError, match="full_refresh must be 'true' or 'false', got 'yes'"):
        parse_flag("yes")
