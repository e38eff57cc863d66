"""The local ADF runner follows ADF's scheduling rules.

Each test runs a small pipeline from ``tests/local/fixtures/adf`` with executor doubles: the
notebook and function executors stand in for Databricks and the Function app (only Azure is
replaced; expressions are evaluated by Microsoft's engine, scheduling by the runner).
Expected outcomes for the error-handling patterns are the ones in ADF's documentation
"Errors and Conditional execution" (try-catch, do-if-else, do-if-skip-else, generic error handling).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from local.adf.context import FunctionCall, NotebookCall, RunContext
from local.adf.records import AdfDefinitionError, PipelineParameterError, PipelineRunResult
from local.adf.runner import run_pipeline
from local.adf.scheduler import parse_timespan
from local.run_store import MemoryRunStore

FIXTURES = Path(__file__).parents[1] / "fixtures" / "adf"


class FakeNotebooks:
    """Notebook executor double. A notebook listed in `fail` raises (or fails its first
    `fail[name]` calls when that is an int); the exit value echoes the widget values."""

    def __init__(
        self, fail: dict[str, object] | None = None, delay: float = 0.0, sleep: dict[str, float] | None = None
    ):
        self.fail = dict(fail or {})
        self.delay = delay
        self.sleep = sleep or {}
        self.calls: list[NotebookCall] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    @staticmethod
    def name(call: NotebookCall) -> str:
        return call.notebook_path.rsplit("/", 1)[-1]

    def __call__(self, call: NotebookCall) -> str:
        name = self.name(call)
        with self._lock:
            self.calls.append(call)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.sleep.get(name, self.delay))
            rule = self.fail.get(name)
            if rule is True or (rule == "value" and call.base_parameters.get("value") == "fail"):
                raise RuntimeError(f"{name} exploded")
            if isinstance(rule, int) and not isinstance(rule, bool) and rule > 0:
                self.fail[name] = rule - 1
                raise RuntimeError(f"{name} flaked")
            return json.dumps({"notebook": name, **call.base_parameters})
        finally:
            with self._lock:
                self.active -= 1

    def names(self) -> list[str]:
        return [self.name(c) for c in self.calls]


def run(pipeline: str, notebooks: FakeNotebooks | None = None, params: dict | None = None, **ctx) -> PipelineRunResult:
    context = RunContext(notebook_executor=notebooks or FakeNotebooks(), adf_root=FIXTURES, **ctx)
    return run_pipeline(pipeline, params or {}, context)


def statuses(result: PipelineRunResult) -> dict[str, str]:
    return {r.activity: r.status for r in result.activity_runs}


# --- the documented error-handling patterns ------------------------------------------------


@pytest.mark.parametrize(
    ("pipeline", "work_fails", "expected_pipeline", "expected_activities"),
    [
        ("pl_try_catch", False, "Succeeded", {"Work": "Succeeded", "Upon failure": "Skipped"}),
        ("pl_try_catch", True, "Succeeded", {"Work": "Failed", "Upon failure": "Succeeded"}),
        (
            "pl_do_if_else",
            False,
            "Succeeded",
            {"Work": "Succeeded", "Upon success": "Succeeded", "Upon failure": "Skipped"},
        ),
        ("pl_do_if_else", True, "Failed", {"Work": "Failed", "Upon success": "Skipped", "Upon failure": "Succeeded"}),
        (
            "pl_do_if_skip_else",
            False,
            "Succeeded",
            {"Work": "Succeeded", "Upon success": "Succeeded", "Dummy upon skip": "Skipped", "Upon failure": "Skipped"},
        ),
        (
            "pl_do_if_skip_else",
            True,
            "Succeeded",
            {"Work": "Failed", "Upon success": "Skipped", "Dummy upon skip": "Succeeded", "Upon failure": "Succeeded"},
        ),
    ],
)
def test_error_handling_patterns_match_the_adf_documentation_summary_table(
    pipeline, work_fails, expected_pipeline, expected_activities
):
    """Try-Catch succeeds either way, Do-If-Else fails when the activity fails, Do-If-Skip-Else
    succeeds either way: a skipped leaf is judged by its parent."""
    result = run(pipeline, FakeNotebooks({"Work": True} if work_fails else {}))
    assert statuses(result) == expected_activities
    assert result.status == expected_pipeline


def test_do_if_else_reports_the_failed_activity_error():
    result = run("pl_do_if_else", FakeNotebooks({"Work": True}))
    assert result.error["target"] == "Work"
    assert result.error["message"] == "Operation on target Work failed: RuntimeError: Work exploded"


@pytest.mark.parametrize("failing", ["step1", "step2", "step3"])
def test_generic_error_handling_runs_the_handler_when_any_step_fails(failing):
    """Upon Failure + Upon Skip from the last step: the handler runs whichever step failed,
    the steps after the failure are skipped, and the handled pipeline succeeds."""
    notebooks = FakeNotebooks({failing: True})
    result = run("pl_generic_error", notebooks)
    order = ["step1", "step2", "step3"]
    assert notebooks.names() == [*order[: order.index(failing) + 1], "handler"]
    after = order[order.index(failing) + 1 :]
    assert [statuses(result)[f"Step {n[-1]}"] for n in after] == ["Skipped"] * len(after)
    assert statuses(result)["Generic error handling"] == "Succeeded"
    assert result.status == "Succeeded"


def test_generic_error_handler_is_skipped_when_all_steps_succeed():
    notebooks = FakeNotebooks()
    result = run("pl_generic_error", notebooks)
    assert notebooks.names() == ["step1", "step2", "step3"]
    assert statuses(result)["Generic error handling"] == "Skipped"
    assert result.status == "Succeeded"


# --- dependency conditions -----------------------------------------------------------------


def test_dependencies_are_anded_and_a_completed_condition_accepts_a_failure():
    """B fails but 'Both done' waits on B with Completed: it runs; B is no leaf, so the
    pipeline succeeds."""
    result = run("pl_and_or", FakeNotebooks({"b": True}))
    assert statuses(result) == {
        "A": "Succeeded",
        "B": "Failed",
        "Both done": "Succeeded",
        "A failed or skipped": "Skipped",
    }
    assert result.status == "Succeeded"


def test_conditions_on_one_dependency_are_ored_and_an_unmet_dependency_skips():
    """A fails: 'Both done' (needs A Succeeded AND B Completed) is skipped; 'A failed or skipped'
    (A Failed OR Skipped) runs. The skipped leaf is judged by its parents, A failed: Failed."""
    result = run("pl_and_or", FakeNotebooks({"a": True}))
    assert statuses(result) == {
        "A": "Failed",
        "B": "Succeeded",
        "Both done": "Skipped",
        "A failed or skipped": "Succeeded",
    }
    assert result.status == "Failed"
    assert result.error["target"] == "A"


# --- containers ----------------------------------------------------------------------------


def test_sequential_foreach_runs_items_in_order_and_scopes_activity_references():
    """Inner activity('Process') refers to the iteration's own run; item 0 is not lost."""
    notebooks = FakeNotebooks(delay=0.01)
    result = run("pl_foreach_sequential", notebooks)
    assert result.status == "Succeeded"
    assert [c.base_parameters["item"] for c in notebooks.calls] == ["0", "1", "2", "3"]
    assert result.variables["seen"] == ["0", "1", "2", "3"]
    assert notebooks.max_active == 1


