"""The pipelines of adf/ orchestrate as designed, run by the local runner.

Notebook and function executors are doubles (they stand in for Databricks and the Function
app), so these tests are about the JSON: windows, chunking, run ids, failure handling.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lakehouse.plan_checks import DAILY_DATASETS
from local.adf.context import FunctionCall, NotebookCall, RunContext
from local.adf.records import ActivityFailure
from local.adf.runner import run_pipeline
from local.adf_triggers import fire_trigger

LAYERS = ["raw_to_bronze", "bronze_to_silver", "silver_to_gold", "gold_to_postgres"]


class Doubles:
    """Records what the pipelines ask of Databricks and of the Function app."""

    def __init__(self, failing_notebook: str | None = None, failing_function_attempts: int = 0):
        self.notebooks: list[NotebookCall] = []
        self.functions: list[FunctionCall] = []
        self.failing_notebook = failing_notebook
        self.failing_function_attempts = failing_function_attempts
        self.waits: list[float] = []

    def notebook(self, call: NotebookCall) -> str:
        self.notebooks.append(call)
        name = call.notebook_path.rsplit("/", 1)[-1]
        if name == self.failing_notebook:
            raise ValueError(f"{name}: 3 rows violate the silver contract")
        return json.dumps({"job": name, "rows": 10})

    def function(self, call: FunctionCall) -> dict:
        self.functions.append(call)
        if self.failing_function_attempts:
            self.failing_function_attempts -= 1
            raise ActivityFailure("Call to Azure function 'ingest' failed with HTTP 502", "AzureFunctionFailed")
        return {"files_written": 2, "run_id": call.body["run_id"]}

    def context(self) -> RunContext:
        return RunContext(notebook_executor=self.notebook, function_executor=self.function, sleep=self.waits.append)

    def windows(self, notebook: str = "silver_to_gold") -> list[tuple[str, str]]:
        return [
            (c.base_parameters["start_date"], c.base_parameters["end_date"])
            for c in self.notebooks
            if c.notebook_path.endswith("/" + notebook)
        ]


def expected_chunks(start: dt.date, end: dt.date, days: int) -> list[tuple[str, str]]:
    chunks, cursor = [], start
    while cursor <= end:
        last = min(cursor + dt.timedelta(days=days - 1), end)
        chunks.append((cursor.isoformat(), last.isoformat()))
        cursor = last + dt.timedelta(days=1)
    return chunks


def test_the_master_runs_every_step_for_the_run_date_with_its_own_run_id():
    doubles = Doubles()
    result = run_pipeline("pl_lakehouse_daily", {"runDate": "2024-03-05", "symbols": "AAPL,MSFT"}, doubles.context())
    assert result.status == "Succeeded"
    assert [c.notebook_path.rsplit("/", 1)[-1] for c in doubles.notebooks] == LAYERS
    assert {c.base_parameters["run_id"] for c in doubles.notebooks} == {result.run_id}
    windows = {c.notebook_path.rsplit("/", 1)[-1]: (c.base_parameters["start_date"], c.base_parameters["end_date"])
               for c in doubles.notebooks}  # fmt: skip
    # gold and serving work on the trade-date window ...
    assert windows["silver_to_gold"] == windows["gold_to_postgres"] == ("2024-03-05", "2024-03-05")
    # ... bronze and silver on the ingestion dates: the last 7 days (ingestLookbackDays) up to today, UTC.
    today = dt.datetime.now(dt.UTC).date()
    ingest_window = ((today - dt.timedelta(days=7)).isoformat(), today.isoformat())
    assert windows["raw_to_bronze"] == windows["bronze_to_silver"] == ingest_window
    assert [c.body for c in doubles.functions] == [
        {
            "dataset": d,
            "start_date": "2024-03-05",
            "end_date": "2024-03-05",
            "run_id": result.run_id,
            "symbols": "AAPL,MSFT",
        }
        for d in DAILY_DATASETS  # the same datasets, in the same order, as the ingest_daily timer
    ]
    assert result.output["silver"] == {"job": "bronze_to_silver", "rows": 10}


def test_start_and_end_override_the_run_date_and_full_refresh_reaches_the_notebooks():
    doubles = Doubles()
    run_pipeline(
        "pl_lakehouse_daily",
        {"runDate": "2024-03-05", "startDate": "2024-01-02", "endDate": "2024-01-31", "fullRefresh": "true"},
        doubles.context(),
    )
    assert set(doubles.windows()) == {("2024-01-02", "2024-01-31")}
    assert {c.base_parameters["full_refresh"] for c in doubles.notebooks} == {"true"}
    assert "symbols" not in doubles.functions[0].body  # empty: the configured universe


def test_a_failing_notebook_fails_the_master_with_the_step_and_its_error():
    doubles = Doubles(failing_notebook="bronze_to_silver")
    result = run_pipeline("pl_lakehouse_daily", {"runDate": "2024-03-05"}, doubles.context())
    assert result.status == "Failed"
    assert result.error["errorCode"] == "LakehouseStepFailed"
    assert (
        "pl_lakehouse_daily failed for window 2024-03-05..2024-03-05 at step Load silver: " in result.error["message"]
    )
    assert "bronze_to_silver: 3 rows violate the silver contract" in result.error["message"]
    ran = {r.activity: r.status for r in result.activity_runs}
    assert ran["Record failure of Load silver"] == "Succeeded"
    assert ran["Fail with step error"] == "Failed"
    assert (ran["Load gold"], ran["Load postgres"], ran["Return summary"]) == ("Skipped",) * 3
    # the notebook activity was retried once (policy.retry = 1) before the step failed
    assert [c.notebook_path.rsplit("/", 1)[-1] for c in doubles.notebooks].count("bronze_to_silver") == 2


def test_a_failing_function_is_retried_by_policy_before_the_master_gives_up():
    doubles = Doubles(failing_function_attempts=3)
    result = run_pipeline("pl_lakehouse_daily", {"runDate": "2024-03-05"}, doubles.context())
    assert len(doubles.functions) == 3
    assert doubles.waits == [60.0, 60.0]
    assert result.status == "Failed"
    assert "at step Ingest market data: " in result.error["message"]
    assert "HTTP 502" in result.error["message"]
    assert doubles.notebooks == []


def test_a_reversed_window_fails_before_anything_runs():
    doubles = Doubles()
    result = run_pipeline("pl_lakehouse_daily", {"startDate": "2024-03-05", "endDate": "2024-03-01"}, doubles.context())
    assert result.status == "Failed"
    assert "startDate 2024-03-05 is after endDate 2024-03-01" in result.error["message"]
    assert doubles.functions == doubles.notebooks == []


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [("2024-01-01", "2024-03-05", 30), ("2024-01-01", "2024-01-01", 92), ("2023-12-30", "2024-01-02", 1)],
)
def test_backfill_runs_the_master_once_per_chunk_in_order(start, end, days):
    doubles = Doubles()
    result = run_pipeline("pl_backfill", {"startDate": start, "endDate": end, "chunkDays": days}, doubles.context())
    assert result.status == "Succeeded"
    expected = expected_chunks(dt.date.fromisoformat(start), dt.date.fromisoformat(end), days)
    assert doubles.windows() == expected
    masters = [r for r in result.all_pipeline_runs() if r.pipeline == "pl_lakehouse_daily"]
    assert len(masters) == len(expected)
    assert len({m.run_id for m in masters}) == len(expected)


def test_backfill_in_parallel_covers_the_same_chunks():
    doubles = Doubles()
    result = run_pipeline(
        "pl_backfill",
        {"startDate": "2024-01-01", "endDate": "2024-02-15", "chunkDays": 7, "sequential": "false"},
        doubles.context(),
    )
    assert result.status == "Succeeded"
    assert sorted(doubles.windows()) == expected_chunks(dt.date(2024, 1, 1), dt.date(2024, 2, 15), 7)
    assert {r.activity: r.status for r in result.activity_runs}["Chunks in sequence"] == "Succeeded"


@pytest.mark.parametrize(("start", "end", "days"), [("2024-03-06", "2024-03-05", 30), ("2024-01-01", "2024-01-31", 0)])
def test_backfill_refuses_an_invalid_range(start, end, days):
    doubles = Doubles()
    result = run_pipeline("pl_backfill", {"startDate": start, "endDate": end, "chunkDays": days}, doubles.context())
    assert result.status == "Failed"
    assert result.error["errorCode"] == "InvalidBackfillRange"
    assert doubles.notebooks == []


def test_a_failed_chunk_fails_the_backfill_and_names_the_step():
    doubles = Doubles(failing_notebook="silver_to_gold")
    result = run_pipeline(
        "pl_backfill", {"startDate": "2024-01-01", "endDate": "2024-01-10", "chunkDays": 5}, doubles.context()
    )
    assert result.status == "Failed"
    assert "at step Load gold" in result.error["message"]


def test_the_daily_trigger_runs_the_master_for_the_scheduled_date():
    doubles = Doubles()
    result = fire_trigger("tr_daily", "2024-03-05T22:30:00Z", doubles.context())
    assert (result.pipeline, result.parameters["runDate"], result.trigger_name) == (
        "pl_lakehouse_daily",
        "2024-03-05",
        "tr_daily",
    )
    assert set(doubles.windows()) == {("2024-03-05", "2024-03-05")}


def test_maintenance_runs_its_notebook_for_the_run_date():
    doubles = Doubles()
    result = fire_trigger("tr_maintenance_weekly", "2024-03-10T04:00:00Z", doubles.context())
    assert result.status == "Succeeded"
    (call,) = doubles.notebooks
    assert call.notebook_path == "/Shared/lakehouse/maintenance"
    assert call.base_parameters == {
        "start_date": "2024-03-10",
        "end_date": "2024-03-10",
        "run_id": result.run_id,
        "full_refresh": "false",
    }


def test_a_raising_notebook_fails_the_master_with_its_error_through_the_real_notebook_runner(spark, tmp_path):
    """Real notebook files on the Sail session: bronze_to_silver raises, the master fails naming
    'Load silver' and the notebook's own message, and the failure branch runs."""
    from local.notebook_runner import SparkNotebookExecutor

    ok = (
        "# Databricks notebook source\nimport json\n# COMMAND ----------\n"
        "rows = spark.range(int(dbutils.widgets.get('start_date')[-2:])).count()\n"
        "dbutils.notebook.exit(json.dumps({'rows': rows, 'run_id': dbutils.widgets.get('run_id')}))\n"
    )
    for name in LAYERS:
        (tmp_path / f"{name}.py").write_text(ok)
    (tmp_path / "bronze_to_silver.py").write_text(
        "# Databricks notebook source\n# COMMAND ----------\n"
        "raise ValueError('quarantine rate 40% exceeds the 5% limit')\n"
    )
    doubles = Doubles()
    context = doubles.context()
    context.notebook_executor = SparkNotebookExecutor(spark, notebooks_dir=tmp_path)
    result = run_pipeline("pl_lakehouse_daily", {"runDate": "2024-03-07"}, context)
    assert result.status == "Failed"
    assert result.error["message"] == (
        "Operation on target Fail with step error failed: pl_lakehouse_daily failed for window "
        "2024-03-07..2024-03-07 at step Load silver: "
        "Operation on target Run bronze_to_silver failed: NotebookError: notebook bronze_to_silver failed "
        "in cell 2: ValueError: quarantine rate 40% exceeds the 5% limit"
    )
    bronze = next(r for r in result.all_pipeline_runs() if r.pipeline == "pl_raw_to_bronze")
    ingest_start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=7)  # bronze runs on ingestion dates
    assert bronze.output == {"summary": {"rows": ingest_start.day, "run_id": result.run_id}}
    statuses = {r.activity: r.status for r in result.activity_runs}
    assert (statuses["Record failure of Load silver"], statuses["Load gold"]) == ("Succeeded", "Skipped")
