"""Executes the Data Factory pipelines in ``adf/`` on one machine.

Expressions are evaluated by Microsoft's engine (``data-factory-testing-framework``, a .NET
assembly behind pythonnet) over that framework's own state objects (``PipelineRunState``,
``RunParameter``, ``PipelineRunVariable``, ``ActivityResult``). Scheduling is this module's and
follows ADF's documented rules:

- an activity runs when every dependency (AND) has ended in one of the conditions listed on
  it (OR); ``Completed`` means Succeeded or Failed; an activity whose dependencies ended but do
  not meet the conditions is ``Skipped``, and ``Skipped`` is itself a condition others can
  depend on;
- a pipeline (and the inner scope of a ForEach iteration, If branch, Switch case or Until
  iteration) succeeds iff every leaf activity succeeded, where a skipped leaf is replaced by
  its parents ("pipeline failure and error handling", ADF docs);
- execution activities (notebook, function) honour ``policy.retry``,
  ``policy.retryIntervalInSeconds`` and ``policy.timeout``; every attempt is an activity run.

Activities of one scope run one at a time in definition order (deterministic); a ForEach with
``isSequential: false`` runs its iterations on up to ``batchCount`` threads. Work is done by
pluggable executors: notebooks by a :class:`NotebookExecutor` (locally the Sail session, see
``local.notebook_runner``), Azure Functions by a :class:`FunctionExecutor` (locally the Function
app in-process). Only Azure itself is replaced; the JSON is the deployed JSON.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from lakehouse import failpoints
from local.dotnet_runtime import ensure_dotnet

log = logging.getLogger(__name__)
ADF_ROOT = Path(__file__).resolve().parents[1] / "adf"
FACTORY_NAME = "adf-lakehouse-local"

Status = Literal["InProgress", "Succeeded", "Failed", "Skipped", "Cancelled"]
CONDITIONS = ("Succeeded", "Failed", "Skipped", "Completed")
DEFAULT_TIMEOUT = "0.12:00:00"  # ADF's default activity timeout
DEFAULT_RETRY_INTERVAL = 30  # seconds, ADF's default
DEFAULT_BATCH_COUNT = 20  # ADF's default ForEach batchCount
MAX_BATCH_COUNT = 50
EXECUTION_TYPES = {"DatabricksNotebook", "AzureFunctionActivity"}
CONTAINER_KEYS = {"activities", "ifTrueActivities", "ifFalseActivities", "cases", "defaultActivities"}


# --------------------------------------------------------------------------------------------
# Errors and records
# --------------------------------------------------------------------------------------------


class AdfDefinitionError(ValueError):
    """A pipeline or trigger in adf/ that cannot run: the message names the file and the problem."""


class PipelineParameterError(ValueError):
    """Parameters given to a pipeline that it does not declare, lack, or cannot convert."""


class ActivityFailure(Exception):
    """Raised by an executor to fail its activity with an ADF-style error code."""

    def __init__(self, message: str, error_code: str = "UserError") -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _error(message: str, code: str = "UserError", target: str | None = None) -> dict[str, Any]:
    return {"errorCode": code, "message": message, "failureType": "UserError", "target": target}


@dataclass
class ActivityRun:
    """One attempt of one activity, as ADF monitoring shows it."""

    activity_run_id: str
    pipeline_run_id: str
    pipeline: str
    activity: str
    activity_type: str
    status: Status
    start: dt.datetime
    end: dt.datetime | None = None
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    attempt: int = 1

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()


@dataclass
class PipelineRunResult:
    """A pipeline run with its activity runs and the runs of pipelines it executed."""

    run_id: str
    pipeline: str
    parameters: dict[str, Any]
    status: Status
    start: dt.datetime
    end: dt.datetime | None = None
    error: dict[str, Any] | None = None
    output: dict[str, Any] = field(default_factory=dict)  # pipelineReturnValue
    variables: dict[str, Any] = field(default_factory=dict)  # final values of the pipeline variables
    parent_run_id: str | None = None
    trigger_name: str | None = None
    activity_runs: list[ActivityRun] = field(default_factory=list)
    child_runs: list[PipelineRunResult] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds()

    def activity(self, name: str) -> ActivityRun:
        """The last run of activity `name` in this pipeline run (not in child pipelines)."""
        for run in reversed(self.activity_runs):
            if run.activity == name:
                return run
        raise KeyError(f"activity {name!r} did not run in {self.pipeline} (run {self.run_id})")

    def runs_of(self, name: str) -> list[ActivityRun]:
        return [r for r in self.activity_runs if r.activity == name]

    def all_pipeline_runs(self) -> list[PipelineRunResult]:
        """This run and every descendant run, depth first."""
        found = [self]
        for child in self.child_runs:
            found.extend(child.all_pipeline_runs())
        return found


# --------------------------------------------------------------------------------------------
# Executors (pluggable work) and the run context
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookCall:
    """A DatabricksNotebook activity, evaluated: what the notebook executor must run."""

    notebook_path: str
    base_parameters: dict[str, str]
    pipeline_run_id: str
    activity: str


@dataclass(frozen=True)
class FunctionCall:
    """An AzureFunctionActivity, evaluated: what the function executor must invoke."""

    function_name: str
    method: str
    body: Any
    headers: dict[str, str]
    pipeline_run_id: str
    activity: str


class NotebookExecutor(Protocol):
    def __call__(self, call: NotebookCall) -> str | None:
        """Run the notebook; return its ``dbutils.notebook.exit`` value (None without exit)."""
        ...


class FunctionExecutor(Protocol):
    def __call__(self, call: FunctionCall) -> Any:
        """Invoke the function; return its JSON answer, parsed."""
        ...


class ConcurrencyGate(Protocol):
    """Where a pipeline with a ``concurrency`` limit waits for a free slot (ADF queues the run)."""

    def hold(self, pipeline: str, limit: int) -> contextlib.AbstractContextManager[None]: ...


_PROCESS_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_PROCESS_SLOTS_LOCK = threading.Lock()


class ProcessGate:
    """Concurrency slots of the runs of this process (no ops database: nothing else can see them)."""

    @contextlib.contextmanager
    def hold(self, pipeline: str, limit: int):
        with _PROCESS_SLOTS_LOCK:
            semaphore = _PROCESS_SLOTS.setdefault(f"{pipeline}/{limit}", threading.BoundedSemaphore(limit))
        with semaphore:
            yield


class RunRecorder(Protocol):
    """Where runs are written as they start and end (see local.run_store)."""

    def record_pipeline_run(self, run: PipelineRunResult) -> None: ...

    def record_activity_run(self, run: ActivityRun) -> None: ...


RunEvent = Literal["pipeline_started", "pipeline_finished", "activity_started", "activity_finished"]


@dataclass
class RunContext:
    """Everything a run needs besides the pipeline and its parameters.

    Args:
        notebook_executor: runs DatabricksNotebook activities.
        function_executor: runs AzureFunctionActivity activities.
        recorder: receives every pipeline and activity run (start and end); optional.
        global_parameters: values of ``pipeline().globalParameters``.
        adf_root: the folder in ADF git layout to read pipelines from.
        sleep: how retry intervals and Wait activities pass time (injectable for tests).
        on_event: progress callback, called with the event name and the run record.
        concurrency: where runs of a pipeline with a ``concurrency`` limit wait for a slot;
            default: this process only (``local.run_store.PostgresConcurrencyGate`` spans processes).
    """

    notebook_executor: NotebookExecutor | None = None
    function_executor: FunctionExecutor | None = None
    recorder: RunRecorder | None = None
    global_parameters: dict[str, Any] = field(default_factory=dict)
    adf_root: Path = ADF_ROOT
    sleep: Callable[[float], None] = time.sleep
    on_event: Callable[[RunEvent, Any], None] | None = None
    concurrency: ConcurrencyGate = field(default_factory=ProcessGate)
    _factory: Factory | None = field(default=None, repr=False)

    @property
    def factory(self) -> Factory:
        if self._factory is None or self._factory.root != self.adf_root:
            self._factory = Factory.load(self.adf_root)
        return self._factory

    def emit(self, event: RunEvent, record: Any) -> None:
        """Record and report a run; a failing recorder or callback is logged, never fails the run
        (as ADF's monitoring never fails a pipeline)."""
        if self.recorder is not None:
            try:
                if isinstance(record, PipelineRunResult):
                    self.recorder.record_pipeline_run(record)
                else:
                    self.recorder.record_activity_run(record)
            except Exception as exc:
                log.warning("could not record %s of %s: %s", event, _label(record), exc)
        if self.on_event is not None:
            try:
                self.on_event(event, record)
            except Exception as exc:
                log.warning("progress callback failed on %s of %s: %s", event, _label(record), exc)


def _label(record: Any) -> str:
    if isinstance(record, PipelineRunResult):
        return f"pipeline {record.pipeline} ({record.run_id})"
    return f"activity {record.activity} of {record.pipeline} ({record.pipeline_run_id})"


# --------------------------------------------------------------------------------------------
# The factory: JSON in ADF git layout
# --------------------------------------------------------------------------------------------


def _load_folder(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise AdfDefinitionError(f"{path}: not valid JSON ({exc})") from None
        name = doc.get("name")
        if name != path.stem:
            raise AdfDefinitionError(f"{path}: 'name' is {name!r}, expected the file name {path.stem!r}")
        found[name] = doc
    return found


def _walk_activities(activities: list[dict[str, Any]]) -> Iterable[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every activity with the scope (sibling list) it belongs to, nested containers included."""
    for activity in activities:
        yield activity, activities
        props = activity.get("typeProperties", {})
        for key in ("activities", "ifTrueActivities", "ifFalseActivities", "defaultActivities"):
            if isinstance(props.get(key), list):
                yield from _walk_activities(props[key])
        for case in props.get("cases", []) or []:
            yield from _walk_activities(case.get("activities", []))


def _check_scope(pipeline: str, activities: list[dict[str, Any]]) -> None:
    names = [a.get("name") for a in activities]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise AdfDefinitionError(f"pipeline {pipeline}: duplicate activity names {sorted(dupes)}")
    for activity in activities:
        for dep in activity.get("dependsOn", []):
            if dep.get("activity") not in names:
                raise AdfDefinitionError(
                    f"pipeline {pipeline}: activity {activity['name']!r} depends on {dep.get('activity')!r}, "
                    "which is not in the same scope"
                )
            bad = [c for c in dep.get("dependencyConditions", []) if c not in CONDITIONS]
            if bad or not dep.get("dependencyConditions"):
                raise AdfDefinitionError(
                    f"pipeline {pipeline}: activity {activity['name']!r} has dependency conditions "
                    f"{dep.get('dependencyConditions')} on {dep['activity']!r}; expected some of {CONDITIONS}"
                )
    # cycle check (Kahn)
    remaining = {a["name"]: {d["activity"] for d in a.get("dependsOn", [])} for a in activities}
    while remaining:
        ready = [n for n, deps in remaining.items() if not deps & remaining.keys()]
        if not ready:
            raise AdfDefinitionError(f"pipeline {pipeline}: circular dependency among {sorted(remaining)}")
        for n in ready:
            del remaining[n]


@dataclass(frozen=True)
class Factory:
    """The pipelines, triggers and linked services of one ADF git folder."""

    root: Path
    pipelines: dict[str, dict[str, Any]]
    triggers: dict[str, dict[str, Any]]
    linked_services: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, root: Path = ADF_ROOT) -> Factory:
        factory = cls(
            root=root,
            pipelines=_load_folder(root / "pipeline"),
            triggers=_load_folder(root / "trigger"),
            linked_services=_load_folder(root / "linkedService"),
        )
        for name, doc in factory.pipelines.items():
            activities = doc.get("properties", {}).get("activities", [])
            scopes = {id(activities): activities}
            for _, scope in _walk_activities(activities):
                scopes[id(scope)] = scope
            for scope in scopes.values():
                _check_scope(name, scope)
        return factory

    def pipeline(self, name: str) -> dict[str, Any]:
        try:
            return self.pipelines[name]
        except KeyError:
            raise AdfDefinitionError(
                f"no pipeline {name!r} in {self.root / 'pipeline'}; available: {', '.join(sorted(self.pipelines))}"
            ) from None

    def trigger(self, name: str) -> dict[str, Any]:
        try:
            return self.triggers[name]
        except KeyError:
            raise AdfDefinitionError(
                f"no trigger {name!r} in {self.root / 'trigger'}; available: {', '.join(sorted(self.triggers))}"
            ) from None


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def _convert(pipeline: str, name: str, declared: str, value: Any) -> Any:
    kind = declared.lower()
    try:
        if kind in ("string", "securestring"):
            return value if isinstance(value, str) else json.dumps(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if kind in ("array", "object"):
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, list if kind == "array" else dict):
                raise ValueError
            return parsed
    except (ValueError, TypeError):
        raise PipelineParameterError(
            f"pipeline {pipeline}: parameter {name!r} must be {declared}, got {value!r}"
        ) from None
    raise AdfDefinitionError(f"pipeline {pipeline}: parameter {name!r} has unknown type {declared!r}")


def bind_parameters(pipeline_doc: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """Given parameters plus declared defaults, converted to the declared types.

    Raises:
        PipelineParameterError: an undeclared name, a missing required parameter, or a value
            that does not convert (e.g. ``fullRefresh=maybe``).
    """
    name = pipeline_doc["name"]
    declared: dict[str, Any] = pipeline_doc.get("properties", {}).get("parameters", {}) or {}
    given = dict(given or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise PipelineParameterError(
            f"pipeline {name}: unknown parameter(s) {unknown}; it declares {sorted(declared) or 'none'}"
        )
    bound: dict[str, Any] = {}
    for pname, spec in declared.items():
        if pname in given:
            bound[pname] = _convert(name, pname, spec.get("type", "String"), given[pname])
        elif "defaultValue" in spec:
            bound[pname] = copy.deepcopy(spec["defaultValue"])
        else:
            raise PipelineParameterError(f"pipeline {name}: required parameter {pname!r} was not given")
    return bound


# --------------------------------------------------------------------------------------------
# Expressions (Microsoft's engine) over the framework's state
# --------------------------------------------------------------------------------------------

_runtime_lock = threading.RLock()
_runtime_instance: Any = None
_transform_cache: dict[str, Any] = {}


def _runtime() -> Any:
    """The framework's ExpressionRuntime, one per process (building it compiles a grammar)."""
    global _runtime_instance
    with _runtime_lock:
        if _runtime_instance is None:
            ensure_dotnet()
            from data_factory_testing_framework._expression_runtime.expression_runtime import ExpressionRuntime

            runtime = ExpressionRuntime()
            # The framework re-parses every expression with an Earley parser (~80 ms) before
            # handing it to the .NET evaluator; the parse depends on the text only: memoized.
            transformer = runtime.dftf_expressions_transformer
            parse = transformer.transform_to_dftf_evaluator_expression

            def transform(expression: str, state: Any) -> Any:
                with _runtime_lock:
                    if expression not in _transform_cache:
                        _transform_cache[expression] = parse(expression, state)
                    return _transform_cache[expression]

            transformer.transform_to_dftf_evaluator_expression = transform
            _runtime_instance = runtime
        return _runtime_instance


def _is_expression(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "Expression"
        and set(value) == {"type", "value"}
        and isinstance(value["value"], str)
    )


class ExpressionError(ValueError):
    """An expression that Microsoft's engine could not evaluate; names the expression."""


def evaluate_expression(expression: str, state: Any) -> Any:
    try:
        return _runtime().evaluate(expression, state)
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise ExpressionError(f"cannot evaluate {expression!r}: {cause}") from None


def evaluate(value: Any, state: Any, skip_keys: frozenset[str] = frozenset()) -> Any:
    """A copy of `value` with every ``{"type": "Expression", "value": ...}`` evaluated."""
    if _is_expression(value):
        return evaluate_expression(value["value"], state)
    if isinstance(value, dict):
        return {k: (v if k in skip_keys else evaluate(v, state)) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, state) for v in value]
    return value


class _TruthyInt(int):
    def __bool__(self) -> bool:
        return True


class _TruthyFloat(float):
    def __bool__(self) -> bool:
        return True


class _TruthyStr(str):
    def __bool__(self) -> bool:
        return True


class _TruthyList(list):
    def __bool__(self) -> bool:
        return True


class _TruthyDict(dict):
    def __bool__(self) -> bool:
        return True


_TRUTHY = (
    (bool, None),
    (int, _TruthyInt),
    (float, _TruthyFloat),
    (str, _TruthyStr),
    (list, _TruthyList),
    (dict, _TruthyDict),
)


def _truthy(item: Any) -> Any:
    """The framework drops a falsy ``item()`` (``if state.iteration_item``): 0, '' or [] would be
    lost, so such items are wrapped in subclasses that are truthy and serialize the same."""
    if item is None or item:
        return item
    for base, wrapper in _TRUTHY:
        if isinstance(item, base):
            return item if wrapper is None else wrapper(item)
    return item


def _new_state(parameters: list[Any], variables: list[Any], results: list[Any], item: Any = None) -> Any:
    from data_factory_testing_framework.state import PipelineRunState

    return PipelineRunState(parameters, variables, list(results), _truthy(item))


def _scope_state(parent: Any, item: Any = None) -> Any:
    """Inner scope: sees the parent's results and variables; its own results stay inside it."""
    return _new_state(
        parent.parameters,
        parent.variables,
        parent.activity_results,
        item if item is not None else parent.iteration_item,
    )


def _set_result(state: Any, name: str, status: str, output: Any, error: dict[str, Any] | None) -> None:
    state.add_activity_result(name, status, output)
    for collection in (state.activity_results, state.scoped_activity_results):
        for result in collection:
            if result.activity_name == name:
                result.error = error


# --------------------------------------------------------------------------------------------
# Time spans ("d.hh:mm:ss")
# --------------------------------------------------------------------------------------------

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?$")


def parse_timespan(text: str) -> float:
    """Seconds of an ADF timespan like ``0.12:00:00`` or ``00:10:00``."""
    match = _TIMESPAN.match(str(text).strip())
    if not match:
        raise AdfDefinitionError(f"not an ADF timespan (d.hh:mm:ss): {text!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


# --------------------------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    status: Literal["Succeeded", "Failed"]
    error: dict[str, Any] | None


def _dependency_met(status: str, conditions: list[str]) -> bool:
    return any(c == status or (c == "Completed" and status in ("Succeeded", "Failed")) for c in conditions)


def scope_outcome(activities: list[dict[str, Any]], statuses: dict[str, str], errors: dict[str, Any]) -> _Outcome:
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
        return _Outcome("Succeeded", None)
    # The error reported is a failed leaf's (e.g. a Fail activity's message) before that of a
    # parent judged in place of a skipped leaf.
    failed.sort(key=lambda n: n not in leaves)
    target = failed[0]
    inner = errors.get(target) or {}
    message = f"Operation on target {target} failed: {inner.get('message', 'unknown error')}"
    return _Outcome("Failed", _error(message, inner.get("errorCode", "UserError"), target))


class _Execution:
    """One pipeline run."""

    def __init__(self, ctx: RunContext, doc: dict[str, Any], run: PipelineRunResult, system: dict[str, Any]):
        from data_factory_testing_framework.state import PipelineRunVariable, RunParameter, RunParameterType

        self.ctx = ctx
        self.doc = doc
        self.run = run
        self._lock = threading.Lock()
        params = [RunParameter(RunParameterType.Pipeline, k, v) for k, v in run.parameters.items()]
        params += [RunParameter(RunParameterType.Global, k, v) for k, v in ctx.global_parameters.items()]
        params += [RunParameter(RunParameterType.System, k, v) for k, v in system.items()]
        variables = [
            PipelineRunVariable(name, copy.deepcopy(spec.get("defaultValue", _VARIABLE_DEFAULTS[spec["type"]])))
            for name, spec in (doc.get("properties", {}).get("variables", {}) or {}).items()
        ]
        self.state = _new_state(params, variables, [])

    # -- scopes ------------------------------------------------------------------------------

    def run_scope(self, activities: list[dict[str, Any]], state: Any) -> _Outcome:
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
            if all(_dependency_met(statuses[d["activity"]], d["dependencyConditions"]) for d in deps):
                status, output, error = self.run_activity(activity, state)
            else:
                status, output, error = "Skipped", None, None
                self._record_skip(activity)
            statuses[name], errors[name] = status, error
            _set_result(state, name, status, output, error)
        return scope_outcome(activities, statuses, errors)

    def _record_skip(self, activity: dict[str, Any]) -> None:
        now = _now()
        run = self._new_activity_run(activity, "Skipped", now)
        run.end = now
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

    def run_activity(self, activity: dict[str, Any], state: Any) -> tuple[str, Any, dict[str, Any] | None]:
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
            run = self._new_activity_run(activity, "InProgress", _now())
            run.attempt = attempt
            self._append(run)
            self.ctx.emit("activity_started", run)
            status: str
            try:
                if policy_error:
                    raise ActivityFailure(policy_error)
                handler = _HANDLERS.get(kind)
                if handler is None:
                    raise ActivityFailure(
                        f"activity type {kind!r} is not supported by the local runner", "NotSupported"
                    )
                status, output, error = self._with_timeout(handler, activity, state, run, timeout)
            except ActivityFailure as exc:
                status, output, error = "Failed", None, _error(exc.message, exc.error_code, activity["name"])
            except ExpressionError as exc:
                status, output, error = "Failed", None, _error(str(exc), "InvalidTemplate", activity["name"])
            except Exception as exc:  # an executor's own failure: the activity fails, the run goes on
                status, output, error = (
                    "Failed",
                    None,
                    _error(f"{type(exc).__name__}: {exc}", "ActivityExecutionFailed", activity["name"]),
                )
            except BaseException:  # Ctrl-C: recorded as Cancelled, then the interrupt goes on
                run.status, run.end = "Cancelled", _now()
                self.ctx.emit("activity_finished", run)
                raise
            run.status, run.end = status, _now()  # type: ignore[assignment]
            run.output = None if secure_out else output
            run.error = error
            if secure_in:
                run.input = None
            self.ctx.emit("activity_finished", run)
            failpoints.failpoint(f"after_activity:{self.run.pipeline}/{activity['name']}", status=status)
            if status == "Succeeded" or attempt > retries:
                return status, output, error
            self.ctx.sleep(interval)

    def _with_timeout(
        self, handler: Handler, activity: dict[str, Any], state: Any, run: ActivityRun, timeout: float | None
    ) -> tuple[str, Any, dict[str, Any] | None]:
        """Run the handler; with a timeout, on a worker thread that is abandoned when it expires."""
        if timeout is None:
            return handler(self, activity, state, run)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"adf-{activity['name']}")
        future = pool.submit(handler, self, activity, state, run)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise ActivityFailure(
                f"activity timed out after {_seconds_text(timeout)} (policy.timeout); the local executor "
                "could not be stopped and finishes in the background",
                "ActivityTimedOut",
            ) from None
        finally:
            pool.shutdown(wait=False)


def _seconds_text(seconds: float) -> str:
    return f"{seconds:g} s"


_VARIABLE_DEFAULTS: dict[str, Any] = {"String": "", "Integer": 0, "Boolean": False, "Array": []}


# --------------------------------------------------------------------------------------------
# Activity handlers: (execution, activity JSON, state, run record) -> (status, output, error)
# --------------------------------------------------------------------------------------------

Handler = Callable[[_Execution, dict[str, Any], Any, ActivityRun], tuple[str, Any, dict[str, Any] | None]]
_HANDLERS: dict[str, Handler] = {}


def _handles(*kinds: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for kind in kinds:
            _HANDLERS[kind] = fn
        return fn

    return register


def _props(activity: dict[str, Any], state: Any, run: ActivityRun) -> dict[str, Any]:
    props = evaluate(activity.get("typeProperties", {}) or {}, state, frozenset(CONTAINER_KEYS))
    run.input = {k: v for k, v in props.items() if k not in CONTAINER_KEYS}
    return props


def _ok(output: Any = None) -> tuple[str, Any, None]:
    return "Succeeded", output, None


@_handles("DatabricksNotebook")
def _notebook(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
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
def _function(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
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
def _execute_pipeline(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    child_name = props["pipeline"]["referenceName"]
    try:
        child = run_pipeline(
            child_name,
            props.get("parameters") or {},
            ex.ctx,
            parent_run_id=ex.run.run_id,
            parent_pipeline=ex.run.pipeline,
        )
    except (PipelineParameterError, AdfDefinitionError) as exc:
        raise ActivityFailure(str(exc), "InvalidPipelineReference") from None
    with ex._lock:
        ex.run.child_runs.append(child)
    output = {"pipelineName": child_name, "pipelineRunId": child.run_id, "pipelineReturnValue": child.output}
    if props.get("waitOnCompletion", True) and not child.succeeded:
        return (
            "Failed",
            output,
            _error(
                (child.error or {}).get("message", "child pipeline failed"),
                (child.error or {}).get("errorCode", "UserError"),
                activity["name"],
            ),
        )
    return _ok(output)


@_handles("SetVariable")
def _set_variable(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = activity.get("typeProperties", {})
    name = props["variableName"]
    if name == "pipelineReturnValue":
        values = {}
        for entry in props.get("value", []):
            spec = entry.get("value", {})
            content = spec.get("content") if isinstance(spec, dict) else spec
            if isinstance(spec, dict) and spec.get("type") == "Expression":
                content = evaluate_expression(content, state)
            values[entry["key"]] = content
        run.input = {"variableName": name, "value": values}
        with ex._lock:
            ex.run.output.update(values)
        return _ok({"value": values})
    value = evaluate(props.get("value"), state)
    run.input = {"variableName": name, "value": value}
    try:
        state.set_variable(name, value)
    except Exception as exc:
        raise ActivityFailure(f"cannot set variable {name!r}: {exc}") from None
    return _ok({"value": value})


@_handles("AppendVariable")
def _append_variable(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = activity.get("typeProperties", {})
    value = evaluate(props.get("value"), state)
    run.input = {"variableName": props["variableName"], "value": value}
    with ex._lock:
        try:
            state.append_variable(props["variableName"], value)
        except Exception as exc:
            raise ActivityFailure(f"cannot append to variable {props['variableName']!r}: {exc}") from None
    return _ok()


@_handles("Filter")
def _filter(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = activity.get("typeProperties", {})
    items = evaluate(props["items"], state)
    if not isinstance(items, list):
        raise ActivityFailure(f"Filter items must be an array, got {type(items).__name__}")
    kept = [item for item in items if evaluate(props["condition"], _scope_state(state, item)) is True]
    run.input = {"items": items}
    return _ok({"ItemsCount": len(items), "FilteredItemsCount": len(kept), "Value": kept, "value": kept})


@_handles("Fail")
def _fail(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    return "Failed", None, _error(str(props.get("message", "")), str(props.get("errorCode", "Fail")), activity["name"])


@_handles("Wait")
def _wait(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    ex.ctx.sleep(float(props.get("waitTimeInSeconds", 1)))
    return _ok()


def _container_result(outcome: _Outcome, name: str) -> tuple[str, Any, dict[str, Any] | None]:
    if outcome.status == "Succeeded":
        return _ok({})
    inner = outcome.error or {}
    return (
        "Failed",
        {},
        _error(
            f"Activity failed because an inner activity failed; {inner.get('message', '')}",
            inner.get("errorCode", "UserError"),
            name,
        ),
    )


@_handles("IfCondition")
def _if_condition(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    if not isinstance(props["expression"], bool):
        raise ActivityFailure(f"If Condition expression must be a boolean, got {props['expression']!r}")
    branch = props.get("ifTrueActivities" if props["expression"] else "ifFalseActivities") or []
    return _container_result(ex.run_scope(branch, _scope_state(state)), activity["name"])


@_handles("Switch")
def _switch(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    on = props["on"]
    if not isinstance(on, str):
        raise ActivityFailure(f"Switch 'on' must evaluate to a string, got {on!r}")
    branch = next((c.get("activities", []) for c in props.get("cases", []) if c.get("value") == on), None)
    if branch is None:
        branch = props.get("defaultActivities", []) or []
    return _container_result(ex.run_scope(branch, _scope_state(state)), activity["name"])


@_handles("ForEach")
def _for_each(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = _props(activity, state, run)
    items = props["items"]
    if not isinstance(items, list):
        raise ActivityFailure(f"ForEach items must be an array, got {type(items).__name__}")
    inner = props.get("activities", [])
    sequential = bool(props.get("isSequential", False))
    batch = 1 if sequential else min(int(props.get("batchCount", DEFAULT_BATCH_COUNT)), MAX_BATCH_COUNT)
    if batch <= 1:
        outcomes = [ex.run_scope(inner, _scope_state(state, item)) for item in items]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=batch, thread_name_prefix="adf-foreach") as pool:
            outcomes = list(pool.map(lambda item: ex.run_scope(inner, _scope_state(state, item)), items))
    failed = [o for o in outcomes if o.status == "Failed"]
    result = _container_result(failed[0] if failed else _Outcome("Succeeded", None), activity["name"])
    return result[0], {"ItemsCount": len(items), "FailedCount": len(failed)}, result[2]


@_handles("Until")
def _until(ex: _Execution, activity: dict[str, Any], state: Any, run: ActivityRun):
    props = activity.get("typeProperties", {})
    limit = parse_timespan(props.get("timeout", "7.00:00:00"))
    run.input = {"expression": props["expression"], "timeout": props.get("timeout")}
    started = time.monotonic()
    iterations = 0
    while True:
        iterations += 1
        scope = _scope_state(state)
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
                f"Until timed out after {_seconds_text(limit)} and {iterations} iteration(s) "
                "without its expression becoming true",
                "UntilTimedOut",
            )


# --------------------------------------------------------------------------------------------
# The public entry point
# --------------------------------------------------------------------------------------------


def run_pipeline(
    name: str,
    parameters: dict[str, Any] | None = None,
    context: RunContext | None = None,
    *,
    parent_run_id: str | None = None,
    parent_pipeline: str | None = None,
    trigger: dict[str, Any] | None = None,
) -> PipelineRunResult:
    """Run pipeline `name` from the context's ADF folder and return the finished run.

    Args:
        name: pipeline name (file ``adf/pipeline/<name>.json``).
        parameters: values for the pipeline's declared parameters; strings are converted to the
            declared type (so CLI ``-p fullRefresh=true`` works).
        context: executors, recorder, global parameters; default: a context without executors.
        parent_run_id: run id of the pipeline that executes this one (Execute Pipeline).
        parent_pipeline: name of that pipeline.
        trigger: ``{"name", "type", "scheduledTime", "startTime"}`` when a trigger fires it.

    Returns:
        The run, with status ``Succeeded`` or ``Failed``; a failed activity does not raise.

    Raises:
        AdfDefinitionError: unknown pipeline or invalid JSON.
        PipelineParameterError: parameters that do not match the declaration.
    """
    ctx = context or RunContext()
    doc = ctx.factory.pipeline(name)
    bound = bind_parameters(doc, parameters)
    ensure_dotnet()
    limit = doc.get("properties", {}).get("concurrency")
    if limit is None:
        return _run_pipeline(ctx, name, doc, bound, parent_run_id, parent_pipeline, trigger)
    if not isinstance(limit, int) or limit < 1:
        raise AdfDefinitionError(f"pipeline {name}: concurrency must be a positive integer, got {limit!r}")
    # ADF queues a run beyond the pipeline's concurrency until an earlier one ends; here the run
    # waits for a slot before it starts (ops.pipeline_runs has no 'Queued' status).
    with ctx.concurrency.hold(name, limit):
        return _run_pipeline(ctx, name, doc, bound, parent_run_id, parent_pipeline, trigger)


def _run_pipeline(
    ctx: RunContext,
    name: str,
    doc: dict[str, Any],
    bound: dict[str, Any],
    parent_run_id: str | None,
    parent_pipeline: str | None,
    trigger: dict[str, Any] | None,
) -> PipelineRunResult:
    run = PipelineRunResult(
        run_id=str(uuid.uuid4()),
        pipeline=name,
        parameters=bound,
        status="InProgress",
        start=_now(),
        parent_run_id=parent_run_id,
        trigger_name=(trigger or {}).get("name"),
    )
    trigger_time = (trigger or {}).get("startTime") or run.start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    system = {
        "RunId": run.run_id,
        "Pipeline": name,
        "DataFactory": FACTORY_NAME,
        "GroupId": run.run_id,
        "PipelineName": name,
        "TriggerTime": trigger_time,
        "TriggerName": (trigger or {}).get("name", "Manual" if parent_run_id is None else parent_pipeline),
        "TriggerType": (trigger or {}).get("type", "Manual" if parent_run_id is None else "PipelineActivity"),
        "TriggerId": run.run_id if parent_run_id is None else parent_run_id,
        "TriggeredByPipelineName": parent_pipeline,
        "TriggeredByPipelineRunId": parent_run_id,
    }
    execution = _Execution(ctx, doc, run, system)
    ctx.emit("pipeline_started", run)
    try:
        outcome = execution.run_scope(doc.get("properties", {}).get("activities", []), execution.state)
    except BaseException:
        run.status, run.end = "Cancelled", _now()
        run.error = _error("the run was interrupted", "Cancelled")
        ctx.emit("pipeline_finished", run)
        raise
    run.status, run.error, run.end = outcome.status, outcome.error, _now()
    run.variables = {v.name: copy.deepcopy(v.value) for v in execution.state.variables}
    ctx.emit("pipeline_finished", run)
    return run


# --------------------------------------------------------------------------------------------
# The local wiring: the Function app in-process, notebooks on Sail, runs in PostgreSQL
# --------------------------------------------------------------------------------------------


class FunctionHostExecutor:
    """FunctionExecutor calling the Function app in-process (``local.function_host``).

    As ADF does, a non-2xx answer fails the activity, with the status and the start of the body.
    """

    def __call__(self, call: FunctionCall) -> Any:
        from local import function_host

        response = function_host.invoke_http(
            call.function_name, method=call.method, body=call.body, headers=call.headers
        )
        if not response.ok:
            text = response.body[:500].decode(errors="replace")
            raise ActivityFailure(
                f"Call to Azure function {call.function_name!r} failed with HTTP {response.status_code}: {text}",
                "AzureFunctionFailed",
            )
        try:
            return response.json()
        except ValueError:
            raise ActivityFailure(
                f"Azure function {call.function_name!r} answered a body that is not JSON",
                "AzureFunctionInvalidResponse",
            ) from None


def local_context(
    spark: Any,
    pg_dsn: str | None = None,
    on_event: Callable[[RunEvent, Any], None] | None = None,
    adf_root: Path = ADF_ROOT,
) -> RunContext:
    """The context of the one-machine runtime.

    Args:
        spark: session the notebooks run on (the embedded Sail server's).
        pg_dsn: serving database; when given, every run is recorded in ``ops.pipeline_runs`` /
            ``ops.activity_runs`` (migrations must have been applied), and pipeline ``concurrency``
            limits hold across processes (advisory locks there).
        on_event: progress callback (see :class:`RunContext`).
        adf_root: the ADF folder.
    """
    from local.notebook_runner import SparkNotebookExecutor
    from local.run_store import PostgresConcurrencyGate, PostgresRunStore

    return RunContext(
        notebook_executor=SparkNotebookExecutor(spark),
        function_executor=FunctionHostExecutor(),
        recorder=PostgresRunStore(pg_dsn) if pg_dsn else None,
        on_event=on_event,
        adf_root=adf_root,
        concurrency=PostgresConcurrencyGate(pg_dsn) if pg_dsn else ProcessGate(),
    )
