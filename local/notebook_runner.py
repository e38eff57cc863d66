"""Runs a Databricks source-format notebook file as Databricks would run it in a job.

A notebook file starts with ``# Databricks notebook source`` and its cells are separated by
``# COMMAND ----------``. Cells run in order in one namespace whose globals include ``spark``
and ``dbutils`` (see ``local.dbutils``); ``dbutils.notebook.exit(value)`` ends the run and
``value`` is returned. Markdown cells (``# MAGIC %md``) are skipped; other magics fail, since a
notebook in this project only reads widgets and calls the package.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from local.adf.context import NotebookCall
from local.dbutils import DBUtils, NotebookExit

HEADER = "# Databricks notebook source"
CELL_SEPARATOR = re.compile(r"^# COMMAND -{10,}\s*$", re.MULTILINE)
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "spark_jobs" / "notebooks"


T = TypeVar("T")


class SessionOwner(Protocol):
    """Whoever owns the session notebooks run on, when it may replace that session during a run
    (locally ``local.runtime.SparkEngine``, which restarts a dead embedded Sail server and runs the
    notebook once more on the new session)."""

    def run(self, work: Callable[[Any], T], what: str) -> T: ...


class NotebookError(RuntimeError):
    """A notebook that could not be parsed or raised; names the file and the cell."""


@dataclass(frozen=True)
class Cell:
    number: int  # 1-based, as the Databricks UI counts
    source: str


def parse_notebook(text: str, name: str = "<notebook>") -> list[Cell]:
    """The code cells of a source-format notebook (markdown cells dropped)."""
    if not text.startswith(HEADER):
        raise NotebookError(f"{name}: not a Databricks source notebook (first line must be {HEADER!r})")
    cells = []
    for number, chunk in enumerate(CELL_SEPARATOR.split(text[len(HEADER) :]), start=1):
        lines = [line for line in chunk.strip("\n").splitlines()]
        magic = [line for line in lines if line.startswith("# MAGIC")]
        if magic:
            if magic[0].startswith("# MAGIC %md"):
                continue
            raise NotebookError(f"{name}: cell {number} uses {magic[0][8:].split()[0]!r}, not supported locally")
        if chunk.strip():
            cells.append(Cell(number, chunk))
    return cells


def run_notebook(
    path: Path,
    spark: Any,
    parameters: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """Run the notebook at `path`; return its exit value, or None if it ends without exit.

    Args:
        path: the ``.py`` source-format notebook.
        spark: the SparkSession the notebook sees as ``spark``.
        parameters: widget values (ADF ``baseParameters``), all strings.
        environ: where ``dbutils.secrets`` reads from; default ``os.environ``.

    Raises:
        NotebookError: the file is not a notebook, or a cell raised (message: file, cell, error).
    """
    path = Path(path)
    cells = parse_notebook(path.read_text(), path.name)
    dbutils = DBUtils(parameters, environ)
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(path), "spark": spark, "dbutils": dbutils}
    for cell in cells:
        code = compile(cell.source, f"{path}#cell{cell.number}", "exec")
        try:
            exec(code, namespace)  # noqa: S102 - running the notebook is the point
        except NotebookExit as done:
            return done.value
        except Exception as exc:
            raise NotebookError(
                f"notebook {path.stem} failed in cell {cell.number}: {type(exc).__name__}: {exc}"
            ) from exc
    return None


class SparkNotebookExecutor:
    """The runner's NotebookExecutor: maps the Databricks workspace path of an activity to the
    file ``spark_jobs/notebooks/<last path segment>.py`` and runs it on `spark`.

    Args:
        spark: the session notebooks get (locally the Sail session).
        notebooks_dir: where notebook files live.
        owner: instead of `spark`, the owner of a session that may be replaced during the run; each
            notebook then runs through ``owner.run``, on whatever session is current.
    """

    def __init__(
        self, spark: Any = None, notebooks_dir: Path = NOTEBOOKS_DIR, *, owner: SessionOwner | None = None
    ) -> None:
        self.spark = spark
        self.notebooks_dir = notebooks_dir
        self.owner = owner

    def notebook_file(self, notebook_path: str) -> Path:
        return notebook_file(notebook_path, self.notebooks_dir)

    def __call__(self, call: NotebookCall) -> str | None:
        path = self.notebook_file(call.notebook_path)

        def run(spark: Any) -> str | None:
            return run_notebook(path, spark, call.base_parameters)

        if self.owner is None:
            return run(self.spark)
        return self.owner.run(run, f"notebook {path.stem} (activity {call.activity!r})")


def notebook_file(notebook_path: str, notebooks_dir: Path = NOTEBOOKS_DIR) -> Path:
    """The local file of a workspace notebook path like ``/Shared/lakehouse/raw_to_bronze``."""
    name = notebook_path.rstrip("/").rsplit("/", 1)[-1]
    path = notebooks_dir / f"{name}.py"
    if not path.is_file():
        raise NotebookError(f"notebook {notebook_path!r} has no local file {path}")
    return path
