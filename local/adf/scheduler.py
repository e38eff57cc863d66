"""ADF's scheduling rules, applied to one scope of activities at a time.

- an activity runs when every dependency (AND) has ended in one of the conditions listed on
  it (OR); ``Completed`` means Succeeded or Failed; an activity whose dependencies ended but do
  not meet the conditions is ``Skipped``, and ``Skipped`` is itself a condition others can
  depend on;
- a pipeline (and the inner scope of a ForEach iteration, If branch, Switch case or Until
  iteration) succeeds iff every leaf activity succeeded, where a skipped leaf is replaced by
  its parents ("pipeline failure and error handling", ADF docs);
- execution activities (notebook, function) honour ``policy.retry``,
  ``policy.retryIntervalInSeconds`` and ``policy.timeout``; every attempt is an activity run.

Activities of one scope run one at a time in definition order (deterministic). What an activity
does is its handler's business (``local.adf.activities``); the scheduler only calls it.
"""

from __future__ import annotations

import concurrent.futures
import copy
import datetime as dt
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lakehouse import failpoints
from local.adf import expressions
from local.adf.context import RunContext
from local.adf.expressions import ExpressionError, evaluate
from local.adf.records import (
    ActivityFailure,
    ActivityRun,
    AdfDefinitionError,
    PipelineRunResult,
    RetryNotice,
    Status,
    error,
    now,
)
from local.adf.rerun import Reuse

DEFAULT_TIMEOUT = "0.12:00:00"  # ADF's default activity timeout
DEFAULT_RETRY_INTERVAL = 30  # seconds, ADF's default
EXECUTION_TYPES = {"DatabricksNotebook", "AzureFunctionActivity"}
VARIABLE_DEFAULTS: dict[str, Any] = {"String": "", "Integer": 0, "Boolean": False, "Array": []}

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$")

ActivityResult = tuple[str, Any, dict[str, Any] | None]  # (status, output, error)


