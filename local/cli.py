"""The `lakehouse` command: the user's entry point to the one-machine runtime.

Commands follow the contract in ARCHITECTURE.md section 6. Configuration errors are reported
once, naming the setting, with exit code 2.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import math
import re
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lakehouse import inputs
from lakehouse.settings import ConfigurationError, Settings, load_settings
from local import services

app = typer.Typer(
    name="lakehouse",
    help="Market-data lakehouse: run the Azure pipelines on this machine with embedded services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
services_app = typer.Typer(help="Embedded Sail (Spark Connect) and PostgreSQL servers.", no_args_is_help=True)
adf_app = typer.Typer(help="Data Factory pipelines from adf/, executed locally.", no_args_is_help=True)
trigger_app = typer.Typer(help="Data Factory triggers from adf/, fired locally.", no_args_is_help=True)
infra_app = typer.Typer(help="The Pulumi program, run under mocks (no cloud).", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(adf_app, name="adf")
app.add_typer(trigger_app, name="trigger")
app.add_typer(infra_app, name="infra")

console = Console()
err_console = Console(stderr=True)

EXIT_CONFIG = 2
MAX_CHUNK_DAYS = 3660  # a chunk of ten years is already one very long run
MAX_BACKFILL_CHUNKS = 10_000


def _settings() -> Settings:
    settings = load_settings()
    settings.ensure_home()
    return settings


class ExactNumber(str):
    """A decimal's digits, written into JSON as a number exactly as they are (not through a float)."""


def to_jsonable(value: Any) -> Any:
    """Database and Spark values as JSON: dates ISO-8601, decimals as exact numbers, bytes as hex,
    intervals as ISO-8601 durations, NaN and infinities as the strings "NaN", "Infinity", "-Infinity"
    (JSON has no such numbers)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return "NaN" if value.is_nan() else "Infinity" if value > 0 else "-Infinity"
        return int(value) if value == value.to_integral_value() else ExactNumber(format(value, "f"))
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def iso_duration(value: dt.timedelta) -> str:
    """An interval as ISO-8601, e.g. P1DT2H0M0.5S (negative parts keep their sign)."""
    days, rest = value.days, value - dt.timedelta(days=value.days)
    hours, rest = divmod(rest, dt.timedelta(hours=1))
    minutes, rest = divmod(rest, dt.timedelta(minutes=1))
    seconds = decimal.Decimal(rest.seconds) + decimal.Decimal(rest.microseconds) / 1_000_000
    return f"P{days}DT{hours}H{minutes}M{seconds.normalize():f}S"


def json_text(value: Any) -> str:
    """Strict JSON (no NaN) of `value` after :func:`to_jsonable`, decimals written digit for digit."""
    marker = f"exact-{uuid.uuid4().hex}:"

    def exact(item: Any) -> Any:
        if isinstance(item, ExactNumber):
            return marker + item
        if isinstance(item, dict):
            return {k: exact(v) for k, v in item.items()}
        if isinstance(item, list):
            return [exact(v) for v in item]
        return item

    text = json.dumps(exact(to_jsonable(value)), indent=2, allow_nan=False)
    return re.sub(f'"{marker}([-0-9.]+)"', r"\1", text)


def print_rows(rows: list[dict[str, Any]], as_json: bool, title: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json_text(rows) + "\n")
        return
    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    console.print(table if columns else "(no rows)")


# ---------------------------------------------------------------- services


@services_app.command("up")
def services_up() -> None:
    """Start the embedded services (reusing running ones) and print their endpoints."""
    settings = _settings()
    _, started = services.up(settings)
    print_rows(services.status(settings), as_json=False, title="services")
    console.print(f"started: {', '.join(started) or 'nothing (already running)'}")


@services_app.command("down")
def services_down() -> None:
    """Stop the embedded services of this LAKEHOUSE_HOME."""
    stopped = services.down(_settings())
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@services_app.command("status")
def services_status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show each service: running, dead, stopped or external, with its URL or DSN."""
    print_rows(services.status(_settings()), as_json=json_out, title="services")


# ---------------------------------------------------------------- queries


