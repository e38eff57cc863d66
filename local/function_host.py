"""Invoke the Function app in-process, as the Functions host would.

The host indexes ``function_app.app`` (``app.get_functions()``), builds the trigger objects and
calls the user function. This module does the same with real ``azure.functions.HttpRequest`` and
``TimerRequest`` objects, so the local runtime (and the local ADF runner's Azure Function
activity) exercises exactly the code that is deployed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
ROUTE_PREFIX = "api"  # host.json extensions.http.routePrefix


class FunctionNotFound(LookupError):
    """No function of the app answers to the name or route asked for."""


@dataclass(frozen=True)
class FunctionResponse:
    """What an HTTP function answered."""

    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


@cache
def function_app() -> func.FunctionApp:
    """The deployed app object, imported from ``functions/`` once per process."""
    if str(FUNCTIONS_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS_DIR))
    import function_app as module

    return module.app


_INDEXED: dict[int, tuple[func.FunctionApp, dict[str, Any]]] = {}


def functions(app: func.FunctionApp | None = None) -> dict[str, Any]:
    """The app's functions by name, indexed once per app object.

    ``FunctionApp.get_functions()`` may be called only once per app (a second call reports every
    function as a duplicate), so the host's index is kept here, as the worker keeps its own.
    """
    app = app or function_app()
    if id(app) not in _INDEXED:
        _INDEXED[id(app)] = (app, {f.get_function_name(): f for f in app.get_functions()})
    return _INDEXED[id(app)][1]


def _functions(app: func.FunctionApp) -> dict[str, Any]:
    return functions(app)


def _binding(function: Any, kind: str) -> dict[str, Any] | None:
    for binding in function.get_bindings():
        info = binding.get_dict_repr()
        if info.get("type") == kind:
            return info
    return None


def _find_http(app: func.FunctionApp, name: str) -> tuple[Any, dict[str, Any]]:
    """By function name or by route (ADF's Azure Function activity names the route)."""
    route = name.strip("/").removeprefix(f"{ROUTE_PREFIX}/")
    for fname, function in _functions(app).items():
        trigger = _binding(function, "httpTrigger")
        if trigger is not None and route in (fname, trigger.get("route")):
            return function, trigger
    raise FunctionNotFound(f"no HTTP function named or routed {name!r}; the app has {sorted(_functions(app))}")


def invoke_http(
    name: str,
    *,
    method: str = "POST",
    body: bytes | str | dict | list | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    app: func.FunctionApp | None = None,
) -> FunctionResponse:
    """Call an HTTP-triggered function in-process.

    Args:
        name: function name or route (``ingest`` or ``api/ingest``).
        method: HTTP method; must be one the function accepts (else 405, as the host answers).
        body: bytes, text, or a JSON-serialisable object (sent as JSON).
        headers / params: request headers and query parameters.
        app: another FunctionApp (default: ``functions/function_app.py``).

    Returns:
        The function's status, body and headers.
    """
    app = app or function_app()
    function, trigger = _find_http(app, name)
    method = method.upper()
    allowed = [str(getattr(m, "value", m)).upper() for m in trigger.get("methods") or []]
    if allowed and method not in allowed:
        return FunctionResponse(405, b"", {"Allow": ", ".join(allowed)})
    if isinstance(body, dict | list):
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = body or b""
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost/{ROUTE_PREFIX}/{trigger.get('route')}",
        headers=headers or {},
        params=params or {},
        route_params={},
        body=data,
    )
    response = function.get_user_function()(request)
    return FunctionResponse(
        status_code=response.status_code,
        body=response.get_body(),
        headers=dict(response.headers),
    )


def run_timer(name: str, *, past_due: bool = False, app: func.FunctionApp | None = None) -> None:
    """Fire a timer-triggered function once, as the host does on its schedule.

    An exception from the function propagates: that is a failed invocation.
    """
    app = app or function_app()
    function = _functions(app).get(name)
    if function is None or _binding(function, "timerTrigger") is None:
        raise FunctionNotFound(f"no timer function {name!r}; the app has {sorted(_functions(app))}")
    function.get_user_function()(TimerRequest(past_due=past_due))


def timer_schedules(app: func.FunctionApp | None = None) -> dict[str, str]:
    """CRON schedule of each timer function, as indexed."""
    app = app or function_app()
    out = {}
    for fname, function in _functions(app).items():
        trigger = _binding(function, "timerTrigger")
        if trigger is not None:
            out[fname] = trigger["schedule"]
    return out
