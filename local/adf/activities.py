"""What each activity type does, one handler per type.

A handler takes the execution, the activity's JSON, the scope's expression state and the
activity run record (whose ``input`` it fills), and returns ``(status, output, error)``; it
raises :class:`ActivityFailure` to fail with an ADF error code. Container activities run their
inner activities through the execution's scheduler.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from local.adf.context import FunctionCall, NotebookCall
from local.adf.expressions import evaluate, evaluate_expression, scope_state, set_variable
from local.adf.records import ActivityFailure, ActivityRun, AdfDefinitionError, PipelineParameterError, error
from local.adf.scheduler import ActivityResult, Execution, Handler, Outcome, parse_timespan, seconds_text

DEFAULT_BATCH_COUNT = 20  # ADF's default ForEach batchCount
MAX_BATCH_COUNT = 50
CONTAINER_KEYS = {"activities", "ifTrueActivities", "ifFalseActivities", "cases", "defaultActivities"}

HANDLERS: dict[str, Handler] = {}


def _handles(*kinds: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for kind in kinds:
            HANDLERS[kind] = fn
        return fn

    return register


def _props(activity: dict[str, Any], state: Any, run: ActivityRun) -> dict[str, Any]:
    props = evaluate(activity.get("typeProperties", {}) or {}, state, frozenset(CONTAINER_KEYS))
    run.input = {k: v for k, v in props.items() if k not in CONTAINER_KEYS}
    return props


def _ok(output: Any = None) -> tuple[str, Any, None]:
    return "Succeeded", output, None


@_handles("DatabricksNotebook")
def _notebook(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    if ex.ctx.notebook_executor is None:
        raise ActivityFailure("no notebook executor is configured in the RunContext", "NotSupported")
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (props.get("baseParameters") or {}).items()}
    started = time.monotonic()
    exit_value = ex.ctx.notebook_executor(NotebookCall(props["notebookPath"], params, ex.run.run_id, activity["name"]))
    return _ok({"runOutput": parse_exit_value(exit_value), "executionDuration": round(time.monotonic() - started)})


def parse_exit_value(value: str | None) -> Any:
    """ADF's runOutput: a JSON object or array exit value is parsed, anything else kept as is."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(parsed, dict | list):
            return parsed
    return value