@contextlib.contextmanager
def _serving_db(settings: Settings) -> Iterator[str]:
    """The serving database's DSN, its migrations applied, PostgreSQL started if needed, and runs
    whose process died marked failed (RunAbandoned) so runs/status/alerts do not show them going on."""
    from local.run_store import recover_abandoned_runs
    from spark_jobs import migrations

    with services.running(settings, needs=("postgres",)) as eps:
        migrations.apply(eps.pg_dsn)
        recover_abandoned_runs(eps.pg_dsn)
        yield eps.pg_dsn


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the serving database.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print an array of row objects.")] = False,
) -> None:
    """Query the serving PostgreSQL database (embedded unless LAKEHOUSE_PG_DSN is set)."""
    import psycopg
    from psycopg.types.string import TextLoader

    settings = _settings()
    with (
        services.running(settings, needs=("postgres",)) as eps,
        psycopg.connect(eps.pg_dsn) as conn,
    ):
        # an interval as PostgreSQL writes it: months do not fit a timedelta
        conn.adapters.register_loader("interval", TextLoader)
        try:
            cur = conn.execute(query)
        except psycopg.Error as exc:
            raise typer.BadParameter(str(exc).strip(), param_hint="QUERY") from None
        columns = distinct_names([c.name for c in cur.description or []])
        rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()] if cur.description else []
        if cur.description is None:
            conn.commit()
    print_rows(rows, as_json=json_out)


def distinct_names(names: list[str]) -> list[str]:
    """Column names made unique for row objects: a repeated name gets _2, _3... (``SELECT 1 AS a,
    2 AS a`` gives a and a_2), so no column of the result is dropped."""
    taken = set(names)
    seen: set[str] = set()
    result = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen or (candidate != name and candidate in taken):
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        result.append(candidate)
    return result