def test_parallel_foreach_runs_at_most_batch_count_iterations_at_once():
    notebooks = FakeNotebooks(delay=0.15)
    result = run("pl_foreach_batch", notebooks)
    assert result.status == "Succeeded"
    assert sorted(int(c.base_parameters["item"]) for c in notebooks.calls) == [1, 2, 3, 4, 5, 6]
    assert notebooks.max_active == 2


def test_foreach_fails_when_an_iteration_fails_and_still_runs_the_other_items():
    def fail_on_two(call: NotebookCall) -> str:
        if call.base_parameters["item"] == "2":
            raise RuntimeError("item 2 is bad")
        return json.dumps(call.base_parameters)

    result = run_pipeline("pl_foreach_sequential", {}, RunContext(notebook_executor=fail_on_two, adf_root=FIXTURES))
    assert statuses(result)["Each"] == "Failed"
    assert [r.status for r in result.runs_of("Process")] == ["Succeeded", "Succeeded", "Failed", "Succeeded"]
    assert result.variables["seen"] == ["0", "1", "3"]
    assert "item 2 is bad" in result.error["message"]


@pytest.mark.parametrize(
    ("flag", "mode", "expected_notebooks"),
    [
        ("yes", "a", ["true_branch", "case_a"]),
        ("no", "b", ["false_branch", "case_b"]),
        ("no", "zzz", ["false_branch", "case_default"]),
    ],
)
def test_if_condition_and_switch_run_the_matching_branch(flag, mode, expected_notebooks):
    notebooks = FakeNotebooks()
    result = run("pl_if_switch", notebooks, {"flag": flag, "mode": mode})
    assert result.status == "Succeeded"
    assert notebooks.names() == expected_notebooks


def test_a_failing_branch_fails_its_container_and_skips_what_depends_on_it():
    result = run("pl_if_switch", FakeNotebooks({"true_branch": True}), {"flag": "yes"})
    assert statuses(result)["If flag"] == "Failed"
    assert statuses(result)["Switch mode"] == "Skipped"
    assert result.status == "Failed"
    assert result.error["message"].startswith("Operation on target If flag failed: Activity failed because an inner")
    assert "true_branch exploded" in result.error["message"]


