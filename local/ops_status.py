"""`lakehouse status`: the state of the platform, read from the local ops store and the lake.

One JSON-able dict with four parts:

- ``pipelines``: the last run of every pipeline (``ops.pipeline_runs``) with status and duration;
- ``freshness``: per gold table (Delta, in the lake) and mart table (PostgreSQL ``mart`` schema),
  the latest date it holds versus the latest XNYS session closed at ``now``;
- ``dq``: the data-quality outcome of the last run that recorded one (``ops.dq_results``);
- ``quarantine``: rows in ``silver.quarantine`` per source table, in total and from the last run.

Tables that do not exist yet (a fresh install) are reported as missing, never as an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from lakehouse import trading_calendar
from lakehouse.lake import Lake
from lakehouse.ops_store import DQ_RESULTS, PIPELINE_RUNS, table_exists
from lakehouse.settings import Settings
from spark_jobs.contracts import all_contracts
from spark_jobs.tables import arrow_schema, local_tables, read_arrow

Grain = Literal["session", "month"]


@dataclass(frozen=True)
class DateColumn:
    """A column that says how recent a table is, and what it is compared with."""

    name: str
    grain: Grain  # "session": the latest XNYS session; "month": the month of that session


# Checked in this order; a table's freshness is its first column found here. Tables with none of
# these (dim_security: history by validity dates) have no freshness.
DATE_COLUMNS: tuple[DateColumn, ...] = (
    DateColumn("trade_date", "session"),
    DateColumn("latest_trading_day", "session"),
    DateColumn("month", "month"),
)
QUARANTINE_TABLE = ("silver", "quarantine")


def utc_now(now: dt.datetime | None = None) -> dt.datetime:
    """``now`` as an aware UTC datetime (naive values are taken as UTC); default the clock."""
    now = now or dt.datetime.now(dt.UTC)
    return now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)


@contextmanager
def connect(dsn: str) -> Iterator[psycopg.Connection]:
    """A read-only, dict-row connection to the ops store."""
    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET default_transaction_read_only = on")
        yield conn


def resolve_dsn(source: Settings | str, dsn: str | None = None) -> str:
    """The ops store DSN from an explicit value, a DSN string, or settings."""
    if dsn:
        return dsn
    if isinstance(source, str):
        return source
    if source.pg_dsn is None:
        raise ValueError("no PostgreSQL DSN: set LAKEHOUSE_PG_DSN or start the embedded services")
    return source.pg_dsn.get_secret_value()


def status(
    source: Settings | str, now: dt.datetime | None = None, *, dsn: str | None = None, lake: Lake | None = None
) -> dict[str, Any]:
    """The platform's status at ``now``, as plain JSON types.

    Args:
        source: settings (the DSN and the lake come from them) or a DSN (then gold tables are read
            only when ``lake`` is given).
        now: evaluation time (default: the clock); runs that started later are ignored.
        dsn: the ops store DSN, overriding the one in settings (the CLI resolves embedded services).
        lake: the lake whose gold and silver tables are read.
    """
    now = utc_now(now)
    dsn = resolve_dsn(source, dsn)
    if lake is None and isinstance(source, Settings):
        lake = Lake.from_settings(source)
    expected = trading_calendar.latest_session(at=now)
    with connect(dsn) as conn:
        pipelines = last_runs(conn, now)
        marts = mart_freshness(conn, expected)
        dq = dq_summary(conn, now)
    gold = gold_freshness(lake, expected) if lake is not None else []
    quarantine = quarantine_counts(lake, dq.get("run_id")) if lake is not None else {"tables": [], "available": False}
    freshness = gold + marts
    return {
        "generated_at": now.isoformat(),
        "latest_session": expected.isoformat(),
        "pipelines": pipelines,
        "freshness": freshness,
        "dq": dq,
        "quarantine": quarantine,
        "healthy": verdict(pipelines, freshness, dq),
    }


def verdict(pipelines: list[dict[str, Any]], freshness: list[dict[str, Any]], dq: dict[str, Any]) -> dict[str, Any]:
    """What is wrong, if anything: failed pipelines, tables not fresh, failed ``fail`` rules; ``ok``
    only when there is none of them, and ``summary`` says it in one line."""
    failed = sorted(p["pipeline"] for p in pipelines if p["status"] == "Failed")
    stale = [f["table"] for f in freshness if f["state"] == "stale"]
    empty = [f["table"] for f in freshness if f["state"] == "empty"]
    dq_failures = sum(1 for r in dq.get("failures", []) if r["severity"] == "fail")
    problems = []
    if failed:
        problems.append(f"{len(failed)} failed pipeline{'s' * (len(failed) > 1)} ({', '.join(failed)})")
    if stale:
        problems.append(f"{len(stale)} stale table{'s' * (len(stale) > 1)}")
    if empty:
        problems.append(f"{len(empty)} empty or missing table{'s' * (len(empty) > 1)}")
    if dq_failures:
        problems.append(f"{dq_failures} failed data-quality rule{'s' * (dq_failures > 1)}")
    return {
        "ok": not problems,
        "summary": "healthy" if not problems else "unhealthy: " + ", ".join(problems),
        "failed_pipelines": failed,
        "stale_tables": stale + empty,
        "dq_failures": dq_failures,
    }


def exit_code(report: dict[str, Any]) -> int:
    """0 when the status is healthy, 1 otherwise (a failed pipeline, a table not fresh, a failed rule)."""
    return 0 if report["healthy"]["ok"] else 1


def last_runs(conn: psycopg.Connection, now: dt.datetime) -> list[dict[str, Any]]:
    """The latest run of every pipeline that started by ``now``."""
    if not table_exists(conn, PIPELINE_RUNS):
        return []
    rows = conn.execute(
        f"""
        SELECT DISTINCT ON (pipeline) pipeline, run_id, parent_run_id, status, trigger_name,
               started_at, ended_at, duration_ms, error ->> 'message' AS error
        FROM {PIPELINE_RUNS} WHERE started_at <= %(now)s
        ORDER BY pipeline, started_at DESC
        """,
        {"now": now},
    ).fetchall()
    return [
        {
            "pipeline": r["pipeline"],
            "run_id": r["run_id"],
            "parent_run_id": r["parent_run_id"],
            "status": r["status"],
            "trigger": r["trigger_name"],
            "started_at": r["started_at"].isoformat(),
            "ended_at": r["ended_at"].isoformat() if r["ended_at"] else None,
            "duration_s": None if r["duration_ms"] is None else r["duration_ms"] / 1000.0,
            "age_h": round((now - (r["ended_at"] or r["started_at"])).total_seconds() / 3600.0, 2),
            "error": r["error"],
        }
        for r in rows
    ]


def freshness_entry(layer: str, table: str, column: DateColumn | None, latest: dt.date | None, expected: dt.date):
    """One table's freshness: fresh when it holds the latest session (or that session's month)."""
    if column is None:
        return None
    target = expected.replace(day=1) if column.grain == "month" else expected
    if latest is None:
        state, lag = "empty", None
    elif latest >= target:
        state, lag = "fresh", 0
    else:
        state = "stale"
        if column.grain == "month":
            lag = (target.year - latest.year) * 12 + target.month - latest.month
        else:
            lag = len(trading_calendar.sessions(latest + dt.timedelta(days=1), expected))
    return {
        "layer": layer,
        "table": f"{layer}.{table}",
        "column": column.name,
        "latest": latest.isoformat() if latest else None,
        "expected": target.isoformat(),
        "lag": lag,
        "lag_unit": "months" if column.grain == "month" else "sessions",
        "state": state,
        "fresh": state == "fresh",
    }


def _date_column(columns: set[str]) -> DateColumn | None:
    return next((c for c in DATE_COLUMNS if c.name in columns), None)


def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    return value.date() if isinstance(value, dt.datetime) else value


def mart_freshness(conn: psycopg.Connection, expected: dt.date) -> list[dict[str, Any]]:
    """Freshness of every ``mart`` table that has a date column."""
    columns: dict[str, set[str]] = {}
    for r in conn.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = 'mart' AND t.table_type IN ('BASE TABLE', 'VIEW')"
    ):
        columns.setdefault(r["table_name"], set()).add(r["column_name"])
    out = []
    for table in sorted(columns):
        column = _date_column(columns[table])
        if column is None:
            continue
        query = sql.SQL("SELECT max({col}) AS latest FROM {tbl}").format(
            col=sql.Identifier(column.name), tbl=sql.Identifier("mart", table)
        )
        latest = _as_date(conn.execute(query).fetchone()["latest"])
        out.append({**freshness_entry("mart", table, column, latest, expected), "missing": False})
    return out


def gold_freshness(lake: Lake, expected: dt.date) -> list[dict[str, Any]]:
    """Freshness of every gold Delta table that has a date column (local lakes only). A table of the
    gold contracts that is not in the lake yet (a fresh install) is reported empty and missing."""
    import pyarrow.compute as pc

    if not lake.is_local:
        return []
    present = set(local_tables(lake, "gold"))
    contracted = {c.table: c for c in all_contracts().values() if c.layer == "gold"}
    out = []
    for name in sorted(present | set(contracted)):
        if name not in present:
            column = _date_column(set(contracted[name].column_names))
            entry = freshness_entry("gold", name, column, None, expected)
            if entry is not None:
                out.append({**entry, "missing": True})
            continue
        location = lake.local_path("gold", name)
        column = _date_column(set(arrow_schema(location).names))
        if column is None:
            continue
        data = read_arrow(location, [column.name])
        latest = _as_date(pc.max(data[column.name]).as_py()) if data.num_rows else None
        out.append({**freshness_entry("gold", name, column, latest, expected), "missing": False})
    return out


def dq_summary(conn: psycopg.Connection, now: dt.datetime) -> dict[str, Any]:
    """Rules of the last run that recorded DQ results by ``now``: counts and what did not pass."""
    if not table_exists(conn, DQ_RESULTS):
        return {"run_id": None, "available": False}
    last = conn.execute(
        f"SELECT run_id, max(evaluated_at) AS at FROM {DQ_RESULTS} WHERE evaluated_at <= %s "
        "GROUP BY run_id ORDER BY at DESC LIMIT 1",
        (now,),
    ).fetchone()
    if last is None:
        return {"run_id": None, "available": True, "rules": 0, "passed": 0, "failed": 0, "failures": []}
    rows = conn.execute(
        f"SELECT table_name, rule, severity, passed, failed_count FROM {DQ_RESULTS} "
        "WHERE run_id = %s ORDER BY table_name, rule",
        (last["run_id"],),
    ).fetchall()
    failures = [{k: r[k] for k in ("table_name", "rule", "severity", "failed_count")} for r in rows if not r["passed"]]
    by_severity: dict[str, int] = {}
    for f in failures:
        by_severity[f["severity"]] = by_severity.get(f["severity"], 0) + 1
    return {
        "run_id": last["run_id"],
        "available": True,
        "evaluated_at": last["at"].isoformat(),
        "rules": len(rows),
        "passed": len(rows) - len(failures),
        "failed": len(failures),
        "failed_by_severity": by_severity,
        "failures": failures,
    }


def quarantine_counts(lake: Lake, run_id: str | None) -> dict[str, Any]:
    """Rows in ``silver.quarantine`` per source table: in total, and loaded by ``run_id``."""
    import pyarrow.compute as pc

    data = read_arrow(lake.local_path(*QUARANTINE_TABLE), ["source_table", "load_id"]) if lake.is_local else None
    if data is None:
        return {"tables": [], "available": False, "total": 0}
    counts: dict[str, dict[str, int]] = {}
    tables = data["source_table"].to_pylist()
    in_run = pc.equal(data["load_id"], run_id).to_pylist() if run_id else [False] * len(tables)
    for table, hit in zip(tables, in_run, strict=True):
        entry = counts.setdefault(table, {"total": 0, "last_run": 0})
        entry["total"] += 1
        entry["last_run"] += 1 if hit else 0
    return {
        "available": True,
        "run_id": run_id,
        "total": data.num_rows,
        "tables": [{"source_table": t, **c} for t, c in sorted(counts.items())],
    }


def format_text(report: dict[str, Any]) -> str:
    """The status as plain text for a terminal (the CLI may render tables instead)."""
    lines = [
        report["healthy"]["summary"],
        f"status at {report['generated_at']} (latest XNYS session {report['latest_session']})",
        "",
        "pipelines:",
    ]
    for p in report["pipelines"] or [{"pipeline": "(no runs recorded)"}]:
        if "status" not in p:
            lines.append(f"  {p['pipeline']}")
            continue
        duration = "running" if p["duration_s"] is None else f"{p['duration_s']:.1f}s"
        lines.append(f"  {p['pipeline']:<28} {p['status']:<10} {duration:>9}  {p['started_at']}  {p['run_id']}")
        if p.get("error"):
            lines.append(f"    error: {p['error']}")
    lines += ["", "freshness:"]
    for f in report["freshness"] or [{"table": "(no tables yet)"}]:
        if "state" not in f:
            lines.append(f"  {f['table']}")
            continue
        lag = "" if not f["lag"] else f"  ({f['lag']} {f['lag_unit']} behind)"
        if f.get("missing"):
            lines.append(f"  {f['table']:<36} {f['state']:<6} (table not created yet) expected {f['expected']}")
            continue
        lines.append(f"  {f['table']:<36} {f['state']:<6} latest {f['latest']} expected {f['expected']}{lag}")
    dq = report["dq"]
    lines += ["", "data quality:"]
    if not dq.get("run_id"):
        lines.append("  no results recorded")
    else:
        lines.append(f"  run {dq['run_id']}: {dq['passed']}/{dq['rules']} rules passed")
        lines += [
            f"  - {f['table_name']}.{f['rule']} ({f['severity']}): {f['failed_count']} rows" for f in dq["failures"]
        ]
    quarantine = report["quarantine"]
    lines += ["", "quarantine:"]
    if not quarantine.get("tables"):
        lines.append("  empty")
    lines += [
        f"  {q['source_table']:<20} {q['total']:>8} rows ({q['last_run']} from the last run)"
        for q in quarantine.get("tables", [])
    ]
    return "\n".join(lines)
