"""The one job summary: totals are the sums of the tables, the JSON reads back, unknown counters are refused."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from pydantic import ValidationError

from lakehouse.job_summary import JobSummary, TableSummary


def summary() -> JobSummary:
    return JobSummary(
        job="bronze_to_silver",
        run_id="run-1",
        start_date=dt.date(2024, 3, 1),
        end_date=dt.date(2024, 3, 4),
        tables={
            "silver.daily_bars": TableSummary(rows_read=10, rows_written=6, rows_quarantined=3, inserted=5, revised=1),
            "silver.quotes": TableSummary(rows_read=2, rows_written=2, rows_quarantined=0),
            "gold.dim_date": TableSummary(rows_written=4),
        },
        seconds=1.25,
    )


def test_totals_are_the_sums_over_the_tables() -> None:
    s = summary()
    assert (s.rows_read, s.rows_written, s.rows_quarantined) == (12, 12, 3)


def test_the_exit_json_leaves_out_counters_a_job_does_not_keep_and_reads_back() -> None:
    text = summary().to_json()
    doc = json.loads(text)
    assert doc["tables"]["gold.dim_date"] == {"rows_written": 4}
    assert (doc["start_date"], doc["end_date"], doc["rows_read"]) == ("2024-03-01", "2024-03-04", 12)
    assert JobSummary.model_validate_json(text) == summary()


def test_a_counter_with_another_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="rows_in"):
        TableSummary.model_validate({"rows_in": 3})


def test_two_loads_of_one_table_add_up_instead_of_the_second_replacing_the_first() -> None:
    splits = TableSummary(files_found=3, files_loaded=2, rows_read=5, rows_written=5, manifest_mismatches=[])
    dividends = TableSummary(files_found=3, files_loaded=3, rows_read=7, rows_written=6, files_rejected=1,
                             manifest_mismatches=[{"file": "f", "manifest_records": 2, "bronze_rows": 1}])
    both = splits.plus(dividends)
    assert (both.files_found, both.files_loaded, both.rows_read, both.rows_written) == (6, 5, 12, 11)
    assert both.files_rejected == 1 and both.rows_quarantined is None
    assert both.manifest_mismatches == [{"file": "f", "manifest_records": 2, "bronze_rows": 1}]