def test_until_repeats_its_activities_until_the_expression_is_true():
    result = run("pl_until", params={"target": "3"})
    assert result.status == "Succeeded"
    assert len(result.runs_of("Tick")) == 3
    assert result.variables["ticks"] == ["x", "x", "x"]


def test_until_fails_when_its_timeout_passes():
    """timeout 0.00:00:02, each iteration waits 0.4 s, the expression never becomes true."""
    started = time.monotonic()
    result = run("pl_until", params={"target": "1000", "pause": "0.4"})
    elapsed = time.monotonic() - started
    assert result.status == "Failed"
    assert result.activity("Until three").error["errorCode"] == "UntilTimedOut"
    assert 2.0 <= elapsed < 6.0  # generous upper bound: the machine is shared
    assert 2 <= len(result.runs_of("Tick")) <= 6


def test_execute_pipeline_passes_parameters_and_returns_the_child_return_value():
    notebooks = FakeNotebooks({"child": "value"})  # the child notebook fails for value 'fail'
    result = run("pl_parent", notebooks, {"value": "hello"})
    assert result.status == "Succeeded"
    assert result.variables["echoed"] == "hello"
    waited, _fired = result.child_runs
    assert (waited.status, waited.parent_run_id, waited.output) == ("Succeeded", result.run_id, {"echo": "hello"})
    assert result.activity("Run child").output["pipelineRunId"] == waited.run_id


def test_execute_pipeline_without_wait_succeeds_even_if_the_child_fails():
    result = run("pl_parent", FakeNotebooks({"child": "value"}), {"value": "hello"})
    fired = result.child_runs[1]
    assert fired.status == "Failed"
    assert statuses(result)["Fire and forget"] == "Succeeded"


def test_execute_pipeline_with_wait_fails_with_the_child_error():
    result = run("pl_parent", FakeNotebooks({"child": "value"}), {"value": "fail"})
    assert statuses(result) == {"Run child": "Failed", "Use child result": "Skipped", "Fire and forget": "Succeeded"}
    assert result.status == "Failed"
    assert result.error["message"] == (
        "Operation on target Run child failed: Operation on target Child work failed: RuntimeError: child exploded"
    )


def test_set_append_filter_variables_and_their_values():
    result = run("pl_variables")
    assert result.status == "Succeeded"
    assert result.variables["numbers"] == [1, 2, 3, 4, 5, 6, 10]
    assert result.activity("Evens").output["value"] == [2, 4, 6, 10]
    assert statuses(result)["Check"] == "Succeeded"


def test_fail_activity_fails_the_pipeline_with_its_message_and_code():
    result = run("pl_variables", params={"expected": 3})
    assert statuses(result)["Wrong count"] == "Failed"
    assert result.status == "Failed"
    assert result.error["errorCode"] == "CountMismatch"
    assert result.error["message"].endswith("Operation on target Wrong count failed: expected 3 evens, got [2,4,6,10]")


# --- policies ------------------------------------------------------------------------------


def test_retry_policy_retries_after_the_interval_and_records_every_attempt():
    waits: list[float] = []
    notebooks = FakeNotebooks({"flaky": 2})
    result = run("pl_retry_timeout", notebooks, sleep=waits.append)
    assert [r.status for r in result.runs_of("Flaky")] == ["Failed", "Failed", "Succeeded"]
    assert [r.attempt for r in result.runs_of("Flaky")] == [1, 2, 3]
    assert waits == [7.0, 7.0]


def test_retry_policy_gives_up_after_retry_count():
    waits: list[float] = []
    result = run("pl_retry_timeout", FakeNotebooks({"flaky": 5}), sleep=waits.append)
    assert [r.status for r in result.runs_of("Flaky")] == ["Failed"] * 3
    assert waits == [7.0, 7.0]
    assert statuses(result)["Slow"] == "Succeeded"  # depends on Flaky with Completed


def test_timeout_policy_fails_an_activity_that_runs_too_long():
    started = time.monotonic()
    result = run("pl_retry_timeout", FakeNotebooks(sleep={"slow": 3.0}))
    slow = result.activity("Slow")
    assert slow.status == "Failed"
    assert slow.error["errorCode"] == "ActivityTimedOut"
    assert 1.0 <= slow.duration_s < 2.9  # the executor would take 3 s
    assert time.monotonic() - started < 2.9
    assert result.status == "Failed"


@pytest.mark.parametrize(("text", "seconds"), [("0.12:00:00", 43200), ("00:10:00", 600), ("1.00:00:30", 86430)])
def test_timespans_are_read_as_adf_writes_them(text, seconds):
    assert parse_timespan(text) == seconds


# --- function activity ---------------------------------------------------------------------


