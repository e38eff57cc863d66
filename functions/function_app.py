"""The ingestion Function app (Python v2 programming model).

- ``ingest``        HTTP POST /api/ingest: land one dataset for symbols and a window in RAW.
- ``ingest_daily``  timer: the same for the latest session, for each of ``DAILY_DATASETS`` (daily bars,
  security master, splits, dividends: the datasets the plan's call budget is checked for). Off unless
  ``LAKEHOUSE_INGEST_DAILY_ENABLED``: Data Factory's ``tr_daily`` owns the daily load.
- ``poll_quotes``   timer: latest quotes of the universe, one event each, to Event Hubs.

The functions only translate triggers to calls of the `market_ingest` package.
"""

from __future__ import annotations

import json
import logging

import azure.functions as func
from market_ingest import runtime
from market_ingest.ingest import BadRequest

from lakehouse import inputs, telemetry
from lakehouse.plan_checks import DAILY_DATASETS
from lakehouse.settings import ConfigurationError, load_settings, timer_schedule

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
            result = runtime.ingest(body, settings)
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
@app.timer_trigger(schedule=timer_schedule("ingest_daily_schedule"), arg_name="timer", run_on_startup=False)
def ingest_daily(timer: func.TimerRequest) -> None:
    """Every daily dataset of the latest closed session, when this timer owns the daily load.

    Data Factory's ``tr_daily`` owns it by default (ingest, then transform); this timer is the path
    for running ingestion without Data Factory (``LAKEHOUSE_INGEST_DAILY_ENABLED=true``).
    """
    settings = load_settings()
    if not settings.ingest_daily_enabled:
        log.info("ingest_daily: disabled (LAKEHOUSE_INGEST_DAILY_ENABLED); tr_daily owns the daily load")
        return
    failed = []
    for dataset in DAILY_DATASETS:
        result = runtime.ingest_latest_session(dataset, settings)
        log.info("ingest_daily %s: %s", dataset, json.dumps(result.answer()["failures"]))
        if result.status_code >= 300:
            failed.append(dataset)
    if failed:
        # Raising marks the invocation failed, which is what the failure alert watches.
        raise RuntimeError(f"ingest_daily: no symbol succeeded for {failed}")


@app.function_name("poll_quotes")
@app.timer_trigger(schedule=timer_schedule("poll_quotes_schedule"), arg_name="timer", run_on_startup=False)
def poll_quotes(timer: func.TimerRequest) -> None:
    """Publish the latest quotes while an XNYS session is open (the calendar decides, not the schedule)."""
    result = runtime.poll(load_settings())
    if result is None:
        log.info("poll_quotes: market closed, nothing polled")
        return
    log.info("poll_quotes: %s", json.dumps(result.summary()))
    if result.published == 0 and result.failures:
        raise RuntimeError(f"poll_quotes: every quote failed ({len(result.failures)} symbols)")
