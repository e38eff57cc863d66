"""What `lakehouse adf run`, `backfill`, `rerun` and `trigger run` print while a pipeline runs.

Lines people read: each pipeline's start and end, each activity that ended (not the skipped
failure handlers, which are bookkeeping, unless verbose), "attempt 2/3 in 60 s" before a retry,
for a backfill "chunk k/N, window, elapsed, ETA" per chunk, and at the end the rows written per
layer, summed from the notebooks' job summaries. The callback never fails the run
(``RunContext.emit``), and a closed pipe only stops the printing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from local.adf.records import ActivityRun, PipelineRunResult, RetryNotice
from local.run_view import window

CHUNK_PIPELINE = "pl_lakehouse_daily"


def elapsed_text(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class RunProgress:
    """The progress callback of a command (``RunContext.on_event``).

    Args:
        console: where lines go.
        verbose: also print skipped activities and, in a backfill, every step of every chunk.
        chunks: for a backfill, how many chunks it has (the runs of ``pl_lakehouse_daily`` it starts).
        wait_cap: the local cap on retry intervals (``LAKEHOUSE_ADF_MAX_WAIT_SECONDS``), if any.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        console: Console,
        *,
        verbose: bool = False,
        chunks: int | None = None,
        wait_cap: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.verbose = verbose
        self.chunks = chunks
        self.wait_cap = wait_cap
        self.clock = clock
        self.started: float | None = None
        self.root: str | None = None
        self.chunk_index: dict[str, int] = {}
        self.chunks_done = 0
        self.depth: dict[str, int] = {}

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def __call__(self, event: str, record: Any) -> None:
        if isinstance(record, RetryNotice):
            self._retry(record)
        elif isinstance(record, PipelineRunResult):
            self._pipeline(event, record)
        elif isinstance(record, ActivityRun) and event == "activity_finished":
            self._activity(record)

    def _quiet(self, pipeline_run_id: str) -> bool:
        """In a backfill, the inside of each chunk is left out unless verbose."""
        return self.chunks is not None and not self.verbose and self.depth.get(pipeline_run_id, 0) >= 1

    def _pipeline(self, event: str, run: PipelineRunResult) -> None:
        if self.root is None:
            self.root, self.started = run.run_id, self.clock()
        depth = 0 if run.parent_run_id is None else self.depth.get(run.parent_run_id, 0) + 1
        self.depth.setdefault(run.run_id, depth)
        indent = "  " * depth
        if self._is_chunk(run):
            self._chunk(event, run)
            return
        if self._quiet(run.parent_run_id or run.run_id) and depth >= 1:
            return
        if event == "pipeline_started":
            self._print(f"{indent}[bold]▶ {run.pipeline}[/] {window(run.parameters)} [dim]{run.run_id}[/]")
        else:
            colour = "green" if run.succeeded else "red"
            self._print(f"{indent}[{colour}]■ {run.pipeline} {run.status}[/] in {run.duration_s or 0:.1f} s")

    def _is_chunk(self, run: PipelineRunResult) -> bool:
        return self.chunks is not None and run.pipeline == CHUNK_PIPELINE and run.parent_run_id == self.root

    def _chunk(self, event: str, run: PipelineRunResult) -> None:
        if event == "pipeline_started":
            self.chunk_index[run.run_id] = len(self.chunk_index) + 1
            return
        self.chunks_done += 1
        k, total = self.chunk_index.get(run.run_id, self.chunks_done), self.chunks or 0
        at = self.clock()
        elapsed = at - (self.started if self.started is not None else at)
        left = max(total - self.chunks_done, 0)
        eta = elapsed_text(elapsed / self.chunks_done * left) if left else "done"
        colour = "green" if run.succeeded else "red"
        self._print(
            f"chunk {k}/{total} {window(run.parameters)} [{colour}]{run.status}[/] in {run.duration_s or 0:.1f} s"
            f" · elapsed {elapsed_text(elapsed)} · ETA {eta}"
        )
        if not run.succeeded:
            self._print(f"  [red]{(run.error or {}).get('message', 'no error message')}[/]")

    def _activity(self, run: ActivityRun) -> None:
        if run.status == "Skipped" and not self.verbose:
            return
        if self._quiet(run.pipeline_run_id):
            return
        if self.chunks is not None and not self.verbose and run.status == "Succeeded":
            return  # the backfill's own steps: the chunk lines say it

        colour = {"Succeeded": "green", "Failed": "red", "Skipped": "yellow"}.get(run.status, "white")
        status = "Reused" if run.reused_from else run.status
        took = f" {run.duration_s:.1f} s" if run.duration_s is not None and not run.reused_from else ""
        indent = "  " * (self.depth.get(run.pipeline_run_id, 0) + 1)
        self._print(f"{indent}[{colour}]{status:<9}[/] {run.pipeline} / {run.activity}{took}")

    def _retry(self, notice: RetryNotice) -> None:
        wait = notice.interval_s if self.wait_cap is None else min(notice.interval_s, self.wait_cap)
        capped = f" (policy {notice.interval_s:g} s, capped locally)" if wait < notice.interval_s else ""
        message = (notice.run.error or {}).get("message", "")
        self._print(
            f"  [yellow]{notice.run.pipeline} / {notice.run.activity}: attempt {notice.next_attempt}/"
            f"{notice.attempts} in {wait:g} s{capped}[/] after: {message}"
        )


def rows_per_layer(result: PipelineRunResult) -> dict[str, dict[str, int]]:
    """Rows written per layer and table by the notebooks of a run and its children, from their job
    summaries (``runOutput.tables``); a table written by several runs is summed."""
    layers: dict[str, dict[str, int]] = {}
    for run in result.all_pipeline_runs():
        for activity in run.activity_runs:
            output = activity.output if activity.status == "Succeeded" else None
            tables = ((output or {}).get("runOutput") or {}) if isinstance(output, dict) else {}
            tables = tables.get("tables") if isinstance(tables, dict) else None
            for table, counts in (tables or {}).items():
                layer, _, name = table.partition(".")
                written = (counts or {}).get("rows_written") or 0
                bucket = layers.setdefault(layer, {})
                bucket[name or layer] = bucket.get(name or layer, 0) + int(written)
    return layers


def summary_table(result: PipelineRunResult) -> Table | None:
    """The final "rows written per layer" table, or None when no notebook reported rows."""
    layers = rows_per_layer(result)
    if not layers:
        return None
    table = Table(title="rows written per layer")
    for column in ("layer", "table", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for layer, counts in layers.items():
        for name, rows in counts.items():
            table.add_row(layer, name, f"{rows:,}")
    return table