@app.command("doctor")
def doctor(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check this machine: Python, Java, .NET, free disk, service ports."""
    from local.doctor import run_checks

    checks = run_checks(_settings())
    print_rows(checks, as_json=json_out, title="doctor")
    if any(c["status"] == "fail" for c in checks):
        raise typer.Exit(1)


# ---------------------------------------------------------------- pipelines, runs and the ops store


@app.command("demo")
def demo(
    symbols: Annotated[int, typer.Option(help="How many symbols of the default universe.")] = 20,
    start: Annotated[str | None, typer.Option(help="First date of the backfill (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date of the backfill (YYYY-MM-DD).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over from an empty lake.")] = False,
) -> None:
    """Run the whole platform end to end on embedded services."""
    from local.demo import DemoFailed, run_demo

    try:
        run_demo(_settings(), console, symbols=symbols, start=start, end=end, fresh=fresh)
    except DemoFailed as exc:
        err_console.print(f"[bold red]demo failed:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _progress(event: str, record: Any) -> None:
    """One line per pipeline and activity start/end, indented by nesting, with durations."""
    from local.adf.records import PipelineRunResult

    if isinstance(record, PipelineRunResult):
        if event == "pipeline_started":
            console.print(f"[bold]▶ {record.pipeline}[/] [dim]{record.run_id}[/]", highlight=False)
        else:
            colour = "green" if record.succeeded else "red"
            console.print(
                f"[{colour}]■ {record.pipeline} {record.status}[/] in {record.duration_s or 0:.1f} s",
                highlight=False,
            )
    elif event == "activity_finished" and record.status != "InProgress":
        colour = {"Succeeded": "green", "Failed": "red", "Skipped": "yellow"}.get(record.status, "white")
        took = f" {record.duration_s:.1f} s" if record.duration_s is not None else ""
        console.print(
            f"  [{colour}]{record.status:<9}[/] {record.pipeline} / {record.activity}{took}", highlight=False
        )


def _optional_date(value: Any, name: str) -> Any:
    return value if value == "" else inputs.date(value, name)


def _optional_symbols(value: Any, name: str) -> Any:
    return value if value == "" else inputs.symbols(value, name)


def _day_count(low: int, high: int) -> Callable[[Any, str], int]:
    def check(value: Any, name: str) -> int:
        if not low <= value <= high:
            raise ValueError(f"{name} must be within {low}..{high}, got {value}")
        return value

    return check


# Pipeline parameters that reach lake paths, URLs or SQL, checked before anything starts. The
# ingest function and the notebooks check them again: ADF can start a pipeline without this CLI.
PARAMETER_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "startDate": _optional_date,
    "endDate": _optional_date,
    "runDate": _optional_date,
    "symbols": _optional_symbols,
    "runId": inputs.run_id,
    "chunkDays": _day_count(1, MAX_CHUNK_DAYS),
    "ingestLookbackDays": _day_count(0, 366),
}


def check_pipeline_call(pipeline: str, params: dict[str, Any], hints: dict[str, str] | None = None) -> None:
    """Refuse an unknown pipeline or a parameter value the platform would refuse, with exit 2.

    Args:
        pipeline: a pipeline of adf/.
        params: the parameters as given (strings from ``-p``, or typed).
        hints: the CLI option that gave each parameter (default ``-p``), named in the message.
    """
    from local.adf.factory import Factory, bind_parameters
    from local.adf.records import AdfDefinitionError, PipelineParameterError

    hints = hints or {}
    try:
        bound = bind_parameters(Factory.load().pipeline(pipeline), params)
    except AdfDefinitionError as exc:
        raise typer.BadParameter(str(exc), param_hint="PIPELINE") from None
    except PipelineParameterError as exc:
        raise typer.BadParameter(str(exc), param_hint="-p") from None
    for name, value in bound.items():
        check = PARAMETER_CHECKS.get(name)
        if check is None or name not in params:
            continue
        try:
            check(value, name)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=hints.get(name, "-p")) from None
    if {"startDate", "endDate"} <= set(params) and bound["startDate"] and bound["endDate"]:
        first, last = inputs.date(bound["startDate"], "startDate"), inputs.date(bound["endDate"], "endDate")
        if last < first:
            raise typer.BadParameter(
                f"endDate {last} is before startDate {first}", param_hint=hints.get("endDate", "-p")
            )
        chunks = ((last - first).days + bound.get("chunkDays", 1)) // bound.get("chunkDays", 1)
        if "chunkDays" in bound and chunks > MAX_BACKFILL_CHUNKS:
            raise typer.BadParameter(
                f"{first}..{last} in chunks of {bound['chunkDays']} days is {chunks} runs; at most "
                f"{MAX_BACKFILL_CHUNKS}: give more days per chunk",
                param_hint=hints.get("chunkDays", "-p"),
            )


def _run_pipeline_command(start: Any) -> None:
    """Run a pipeline on the local platform, print its outcome, exit 1 unless it succeeded."""
    from local.adf.records import AdfDefinitionError, PipelineParameterError
    from local.runtime import local_platform

    settings = _settings()
    try:
        with local_platform(settings) as platform:
            result = start(platform.run_context(on_event=_progress))
    except (AdfDefinitionError, PipelineParameterError) as exc:
        err_console.print(f"[bold red]Invalid pipeline call:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_CONFIG) from None
    console.print(f"run id: {result.run_id}  status: {result.status}  duration: {result.duration_s or 0:.1f} s")
    if not result.succeeded:
        message = (result.error or {}).get("message", "no error message")
        err_console.print(f"[bold red]{result.pipeline} failed:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _parse_params(items: list[str] | None) -> dict[str, str]:
    params = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected name=value, got {item!r}", param_hint="-p")
        params[name] = value
    return params


@adf_app.command("run")
def adf_run(
    pipeline: str,
    param: Annotated[list[str] | None, typer.Option("-p", "--param", help="name=value")] = None,
) -> None:
    """Execute a pipeline from adf/ locally, e.g. `adf run pl_lakehouse_daily -p runDate=2024-03-05`."""
    from local.adf.runner import run_pipeline

    params = _parse_params(param)
    check_pipeline_call(pipeline, params)
    if params.get("symbols"):  # the spelling ingestion reads, so what is accepted here is accepted there
        params["symbols"] = inputs.symbols_parameter(params["symbols"], "symbols")
    _run_pipeline_command(lambda ctx: run_pipeline(pipeline, params, ctx))


@app.command("backfill")
def backfill(
    start: Annotated[str, typer.Option(help="First date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last date, YYYY-MM-DD.")],
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: the universe).")] = None,
    chunk_days: Annotated[int | None, typer.Option(help="Days per chunk (default: the pipeline's).")] = None,
) -> None:
    """Backfill a date range through pl_backfill (chunked, each chunk a run of the daily master)."""
    from local.adf.runner import run_pipeline

    params: dict[str, Any] = {"startDate": start, "endDate": end}
    if symbols is not None:  # given, so it must name symbols: "" is refused as "," is
        try:
            params["symbols"] = inputs.symbols_parameter(symbols, "--symbols")
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--symbols") from None
    if chunk_days is not None:
        params["chunkDays"] = chunk_days
    hints = {"startDate": "--start", "endDate": "--end", "symbols": "--symbols", "chunkDays": "--chunk-days"}
    check_pipeline_call("pl_backfill", params, hints)
    check_backfill_plan(inputs.date(start, "startDate"))
    _run_pipeline_command(lambda ctx: run_pipeline("pl_backfill", params, ctx))


def check_backfill_plan(start: dt.date) -> None:
    """Refuse, with exit 2 and the reason, a backfill the provider plan cannot serve (a free key
    serves only the latest 100 sessions), before any service starts or any call is made."""
    from lakehouse.plan_checks import daily_bars_refusal, plan_of

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc)) from None
    plan = plan_of(settings)
    adjusted = settings.ingest_adjusted and plan.serves_adjusted
    function = "TIME_SERIES_DAILY_ADJUSTED" if adjusted else "TIME_SERIES_DAILY"
    refusal = daily_bars_refusal(plan, start, now=dt.datetime.now(dt.UTC), function=function,
                                 calendar=settings.exchange_calendar)  # fmt: skip
    if refusal is not None:
        raise typer.BadParameter(refusal, param_hint="--start")


@trigger_app.command("run")
def trigger_run(
    trigger: str,
    at: Annotated[str | None, typer.Option(help="ISO timestamp the trigger fires at (default: now, UTC).")] = None,
) -> None:
    """Fire a trigger from adf/ at a given time and run its pipeline."""
    from local.adf.records import AdfDefinitionError
    from local.adf_triggers import fire_trigger, resolve_trigger

    when = at or dt.datetime.now(dt.UTC).isoformat()
    try:
        firing = resolve_trigger(trigger, when)
    except AdfDefinitionError as exc:
        raise typer.BadParameter(str(exc), param_hint="TRIGGER") from None
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO-8601 time: {inputs.shown(at)} ({exc})", param_hint="--at") from None
    if not firing.on_schedule:
        err_console.print(f"[yellow]note:[/] {when} is not a time {trigger} fires on its schedule; running anyway")
    console.print(f"{trigger} -> {firing.pipeline} {json.dumps(to_jsonable(firing.parameters))}", highlight=False)
    _run_pipeline_command(lambda ctx: fire_trigger(trigger, when, ctx))


@app.command("runs")
def runs(
    run_id: Annotated[str | None, typer.Argument(help="Show this run's activities and child runs.")] = None,
    limit: Annotated[int, typer.Option(help="How many recent runs.")] = 20,
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Pipeline runs recorded by the local ADF runner; with a run id, its activity runs and timings."""
    from local.run_store import PostgresRunStore

    if run_id is not None:
        try:
            inputs.run_id(run_id, "RUN_ID")
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="RUN_ID") from None
    settings = _settings()
    with _serving_db(settings) as dsn, PostgresRunStore(dsn) as store:
        if run_id is None:
            rows = store.pipeline_runs(limit=limit, pipeline=pipeline)
            keep = ["run_id", "pipeline", "status", "started_at", "duration_ms", "parent_run_id", "trigger_name"]
        else:
            tree = store.run_tree(run_id)
            if not tree:
                raise typer.BadParameter(f"no run {run_id!r}", param_hint="RUN_ID")
            rows = [
                {**act, "depth": run["depth"]}
                for run in tree
                for act in store.activity_runs(run["run_id"])
            ]
            keep = ["pipeline", "activity", "activity_type", "status", "attempt", "started_at", "duration_ms"]
    if json_out:
        print_rows(rows, as_json=True)
    else:
        print_rows([{k: r.get(k) for k in keep} for r in rows], as_json=False, title="runs")


