"""What a pipeline run produces, as ADF monitoring shows it: plain records and the run's errors.

These types depend on nothing else in the runner, so the run store can record them without
importing the runner.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["InProgress", "Succeeded", "Failed", "Skipped", "Cancelled"]


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


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def error(message: str, code: str = "UserError", target: str | None = None) -> dict[str, Any]:
    """An activity or pipeline error in ADF's shape."""
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
    reused_from: str | None = None  # in a rerun: the activity run whose output was reused, not executed

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
    rerun_of: str | None = None  # the failed run this run reruns (``lakehouse rerun``)
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


@dataclass(frozen=True)
class RetryNotice:
    """An activity attempt failed and the next one starts after `interval_s` (``policy.retry``)."""

    run: ActivityRun
    next_attempt: int
    attempts: int
    interval_s: float


def label(record: ActivityRun | PipelineRunResult | RetryNotice) -> str:
    """How a run is named in log messages."""
    if isinstance(record, RetryNotice):
        record = record.run
    if isinstance(record, PipelineRunResult):
        return f"pipeline {record.pipeline} ({record.run_id})"
    return f"activity {record.activity} of {record.pipeline} ({record.pipeline_run_id})"
