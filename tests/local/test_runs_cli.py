"""`lakehouse runs` as a tree at 80 columns, run-id prefixes, `rerun` of the real pipelines, and
`backfill --dry-run --resume`, on runs of adf/'s pipelines recorded with executor doubles."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from local.adf.context import RunContext
from local.adf.runner import rerun_pipeline, run_pipeline

CLI = [sys.executable, "-m", "local.cli"]
TRADE_WINDOW_JOBS = {"silver_to_gold", "gold_to_postgres"}
BACKFILL = {"startDate": "2024-01-01", "endDate": "2024-01-15", "chunkDays": 5}


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=180)


def said(stream: str) -> str:
    """A message as one line, without the frame rich draws around a usage error."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", stream).split())


class Doubles:
    """Databricks and the Function app: counts each call, fails one notebook for one window."""

    def __init__(self, failing: tuple[str, str] | None = None):
        self.calls: Counter[str] = Counter()
        self.failing = failing

    def notebook(self, call):
        name = call.notebook_path.rsplit("/", 1)[-1]
        # bronze and silver get the ingestion days (up to today), gold and the marts the trade window
        window = call.base_parameters.get("end_date") if name in TRADE_WINDOW_JOBS else "ingestion"
        self.calls[f"{name} {window}"] += 1
        if self.failing in ((name, window), (name, None)):
            raise ValueError(f"{name}: 3 rows violate the silver contract")
        return json.dumps({"job": name, "tables": {f"gold.{name}": {"rows_written": 10}}})

    def function(self, call):
        self.calls[f"ingest {call.body['dataset']} {call.body['end_date']}"] += 1
        return {"files_written": 2, "run_id": call.body["run_id"]}

    def context(self, store) -> RunContext:
        return RunContext(notebook_executor=self.notebook, function_executor=self.function, recorder=store,
                          sleep=lambda s: None)  # fmt: skip


@pytest.fixture(scope="module")
def failed_backfill(store):
    """A backfill of 3 chunks whose second chunk failed in silver_to_gold."""
    doubles = Doubles(failing=("silver_to_gold", "2024-01-10"))
    result = run_pipeline("pl_backfill", BACKFILL, doubles.context(store))
    assert result.status == "Failed"
    return result


def test_a_master_failed_in_its_third_step_is_completed_by_rerun_without_repeating_the_first_two(store):
    doubles = Doubles(failing=("bronze_to_silver", None))
    ctx = doubles.context(store)
    failed = run_pipeline("pl_lakehouse_daily", {"runDate": "2024-02-02"}, ctx)
    assert failed.status == "Failed" and "at step Load silver" in failed.error["message"]
    first = Counter(doubles.calls)

    doubles.failing = None
    rerun = rerun_pipeline(store.pipeline_run(failed.run_id), store.activity_runs(failed.run_id), ctx)

    assert rerun.status == "Succeeded", rerun.error
    again = doubles.calls - first
    # ingestion (4 function calls) and raw_to_bronze are not executed again
    assert again == Counter({
        "bronze_to_silver ingestion": 1, "silver_to_gold 2024-02-02": 1, "gold_to_postgres 2024-02-02": 1,
    })  # fmt: skip
    assert store.pipeline_run(rerun.run_id)["rerun_of"] == failed.run_id
    steps = {a["activity"]: a for a in store.activity_runs(rerun.run_id)}
    assert steps["Ingest market data"]["reused_from"] is not None
    assert steps["Load bronze"]["reused_from"] is not None
    assert steps["Load silver"]["reused_from"] is None


def test_runs_shows_the_tree_of_a_run_failed_path_first_within_80_columns(store, failed_backfill, lakehouse_env):
    out = cli("runs", failed_backfill.run_id[:10])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    head = next(i for i, line in enumerate(lines) if line.startswith(failed_backfill.run_id[:8]))
    assert " ".join(line.strip() for line in lines[:head]).startswith(
        "failed path: pl_backfill > Chunks in sequence > Run master for chunk > pl_lakehouse_daily > Load gold"
        " > pl_silver_to_gold > "
    )
    assert lines[head].startswith(f"{failed_backfill.run_id[:8]}  pl_backfill  Failed  ")
    assert "2024-01-01..2024-01-15" in lines[head] and "chunkDays=5" in lines[head]
    text = "\n".join(lines)
    # the failed chunk comes first among the chunks, with its window and its error
    chunk_lines = [line for line in lines if re.search(r"[0-9a-f]{8}  pl_lakehouse_daily  ", line)]
    assert len(chunk_lines) == 3
    assert "Failed" in chunk_lines[0] and "2024-01-06..2024-01-10" in chunk_lines[0]
    assert "2024-01-01..2024-01-05" in chunk_lines[1] and "2024-01-11..2024-01-15" in chunk_lines[2]
    assert "! ValueError: silver_to_gold: 3 rows violate the silver" in text  # where it failed, once per attempt
    assert text.count("3 rows violate") == 3  # two attempts and the master's Fail activity, not every level
    # bookkeeping hidden unless -v
    assert "Record failure of Load bronze" not in text and "skipped; -v shows them" in text
    verbose = cli("runs", failed_backfill.run_id, "-v")
    assert "Record failure of Load bronze" in verbose.stdout


