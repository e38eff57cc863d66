"""The `lakehouse` command: the user's entry point to the one-machine runtime.

Commands follow the contract in ARCHITECTURE.md section 6. Configuration errors are reported
once, naming the setting, with exit code 2.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sys
import uuid
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
EXIT_NOT_IMPLEMENTED = 3


class NotImplementedYet(RuntimeError):
    """A command of the contract that a later issue implements."""


def _settings() -> Settings:
    settings = load_settings()
    settings.ensure_home()
    return settings


def _not_implemented(command: str, issue: int) -> None:
    raise NotImplementedYet(f"`lakehouse {command}` is not implemented yet (tracked in issue {issue}).")


def to_jsonable(value: Any) -> Any:
    """Database and Spark values as JSON: dates ISO-8601, decimals as numbers, bytes as hex."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_rows(rows: list[dict[str, Any]], as_json: bool, title: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(to_jsonable(rows), indent=2) + "\n")
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


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the serving database.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print an array of row objects.")] = False,
) -> None:
    """Query the serving PostgreSQL database (embedded unless LAKEHOUSE_PG_DSN is set)."""
    import psycopg
    from psycopg.rows import dict_row

    settings = _settings()
    with (
        services.running(settings, needs=("postgres",)) as eps,
        psycopg.connect(eps.pg_dsn, row_factory=dict_row) as conn,
    ):
        try:
            cur = conn.execute(query)
        except psycopg.Error as exc:
            raise typer.BadParameter(str(exc).strip(), param_hint="QUERY") from None
        rows = cur.fetchall() if cur.description else []
        if cur.description is None:
            conn.commit()
    print_rows(rows, as_json=json_out)


@app.command("doctor")
def doctor(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check this machine: Python, Java, .NET, free disk, service ports."""
    from local.doctor import run_checks

    checks = run_checks(_settings())
    print_rows(checks, as_json=json_out, title="doctor")
    if any(c["status"] == "fail" for c in checks):
        raise typer.Exit(1)


# ---------------------------------------------------------------- later issues


@app.command("demo")
def demo(
    symbols: Annotated[int, typer.Option(help="How many symbols of the default universe.")] = 20,
    start: Annotated[str | None, typer.Option(help="First date of the backfill (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Last date of the backfill (YYYY-MM-DD).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over from an empty lake.")] = False,
) -> None:
    """Run the whole platform end to end on embedded services."""
    from local.demo import run_demo

    run_demo(_settings(), console, symbols=symbols, start=start, end=end, fresh=fresh)


@adf_app.command("run")
def adf_run(
    pipeline: str,
    param: Annotated[list[str] | None, typer.Option("-p", "--param", help="name=value")] = None,
) -> None:
    """Execute a pipeline from adf/ locally."""
    _not_implemented("adf run", 6)


@app.command("backfill")
def backfill(
    start: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
) -> None:
    """Backfill a date range through pl_backfill."""
    _not_implemented("backfill", 6)


@trigger_app.command("run")
def trigger_run(
    trigger: str, at: Annotated[str | None, typer.Option(help="ISO timestamp")] = None
) -> None:
    """Fire a trigger from adf/ at a given time."""
    _not_implemented("trigger run", 6)


@app.command("runs")
def runs(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Pipeline and activity runs recorded by the local ADF runner."""
    _not_implemented("runs", 6)


@app.command("status")
def status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Last run per pipeline, freshness per table, DQ summary."""
    _not_implemented("status", 8)


@app.command("alerts")
def alerts(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Evaluate the alert rules against the local ops store."""
    _not_implemented("alerts", 8)


@app.command("report")
def report(out: Annotated[str, typer.Option("--out")] = "report.html") -> None:
    """Write a self-contained HTML run report."""
    _not_implemented("report", 8)


@infra_app.command("preview")
def infra_preview(
    stack: Annotated[str, typer.Option(help="dev or prod")] = "dev",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the Pulumi program under mocks and print the resource tree."""
    _not_implemented("infra preview", 7)


def main() -> None:
    try:
        app()
    except ConfigurationError as exc:
        err_console.print(f"[bold red]Configuration error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_CONFIG)
    except NotImplementedYet as exc:
        err_console.print(f"[yellow]{exc}[/]", highlight=False, soft_wrap=True)
        sys.exit(EXIT_NOT_IMPLEMENTED)
    except services.ServiceError as exc:
        err_console.print(f"[bold red]Service error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
