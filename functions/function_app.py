"""The ingestion Function app (Python v2 programming model).

- ``ingest``        HTTP POST /api/ingest: land one dataset for symbols and a window in RAW.
- ``ingest_daily``  timer: the same for the latest session (daily bars and security master).
- ``poll_quotes``   timer: latest quotes of the universe, one event each, to Event Hubs.

The functions only translate triggers to calls of the `market_ingest` package.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func
from market_ingest import runtime
from market_ingest.ingest import BadRequest
from market_ingest.options import load_options, timer_schedule

from lakehouse import inputs, telemetry
from lakehouse.settings import ConfigurationError, load_settings

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
log = logging.getLogger("function_app")
# A request names symbols, dates and a run id: 1 MiB is room for thousands of tickers.
MAX_BODY_BYTES = 1 << 20


def _json_response(body: dict, status: int) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@app.function_name("ingest")
@app.route(route="ingest", methods=[func.HttpMethod.POST])
def ingest(req: func.HttpRequest) -> func.HttpResponse:
    """Land a dataset in RAW; 200 with a summary, non-2xx when no symbol succeeded."""
    size = len(req.get_body() or b"")
    if size > MAX_BODY_BYTES:
        return _json_response({"error": f"the body is {size} bytes; at most {MAX_BODY_BYTES}"}, 413)
    try:
        body = req.get_json()
    except ValueError:
        return _json_response({"error": "the body must be JSON"}, 400)
    given = body.get("run_id") if isinstance(body, dict) else None
    # Only a well-formed run id labels the telemetry span; a bad one is reported by the parser.
    run_id = given if isinstance(given, str) and inputs.RUN_ID_PATTERN.fullmatch(given) else None
    try:
        settings = load_settings()
        telemetry.configure(settings, "functions")
        with telemetry.span("function.ingest", run_id=run_id):
            result = runtime.ingest(body, settings, load_options())
            answer = result.answer()
            telemetry.record("files_written", answer["files_written"], dataset=answer["dataset"])
            telemetry.event(
                "ingest_finished", dataset=answer["dataset"], status_code=result.status_code,
                symbols_succeeded=answer["symbols_succeeded"], failures=len(answer["failures"]),
                records=answer["records"],
            )  # fmt: skip
    except BadRequest as exc:
        return _json_response({"error": str(exc)}, 400)
    except ConfigurationError as exc:
        log.error("ingest misconfigured: %s", exc)
        return _json_response({"error": str(exc)}, 500)
    return _json_response(answer, result.status_code)


@app.function_name("ingest_daily")
@app.timer_trigger(schedule=timer_schedule("LAKEHOUSE_INGEST_DAILY_SCHEDULE"), arg_name="timer", run_on_startup=False)
def ingest_daily(timer: func.TimerRequest) -> None:
    """Daily bars and the security master of the latest closed session."""
    settings, options = load_settings(), load_options()
    failed = []
    for dataset in ("daily_bars", "security_master"):
        result = runtime.ingest_latest_session(dataset, settings, options)
        log.info("ingest_daily %s: %s", dataset, json.dumps(result.answer()["failures"]))
        if result.status_code >= 300:
            failed.append(dataset)
    if failed:
        # Raising marks the invocation failed, which is what the failure alert watches.
        raise RuntimeError(f"ingest_daily: no symbol succeeded for {failed}")


@app.function_name("poll_quotes")
@app.timer_trigger(schedule=timer_schedule("LAKEHOUSE_POLL_QUOTES_SCHEDULE"), arg_name="timer", run_on_startup=False)
def poll_quotes(timer: func.TimerRequest) -> None:
    """Publish the latest quotes while XNYS is open."""
    result = runtime.poll(load_settings(), load_options())
    if result is None:
        log.info("poll_quotes: market closed, nothing polled")
        return
    log.info("poll_quotes: %s", json.dumps(result.summary()))
    if result.published == 0 and result.failures:
        raise RuntimeError(f"poll_quotes: every quote failed ({len(result.failures)} symbols)")
