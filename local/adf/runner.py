"""Runs a pipeline from ``adf/``: binds its parameters, sets up its state, hands it to the scheduler.

Expressions are evaluated by Microsoft's engine (``local.adf.expressions``), scheduling follows
ADF's rules (``local.adf.scheduler``), the work of each activity type is in
``local.adf.activities``. :func:`local_context` wires the one-machine runtime: the Function app
in-process, notebooks on Sail, runs recorded in PostgreSQL. Only Azure itself is replaced; the
JSON is the deployed JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local.adf.activities import HANDLERS
from local.adf.context import FunctionCall, ProcessGate, RunContext, RunEvent
from local.adf.expressions import variable_values, warm_up
from local.adf.factory import ADF_ROOT, bind_parameters
from local.adf.records import ActivityFailure, AdfDefinitionError, PipelineRunResult, error, now
from local.adf.rerun import Reuse, plan_reuse
from local.adf.scheduler import Execution
from local.dotnet_runtime import ensure_dotnet
from local.notebook_runner import SparkNotebookExecutor
from local.run_store import PostgresConcurrencyGate, PostgresRunStore

FACTORY_NAME = "adf-lakehouse-local"


def run_pipeline(
    name: str,
    parameters: dict[str, Any] | None = None,
    context: RunContext | None = None,
    *,
    parent_run_id: str | None = None,
    parent_pipeline: str | None = None,
    trigger: dict[str, Any] | None = None,
    reuse: Reuse | None = None,
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
        reuse: when this run reruns a failed one, what it takes from it (see :func:`rerun_pipeline`).

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
        return _run_pipeline(ctx, name, doc, bound, parent_run_id, parent_pipeline, trigger, reuse)
    if not isinstance(limit, int) or limit < 1:
        raise AdfDefinitionError(f"pipeline {name}: concurrency must be a positive integer, got {limit!r}")
    # ADF queues a run beyond the pipeline's concurrency until an earlier one ends; here the run
    # waits for a slot before it starts (ops.pipeline_runs has no 'Queued' status).
    with ctx.concurrency.hold(name, limit):
        return _run_pipeline(ctx, name, doc, bound, parent_run_id, parent_pipeline, trigger, reuse)


def rerun_pipeline(
    original: dict[str, Any], activity_runs: list[dict[str, Any]], context: RunContext | None = None
) -> PipelineRunResult:
    """Rerun a failed run from its failed activities, as Data Factory's "rerun from failed activity".

    A new run of the same pipeline with the same parameters, linked to the failed one
    (``rerun_of``); activities that succeeded are not executed again, their recorded outputs are
    reused (``local.adf.rerun`` says which).

    Args:
        original: the failed run's ``ops.pipeline_runs`` row (``run_id``, ``pipeline``, ``parameters``,
            ``trigger_name``).
        activity_runs: its ``ops.activity_runs`` rows.
        context: as for :func:`run_pipeline`.
    """
    ctx = context or RunContext()
    doc = ctx.factory.pipeline(original["pipeline"])
    reuse = plan_reuse(original["run_id"], doc, activity_runs)
    trigger = {"name": original.get("trigger_name")} if original.get("trigger_name") else None
    return run_pipeline(original["pipeline"], original.get("parameters") or {}, ctx, trigger=trigger, reuse=reuse)


def _run_pipeline(
    ctx: RunContext,
    name: str,
    doc: dict[str, Any],
    bound: dict[str, Any],
    parent_run_id: str | None,
    parent_pipeline: str | None,
    trigger: dict[str, Any] | None,
    reuse: Reuse | None = None,
) -> PipelineRunResult:
    run = PipelineRunResult(
        run_id=str(uuid.uuid4()),
        pipeline=name,
        parameters=bound,
        status="InProgress",
        start=now(),
        parent_run_id=parent_run_id,
        trigger_name=(trigger or {}).get("name"),
        rerun_of=reuse.rerun_of if reuse else None,
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
    execution = Execution(ctx, doc, run, system, HANDLERS, _run_child, reuse)
    ctx.emit("pipeline_started", run)
    try:
        outcome = execution.run_scope(doc.get("properties", {}).get("activities", []), execution.state)
    except BaseException:
        run.status, run.end = "Cancelled", now()
        run.error = error("the run was interrupted", "Cancelled")
        ctx.emit("pipeline_finished", run)
        raise
    run.status, run.error, run.end = outcome.status, outcome.error, now()
    run.variables = variable_values(execution.state)
    ctx.emit("pipeline_finished", run)
    return run


def _run_child(pipeline: str, parameters: dict[str, Any], parent: Execution) -> PipelineRunResult:
    return run_pipeline(
        pipeline, parameters, parent.ctx, parent_run_id=parent.run.run_id, parent_pipeline=parent.run.pipeline
    )


class FunctionHostExecutor:
    """FunctionExecutor calling the Function app in-process (``local.function_host``).

    As ADF does, a non-2xx answer fails the activity, with the status and the start of the body.
    """

    def __call__(self, call: FunctionCall) -> Any:
        from local import function_host  # loads the Function app: only when a function is called

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
    warm_up()  # .NET loads while the run reads its factory
    return RunContext(
        notebook_executor=SparkNotebookExecutor(spark),
        function_executor=FunctionHostExecutor(),
        recorder=PostgresRunStore(pg_dsn) if pg_dsn else None,
        on_event=on_event,
        adf_root=adf_root,
        concurrency=PostgresConcurrencyGate(pg_dsn) if pg_dsn else ProcessGate(),
    )
