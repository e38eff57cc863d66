"""What a pipeline command prints while it runs: chunk k/N with ETA, retries, no bookkeeping lines."""

from __future__ import annotations

import io
import itertools
import json

from rich.console import Console

from local.adf.context import RunContext
from local.adf.records import ActivityFailure
from local.adf.runner import run_pipeline
from local.run_progress import RunProgress, elapsed_text, rows_per_layer


class Doubles:
    def __init__(self, failing_function_attempts: int = 0):
        self.failing_function_attempts = failing_function_attempts

    def notebook(self, call):
        name = call.notebook_path.rsplit("/", 1)[-1]
        layer = {"raw_to_bronze": "bronze", "bronze_to_silver": "silver", "silver_to_gold": "gold"}.get(name, "mart")
        return json.dumps({"job": name, "tables": {f"{layer}.daily_bars": {"rows_written": 7}}})

    def function(self, call):
        if self.failing_function_attempts:
            self.failing_function_attempts -= 1
            raise ActivityFailure("Call to Azure function 'ingest' failed with HTTP 502", "AzureFunctionFailed")
        return {"files_written": 2}


def run_with_progress(pipeline, params, doubles, **options):
    out = io.StringIO()
    ticks = itertools.count(0, 10)  # every look at the clock is 10 s later
    progress = RunProgress(Console(file=out, width=200, color_system=None), clock=lambda: next(ticks), **options)
    ctx = RunContext(notebook_executor=doubles.notebook, function_executor=doubles.function, on_event=progress,
                     sleep=lambda s: None)  # fmt: skip
    return run_pipeline(pipeline, params, ctx), out.getvalue().splitlines()


def test_a_backfill_prints_chunk_k_of_n_with_window_elapsed_and_eta():
    params = {"startDate": "2024-01-01", "endDate": "2024-01-20", "chunkDays": 5}
    result, lines = run_with_progress("pl_backfill", params, Doubles(), chunks=4)
    assert result.succeeded
    chunk_lines = [line for line in lines if line.startswith("chunk ")]
    assert [line.split(" Succeeded")[0] for line in chunk_lines] == [
        "chunk 1/4 2024-01-01..2024-01-05", "chunk 2/4 2024-01-06..2024-01-10",
        "chunk 3/4 2024-01-11..2024-01-15", "chunk 4/4 2024-01-16..2024-01-20",
    ]  # fmt: skip
    # clock ticks 10 s per look: first look at the start, one per finished chunk
    assert chunk_lines[0].endswith("· elapsed 10 s · ETA 30 s")
    assert chunk_lines[1].endswith("· elapsed 20 s · ETA 20 s")
    assert chunk_lines[3].endswith("· elapsed 40 s · ETA done")
    # the chunks' steps and the skipped failure handlers are not printed without -v
    assert not any("Skipped" in line or "Load bronze" in line for line in lines)


def test_verbose_shows_the_skipped_failure_handlers():
    _, quiet = run_with_progress("pl_lakehouse_daily", {"runDate": "2024-03-05"}, Doubles())
    _, verbose = run_with_progress("pl_lakehouse_daily", {"runDate": "2024-03-05"}, Doubles(), verbose=True)
    assert not any("Record failure of" in line for line in quiet)
    assert any("Skipped" in line and "Record failure of Load bronze" in line for line in verbose)
    assert any("Succeeded" in line and "pl_lakehouse_daily / Load bronze" in line for line in quiet)


def test_a_retry_says_which_attempt_comes_and_when():
    result, lines = run_with_progress(
        "pl_ingest_market_data",
        {"startDate": "2024-03-01", "endDate": "2024-03-05", "runId": "r1"},
        Doubles(2),
        wait_cap=5.0,
    )
    assert result.succeeded
    retries = [line for line in lines if "attempt" in line]
    assert retries == [
        "  pl_ingest_market_data / Ingest daily bars: attempt 2/3 in 5 s (policy 60 s, capped locally) after: "
        "Call to Azure function 'ingest' failed with HTTP 502",
        "  pl_ingest_market_data / Ingest daily bars: attempt 3/3 in 5 s (policy 60 s, capped locally) after: "
        "Call to Azure function 'ingest' failed with HTTP 502",
    ]


def test_rows_per_layer_sum_the_notebooks_job_summaries():
    params = {"startDate": "2024-01-01", "endDate": "2024-01-10", "chunkDays": 5}
    result, _ = run_with_progress("pl_backfill", params, Doubles(), chunks=2)
    assert rows_per_layer(result) == {
        "bronze": {"daily_bars": 14}, "silver": {"daily_bars": 14}, "gold": {"daily_bars": 14},
        "mart": {"daily_bars": 14},
    }  # fmt: skip


def test_elapsed_text():
    assert [elapsed_text(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]
