"""Hostile input through the two doors a user has: the `ingest` HTTP function and the `lakehouse` CLI.

Path traversal, SQL injection, oversized and mistyped values in symbols, dates, run ids, pipeline
names and parameters. Each is refused with a message naming the field (HTTP 400/413, CLI exit 2),
writes nothing (no file anywhere under the test's directory, not even in RAW), runs no SQL (the
mart tables of a serving database the commands point at still exist with their rows), and prints
no traceback. The notebooks' own checks (ADF can start them without the CLI) are tried directly.

The ingest function runs in-process as the Functions host calls it (local.function_host), against
the synthetic market API; the CLI through click's runner on `local.cli.app`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from local.dbutils import DBUtils
from spark_jobs.job_params import DateWindow, declare_widgets, widget_values
from tests.databases import migrated_database

DROP = "'; DROP TABLE mart.daily_prices; --"
WINDOW = {"start_date": "2024-03-04", "end_date": "2024-03-08"}
MART_TABLES = ("daily_prices", "dim_security", "monthly_performance", "latest_quotes")


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def mart_state(dsn: str) -> dict[str, int | None]:
    """Rows per mart table; None for a table that no longer exists."""
    state: dict[str, int | None] = {}
    with psycopg.connect(dsn) as conn:
        for name in MART_TABLES:
            if conn.execute("SELECT to_regclass(%s)", (f"mart.{name}",)).fetchone()[0] is None:
                state[name] = None
            else:
                query = sql.SQL("SELECT count(*) FROM mart.{}").format(sql.Identifier(name))
                state[name] = conn.execute(query).fetchone()[0]
    return state


@pytest.fixture(scope="module")
def serving_db(endpoints) -> Iterator[str]:
    """A migrated serving database holding one mart row, so a DROP or DELETE would show."""
    with migrated_database(endpoints.pg_dsn, prefix="hostile") as dsn:
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "INSERT INTO mart.daily_prices (symbol, trade_date, open, high, low, close, adj_close, volume, "
                "load_id, schema_version) VALUES ('AAPL', '2024-03-04', 1, 2, 0.5, 1.5, 1.5, 100, 'seed', '1.0.0')"
            )
        yield dsn


@pytest.fixture
def http_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoints) -> Iterator[Path]:
    """A fresh LAKEHOUSE_HOME and the synthetic market API; the run's PostgreSQL as the ops store."""
    from local import market_api

    home = tmp_path / "home"
    for name in ("ALPHAVANTAGE_API_KEY", "LAKEHOUSE_SYMBOLS", "LAKEHOUSE_SPARK_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", endpoints.pg_dsn)
    monkeypatch.chdir(tmp_path)
    with market_api.running() as server:
        monkeypatch.setenv("ALPHAVANTAGE_BASE_URL", server.url)
        yield tmp_path


# (id, body, expected status, field the error names). Bodies are sent as JSON unless bytes.
HTTP_CASES = [
    ("traversal ../../etc", {"symbols": ["../../etc"], **WINDOW}, 400, "symbols"),
    ("traversal inside a ticker", {"symbols": ["AAPL/../../x"], **WINDOW}, 400, "symbols"),
    ("absolute path", {"symbols": ["/etc/passwd"], **WINDOW}, 400, "symbols"),
    ("backslash traversal", {"symbols": ["..\\..\\x"], **WINDOW}, 400, "symbols"),
    ("URL-encoded traversal", {"symbols": ["..%2F..%2Fetc"], **WINDOW}, 400, "symbols"),
    ("NUL byte in a ticker", {"symbols": ["AA\x00PL"], **WINDOW}, 400, "symbols"),
    ("trailing newline in a ticker", {"symbols": ["AAPL\n"], **WINDOW}, 400, "symbols"),
    ("fullwidth lookalike ticker", {"symbols": ["\uff21\uff21\uff30\uff2c"], **WINDOW}, 400, "symbols"),
    ("Cyrillic lookalike ticker", {"symbols": ["\u0410APL"], **WINDOW}, 400, "symbols"),
    ("SQL injection in symbols", {"symbols": DROP, **WINDOW}, 400, "symbols"),
    ("SQL injection in start_date", {"symbols": ["AAPL"], "start_date": "2024-03-04" + DROP}, 400, "start_date"),
    ("SQL injection in run_id", {"symbols": ["AAPL"], **WINDOW, "run_id": "r1" + DROP}, 400, "run_id"),
    ("traversal in run_id", {"symbols": ["AAPL"], **WINDOW, "run_id": "../../etc/passwd"}, 400, "run_id"),
    ("trailing newline in run_id", {"symbols": ["AAPL"], **WINDOW, "run_id": "r1\n"}, 400, "run_id"),
    ("traversal in dataset", {"dataset": "../../etc", "symbols": ["AAPL"], **WINDOW}, 400, "dataset"),
    ("unknown field", {"symbols": ["AAPL"], **WINDOW, "path": "/etc"}, 400, "unknown field"),
    ("10,000-character ticker", {"symbols": ["A" * 10_000], **WINDOW}, 400, "symbols"),
    ("100,000 tickers", {"symbols": [f"A{i}" for i in range(100_000)], **WINDOW}, 400, "symbols"),
    ("10 MB body", b'{"symbols": ["' + b"A" * 10_000_000 + b'"]}', 413, "body"),
    (
        "dates far out of range",
        {"symbols": ["AAPL"], "start_date": "0001-01-01", "end_date": "9999-12-31"},
        400,
        "start_date",
    ),
    ("date as a number", {"symbols": ["AAPL"], "start_date": 20240304}, 400, "start_date"),
    ("symbols as an object", {"symbols": {"AAPL": 1}, **WINDOW}, 400, "symbols"),
    ("tickers as numbers", {"symbols": [1, 2], **WINDOW}, 400, "symbols"),
    ("body is a JSON array", ["AAPL"], 400, "body"),
    ("malformed JSON", b'{"symbols": ["AAPL"', 400, "body"),
]


