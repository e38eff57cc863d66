"""`lakehouse sql`: run SQL against the serving database or the lake and print the last result.

Two engines, one result shape: PostgreSQL (the marts and the ops store) through psycopg, and the
lake's Delta tables through the Spark session, where ``bronze.daily_bars``, ``gold.fct_daily_prices``
and the other contract tables are queried by name. Four output formats: a table for people, CSV and
JSON for programs (strict JSON whatever the column types), and one ``column | value`` block per row
for wide results.
"""

from __future__ import annotations

import csv
import enum
import json
import re
import sys
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from local.json_output import json_text, to_jsonable


class OutputFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    vertical = "vertical"


class QueryError(RuntimeError):
    """The engine refused or failed the query; the message is the engine's."""


@dataclass
class Result:
    """The last statement's result: its columns and rows, or only a status for a statement without rows."""

    columns: list[str] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    status: str | None = None

    @property
    def has_rows(self) -> bool:
        return bool(self.columns)


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


# ---------------------------------------------------------------- PostgreSQL


def run_postgres(dsn: str, query: str) -> Result:
    """Run `query` (one or several statements, committed) and return the last statement's result.

    Intervals come back as PostgreSQL writes them in ISO-8601 (``P1M2DT3H``): months do not fit a
    timedelta, and that spelling is both exact and standard.
    """
    import psycopg
    from psycopg.types.string import TextLoader

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.adapters.register_loader("interval", TextLoader)
            conn.execute("SET intervalstyle = 'iso_8601'")
            cur = conn.cursor()
            cur.execute(query)
            last = Result()
            while True:
                if cur.description is not None:
                    last = Result(distinct_names([c.name for c in cur.description]), list(cur.fetchall()),
                                  cur.statusmessage)  # fmt: skip
                else:
                    last = Result(status=cur.statusmessage)
                if not cur.nextset():
                    break
            return last
    except psycopg.Error as exc:
        raise QueryError(str(exc).strip()) from None


# ---------------------------------------------------------------- the lake


LAKE_LAYERS = ("bronze", "silver", "gold", "ops")


def _view_name(qualified: str) -> str:
    return "lake_" + qualified.replace(".", "_")


def split_statements(query: str) -> list[str]:
    """`query` cut at the semicolons outside quotes and comments; empty statements dropped."""
    statements, current, i, quote = [], [], 0, None
    while i < len(query):
        ch = query[i]
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            current.append(ch)
        elif query.startswith("--", i):
            end = query.find("\n", i)
            i = len(query) if end < 0 else end
            continue
        elif ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def lake_references(query: str, known: set[str]) -> str:
    """`query` with each contract table named ``layer.table`` (outside quotes) replaced by its view."""
    pattern = re.compile(r"(?<![\w.`])(" + "|".join(LAKE_LAYERS) + r")\.(\w+)(?![\w`])", re.IGNORECASE)

    def swap(match: re.Match) -> str:
        name = f"{match.group(1).lower()}.{match.group(2).lower()}"
        return f"`{_view_name(name)}`" if name in known else match.group(0)

    pieces = re.split(r"('(?:[^']|'')*')", query)  # string literals keep their text
    return "".join(p if p.startswith("'") else pattern.sub(swap, p) for p in pieces)


def run_lake(spark: Any, lake: Any, query: str) -> Result:
    """Run `query` on the Spark session with every existing contract table of the lake registered
    under its ``layer.table`` name; return the last statement's result."""
    from pyspark.errors import PySparkException

    from spark_jobs.contracts import all_contracts
    from spark_jobs.tables import Tables, UnreadableTable

    tables = Tables(spark, lake)
    known: set[str] = set()
    statements = split_statements(query)
    wanted = " ".join(statements).lower()
    try:
        for name, contract in all_contracts().items():
            if contract.layer not in LAKE_LAYERS or name not in wanted:
                continue
            df = tables.existing(contract)
            if df is None:
                df = tables.empty(contract)  # a table not written yet reads as empty, as `status` shows it
            df.createOrReplaceTempView(_view_name(name))
            known.add(name)
        last = Result()
        for statement in statements:
            df = spark.sql(lake_references(statement, known))
            last = Result(distinct_names(list(df.columns)), [tuple(r) for r in df.collect()])
        return last
    except (PySparkException, UnreadableTable) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise QueryError(first) from None


# ---------------------------------------------------------------- output


def plain(value: Any) -> Any:
    """A value in JSON terms (see ``local.json_output.to_jsonable``); a type JSON has no word for (a range,
    an address, a geometric type) as its text."""

    value = to_jsonable(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def cell(value: Any) -> str:
    """A value as one line of text: NULL as empty, structures as compact JSON."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(result: Result, fmt: OutputFormat, console: Console, out: IO[str] | None = None) -> None:
    """Print `result` in `fmt`: table and vertical through `console`, csv and json to `out` (stdout)."""

    out = out or sys.stdout
    if fmt is OutputFormat.json:
        rows = [dict(zip(result.columns, (plain(v) for v in row), strict=True)) for row in result.rows]
        out.write(json_text(rows) + "\n")
    elif fmt is OutputFormat.csv:
        if result.has_rows:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(result.columns)
            writer.writerows([cell(v) for v in row] for row in result.rows)
    elif not result.has_rows:
        console.print(result.status or "(no result)", highlight=False)
    elif fmt is OutputFormat.vertical:
        width = max(len(c) for c in result.columns)
        for n, row in enumerate(result.rows, 1):
            console.print(f"-[ RECORD {n} ]" + "-" * max(1, width - 8), highlight=False)
            for column, value in zip(result.columns, row, strict=True):
                console.print(f"{column.ljust(width)} | {cell(value)}", highlight=False, markup=False, soft_wrap=True)
        if not result.rows:
            console.print("(0 rows)", highlight=False)
    else:
        table = Table()
        for column in result.columns:
            table.add_column(Text(column), overflow="fold")
        for row in result.rows:
            table.add_row(*(Text(cell(v)) for v in row))
        console.print(table)
        console.print(f"({len(result.rows)} row{'' if len(result.rows) == 1 else 's'})", highlight=False)
