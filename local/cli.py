"""The `lakehouse` command: the user's entry point to the one-machine runtime.

Commands follow the contract in ARCHITECTURE.md section 6. Configuration errors are reported
once, naming the setting, with exit code 2.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lakehouse import inputs
from lakehouse.settings import ConfigurationError, Settings, load_settings
from local import services
from local.json_output import json_text, to_jsonable
from local.sql_console import OutputFormat as SqlFormat

# Plain help (no rich panels): flags are listed without a "<bool>" type, defaults are shown, and
# error messages are not wrapped inside boxes; -h is --help.
PLAIN_HELP: dict[str, Any] = {"context_settings": {"help_option_names": ["-h", "--help"]}, "rich_markup_mode": None}
app = typer.Typer(
    name="lakehouse",
    help="Market-data lakehouse: run the Azure pipelines on this machine with embedded services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    **PLAIN_HELP,
)
services_app = typer.Typer(help="Embedded Sail (Spark Connect) and PostgreSQL servers.", no_args_is_help=True,
                           **PLAIN_HELP)  # fmt: skip
adf_app = typer.Typer(help="Data Factory pipelines from adf/, executed locally.", no_args_is_help=True, **PLAIN_HELP)
trigger_app = typer.Typer(help="Data Factory triggers from adf/, fired locally.", no_args_is_help=True, **PLAIN_HELP)
infra_app = typer.Typer(help="The Pulumi program, run under mocks (no cloud).", no_args_is_help=True, **PLAIN_HELP)
app.add_typer(services_app, name="services")
app.add_typer(adf_app, name="adf")
app.add_typer(trigger_app, name="trigger")
app.add_typer(infra_app, name="infra")

console = Console()
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"lakehouse {version('market-lakehouse')}")
        raise typer.Exit()


@app.callback()
def _global_options(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Market-data lakehouse: run the Azure pipelines on this machine with embedded services."""


EXIT_CONFIG = 2
MAX_CHUNK_DAYS = 3660  # a chunk of ten years is already one very long run
MAX_BACKFILL_CHUNKS = 10_000


def _settings(settings: Settings | None = None) -> Settings:
    """The settings, $LAKEHOUSE_HOME created if needed; a new home is announced on stderr with its
    absolute path, so a relative LAKEHOUSE_HOME (the default ./.lakehouse) started in another
    directory is not a silent fresh start."""
    settings = settings or load_settings()
    created = not settings.home_dir.exists()
    settings.ensure_home()
    if created:
        err_console.print(f"created LAKEHOUSE_HOME at {settings.home_dir}", highlight=False, soft_wrap=True)
    return settings


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
def services_status(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the rows as a JSON array (fields: docs/local-runtime.md).")
    ] = False,
) -> None:
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
    query: Annotated[str, typer.Argument(help="SQL to run; of several statements, the last one's result is printed.")],
    fmt: Annotated[
        SqlFormat, typer.Option("--format", "-f", help="table, csv, json (an array of row objects) or vertical.")
    ] = SqlFormat.table,
    json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    lake: Annotated[
        bool,
        typer.Option("--lake", help="Query the lake's tables by name (gold.fct_daily_prices...) through Spark."),
    ] = False,
) -> None:
    """Query the serving PostgreSQL database (embedded unless LAKEHOUSE_PG_DSN is set), or with --lake
    the bronze, silver, gold and ops Delta tables of the lake. A database error exits 1."""
    from rich.markup import escape

    from local.sql_console import QueryError, render, run_lake, run_postgres

    settings = _settings()
    try:
        if lake:
            from lakehouse.lake import Lake
            from local.spark import connect

            with services.running(settings, needs=("spark",)) as eps:
                session = connect(eps.spark_remote)
                try:
                    result = run_lake(session, Lake.from_settings(settings), query)
                finally:
                    session.stop()
        else:
            with _serving_db(settings) as dsn:
                result = run_postgres(dsn, query)
    except QueryError as exc:
        err_console.print(f"[bold red]database error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    render(result, SqlFormat.json if json_out else fmt, console)


@app.command("doctor")
def doctor(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the checks as a JSON array (fields: docs/local-runtime.md).")
    ] = False,
) -> None:
    """Check this machine: Python, Java, .NET, free disk, service ports."""
    from local.doctor import run_checks

    checks = run_checks(_settings())
    print_rows(checks, as_json=json_out, title="doctor")
    if any(c["status"] == "fail" for c in checks):
        raise typer.Exit(1)


