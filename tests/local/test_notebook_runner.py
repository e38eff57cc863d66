"""Databricks source-format notebooks run locally with `spark` and `dbutils` as globals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
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


# ---------------------------------------------------------------- a Sail server dying under a notebook

# Kills the home's recorded Sail server (checked to be the home's before the signal) on its first
# `kills` attempts, between two Spark calls: the next call finds no server.
KILLS_ITS_ENGINE = """# Databricks notebook source
from pathlib import Path

attempts = Path(dbutils.widgets.get("attempts"))
with attempts.open("a") as out:
    out.write("attempt\\n")
assert spark.range(5).count() == 5

# COMMAND ----------

from local import services

home = Path(dbutils.widgets.get("home"))
if len(attempts.read_text().splitlines()) <= int(dbutils.widgets.get("kills")):
    info = services.Registry(home).read()["spark"]
    sail = services.proven_ours(info.pid, info.token, home / "spark")
    sail.kill()
    sail.wait(10)

# COMMAND ----------

dbutils.notebook.exit(str(spark.range(10).selectExpr("sum(id) AS s").first()["s"]))
"""


@pytest.fixture
def sail_engine(tmp_path):
    """A SparkEngine on a Sail server of its own home (command-scoped, as a command starts it)."""
    from lakehouse.settings import load_settings
    from local import services
    from local.runtime import SparkEngine

    settings = load_settings(home=tmp_path / "home")
    started, _ = services.up(settings, ("spark",), scoped=True)
    engine = SparkEngine(settings, started["spark"].url)
    yield engine, settings
    engine.stop()
    services.down(settings)
    left = [p for p in psutil.process_iter(["cmdline"]) if str(settings.home_dir) in " ".join(p.info["cmdline"] or [])]
    assert not left, f"processes left behind: {left}"


def engine_call(tmp_path: Path, settings, kills: int) -> NotebookCall:
    write(tmp_path, KILLS_ITS_ENGINE, "kills_its_engine")
    params = {"attempts": str(tmp_path / "attempts"), "home": str(settings.home_dir), "kills": str(kills)}
    return NotebookCall("/Shared/lakehouse/kills_its_engine", params, "run-1", "Kill")


def attempts(tmp_path: Path) -> int:
    return len((tmp_path / "attempts").read_text().splitlines())


def test_a_notebook_whose_sail_server_dies_runs_once_more_on_a_restarted_one(sail_engine, tmp_path):
    from local import services

    engine, settings = sail_engine
    before = services.Registry(settings.home_dir).read()["spark"]
    executor = SparkNotebookExecutor(notebooks_dir=tmp_path, owner=engine)

    assert executor(engine_call(tmp_path, settings, kills=1)) == "45"
    assert attempts(tmp_path) == 2
    [restart] = engine.restarts
    assert (restart.old_url, restart.during) == (before.url, "notebook kills_its_engine (activity 'Kill')")
    assert restart.pid != before.pid and "UNAVAILABLE" in restart.reason
    after = services.Registry(settings.home_dir).read()["spark"]
    assert (after.pid, after.url, after.scoped) == (restart.pid, restart.new_url, True)
    assert engine.session.range(3).count() == 3


def test_a_data_error_is_never_retried_by_the_engine(sail_engine, tmp_path):
    engine, _ = sail_engine
    executor = SparkNotebookExecutor(notebooks_dir=tmp_path, owner=engine)
    broken = {
        "raises": "raise ValueError('bad window')",
        "bad_plan": "spark.range(3).select('no_such_column').collect()",
    }
    for name, line in broken.items():
        marker = tmp_path / name
        text = f"# Databricks notebook source\nwith open({str(marker)!r}, 'a') as f:\n    f.write('x')\n{line}\n"
        write(tmp_path, text, name)
        with pytest.raises(NotebookError, match=f"notebook {name} failed in cell 1"):
            executor(NotebookCall(f"/Shared/lakehouse/{name}", {}, "run-1", name))
        assert (tmp_path / name).read_text() == "x", f"{name} ran more than once"
    assert engine.restarts == []


def test_sail_dying_again_after_its_restart_gives_the_engine_up_at_once_for_the_rest_of_the_run(sail_engine, tmp_path):
    from local.runtime import SparkEngineGone

    engine, settings = sail_engine
    executor = SparkNotebookExecutor(notebooks_dir=tmp_path, owner=engine)
    started = time.monotonic()
    with pytest.raises(SparkEngineGone, match=r"embedded Sail Spark Connect server .* is gone: it died again") as gone:
        executor(engine_call(tmp_path, settings, kills=2))
    assert time.monotonic() - started < 60
    assert gone.value.error_code == "SparkEngineGone" and "spark.log" in gone.value.message
    assert attempts(tmp_path) == 2 and len(engine.restarts) == 1

    later = time.monotonic()
    with pytest.raises(SparkEngineGone, match="died again"):
        executor(engine_call(tmp_path, settings, kills=0))
    assert time.monotonic() - later < 1, "a later notebook must fail at once, not wait on the dead server"
    assert attempts(tmp_path) == 2 and len(engine.restarts) == 1


def test_only_a_lost_server_counts_as_a_dead_engine_through_the_notebooks_wrapping():
    import grpc
    from pyspark.errors.exceptions.connect import AnalysisException, SparkConnectGrpcException

    from local.spark import lost_connection

    def wrapped(exc: Exception) -> NotebookError:
        try:
            try:
                raise exc
            except Exception as inner:
                raise NotebookError("notebook x failed in cell 2") from inner
        except NotebookError as outer:
            return outer

    lost = SparkConnectGrpcException(
        message='<_InactiveRpcError of RPC that terminated with:\n\tstatus = StatusCode.UNAVAILABLE\n\tdetails = "'
        'failed to connect to all addresses; Connection refused"\n>',
        grpc_status_code=grpc.StatusCode.UNAVAILABLE,
    )
    answered = AnalysisException(
        message="[UNRESOLVED_COLUMN] no_such_column", grpc_status_code=grpc.StatusCode.INTERNAL
    )
    assert lost_connection(wrapped(lost)) == "UNAVAILABLE: failed to connect to all addresses; Connection refused"
    assert lost_connection(wrapped(answered)) is None
    assert lost_connection(wrapped(ValueError("bad window"))) is None
