"""Fires the triggers of ``adf/trigger`` locally: which pipeline, with which parameters, at a time.

A trigger's pipeline parameters are expressions over ``trigger()``: ``trigger().scheduledTime``
and ``trigger().startTime`` for a schedule trigger, ``trigger().outputs.windowStartTime`` and
``windowEndTime`` for a tumbling window. Microsoft's expression engine has no ``trigger()``
function (it evaluates pipeline expressions), so each ``trigger().<property>`` reference is
replaced by the value as a string literal and the rest is evaluated by that engine.

Local semantics of ``--at``: for a schedule trigger, ``at`` is the scheduled time; for a
tumbling-window trigger, the window is the one that contains ``at`` (windows are aligned on the
trigger's ``startTime``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from local.adf.context import RunContext
from local.adf.expressions import evaluate_expression
from local.adf.factory import Factory
from local.adf.records import AdfDefinitionError, PipelineRunResult
from local.adf.runner import run_pipeline

_TRIGGER_REF = re.compile(r"trigger\(\)\.((?:outputs\.)?[A-Za-z]+)")
_FREQUENCY_SECONDS = {"Minute": 60, "Hour": 3600, "Month": None}
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass(frozen=True)
class TriggerFiring:
    """What a trigger starts at a given time."""

    trigger: str
    trigger_type: str
    pipeline: str
    parameters: dict[str, Any]
    scheduled_time: dt.datetime
    window: tuple[dt.datetime, dt.datetime] | None = None
    on_schedule: bool = True  # False: `at` is not a time the schedule would fire

    def __iter__(self):
        return iter((self.pipeline, self.parameters))


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _substitute(expression: str, values: dict[str, str], trigger: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise AdfDefinitionError(f"trigger {trigger}: trigger().{key} is not available; known: {sorted(values)}")
        return f"string('{values[key]}')"

    return _TRIGGER_REF.sub(replace, expression)


def _evaluate_parameter(value: Any, values: dict[str, str], trigger: str) -> Any:
    if isinstance(value, dict) and value.get("type") == "Expression":
        value = value["value"]
    if isinstance(value, str) and value.startswith("@") and not value.startswith("@@"):
        return evaluate_expression(_substitute(value, values, trigger))
    return value


def _matches_schedule(recurrence: dict[str, Any], at: dt.datetime) -> bool:
    if recurrence.get("timeZone", "UTC") not in ("UTC", "Coordinated Universal Time"):
        return True  # only UTC schedules are checked locally
    schedule = recurrence.get("schedule") or {}
    checks = [
        ("weekDays", _WEEKDAYS[at.weekday()]),
        ("hours", at.hour),
        ("minutes", at.minute),
        ("monthDays", at.day),
    ]
    return all(key not in schedule or wanted in schedule[key] for key, wanted in checks)


def resolve_trigger(name: str, at: dt.datetime | str, factory: Factory | None = None) -> TriggerFiring:
    """The pipeline and evaluated parameters trigger `name` would start at time `at`.

    Args:
        name: trigger name (file ``adf/trigger/<name>.json``).
        at: the scheduled time (schedule trigger) or a time inside the window (tumbling window);
            naive times are UTC.
        factory: where to read triggers; default ``adf/``.

    Raises:
        AdfDefinitionError: unknown trigger, unsupported type or reference, `at` outside the
            range (startTime to endTime) of a tumbling window trigger.
    """
    factory = factory or Factory.load()
    doc = factory.trigger(name)
    props = doc.get("properties", {})
    kind = props.get("type")
    at = _parse_time(at) if isinstance(at, str) else (at if at.tzinfo else at.replace(tzinfo=dt.UTC))
    type_props = props.get("typeProperties", {})
    if kind == "ScheduleTrigger":
        references = props.get("pipelines", [])
        if len(references) != 1:
            raise AdfDefinitionError(
                f"trigger {name}: the local runner fires exactly one pipeline, found {len(references)}"
            )
        reference = references[0]
        values = {"scheduledTime": _iso(at), "startTime": _iso(at), "name": name}
        window = None
        on_schedule = _matches_schedule(type_props.get("recurrence", {}), at)
    elif kind == "TumblingWindowTrigger":
        reference = props["pipeline"]
        frequency, interval = type_props["frequency"], int(type_props["interval"])
        seconds = _FREQUENCY_SECONDS.get(frequency)
        if seconds is None:
            raise AdfDefinitionError(f"trigger {name}: frequency {frequency!r} is not supported locally")
        width = dt.timedelta(seconds=seconds * interval)
        origin = _parse_time(type_props["startTime"])
        if at < origin:
            raise AdfDefinitionError(f"trigger {name}: {_iso(at)} is before the trigger's startTime {_iso(origin)}")
        start = origin + width * ((at - origin) // width)
        window = (start, start + width)
        end = type_props.get("endTime")
        if end is not None and window[1] > _parse_time(end):
            # Data Factory produces no window that ends after the trigger's endTime.
            raise AdfDefinitionError(
                f"trigger {name}: {_iso(at)} is in no window ending by the trigger's endTime {end}"
            )
        values = {
            "outputs.windowStartTime": _iso(window[0]),
            "outputs.windowEndTime": _iso(window[1]),
            "scheduledTime": _iso(window[1]),
            "startTime": _iso(window[1]),
            "name": name,
        }
        on_schedule = True
    else:
        raise AdfDefinitionError(f"trigger {name}: type {kind!r} is not supported by the local runner")
    parameters = {
        key: _evaluate_parameter(value, values, name) for key, value in (reference.get("parameters") or {}).items()
    }
    return TriggerFiring(
        trigger=name,
        trigger_type=kind,
        pipeline=reference["pipelineReference"]["referenceName"],
        parameters=parameters,
        scheduled_time=at if window is None else window[1],
        window=window,
        on_schedule=on_schedule,
    )


def fire_trigger(name: str, at: dt.datetime | str, context: RunContext | None = None) -> PipelineRunResult:
    """Resolve trigger `name` at `at` and run its pipeline as that trigger would."""
    context = context or RunContext()
    firing = resolve_trigger(name, at, context.factory)
    return run_pipeline(
        firing.pipeline,
        firing.parameters,
        context,
        trigger={
            "name": name,
            "type": firing.trigger_type,
            "scheduledTime": _iso(firing.scheduled_time),
            "startTime": _iso(firing.scheduled_time),
        },
    )
