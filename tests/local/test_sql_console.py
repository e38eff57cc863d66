"""`lakehouse sql`: strict JSON for every PostgreSQL type, four formats, the last statement's result,
database errors as such, and the lake's tables queried by name through Spark."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from local.sql_console import lake_references, split_statements

CLI = [sys.executable, "-m", "local.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=os.environ.copy(), timeout=240)


def strict_json(text: str):
    def refuse(name: str):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


TYPES_QUERY = (
    "SELECT interval '1 month 2 days 03:04:05.5' AS iv, 'NaN'::float8 AS f_nan, '-Infinity'::float8 AS f_inf, "
    "'NaN'::numeric AS n_nan, 12345678901234567890.123456789012345678::numeric AS exact, 7::numeric AS whole, "
    "'10.0.0.1'::inet AS ip, int4range(1, 5) AS rng, point(1, 2) AS pt, '{\"a\": [1, null]}'::jsonb AS doc, "
    "ARRAY[1.5, 'NaN']::float8[] AS arr, '\\x0aff'::bytea AS raw, "
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, timestamptz '2024-03-05 22:00+00' AS at, "
    "'12.5'::money AS cash, NULL::text AS nothing"
)


def test_json_is_strict_and_exact_for_every_postgresql_type(lakehouse_env: Path) -> None:
    out = run("sql", TYPES_QUERY, "--format", "json")
    assert out.returncode == 0, out.stderr
    (row,) = strict_json(out.stdout)
    assert row["iv"] == "P1M2DT3H4M5.5S"
    assert (row["f_nan"], row["f_inf"], row["n_nan"]) == ("NaN", "-Infinity", "NaN")
    assert '"exact": 12345678901234567890.123456789012345678' in out.stdout, "digits kept, not through a float"
    assert row["whole"] == 7
    assert (row["ip"], row["rng"], row["pt"]) == ("10.0.0.1", "[1, 5)", "(1,2)")
    assert row["doc"] == {"a": [1, None]} and row["arr"] == [1.5, "NaN"]
    assert (row["raw"], row["id"]) == ("0aff", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert row["at"].startswith("2024-03-05T22:00:00") and row["nothing"] is None
    assert "12.5" in row["cash"]
    assert run("sql", TYPES_QUERY, "--json").stdout == out.stdout, "--json is --format json"


def test_several_statements_print_the_last_ones_result_and_commit(lakehouse_env: Path) -> None:
    script = (
        "DROP TABLE IF EXISTS public.console_probe; CREATE TABLE public.console_probe (symbol text, close numeric);"
        "INSERT INTO public.console_probe VALUES ('AAPL', 1.10), ('MSFT', 2); SELECT 'not this' AS first;"
        "SELECT symbol, close FROM public.console_probe ORDER BY symbol"
    )
    out = run("sql", script, "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert list(csv.reader(io.StringIO(out.stdout))) == [["symbol", "close"], ["AAPL", "1.10"], ["MSFT", "2"]]
    again = run("sql", "SELECT count(*) AS n FROM public.console_probe; DROP TABLE public.console_probe", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == [], "the last statement (the DROP) has no rows"
    gone = run("sql", "SELECT to_regclass('public.console_probe') AS t", "--json")
    assert json.loads(gone.stdout) == [{"t": None}]


def test_vertical_and_table_formats_show_every_column(lakehouse_env: Path) -> None:
    query = "SELECT 'AAPL' AS symbol, 1 AS n, '[bold]x' AS markup UNION ALL SELECT 'MSFT', 2, NULL ORDER BY 1"
    vertical = run("sql", query, "--format", "vertical")
    assert vertical.returncode == 0, vertical.stderr
    blocks = [line for line in vertical.stdout.splitlines() if line.startswith("-[ RECORD")]
    assert [b.split()[2] for b in blocks] == ["1", "2"]
    assert "symbol | AAPL" in vertical.stdout and "markup | [bold]x" in vertical.stdout
    table = run("sql", query)
    assert table.returncode == 0 and "[bold]x" in table.stdout and "(2 rows)" in table.stdout


def test_a_database_error_is_reported_as_one_with_exit_1(lakehouse_env: Path) -> None:
    out = run("sql", "SELECT * FROM no_such_table", "--format", "json")
    assert out.returncode == 1
    assert "database error:" in out.stderr and "no_such_table" in out.stderr
    assert "Usage" not in out.stderr and "Traceback" not in out.stderr and out.stdout == ""


def test_an_unknown_format_is_a_usage_error(lakehouse_env: Path) -> None:
    out = run("sql", "SELECT 1", "--format", "xml")
    assert out.returncode == 2 and "xml" in out.stderr


def test_statements_are_split_outside_quotes_and_comments() -> None:
    assert split_statements("SELECT ';' AS a; -- x; y\nSELECT `b;c` FROM t;;") == [
        "SELECT ';' AS a",
        "SELECT `b;c` FROM t",
    ]


def test_lake_tables_are_renamed_only_where_they_are_names() -> None:
    known = {"gold.fct_daily_prices"}
    query = "SELECT 'gold.fct_daily_prices' AS s, p.close FROM GOLD.fct_daily_prices p JOIN gold.other o ON 1=1"
    assert lake_references(query, known) == (
        "SELECT 'gold.fct_daily_prices' AS s, p.close FROM `lake_gold_fct_daily_prices` p JOIN gold.other o ON 1=1"
    )


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_lake_tables_are_queried_by_name_through_spark(lakehouse_env: Path, spark, fmt: str) -> None:
    from lakehouse.lake import Lake
    from lakehouse.settings import load_settings
    from spark_jobs.contracts import load
    from spark_jobs.tables import Tables

    contract = load("gold", "dim_date")
    df = spark.sql(
        "SELECT DATE'2024-03-05' AS trade_date, 2024 AS year, 1 AS quarter, 3 AS month, 5 AS day_of_month, "
        "2 AS day_of_week, false AS is_month_end, DATE'2024-03-04' AS previous_trade_date"
    ).selectExpr(*(f"CAST({c.name} AS {c.type}) AS {c.name}" for c in contract.columns))
    Tables(spark, Lake.from_settings(load_settings())).overwrite(df, contract)
    query = (
        "SELECT d.trade_date, d.day_of_week, count(q.symbol) AS quotes FROM gold.dim_date d "
        "LEFT JOIN gold.latest_quotes q ON q.latest_trading_day = d.trade_date GROUP BY 1, 2"
    )
    out = run("sql", "--lake", query, "--format", fmt)
    assert out.returncode == 0, out.stderr
    if fmt == "json":
        assert strict_json(out.stdout) == [{"trade_date": "2024-03-05", "day_of_week": 2, "quotes": 0}]
    else:
        assert out.stdout.splitlines() == ["trade_date,day_of_week,quotes", "2024-03-05,2,0"]
    bad = run("sql", "--lake", "SELECT no_such_column FROM gold.dim_date")
    assert bad.returncode == 1 and "database error:" in bad.stderr and "Traceback" not in bad.stderr