# ---------------------------------------------------------------- pipelines, runs and the ops store


@app.command("demo")
def demo(
    symbols: Annotated[
        int, typer.Option(help="How many symbols of the universe (LAKEHOUSE_SYMBOLS), from the first.")
    ] = 20,
    start: Annotated[str | None, typer.Option(help="First date of the backfill (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date of the backfill (YYYY-MM-DD).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over from an empty lake.")] = False,
) -> None:
    """Run the whole platform end to end on embedded services."""
    from local.demo import DemoFailed, run_demo

    settings = load_settings()
    universe = len(settings.symbols)
    if not 1 <= symbols <= universe:
        raise typer.BadParameter(
            f"the universe has {universe} symbols (LAKEHOUSE_SYMBOLS), so 1..{universe}, got {symbols}; "
            "set LAKEHOUSE_SYMBOLS to a longer comma-separated list for more",
            param_hint="--symbols",
        )
    settings = _settings(settings)
    try:
        run_demo(settings, console, symbols=symbols, start=start, end=end, fresh=fresh)
    except DemoFailed as exc:
        err_console.print(f"[bold red]demo failed:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _progress(verbose: bool = False, chunks: int | None = None) -> Any:
    """The progress printer of a pipeline command (``local.run_progress``), with the local retry cap."""
    import os

    from local.run_progress import RunProgress
    from local.runtime import DEFAULT_MAX_WAIT_SECONDS

    cap = float(os.environ.get("LAKEHOUSE_ADF_MAX_WAIT_SECONDS", DEFAULT_MAX_WAIT_SECONDS))
    return RunProgress(console, verbose=verbose, chunks=chunks, wait_cap=cap)


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


def _run_pipeline_command(start: Any, progress: Any = None) -> None:
    """Run a pipeline on the local platform, print its outcome and rows per layer, exit 1 unless it
    succeeded. A closed stdout (``| head``) stops the printing, never the run."""
    from local.adf.records import AdfDefinitionError, PipelineParameterError
    from local.run_progress import summary_table
    from local.runtime import local_platform

    settings = _settings()
    try:
        with local_platform(settings) as platform:
            result = start(platform.run_context(on_event=progress or _progress()))
    except (AdfDefinitionError, PipelineParameterError) as exc:
        err_console.print(f"[bold red]Invalid pipeline call:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_CONFIG) from None
    table = summary_table(result)
    if table is not None:
        console.print(table)
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


VERBOSE_HELP = "Also print skipped activities (failure handlers with nothing to do) and every chunk's steps."
# The -v option of every command that runs pipelines (run, backfill, rerun).
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help=VERBOSE_HELP)]


@adf_app.command("list")
def adf_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print pipelines and triggers as JSON.")] = False,
) -> None:
    """List the pipelines of adf/ with their parameters, and the triggers with what they start."""
    from local.adf import catalog
    from local.adf.factory import Factory

    factory = Factory.load()
    found = {"pipelines": catalog.pipelines(factory), "triggers": catalog.triggers(factory)}
    if json_out:
        sys.stdout.write(json_text(found) + "\n")
        return
    console.print("[bold]pipelines[/] (lakehouse adf run PIPELINE -p name=value ...)", highlight=False)
    for entry in found["pipelines"]:
        console.print(f"  [bold]{entry['name']}[/] "
                      f"{catalog.signature(entry)}", highlight=False, soft_wrap=True)  # fmt: skip
    console.print("[bold]triggers[/] (lakehouse trigger run TRIGGER [--at TIME])", highlight=False)
    for entry in found["triggers"]:
        params = " ".join(f"{k}={v}" for k, v in entry["parameters"].items())
        console.print(f"  [bold]{entry['name']}[/] {entry['type']} ({entry['runtime_state']}) -> "
                      f"{', '.join(entry['pipelines'])} {params}", highlight=False, soft_wrap=True)  # fmt: skip