@pytest.mark.parametrize(("title", "body", "status", "field"), HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_the_ingest_function_refuses_hostile_input(case, http_env: Path, serving_db: str, title, body, status, field):
    from local.function_host import invoke_http

    expected = f"HTTP {status} naming {field}; no file written; marts intact"
    c = case("security", f"HTTP ingest: {title}", expected=expected)
    before_files, before_marts = files_under(http_env), mart_state(serving_db)
    headers = {"Content-Type": "application/json"} if isinstance(body, bytes) else None
    response = invoke_http("ingest", body=body, headers=headers)
    error = response.json()["error"]
    written = files_under(http_env) - before_files
    c.observe(f"HTTP {response.status_code}: {error[:120]}", files_written=len(written), request_bytes=len(
        body if isinstance(body, bytes) else json.dumps(body)))  # fmt: skip
    assert response.status_code == status
    assert field in error
    assert "Traceback" not in error and 'File "' not in error
    assert written == set()
    assert mart_state(serving_db) == before_marts == {**dict.fromkeys(MART_TABLES, 0), "daily_prices": 1}


def test_a_hostile_ticker_fails_alone_and_the_good_one_lands_only_in_raw(case, http_env: Path):
    """One bad ticker in a list is reported as failed; the rest of the call goes on."""
    from local.function_host import invoke_http

    c = case("security", "HTTP ingest: a traversal ticker next to a good one",
             expected="200; AAPL landed in RAW; '../../etc' reported invalid_symbol; nothing outside RAW")  # fmt: skip
    response = invoke_http("ingest", body={"symbols": ["AAPL", "../../etc"], **WINDOW, "run_id": "mixed-1"})
    answer = response.json()
    written = files_under(http_env)
    c.observe(f"HTTP {response.status_code}; failures {answer['failures']}", files_written=len(written))
    assert response.status_code == 200
    assert [(f["symbol"], f["kind"]) for f in answer["failures"]] == [("../../etc", "invalid_symbol")]
    assert [f["symbol"] for f in answer["files"]] == ["AAPL"]
    assert written and all(p.startswith("home/lake/raw/") for p in written), sorted(written)
    landed = {p for p in written if "/AAPL/" in p}
    assert len(landed) == 1 and landed.pop().endswith("/AAPL/mixed-1.json")


# (id, CLI arguments, option the message names)
MANY = ",".join(f"A{i}" for i in range(100_000))
DAYS = ["--start", "2024-03-04", "--end", "2024-03-08"]
CLI_CASES = [
    ("backfill start is a path", ["backfill", "--start", "../../etc", "--end", "2024-03-08"], "--start"),
    ("backfill start carries SQL", ["backfill", "--start", "2024-03-04" + DROP, "--end", "2024-03-08"], "--start"),
    ("backfill dates far out of range", ["backfill", "--start", "0001-01-01", "--end", "9999-12-31"], "--start"),
    ("backfill end before start", ["backfill", "--start", "2024-03-08", "--end", "2024-03-04"], "--end"),
    ("backfill symbols with traversal", ["backfill", *DAYS, "--symbols", "AAPL,../../x"], "--symbols"),
    ("backfill symbols carry SQL", ["backfill", *DAYS, "--symbols", DROP], "--symbols"),
    ("backfill 100,000 symbols", ["backfill", *DAYS, "--symbols", MANY], "--symbols"),
    ("backfill negative chunk days", ["backfill", *DAYS, "--chunk-days", "-5"], "--chunk-days"),
    ("backfill zero chunk days", ["backfill", *DAYS, "--chunk-days", "0"], "--chunk-days"),
    ("backfill huge chunk days", ["backfill", *DAYS, "--chunk-days", "1000000000"], "--chunk-days"),
    (
        "backfill of 73,000 one-day chunks",
        ["backfill", "--start", "1900-01-01", "--end", "2100-01-01", "--chunk-days", "1"],
        "--chunk-days",
    ),
    ("adf run pipeline name is a path", ["adf", "run", "../../etc/passwd"], "PIPELINE"),
    (
        "adf run runId carries SQL",
        [
            "adf",
            "run",
            "pl_raw_to_bronze",
            "-p",
            "startDate=2024-03-04",
            "-p",
            "endDate=2024-03-08",
            "-p",
            "runId=r" + DROP,
        ],
        "-p",
    ),
    (
        "adf run symbols carry a shell command",
        ["adf", "run", "pl_lakehouse_daily", "-p", "runDate=2024-03-04", "-p", "symbols=AAPL;rm -rf /"],
        "-p",
    ),
    ("adf run date carries SQL", ["adf", "run", "pl_lakehouse_daily", "-p", "runDate=2024-03-04" + DROP], "-p"),
    (
        "adf run chunkDays is not a number",
        ["adf", "run", "pl_backfill", "-p", "startDate=2024-03-04", "-p", "endDate=2024-03-08", "-p", "chunkDays=1;"],
        "-p",
    ),
    ("adf run undeclared parameter", ["adf", "run", "pl_lakehouse_daily", "-p", "tableName=mart.daily_prices"], "-p"),
    ("trigger name is a path", ["trigger", "run", "../../x"], "TRIGGER"),
    ("trigger time carries SQL", ["trigger", "run", "tr_daily", "--at", "2024-03-04" + DROP], "--at"),
    ("runs id carries SQL", ["runs", DROP], "RUN_ID"),
    ("report symbols with traversal", ["report", "--symbols", "../../etc", "--out", "r.html"], "--symbols"),
]


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoints, serving_db: str) -> Path:
    """The CLI pointed at the run's Sail and at the seeded serving database: a command that let a
    value through would run against them."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", endpoints.spark_remote)
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", serving_db)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("title", "args", "option"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_the_cli_refuses_hostile_input(case, cli_env: Path, serving_db: str, title, args, option):
    from local.cli import app

    c = case("security", f"CLI: {title}", expected=f"exit 2 naming {option}; nothing written; marts intact")
    before_files, before_marts = files_under(cli_env), mart_state(serving_db)
    result = CliRunner().invoke(app, args)
    output = " ".join(result.output.split())  # the error box wraps lines
    written = files_under(cli_env) - before_files
    c.observe(f"exit {result.exit_code}: {output[output.find('Invalid value') :][:140]}", files_written=len(written))
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {option}" in output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert written == set()
    assert mart_state(serving_db) == before_marts == {**dict.fromkeys(MART_TABLES, 0), "daily_prices": 1}


NOTEBOOK_CASES = [
    ("run_id widget carries SQL", {"run_id": "r" + DROP, **WINDOW}, "run_id"),
    ("run_id widget is a path", {"run_id": "../../x", **WINDOW}, "run_id"),
    (
        "start_date widget far out of range",
        {"run_id": "r1", "start_date": "0001-01-01", "end_date": "2024-03-08"},
        "start_date",
    ),
    (
        "end_date widget carries SQL",
        {"run_id": "r1", "start_date": "2024-03-04", "end_date": "2024-03-08" + DROP},
        "end_date",
    ),
]


@pytest.mark.parametrize(("title", "widgets", "field"), NOTEBOOK_CASES, ids=[c[0] for c in NOTEBOOK_CASES])
def test_the_notebooks_refuse_what_adf_could_pass_them(case, title, widgets, field):
    """ADF can start a notebook without the CLI: its widgets are checked before a job starts."""
    c = case("security", f"notebook: {title}", expected=f"ValueError naming {field} before any read or write")
    dbutils = DBUtils(widgets)
    declare_widgets(dbutils)
    with pytest.raises(ValueError) as raised:
        values = widget_values(dbutils)
        DateWindow.parse(values["start_date"], values["end_date"])
    c.observe(str(raised.value)[:140])
    assert str(raised.value).startswith(field)