@app.command("status")
def status(
    json_out: Annotated[bool, typer.Option("--json")] = False,
    now: Annotated[str | None, typer.Option("--now", help="Judge freshness at this ISO-8601 time (UTC).")] = None,
) -> None:
    """Last run per pipeline, freshness per gold and mart table, DQ summary, quarantine counts."""
    from local import ops_status
    from local.alerts import parse_now

    try:
        at = parse_now(now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--now: "), param_hint="--now") from None
    settings = _settings()
    with _serving_db(settings) as dsn:
        report = ops_status.status(settings, now=at, dsn=dsn)
    if json_out:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        console.print(ops_status.format_text(report), highlight=False, soft_wrap=True)


@app.command("alerts")
def alerts(
    json_out: Annotated[bool, typer.Option("--json")] = False,
    now: Annotated[str | None, typer.Option("--now", help="Evaluate at this ISO-8601 time (UTC).")] = None,
) -> None:
    """Evaluate the alert rules against the local ops store; exit 1 when any fires."""
    from local import alerts as alerting

    try:
        at = alerting.parse_now(now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--now: "), param_hint="--now") from None
    settings = _settings()
    with _serving_db(settings) as dsn:
        results = alerting.evaluate_alerts(dsn, now=at)
    if json_out:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        console.print(alerting.format_text(results), highlight=False, soft_wrap=True)
    raise typer.Exit(alerting.exit_code(results))


@app.command("report")
def report(
    out: Annotated[str, typer.Option("--out")] = "report.html",
    symbols: Annotated[str | None, typer.Option("--symbols", help="Price chart symbols, e.g. AAPL,MSFT.")] = None,
) -> None:
    """Write a self-contained HTML run report."""
    from lakehouse.lake import Lake
    from local.report import write_report

    try:
        chosen = list(inputs.symbols(symbols.upper(), "--symbols")) if symbols else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--symbols") from None
    settings = _settings()
    with _serving_db(settings) as dsn:
        try:
            path = write_report(dsn, out, symbols=chosen, lake=Lake.from_settings(settings))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--symbols") from None
    console.print(f"report written to {path}")


@infra_app.command("preview")
def infra_preview(
    stack: Annotated[str, typer.Option(help="dev or prod")] = "dev",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the Pulumi program under mocks and print the resource tree."""
    from infra import preview

    try:
        result = preview.preview(stack)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint="--stack") from None
    typer.echo(json.dumps(result, indent=2) if json_out else preview.render_text(result))


@app.command("reconcile")
def reconcile_window(
    start: Annotated[str, typer.Option("--start", help="First ingestion date (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option("--end", help="Last ingestion date (YYYY-MM-DD).")],
    dataset: Annotated[str, typer.Option("--dataset", help="daily_bars or security_master.")] = "daily_bars",
    symbols: Annotated[str | None, typer.Option("--symbols", help="Only these RAW folders, e.g. AAPL,MSFT.")] = None,
    trade_start: Annotated[str | None, typer.Option("--trade-start", help="Gold/mart window start.")] = None,
    trade_end: Annotated[str | None, typer.Option("--trade-end", help="Gold/mart window end.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the counts as a JSON object.")] = False,
) -> None:
    """Count an ingestion window in RAW, bronze, silver, quarantine, gold and the mart; exit 1 on a lost
    or duplicated row."""
    from pyspark.errors import PySparkException

    from local.spark import connect
    from spark_jobs import reconcile
    from spark_jobs.job_params import DateWindow
    from spark_jobs.tables import UnreadableTable

    try:  # refuse bad dates before any service starts
        DateWindow.parse(start, end)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = _settings()
    wanted = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    with services.running(settings) as eps:
        session = connect(eps.spark_remote)
        try:
            counts = reconcile.reconcile(session, settings, start, end, dataset=dataset, symbols=wanted,
                                         trade_start=trade_start, trade_end=trade_end, pg_dsn=eps.pg_dsn)  # fmt: skip
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        except (UnreadableTable, PySparkException) as exc:  # a damaged table: say which, no traceback
            err_console.print(f"[bold red]reconcile failed:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        finally:
            session.stop()
    result = {**counts.as_dict(), "details": counts.details}
    if json_out:
        sys.stdout.write(json_text(result) + "\n")
    else:
        print_rows([{"count": k, "value": v} for k, v in {**counts.as_dict(), **counts.details}.items()],
                   as_json=False, title=f"reconcile {dataset} {start}..{end}")  # fmt: skip
    if not counts.ok:
        raise typer.Exit(1)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM ends a command as Ctrl-C does: the run is recorded Cancelled and the services this
    command started are released. A second SIGTERM during that cleanup is ignored."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except ConfigurationError as exc:
        err_console.print(f"[bold red]Configuration error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_CONFIG)
    except services.ServiceError as exc:
        err_console.print(f"[bold red]Service error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