@_handles("AzureFunctionActivity")
def _function(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    if ex.ctx.function_executor is None:
        raise ActivityFailure("no function executor is configured in the RunContext", "NotSupported")
    body = props.get("body")
    if isinstance(body, str):
        with contextlib.suppress(json.JSONDecodeError):  # ADF sends a string body as it is
            body = json.loads(body)
    answer = ex.ctx.function_executor(
        FunctionCall(
            function_name=props["functionName"],
            method=str(props.get("method", "POST")).upper(),
            body=body,
            headers=dict(props.get("headers") or {}),
            pipeline_run_id=ex.run.run_id,
            activity=activity["name"],
        )
    )
    if not isinstance(answer, dict):
        raise ActivityFailure(
            f"Azure Function {props['functionName']!r} returned {type(answer).__name__}; ADF requires a JSON object",
            "AzureFunctionInvalidResponse",
        )
    return _ok(answer)


@_handles("ExecutePipeline")
def _execute_pipeline(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    child_name = props["pipeline"]["referenceName"]
    try:
        child = ex.run_child(child_name, props.get("parameters") or {})
    except (PipelineParameterError, AdfDefinitionError) as exc:
        raise ActivityFailure(str(exc), "InvalidPipelineReference") from None
    output = {"pipelineName": child_name, "pipelineRunId": child.run_id, "pipelineReturnValue": child.output}
    if props.get("waitOnCompletion", True) and not child.succeeded:
        return (
            "Failed",
            output,
            error(
                (child.error or {}).get("message", "child pipeline failed"),
                (child.error or {}).get("errorCode", "UserError"),
                activity["name"],
            ),
        )
    return _ok(output)


@_handles("SetVariable")
def _set_variable(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = activity.get("typeProperties", {})
    name = props["variableName"]
    # Only `setSystemVariable: true` sets the return value; without it Data Factory treats the name
    # as a user variable, which must be declared (the validator refuses that before any run).
    if props.get("setSystemVariable") is True:
        if name != "pipelineReturnValue":
            raise ActivityFailure(f"setSystemVariable is only valid for pipelineReturnValue, not {name!r}")
        values = {}
        for entry in props.get("value", []):
            spec = entry.get("value", {})
            content = spec.get("content") if isinstance(spec, dict) else spec
            if isinstance(spec, dict) and spec.get("type") == "Expression":
                content = evaluate_expression(content, state)
            values[entry["key"]] = content
        run.input = {"variableName": name, "value": values}
        ex.set_return_values(values)
        return _ok({"value": values})
    value = evaluate(props.get("value"), state)
    run.input = {"variableName": name, "value": value}
    try:
        set_variable(state, name, value)
    except Exception as exc:
        raise ActivityFailure(f"cannot set variable {name!r}: {exc}") from None
    return _ok({"value": value})


@_handles("AppendVariable")
def _append_variable(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = activity.get("typeProperties", {})
    value = evaluate(props.get("value"), state)
    run.input = {"variableName": props["variableName"], "value": value}
    try:
        ex.append_variable(state, props["variableName"], value)
    except Exception as exc:
        raise ActivityFailure(f"cannot append to variable {props['variableName']!r}: {exc}") from None
    return _ok()


@_handles("Filter")
def _filter(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = activity.get("typeProperties", {})
    items = evaluate(props["items"], state)
    if not isinstance(items, list):
        raise ActivityFailure(f"Filter items must be an array, got {type(items).__name__}")
    kept = [item for item in items if evaluate(props["condition"], scope_state(state, item)) is True]
    run.input = {"items": items}
    return _ok({"ItemsCount": len(items), "FilteredItemsCount": len(kept), "Value": kept, "value": kept})


@_handles("Fail")
def _fail(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    return "Failed", None, error(str(props.get("message", "")), str(props.get("errorCode", "Fail")), activity["name"])


@_handles("Wait")
def _wait(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    ex.ctx.sleep(float(props.get("waitTimeInSeconds", 1)))
    return _ok()


def _container_result(outcome: Outcome, name: str) -> ActivityResult:
    if outcome.status == "Succeeded":
        return _ok({})
    inner = outcome.error or {}
    return (
        "Failed",
        {},
        error(
            f"Activity failed because an inner activity failed; {inner.get('message', '')}",
            inner.get("errorCode", "UserError"),
            name,
        ),
    )


def _branching(choose: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> Handler:
    """A handler that runs, as a container, the one branch ``choose`` picks from the evaluated properties.

    If Condition and Switch differ only in how they pick; running the branch and reporting an
    inner failure is the same for both.
    """

    def run_branch(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun) -> ActivityResult:
        branch = choose(_props(activity, state, run))
        return _container_result(ex.run_scope(branch, scope_state(state)), activity["name"])

    return run_branch


@_handles("IfCondition")
@_branching
def _if_condition(props: dict[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(props["expression"], bool):
        raise ActivityFailure(f"If Condition expression must be a boolean, got {props['expression']!r}")
    return props.get("ifTrueActivities" if props["expression"] else "ifFalseActivities") or []


@_handles("Switch")
@_branching
def _switch(props: dict[str, Any]) -> list[dict[str, Any]]:
    on = props["on"]
    if not isinstance(on, str):
        raise ActivityFailure(f"Switch 'on' must evaluate to a string, got {on!r}")
    branch = next((c.get("activities", []) for c in props.get("cases", []) if c.get("value") == on), None)
    if branch is None:
        branch = props.get("defaultActivities", []) or []
    return branch


@_handles("ForEach")
def _for_each(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    items = props["items"]
    if not isinstance(items, list):
        raise ActivityFailure(f"ForEach items must be an array, got {type(items).__name__}")
    inner = props.get("activities", [])
    sequential = bool(props.get("isSequential", False))
    batch = 1 if sequential else min(int(props.get("batchCount", DEFAULT_BATCH_COUNT)), MAX_BATCH_COUNT)
    if batch <= 1:
        outcomes = [ex.run_scope(inner, scope_state(state, item)) for item in items]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=batch, thread_name_prefix="adf-foreach") as pool:
            outcomes = list(pool.map(lambda item: ex.run_scope(inner, scope_state(state, item)), items))
    failed = [o for o in outcomes if o.status == "Failed"]
    result = _container_result(failed[0] if failed else Outcome("Succeeded", None), activity["name"])
    return result[0], {"ItemsCount": len(items), "FailedCount": len(failed)}, result[2]


@_handles("Until")
def _until(ex: Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = activity.get("typeProperties", {})
    limit = parse_timespan(props.get("timeout", "7.00:00:00"))
    run.input = {"expression": props["expression"], "timeout": props.get("timeout")}
    started = time.monotonic()
    iterations = 0
    while True:
        iterations += 1
        scope = scope_state(state)
        outcome = ex.run_scope(props.get("activities", []), scope)
        if outcome.status == "Failed":
            return _container_result(outcome, activity["name"])
        done = evaluate(props["expression"], scope)
        if not isinstance(done, bool):
            raise ActivityFailure(f"Until expression must be a boolean, got {done!r}")
        if done:
            return _ok({"iterations": iterations})
        if time.monotonic() - started >= limit:
            raise ActivityFailure(
                f"Until timed out after {seconds_text(limit)} and {iterations} iteration(s) "
                "without its expression becoming true",
                "UntilTimedOut",
            )
