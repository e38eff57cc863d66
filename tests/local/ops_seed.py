"""Hand-made ops store rows for the observability tests (runs, activities, DQ results, marts).

Rows are written with the column names of the migrations (010 runs, the serving DQ/mart tables),
so a schema change there breaks these tests instead of silently passing.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import psycopg

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    """'2024-03-05 22:10' as an aware UTC datetime."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def pipeline_run(
    dsn: str,
    run_id: str,
    pipeline: str,
    status: str,
    started: str,
    ended: str | None,
    parent: str | None = None,
    error: str | None = None,
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ops.pipeline_runs (run_id, parent_run_id, pipeline, status, started_at, ended_at, error) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                run_id, parent, pipeline, status, at(started), at(ended) if ended else None,
                json.dumps({"message": error}) if error else None,
            ),
        )  # fmt: skip


def activity_run(
    dsn: str,
    run_id: str,
    pipeline: str,
    activity: str,
    activity_type: str,
    status: str,
    started: str,
    ended: str,
    output: dict | None = None,
    attempt: int = 1,
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ops.activity_runs (activity_run_id, pipeline_run_id, pipeline, activity, activity_type, "
            "status, attempt, started_at, ended_at, output) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                f"{run_id}:{activity}:{attempt}", run_id, pipeline, activity, activity_type, status, attempt,
                at(started), at(ended), json.dumps(output) if output is not None else None,
            ),
        )  # fmt: skip


def dq_result(
    dsn: str, run_id: str, table: str, rule: str, severity: str, passed: bool, failed: int, evaluated: str
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ops.dq_results (run_id, table_name, rule, severity, passed, failed_count, sample_keys, "
            "evaluated_at) VALUES (%s, %s, %s, %s, %s, %s, '[]'::jsonb, %s)",
            (run_id, table, rule, severity, passed, failed, at(evaluated)),
        )


def daily_prices(dsn: str, symbol: str, days: list[dt.date], base: float = 100.0, load_id: str = "seed") -> list[dict]:
    """Mart rows with a known close series (a sine wave) and trailing moving averages; returns them."""
    closes = [round(base + 10 * math.sin(i / 5.0) + i * 0.1, 4) for i in range(len(days))]

    def ma(i: int, n: int) -> float | None:
        return None if i + 1 < n else sum(closes[i + 1 - n : i + 1]) / n

    rows = [
        {"symbol": symbol, "trade_date": d, "close": c, "ma_20": ma(i, 20), "ma_50": ma(i, 50), "ma_200": ma(i, 200)}
        for i, (d, c) in enumerate(zip(days, closes, strict=True))
    ]
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO mart.daily_prices (symbol, trade_date, open, high, low, close, adj_close, volume, "
            "ma_20, ma_50, ma_200, load_id, schema_version) VALUES (%(symbol)s, %(trade_date)s, %(close)s, "
            "%(close)s, %(close)s, %(close)s, %(close)s, 1000, %(ma_20)s, %(ma_50)s, %(ma_200)s, %(load_id)s, '1.0.0')",
            [r | {"load_id": load_id} for r in rows],
        )
    return rows