@adf_app.command("run")
def adf_run(
    pipeline: Annotated[str, typer.Argument(help="A pipeline of adf/ (lakehouse adf list).")],
    param: Annotated[list[str] | None, typer.Option("-p", "--param", help="name=value")] = None,
    verbose: Verbose = False,
) -> None:
    """Execute a pipeline from adf/ locally, e.g. `adf run pl_lakehouse_daily -p runDate=2024-03-05`."""
    from local.adf.runner import run_pipeline

    params = _parse_params(param)
    check_pipeline_call(pipeline, params)
    if params.get("symbols"):  # the spelling ingestion reads, so what is accepted here is accepted there
        params["symbols"] = inputs.symbols_parameter(params["symbols"], "symbols")
    _run_pipeline_command(lambda ctx: run_pipeline(pipeline, params, ctx), _progress(verbose))


@app.command("backfill")
def backfill(
    start: Annotated[str, typer.Option(help="First date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last date, YYYY-MM-DD.")],
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: the universe).")] = None,
    chunk_days: Annotated[int | None, typer.Option(help="Days per chunk (default: the pipeline's).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the chunks and what each would do (skip, run, replace).")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Rerun the last unfinished backfill of these parameters; its succeeded chunks are skipped."
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Backfill a date range through pl_backfill (chunked, each chunk a run of the daily master)."""
    from local.adf.runner import rerun_pipeline, run_pipeline

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
    chunks, resumed = _backfill_chunks(params, resume)
    if dry_run:
        print_rows([{"chunk": f"{c.index}/{len(chunks)}", "window": f"{c.start}..{c.end}", "action": c.action,
                     "why": c.reason} for c in chunks], as_json=False, title="backfill plan")  # fmt: skip
        if resumed is not None:
            console.print(f"resumes run {resumed['run_id']} ({resumed['status']})", highlight=False)
        return
    progress = _progress(verbose, chunks=len(chunks))
    if resumed is None:
        _run_pipeline_command(lambda ctx: run_pipeline("pl_backfill", params, ctx), progress)
        return
    console.print(f"resuming run {resumed['run_id']}: {sum(c.action == 'skip' for c in chunks)} of {len(chunks)} "
                  "chunks succeeded there and are skipped", highlight=False)  # fmt: skip
    _run_pipeline_command(lambda ctx: rerun_pipeline(resumed, resumed["activity_runs"], ctx), progress)


def _backfill_chunks(params: dict[str, Any], resume: bool) -> tuple[list[Any], dict[str, Any] | None]:
    """The chunks of a backfill with what each would do, and the unfinished run it resumes (if
    `resume` and there is one), from the ops store."""
    from local import backfill_plan
    from local.adf.factory import Factory, bind_parameters
    from local.adf.rerun import plan_reuse
    from local.run_store import PostgresRunStore

    doc = Factory.load().pipeline("pl_backfill")
    bound = bind_parameters(doc, params)
    windows = backfill_plan.chunk_windows(
        inputs.date(bound["startDate"], "startDate"), inputs.date(bound["endDate"], "endDate"), bound["chunkDays"]
    )
    resumed, reuse = None, None
    with _serving_db(_settings()) as dsn, PostgresRunStore(dsn) as store:
        if resume:
            latest = store.latest_run("pl_backfill", bound)
            if latest is not None and latest["status"] in ("Failed", "Cancelled"):
                resumed = {**latest, "activity_runs": store.activity_runs(latest["run_id"])}
                reuse = plan_reuse(latest["run_id"], doc, resumed["activity_runs"])
            else:
                shown = "none" if latest is None else f"{latest['run_id']} {latest['status']}"
                console.print(f"nothing to resume (last backfill of these parameters: {shown}); running all chunks",
                              highlight=False)  # fmt: skip
        masters = store.pipeline_runs(limit=100_000, pipeline="pl_lakehouse_daily", status="Succeeded")
    return backfill_plan.plan(windows, bound.get("symbols") or "", masters, reuse), resumed


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
    trigger: Annotated[str, typer.Argument(help="A trigger of adf/ (lakehouse adf list).")],
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


RUN_STATUSES = ("InProgress", "Succeeded", "Failed", "Cancelled")


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``--since``: an ISO date or time (UTC unless it says otherwise), or an age like 30m, 12h, 7d."""
    now = now or dt.datetime.now(dt.UTC)
    match = re.fullmatch(r"(\d+)\s*([mhd])", text.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return now - dt.timedelta(**{unit: int(match.group(1))})
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        shown = inputs.shown(text)
        raise ValueError(f"expected an ISO date or time, or an age like 30m, 12h, 7d; got {shown}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@app.command("runs")
def runs(
    run_id: Annotated[
        str | None, typer.Argument(help="A run id, or a unique prefix of one: that run's tree, failed path first.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many recent runs.")] = 20,
    pipeline: Annotated[
        str | None, typer.Option(help="Only runs of this pipeline (child runs too, e.g. pl_raw_to_bronze).")
    ] = None,
    status: Annotated[str | None, typer.Option(help=f"Only runs with this status: {', '.join(RUN_STATUSES)}.")] = None,
    since: Annotated[str | None, typer.Option(help="Only runs started since a date/time, or 30m, 12h, 7d.")] = None,
    expand_all: Annotated[
        bool, typer.Option("--all", help="Show each run's whole tree (chunks, steps, activities).")
    ] = False,
    depth: Annotated[int | None, typer.Option(help="Show this many levels of each run's tree.", min=0)] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Also show skipped activities.")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the runs as JSON trees (docs/orchestration.md).")
    ] = False,
) -> None:
    """Pipeline runs as trees: a backfill, its chunks, their pipelines and activities, with window,
    parameters, status, seconds and error. Without RUN_ID, the latest top-level runs."""
    from local import run_view
    from local.run_store import PostgresRunStore, UnknownRun

    _check_run_id(run_id)
    if status is not None and status not in RUN_STATUSES:
        raise typer.BadParameter(f"expected one of {', '.join(RUN_STATUSES)}, got {inputs.shown(status)}",
                                 param_hint="--status")  # fmt: skip
    try:
        started_since = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    settings = _settings()
    with _serving_db(settings) as dsn, PostgresRunStore(dsn) as store:
        if run_id is not None:
            try:
                roots = [store.resolve_run_id(run_id)]
            except UnknownRun as exc:
                raise typer.BadParameter(str(exc), param_hint="RUN_ID") from None
        else:
            listed = store.pipeline_runs(limit=limit, pipeline=pipeline, status=status, since=started_since,
                                         top_level=pipeline is None)  # fmt: skip
            roots = [r["run_id"] for r in listed]
        tree = store.run_trees(roots)
        # a run listed by --pipeline may be a child: it is a root of its own tree here
        for row in tree:
            if row["run_id"] in roots:
                row["parent_run_id"] = None
        activities = store.activity_runs_of([r["run_id"] for r in tree])
    nodes = run_view.build(tree, activities)
    if run_id is not None:
        nodes = run_view.failed_first(nodes)
    if json_out:
        sys.stdout.write(json_text(run_view.as_json(nodes)) + "\n")
        return
    if not nodes:
        console.print("(no runs)")
        return
    levels = None if expand_all or run_id is not None else 0
    if depth is not None:
        levels = depth
    if run_id is not None:
        for line in run_view.failed_path_lines(nodes[0], console.width):
            typer.echo(line)
    for line in run_view.render(nodes, width=console.width, max_level=levels, verbose=verbose):
        typer.echo(line)


def _check_run_id(run_id: str | None) -> None:
    """Refuse a RUN_ID that is not (a prefix of) a run id before any service starts."""
    if run_id is not None:
        try:
            inputs.run_id(run_id, "RUN_ID")
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="RUN_ID") from None


