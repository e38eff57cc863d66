"""What a pipeline run needs besides its JSON: executors of the work, a recorder, a gate.

Only Azure is replaced: notebooks run through a :class:`NotebookExecutor` (locally the Sail
session, ``local.notebook_runner``), Azure Functions through a :class:`FunctionExecutor` (locally
the Function app in-process), and runs are recorded by a :class:`RunRecorder`
(``local.run_store``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from local.adf.factory import ADF_ROOT, Factory
from local.adf.records import ActivityRun, PipelineRunResult, RetryNotice, label

log = logging.getLogger(__name__)


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


RunEvent = Literal[
    "pipeline_started", "pipeline_finished", "activity_started", "activity_finished", "activity_retrying"
]


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
        on_event: progress callback, called with the event name and the run record (a
            :class:`RetryNotice` for ``activity_retrying``).
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
    _reader_gone: bool = field(default=False, repr=False)

    @property
    def factory(self) -> Factory:
        if self._factory is None or self._factory.root != self.adf_root:
            self._factory = Factory.load(self.adf_root)
        return self._factory

    def emit(self, event: RunEvent, record: ActivityRun | PipelineRunResult | RetryNotice) -> None:
        """Record and report a run; a failing recorder or callback is logged, never fails the run
        (as ADF's monitoring never fails a pipeline).

        A callback whose reader went away (a closed pipe: ``BrokenPipeError``, or the
        ``SystemExit`` rich raises for it) is not called again, and the run goes on.
        """
        if self.recorder is not None and not isinstance(record, RetryNotice):
            try:
                if isinstance(record, PipelineRunResult):
                    self.recorder.record_pipeline_run(record)
                else:
                    self.recorder.record_activity_run(record)
            except Exception as exc:
                log.warning("could not record %s of %s: %s", event, label(record), exc)
        if self.on_event is not None and not self._reader_gone:
            try:
                self.on_event(event, record)
            except (BrokenPipeError, SystemExit):
                self._reader_gone = True
                log.info("the progress output was closed; the run goes on without it")
            except Exception as exc:
                log.warning("progress callback failed on %s of %s: %s", event, label(record), exc)