def test_function_activity_sends_the_evaluated_body_and_its_json_answer_is_the_output():
    calls: list[FunctionCall] = []

    def functions(call: FunctionCall) -> dict:
        calls.append(call)
        return {"files": 3}

    result = run("pl_function", params={"day": "2024-03-05"}, function_executor=functions)
    assert result.status == "Succeeded"
    assert (calls[0].function_name, calls[0].method, calls[0].body) == ("ingest", "POST", {"start_date": "2024-03-05"})
    assert result.activity("Call function").output == {"files": 3}
    assert result.variables["files"] == "3"


def test_function_activity_fails_when_the_answer_is_not_a_json_object():
    result = run("pl_function", function_executor=lambda call: ["not", "an", "object"])
    assert result.activity("Call function").error["errorCode"] == "AzureFunctionInvalidResponse"
    assert result.status == "Failed"


# --- parameters, definitions, recording ----------------------------------------------------


def test_parameters_are_converted_to_their_declared_types():
    result = run("pl_until", params={"target": "2", "pause": "0"})
    assert result.parameters == {"target": 2, "pause": 0.0}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"nope": "1"}, "unknown parameter(s) ['nope']"),
        ({"target": "three"}, "parameter 'target' must be Int, got 'three'"),
    ],
)
def test_bad_parameters_are_refused_before_anything_runs(params, message):
    notebooks = FakeNotebooks()
    with pytest.raises(PipelineParameterError, match=re.escape(message)):
        run("pl_until", notebooks, params)
    assert notebooks.calls == []


def test_a_required_parameter_must_be_given():
    with pytest.raises(PipelineParameterError, match="required parameter 'value'"):
        run("pl_child")


def test_circular_dependencies_are_refused_with_the_activities_named(tmp_path):
    (tmp_path / "pipeline").mkdir()
    doc = {
        "name": "pl_cycle",
        "properties": {
            "activities": [
                {
                    "name": "A",
                    "type": "Wait",
                    "dependsOn": [{"activity": "B", "dependencyConditions": ["Succeeded"]}],
                    "typeProperties": {"waitTimeInSeconds": 0},
                },
                {
                    "name": "B",
                    "type": "Wait",
                    "dependsOn": [{"activity": "A", "dependencyConditions": ["Succeeded"]}],
                    "typeProperties": {"waitTimeInSeconds": 0},
                },
            ]
        },
    }
    (tmp_path / "pipeline" / "pl_cycle.json").write_text(json.dumps(doc))
    with pytest.raises(AdfDefinitionError, match=r"circular dependency among \['A', 'B'\]"):
        run_pipeline("pl_cycle", {}, RunContext(adf_root=tmp_path))


def test_an_unknown_pipeline_is_refused_with_the_available_names():
    with pytest.raises(AdfDefinitionError, match=r"no pipeline 'pl_nope'.*pl_and_or"):
        run("pl_nope")


def test_every_run_is_recorded_when_it_starts_and_when_it_ends():
    store = MemoryRunStore()
    result = run("pl_parent", FakeNotebooks({"child": "value"}), {"value": "hello"}, recorder=store)
    assert set(store.pipelines) == {r.run_id for r in result.all_pipeline_runs()}
    assert {r.status for r in store.pipelines.values()} == {"Succeeded", "Failed"}
    assert len(store.activities) == sum(len(r.activity_runs) for r in result.all_pipeline_runs())
    assert store.events[0] == ("pipeline", "pl_parent", "InProgress")
    assert ("activity", "Run child", "InProgress") in store.events
    assert store.events[-1] == ("pipeline", "pl_parent", "Succeeded")


def test_an_interrupted_run_is_recorded_as_cancelled_and_the_interrupt_goes_on():
    store = MemoryRunStore()

    def interrupt(call: NotebookCall) -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pipeline("pl_try_catch", {}, RunContext(notebook_executor=interrupt, adf_root=FIXTURES, recorder=store))
    (pipeline,) = store.pipelines.values()
    (activity,) = store.activities.values()
    assert (pipeline.status, activity.activity, activity.status) == ("Cancelled", "Work", "Cancelled")


def test_a_return_value_set_without_set_system_variable_is_refused_before_the_run(tmp_path):
    """Data Factory sets the return value only with `setSystemVariable: true`; without it the
    name is an undeclared user variable, refused at publish, so the runner refuses to start."""
    import shutil

    from local.adf.validation import FactoryValidationError

    root = tmp_path / "adf"
    shutil.copytree(FIXTURES, root)
    child = root / "pipeline" / "pl_child.json"
    child.write_text(child.read_text().replace('"setSystemVariable": true,', ""))
    notebooks = FakeNotebooks()
    with pytest.raises(FactoryValidationError, match=r"pl_child.json, activity 'Return'.*\[system-variable\]"):
        run_pipeline("pl_child", {"value": "hello"}, RunContext(notebook_executor=notebooks, adf_root=root))
    assert notebooks.calls == []