@app.command("rerun")
def rerun(
    run_id: Annotated[str, typer.Argument(help="The run to rerun: a run id or a unique prefix of one.")],
    from_failure: Annotated[
        bool,
        typer.Option(
            "--from-failure", help="Start from the failed activities; those that succeeded are not run again."
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Run a pipeline run again with the same parameters, as a new run linked to it (rerun_of);
    with --from-failure, as Data Factory's "rerun from failed activity"."""
    from local.adf.rerun import Reuse
    from local.adf.runner import rerun_pipeline, run_pipeline
    from local.run_store import PostgresRunStore, UnknownRun

    _check_run_id(run_id)
    with _serving_db(_settings()) as dsn, PostgresRunStore(dsn) as store:
        try:
            full = store.resolve_run_id(run_id)
        except UnknownRun as exc:
            raise typer.BadParameter(str(exc), param_hint="RUN_ID") from None
        original = store.pipeline_run(full)
        activity_rows = store.activity_runs(full)
    assert original is not None
    if original["status"] == "InProgress":
        raise typer.BadParameter(f"run {full} is still in progress", param_hint="RUN_ID")
    if from_failure and original["status"] == "Succeeded":
        raise typer.BadParameter(f"run {full} succeeded: nothing failed to rerun from (drop --from-failure to run it "
                                 "again)", param_hint="--from-failure")  # fmt: skip
    console.print(f"rerun of {full} ({original['pipeline']}, {original['status']})", highlight=False)

    def start(ctx: Any) -> Any:
        if from_failure:
            return rerun_pipeline(original, activity_rows, ctx)
        return run_pipeline(original["pipeline"], original["parameters"] or {}, ctx, reuse=Reuse(rerun_of=full))

    _run_pipeline_command(start, _progress(verbose))


@app.command("status")
def status(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the status as a JSON object (fields: docs/observability.md).")
    ] = False,
    now: Annotated[str | None, typer.Option("--now", help="Judge freshness at this ISO-8601 time (UTC).")] = None,
) -> None:
    """Last run per pipeline, freshness per gold and mart table, DQ summary, quarantine counts; exit 1
    unless healthy (a failed pipeline, a stale or empty table, a failed data-quality rule)."""
    from local import ops_status

    _judge_ops_store(
        now,
        json_out,
        lambda settings, at, dsn: ops_status.status(settings, now=at, dsn=dsn),
        ops_status.format_text,
        ops_status.exit_code,
    )


@app.command("alerts")
def alerts(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one object per rule as a JSON array (fields: docs/observability.md).")
    ] = False,
    now: Annotated[str | None, typer.Option("--now", help="Evaluate at this ISO-8601 time (UTC).")] = None,
) -> None:
    """Evaluate the alert rules against the local ops store; exit 1 when any fires."""
    from local import alerts as alerting

    _judge_ops_store(
        now,
        json_out,
        lambda _settings, at, dsn: alerting.evaluate_alerts(dsn, now=at),
        alerting.format_text,
        alerting.exit_code,
    )


def _judge_ops_store(
    now: str | None,
    json_out: bool,
    judge: Callable[[Settings, dt.datetime | None, str], Any],
    format_text: Callable[[Any], str],
    exit_code: Callable[[Any], int],
) -> None:
    """status and alerts answer alike: judge the local ops store at --now, print JSON or text, and
    exit with the verdict, so a script reads both the same way."""
    from local.alerts import parse_now

    try:
        at = parse_now(now)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--now: "), param_hint="--now") from None
    settings = _settings()
    with _serving_db(settings) as dsn:
        verdict = judge(settings, at, dsn)
    if json_out:
        sys.stdout.write(json.dumps(verdict, indent=2) + "\n")
    else:
        console.print(format_text(verdict), highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code(verdict))


@app.command("report")
def report(
    out: Annotated[str, typer.Option("--out", help="Where to write the HTML file.")] = "report.html",
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


@app.command("docs")
def docs(
    out: Annotated[str, typer.Option("--out", help="The HTML file to write.")] = "data-dictionary.html",
) -> None:
    """Write the data dictionary and lineage page: every table, column, type and definition, the
    data-quality rules applied, and which job writes each table from what (self-contained HTML)."""
    from local.data_dictionary import write_docs

    console.print(f"data dictionary written to {write_docs(out)}")


@infra_app.command("preview")
def infra_preview(
    stack: Annotated[str, typer.Option(help="dev or prod")] = "dev",
    json_out: Annotated[bool, typer.Option("--json", help="Print the resource tree as JSON.")] = False,
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
    """Count an ingestion window in RAW, bronze, silver, quarantine, gold and the mart, and check the data
    quality of its symbols; exit 1 on a lost, duplicated, stale or extra row, a failing data-quality
    finding (missing sessions, a stale symbol, an unapplied corporate action), or when nothing was
    ingested in the window."""
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
    result = {**counts.as_dict(), "details": counts.details, "quality": counts.quality}
    if json_out:
        sys.stdout.write(json_text(result) + "\n")
    else:
        print_rows([{"count": k, "value": v} for k, v in {**counts.as_dict(), **counts.details}.items()],
                   as_json=False, title=f"reconcile {dataset} {start}..{end}")  # fmt: skip
        for line in reconcile.quality_lines(counts):
            console.print(line, highlight=False, soft_wrap=True, markup=False)
    if not counts.ok:
        raise typer.Exit(1)
    if not any(counts.as_dict().values()):
        err_console.print(
            f"[bold red]nothing to reconcile:[/] no file was ingested on {start}..{end}. --start/--end are "
            "ingestion dates (the days the data was fetched, a run's runDate); --trade-start/--trade-end "
            "narrow gold and the mart to trade dates",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
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
