"""The in-process Functions host: finds functions by name or route, builds real trigger objects,
answers as the host would (405 for a wrong method), and lets failures propagate."""

from __future__ import annotations

import azure.functions as func
import pytest

from local import function_host
from local.function_host import FunctionNotFound, invoke_http, run_timer


@pytest.fixture
def toy_app() -> func.FunctionApp:
    """A small app, so the host's mechanics are tested apart from the ingestion app."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    seen: dict = {}

    @app.function_name("echo")
    @app.route(route="tools/echo", methods=[func.HttpMethod.POST])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        seen["request"] = req
        return func.HttpResponse(req.get_body(), status_code=201, headers={"X-Seen": req.params.get("q", "")})

    @app.function_name("tick")
    @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        seen["timer"] = timer
        if seen.get("fail"):
            raise RuntimeError("tick failed")

    app.seen = seen  # type: ignore[attr-defined]
    return app


def test_http_functions_are_found_by_name_or_route_and_get_a_real_request(toy_app):
    for name in ("echo", "tools/echo", "api/tools/echo", "/api/tools/echo"):
        response = invoke_http(name, body={"a": 1}, params={"q": "x"}, app=toy_app)
        assert (response.status_code, response.json(), response.headers["X-Seen"]) == (201, {"a": 1}, "x")
    request = toy_app.seen["request"]
    assert isinstance(request, func.HttpRequest)
    assert request.method == "POST" and request.url == "http://localhost/api/tools/echo"
    assert request.get_json() == {"a": 1} and request.headers["content-type"] == "application/json"


def test_a_method_the_function_does_not_accept_gets_405(toy_app):
    response = invoke_http("echo", method="GET", app=toy_app)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert "request" not in toy_app.seen


def test_unknown_functions_are_named_in_the_error(toy_app):
    with pytest.raises(FunctionNotFound, match=r"'nope'.*echo"):
        invoke_http("nope", app=toy_app)
    with pytest.raises(FunctionNotFound, match="timer"):
        run_timer("echo", app=toy_app)


def test_timers_get_a_timer_request_and_failures_propagate(toy_app):
    run_timer("tick", past_due=True, app=toy_app)
    assert toy_app.seen["timer"].past_due is True
    toy_app.seen["fail"] = True
    with pytest.raises(RuntimeError, match="tick failed"):
        run_timer("tick", app=toy_app)


def test_the_app_is_indexed_once_so_repeated_calls_work(toy_app):
    for _ in range(3):
        assert invoke_http("echo", body=b"x", app=toy_app).body == b"x"
    assert function_host.timer_schedules(toy_app) == {"tick": "0 */5 * * * *"}


def test_the_deployed_app_is_the_default():
    assert set(function_host.functions()) == {"ingest", "ingest_daily", "poll_quotes"}
