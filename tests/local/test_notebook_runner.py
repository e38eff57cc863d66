"""Databricks source-format notebooks run locally with `spark` and `dbutils` as globals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.adf.context import NotebookCall
from local.notebook_runner import NotebookError, SparkNotebookExecutor, parse_notebook, run_notebook

NOTEBOOK = """# Databricks notebook source
# MAGIC %md
# MAGIC # Sum a range

# COMMAND ----------

import json

dbutils.widgets.text("n", "3")
n = int(dbutils.widgets.get("n"))

# COMMAND ----------

total = spark.range(n).selectExpr("sum(id) AS s").collect()[0]["s"]
dbutils.notebook.exit(json.dumps({"n": n, "sum": total}))

# COMMAND ----------

raise AssertionError("cells after exit must not run")
"""


def write(tmp_path: Path, text: str, name: str = "sum_range") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return path


def test_cells_are_split_and_markdown_dropped():
    cells = parse_notebook(NOTEBOOK)
    assert [c.number for c in cells] == [2, 3, 4]
    assert cells[0].source.strip().startswith("import json")


def test_a_file_without_the_header_is_refused(tmp_path):
    with pytest.raises(NotebookError, match="not a Databricks source notebook"):
        run_notebook(write(tmp_path, "print(1)\n"), spark=None)


def test_a_real_notebook_runs_on_the_spark_session_and_returns_its_exit_value(spark, tmp_path):
    """sum(0..9) = 45, computed by Sail through the notebook's `spark` global."""
    exit_value = run_notebook(write(tmp_path, NOTEBOOK), spark, {"n": "10"})
    assert json.loads(exit_value) == {"n": 10, "sum": 45}


def test_a_raising_cell_fails_naming_the_notebook_and_cell(tmp_path):
    text = "# Databricks notebook source\nx = 1\n# COMMAND ----------\nraise ValueError('bad window')\n"
    with pytest.raises(NotebookError, match=r"notebook broken failed in cell 2: ValueError: bad window"):
        run_notebook(write(tmp_path, text, "broken"), spark=None)


def test_a_notebook_without_exit_returns_none(tmp_path):
    assert run_notebook(write(tmp_path, "# Databricks notebook source\nx = 1\n"), spark=None) is None


def test_the_executor_maps_a_workspace_path_to_the_local_file(tmp_path):
    write(tmp_path, "# Databricks notebook source\ndbutils.notebook.exit(dbutils.widgets.get('a'))\n", "echo")
    executor = SparkNotebookExecutor(spark=None, notebooks_dir=tmp_path)
    call = NotebookCall("/Shared/lakehouse/echo", {"a": "hi"}, "run-1", "Echo")
    assert executor(call) == "hi"
    with pytest.raises(NotebookError, match="has no local file"):
        executor(NotebookCall("/Shared/lakehouse/missing", {}, "run-1", "Missing"))