def parse_timespan(text: str) -> float:
    """Seconds of an ADF timespan like ``0.12:00:00`` or ``00:10:00``."""
    match = _TIMESPAN.match(str(text).strip())
    if not match:
        raise AdfDefinitionError(f"not an ADF timespan (d.hh:mm:ss): {text!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def seconds_text(seconds: float) -> str:
    return f"{seconds:g} s"


@dataclass
class Outcome:
    """How a scope (a pipeline, or the inside of a container activity) ended."""

    status: Literal["Succeeded", "Failed"]
    error: dict[str, Any] | None


def dependency_met(status: str, conditions: list[str]) -> bool:
    return any(c == status or (c == "Completed" and status in ("Succeeded", "Failed")) for c in conditions)


def scope_outcome(activities: list[dict[str, Any]], statuses: dict[str, str], errors: dict[str, Any]) -> Outcome:
    """ADF's rule: evaluate every leaf; a skipped leaf is replaced by its parents, recursively.

    The scope succeeds iff every evaluated node succeeded. The error is that of the first failed
    leaf, else of the first failed parent judged in a skipped leaf's place (definition order),
    as ``Operation on target X failed: ...``.
    """
    by_name = {a["name"]: a for a in activities}
    depended_on = {d["activity"] for a in activities for d in a.get("dependsOn", [])}
    leaves = [a["name"] for a in activities if a["name"] not in depended_on]
    evaluated: set[str] = set()
    stack = list(reversed(leaves))
    while stack:
        name = stack.pop()
        if name in evaluated:
            continue
        if statuses.get(name) == "Skipped":
            stack.extend(reversed([d["activity"] for d in by_name[name].get("dependsOn", [])]))
            evaluated.add(name)  # visited, but not judged
            continue
        evaluated.add(name)
    judged = [n for n in by_name if n in evaluated and statuses.get(n) != "Skipped"]
    failed = [n for n in judged if statuses.get(n) != "Succeeded"]
    if not failed:
        return Outcome("Succeeded", None)
    # The error reported is a failed leaf's (e.g. a Fail activity's message) before that of a
    # parent judged in place of a skipped leaf.
    failed.sort(key=lambda n: n not in leaves)
    target = failed[0]
    inner = errors.get(target) or {}
    message = f"Operation on target {target} failed: {inner.get('message', 'unknown error')}"
    return Outcome("Failed", error(message, inner.get("errorCode", "UserError"), target))


Handler = Callable[["Execution", dict[str, Any], Any, ActivityRun], ActivityResult]
ChildRunner = Callable[[str, dict[str, Any], "Execution"], PipelineRunResult]


class Execution:
    """One pipeline run: its state, its scopes, its activity runs.

    Args:
        ctx: executors, recorder and factory of the run.
        doc: the pipeline JSON.
        run: the run record, filled in as activities end.
        system: values of ``pipeline().RunId`` and the other system variables.
        handlers: the function doing each activity type's work.
        run_child: runs another pipeline for an Execute Pipeline activity.
        reuse: in a rerun from failure, the activities of the failed run not to execute again.
    """

    def __init__(
        self,
        ctx: RunContext,
        doc: dict[str, Any],
        run: PipelineRunResult,
        system: dict[str, Any],
        handlers: Mapping[str, Handler],
        run_child: ChildRunner,
        reuse: Reuse | None = None,
    ):
        self.ctx = ctx
        self.reuse = reuse
        self.doc = doc
        self.run = run
        self._handlers = handlers
        self._run_child = run_child
        self._lock = threading.Lock()
        declared = doc.get("properties", {}).get("variables", {}) or {}
        variables = {
            name: copy.deepcopy(spec.get("defaultValue", VARIABLE_DEFAULTS[spec["type"]]))
            for name, spec in declared.items()
        }
        self.state = expressions.pipeline_state(run.parameters, ctx.global_parameters, system, variables)

    # -- what handlers may change on the run, from any ForEach thread ---------------------------

    def run_child(self, pipeline: str, parameters: dict[str, Any]) -> PipelineRunResult:
        """Run `pipeline` as a child of this run (Execute Pipeline) and keep its record."""
        child = self._run_child(pipeline, parameters, self)
        with self._lock:
            self.run.child_runs.append(child)
        return child

    def set_return_values(self, values: dict[str, Any]) -> None:
        with self._lock:
            self.run.output.update(values)

    def append_variable(self, state: Any, name: str, value: Any) -> None:
        with self._lock:
            expressions.append_variable(state, name, value)

    # -- scopes ------------------------------------------------------------------------------

    def run_scope(self, activities: list[dict[str, Any]], state: Any) -> Outcome:
        statuses: dict[str, str] = {}
        errors: dict[str, Any] = {}
        pending = list(activities)
        while pending:
            for activity in pending:
                deps = activity.get("dependsOn", [])
                if all(d["activity"] in statuses for d in deps):
                    break
            else:  # unreachable after Factory.load's cycle check
                raise AdfDefinitionError(f"pipeline {self.run.pipeline}: unsatisfiable dependencies")
            pending.remove(activity)
            name = activity["name"]
            if all(dependency_met(statuses[d["activity"]], d["dependencyConditions"]) for d in deps):
                reused = self._reusable(activity, state)
                if reused is not None:
                    status, output, err = self._record_reuse(activity, reused)
                else:
                    status, output, err = self.run_activity(activity, state)
            else:
                status, output, err = "Skipped", None, None
                self._record_skip(activity)
            statuses[name], errors[name] = status, err
            expressions.set_result(state, name, status, output, err)
        return scope_outcome(activities, statuses, errors)

    def _reusable(self, activity: dict[str, Any], state: Any) -> Any:
        """The failed run's activity run this rerun reuses in place of executing `activity`, if any."""
        if self.reuse is None or (activity.get("policy") or {}).get("secureOutput"):
            return None  # a secure output was not recorded: nothing to reuse
        name = activity["name"]
        if state is self.state:  # the pipeline's own scope
            return self.reuse.at_top(name)
        if name not in self.reuse.inner:
            return None
        try:
            evaluated = evaluate(activity.get("typeProperties", {}) or {}, state)
        except ExpressionError:
            return None  # executed, and fails there with the error recorded as usual
        return self.reuse.inside(name, evaluated)

    def _record_reuse(self, activity: dict[str, Any], reused: Any) -> ActivityResult:
        at = now()
        run = self._new_activity_run(activity, "Succeeded", at)
        run.end, run.input, run.output, run.reused_from = at, reused.input, reused.output, reused.activity_run_id
        self._append(run)
        self.ctx.emit("activity_finished", run)
        return "Succeeded", reused.output, None

    def _record_skip(self, activity: dict[str, Any]) -> None:
        at = now()
        run = self._new_activity_run(activity, "Skipped", at)
        run.end = at
        self._append(run)
        self.ctx.emit("activity_finished", run)

    def _new_activity_run(self, activity: dict[str, Any], status: Status, start: dt.datetime) -> ActivityRun:
        return ActivityRun(
            activity_run_id=str(uuid.uuid4()),
            pipeline_run_id=self.run.run_id,
            pipeline=self.run.pipeline,
            activity=activity["name"],
            activity_type=activity.get("type", "?"),
            status=status,
            start=start,
        )

    def _append(self, run: ActivityRun) -> None:
        with self._lock:
            self.run.activity_runs.append(run)

    # -- one activity, with retries ----------------------------------------------------------

    def run_activity(self, activity: dict[str, Any], state: Any) -> ActivityResult:
        policy = activity.get("policy", {}) or {}
        kind = activity.get("type")
        try:
            retries = int(evaluate(policy.get("retry", 0), state) or 0) if kind in EXECUTION_TYPES else 0
            interval = float(policy.get("retryIntervalInSeconds", DEFAULT_RETRY_INTERVAL))
            timeout = parse_timespan(policy.get("timeout", DEFAULT_TIMEOUT)) if kind in EXECUTION_TYPES else None
        except (ValueError, TypeError) as exc:
            retries, interval, timeout = 0, 0.0, None
            policy_error: str | None = f"invalid policy: {exc}"
        else:
            policy_error = None
        secure_in, secure_out = bool(policy.get("secureInput")), bool(policy.get("secureOutput"))
        attempt = 0
        while True:
            attempt += 1
            run = self._new_activity_run(activity, "InProgress", now())
            run.attempt = attempt
            self._append(run)
            self.ctx.emit("activity_started", run)
            status: str
            try:
                if policy_error:
                    raise ActivityFailure(policy_error)
                handler = self._handlers.get(kind)
                if handler is None:
                    raise ActivityFailure(
                        f"activity type {kind!r} is not supported by the local runner", "NotSupported"
                    )
                status, output, err = self._with_timeout(handler, activity, state, run, timeout)
            except ActivityFailure as exc:
                status, output, err = "Failed", None, error(exc.message, exc.error_code, activity["name"])
            except ExpressionError as exc:
                status, output, err = "Failed", None, error(str(exc), "InvalidTemplate", activity["name"])
            except Exception as exc:  # an executor's own failure: the activity fails, the run goes on
                status, output, err = (
                    "Failed",
                    None,
                    error(f"{type(exc).__name__}: {exc}", "ActivityExecutionFailed", activity["name"]),
                )
            except BaseException:  # Ctrl-C: recorded as Cancelled, then the interrupt goes on
                run.status, run.end = "Cancelled", now()
                self.ctx.emit("activity_finished", run)
                raise
            run.status, run.end = status, now()  # type: ignore[assignment]
            run.output = None if secure_out else output
            run.error = err
            if secure_in:
                run.input = None
            self.ctx.emit("activity_finished", run)
            failpoints.failpoint(f"after_activity:{self.run.pipeline}/{activity['name']}", status=status)
            if status == "Succeeded" or attempt > retries:
                return status, output, err
            self.ctx.emit("activity_retrying", RetryNotice(run, attempt + 1, retries + 1, interval))
            self.ctx.sleep(interval)

    def _with_timeout(
        self, handler: Handler, activity: dict[str, Any], state: Any, run: ActivityRun, timeout: float | None
    ) -> ActivityResult:
        """Run the handler; with a timeout, on a worker thread that is abandoned when it expires."""
        if timeout is None:
            return handler(self, activity, state, run)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"adf-{activity['name']}")
        future = pool.submit(handler, self, activity, state, run)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise ActivityFailure(
                f"activity timed out after {seconds_text(timeout)} (policy.timeout); the local executor "
                "could not be stopped and finishes in the background",
                "ActivityTimedOut",
            ) from None
        finally:
            pool.shutdown(wait=False)