def test_runs_lists_top_level_runs_one_line_each_with_filters(store, failed_backfill, lakehouse_env):
    out = cli("runs", "--pipeline", "pl_backfill", "--status", "Failed", "--limit", "1", "--since", "1h")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"{failed_backfill.run_id[:8]}  pl_backfill  Failed")
    assert all(not line.startswith(("├", "└", "│")) for line in lines)  # no tree without --all
    assert lines[1].startswith("! Operation on target Chunks in sequence failed")  # the run's error under it
    assert max(len(line) for line in lines) <= 80
    expanded = cli("runs", "--pipeline", "pl_backfill", "--status", "Failed", "--limit", "1", "--depth", "1")
    assert "├─ Check range" in expanded.stdout
    assert not re.search(r"[0-9a-f]{8}  pl_lakehouse_daily  ", expanded.stdout)  # the chunks' runs are deeper
    none = cli("runs", "--pipeline", "pl_backfill", "--since", "2999-01-01")
    assert none.stdout.strip() == "(no runs)"


def test_runs_json_is_one_tree_shape_in_seconds_with_trigger(store, failed_backfill, lakehouse_env):
    out = cli("runs", failed_backfill.run_id, "--json")
    assert out.returncode == 0, out.stderr
    (run,) = json.loads(out.stdout)
    assert run["run_id"] == failed_backfill.run_id and run["status"] == "Failed"
    assert {"trigger", "seconds", "window", "parameters", "rerun_of", "activities"} <= set(run)
    assert run["window"] == "2024-01-01..2024-01-15" and isinstance(run["seconds"], float)
    foreach = next(a for a in run["activities"] if a["activity"] == "Chunks in sequence")
    chunks = [c for c in foreach["children"] if c["activity"] == "Run master for chunk"]
    assert len(chunks) == 3
    masters = [child for c in chunks for child in c["children"]]
    assert sorted(m["window"] for m in masters) == ["2024-01-01..2024-01-05", "2024-01-06..2024-01-10",
                                                    "2024-01-11..2024-01-15"]  # fmt: skip
    assert "duration_ms" not in json.dumps(run)


def test_run_id_prefixes_unknown_and_ambiguous_are_refused(store, lakehouse_env):
    with store._connection().cursor() as cur:
        for suffix in ("1", "2"):
            cur.execute(
                "INSERT INTO ops.pipeline_runs (run_id, pipeline, status, started_at) VALUES (%s, 'pl_x', "
                "'Succeeded', now()) ON CONFLICT DO NOTHING",
                (f"cli-ambiguous-{suffix}",),
            )
    unknown = cli("runs", "zzzz-no-such")
    assert unknown.returncode == 2 and "no run id starts with 'zzzz-no-such'" in said(unknown.stderr)
    ambiguous = cli("runs", "cli-ambiguous-")
    assert ambiguous.returncode == 2
    assert "is ambiguous: cli-ambiguous-" in said(ambiguous.stderr) and "cli-ambiguous-1" in ambiguous.stderr
    assert "cli-ambiguous-2" in ambiguous.stderr
    succeeded = cli("rerun", "cli-ambiguous-1", "--from-failure")
    assert succeeded.returncode == 2 and "nothing failed to rerun from" in said(succeeded.stderr)


def test_backfill_dry_run_says_what_each_chunk_would_do(store, failed_backfill, lakehouse_env):
    args = ["backfill", "--start", "2024-01-01", "--end", "2024-01-15", "--chunk-days", "5", "--dry-run"]
    fresh = cli(*args, columns=120)
    assert fresh.returncode == 0, fresh.stderr
    rows = [line for line in fresh.stdout.splitlines() if "/3" in line]
    assert [r.split("│")[3].strip() for r in rows] == ["replace", "run", "replace"], fresh.stdout
    resumed = cli(*args, "--resume", columns=120)
    assert resumed.returncode == 0, resumed.stderr
    rows = [line for line in resumed.stdout.splitlines() if "/3" in line]
    assert [r.split("│")[3].strip() for r in rows] == ["skip", "run", "skip"], resumed.stdout
    assert f"resumes run {failed_backfill.run_id} (Failed)" in resumed.stdout


def test_a_resumed_backfill_runs_only_the_chunk_that_failed(store):
    params = {"startDate": "2024-03-01", "endDate": "2024-03-15", "chunkDays": 5}
    doubles = Doubles(failing=("silver_to_gold", "2024-03-10"))
    ctx = doubles.context(store)
    failed = run_pipeline("pl_backfill", params, ctx)
    assert failed.status == "Failed"
    first = Counter(doubles.calls)
    doubles.failing = None
    rerun = rerun_pipeline(store.pipeline_run(failed.run_id), store.activity_runs(failed.run_id), ctx)
    assert rerun.status == "Succeeded", rerun.error
    again = doubles.calls - first
    assert again == Counter({  # the failed chunk only
        "ingest daily_bars 2024-03-10": 1, "ingest security_master 2024-03-10": 1, "ingest splits 2024-03-10": 1,
        "ingest dividends 2024-03-10": 1, "raw_to_bronze ingestion": 1, "bronze_to_silver ingestion": 1,
        "silver_to_gold 2024-03-10": 1, "gold_to_postgres 2024-03-10": 1,
    })  # fmt: skip


def test_a_closed_stdout_does_not_cancel_a_pipeline_run(store, lakehouse_env):
    """`lakehouse adf run ... | head -1`: rich raises SystemExit on the broken pipe; the run goes on."""
    env = {**os.environ, "COLUMNS": "80"}
    proc = subprocess.Popen([*CLI, "adf", "run", "pl_maintenance"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # fmt: skip
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away after one line
    _, err = proc.communicate(timeout=300)
    assert first.startswith(b"\xe2\x96\xb6 pl_maintenance"), (first, err.decode()[-3000:])
    latest = store.pipeline_runs(limit=1, pipeline="pl_maintenance")[0]
    assert latest["status"] == "Succeeded", (latest["error"], err.decode()[-2000:])
    assert b"Traceback" not in err
