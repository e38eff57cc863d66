"""Data-quality rules as data, evaluated by one mechanism, reported by name.

A rule is a SQL boolean expression that is TRUE for a good row, with a severity:

- ``warn``: counted and recorded, the row goes on;
- ``quarantine``: the row goes to ``silver.quarantine`` with the rule and its source file;
- ``fail``: counted and recorded, then the job stops with :class:`DataQualityError`.

A NULL outcome counts as a failure. Rules see the candidate rows of a silver table with their
typed values and a few helper columns the silver module adds (``_is_session``, ``_prev_close``,
``_rows_in_file_with_key``, ``_today``). Results are written to PostgreSQL ``ops.dq_results``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

Severity = Literal["warn", "quarantine", "fail"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
SAMPLE_SIZE = 5
QUARANTINE_RULES_COLUMN = "_quarantine_rules"
FAIL_RULES_COLUMN = "_fail_rules"


@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    expectation: str


def _finite(*columns: str) -> str:
    """SQL: none of `columns` is NaN or infinite ('NaN', 'Infinity', '1e400' parse to those).

    Decimal literals in rules carry a ``D`` (double): Sail 0.7.2 compares a double with a decimal
    literal by casting the double to DECIMAL(30, 15), which fails the whole job on NaN, infinity or
    any value beyond 1e15 instead of failing the rule.
    """
    return " AND ".join(f"({c} IS NULL OR (NOT isnan({c}) AND abs({c}) < double('Infinity')))" for c in columns)


RULES: dict[str, tuple[Rule, ...]] = {
    "silver.daily_bars": (
        Rule("keys_not_null", "quarantine", "symbol IS NOT NULL AND trade_date IS NOT NULL"),
        Rule("values_parse", "quarantine",
             "open IS NOT NULL AND high IS NOT NULL AND low IS NOT NULL AND close IS NOT NULL "
             "AND volume IS NOT NULL AND (dividend_amount_raw IS NULL OR dividend_amount IS NOT NULL) "
             "AND (split_coefficient_raw IS NULL OR split_coefficient IS NOT NULL) "
             "AND (adjusted_close_raw IS NULL OR adjusted_close IS NOT NULL)"),
        Rule("values_finite", "quarantine",
             _finite("open", "high", "low", "close", "adjusted_close", "dividend_amount", "split_coefficient")),
        Rule("prices_positive", "quarantine", "open > 0 AND high > 0 AND low > 0 AND close > 0"),
        Rule("ohlc_consistent", "quarantine", "low <= least(open, close) AND greatest(open, close) <= high"),
        Rule("volume_non_negative", "quarantine", "volume >= 0"),
        Rule("adjustments_valid", "quarantine",
             "coalesce(split_coefficient, 1.0D) > 0 AND coalesce(dividend_amount, 0.0D) >= 0"),
        Rule("trade_date_is_session", "quarantine", "_is_session"),
        Rule("trade_date_not_in_future", "quarantine", "trade_date <= _today"),
        Rule("symbol_matches_source", "fail", "symbol IS NULL OR symbol = path_symbol"),
        Rule("unique_bar_per_file", "warn", "_rows_in_file_with_key = 1"),
        Rule("daily_move_explained", "warn",
             "_prev_close IS NULL OR close IS NULL OR abs(close / _prev_close - 1) <= 0.5D "
             "OR coalesce(split_coefficient, 1.0D) <> 1.0D"),
    ),
    "silver.securities": (
        Rule("keys_not_null", "quarantine", "symbol IS NOT NULL AND as_of_date IS NOT NULL"),
        Rule("symbol_matches_source", "fail", "symbol IS NULL OR symbol = path_symbol"),
        Rule("name_present", "warn", "name IS NOT NULL AND name <> ''"),
    ),
    "silver.quotes": (
        Rule("keys_not_null", "quarantine", "symbol IS NOT NULL AND quote_time IS NOT NULL"),
        Rule("values_parse", "quarantine", "price IS NOT NULL AND latest_trading_day IS NOT NULL"),
        Rule("values_finite", "quarantine",
             _finite("price", "open", "high", "low", "previous_close", "change", "change_percent")),
        Rule("prices_positive", "quarantine", "price > 0"),
        Rule("volume_non_negative", "warn", "volume IS NULL OR volume >= 0"),
        Rule("latest_trading_day_is_session", "warn", "_is_session"),
    ),
}  # fmt: skip


@dataclass
class RuleResult:
    """Outcome of one rule over one batch; the row shape of ``ops.dq_results``."""

    table_name: str
    rule: str
    severity: str
    passed: bool
    failed_count: int
    sample_keys: list = field(default_factory=list)


class DataQualityError(RuntimeError):
    """A `fail` rule did not hold; results were recorded before this was raised."""


def _ok(rule_index: int) -> str:
    return f"_ok_{rule_index}"


def flag(df: DataFrame, table: str) -> DataFrame:
    """`df` plus one boolean per rule and two columns naming the failed quarantine / fail rules."""
    rules = RULES[table]
    flagged = df.withColumns({_ok(i): F.coalesce(F.expr(r.expectation), F.lit(False)) for i, r in enumerate(rules)})

    def names(severity: str):
        picked = [F.when(~F.col(_ok(i)), F.lit(r.name)) for i, r in enumerate(rules) if r.severity == severity]
        return F.concat_ws(",", *picked) if picked else F.lit("")

    return flagged.withColumns({QUARANTINE_RULES_COLUMN: names("quarantine"), FAIL_RULES_COLUMN: names("fail")})


def drop_flags(df: DataFrame, table: str) -> DataFrame:
    return df.drop(*[_ok(i) for i in range(len(RULES[table]))], QUARANTINE_RULES_COLUMN, FAIL_RULES_COLUMN)


def failure_counts(table: str) -> list:
    """Aggregate expressions counting each rule's failures (``f0``, ``f1``, ...), for one pass."""
    return [F.sum(F.when(F.col(_ok(i)), 0).otherwise(1)).alias(f"f{i}") for i in range(len(RULES[table]))]


def summarize(flagged: DataFrame, table: str, key_columns: list[str], counts=None) -> list[RuleResult]:
    """Failure counts of every rule, and a few failing keys for each failed rule.

    `counts` is a row already holding :func:`failure_counts` (computed together with other
    aggregates); without it one aggregation pass computes them.
    """
    rules = RULES[table]
    if counts is None:
        counts = flagged.agg(*failure_counts(table)).first()
    results = []
    for i, rule in enumerate(rules):
        failed = int((counts[f"f{i}"] if counts is not None else 0) or 0)
        sample: list = []
        if failed:
            keys = [F.col(k).cast("string").alias(k) for k in key_columns]
            rows = flagged.filter(~F.col(_ok(i))).select(*keys).orderBy(*key_columns).limit(SAMPLE_SIZE)
            sample = [r.asDict() for r in rows.collect()]
        results.append(RuleResult(table, rule.name, rule.severity, failed == 0, failed, sample))
    return results


def outcome(results: list[RuleResult]) -> dict:
    """The DQ part of a notebook's exit summary."""
    failed = [r for r in results if not r.passed]
    return {
        "passed": not any(r.severity == "fail" for r in failed),
        "rules_evaluated": len(results),
        "failed_rules": [
            {"table": r.table_name, "rule": r.rule, "severity": r.severity, "failed_count": r.failed_count}
            for r in failed
        ],
    }


def raise_on_fail(results: list[RuleResult]) -> None:
    failing = [r for r in results if r.severity == "fail" and not r.passed]
    if failing:
        detail = "; ".join(f"{r.table_name}.{r.rule}: {r.failed_count} rows, e.g. {r.sample_keys[:2]}" for r in failing)
        raise DataQualityError(f"data-quality rules with severity 'fail' did not hold: {detail}")


def record(dsn: str | None, run_id: str, results: list[RuleResult], at: dt.datetime | None = None) -> int:
    """Insert results into ``ops.dq_results`` (table created by spark_jobs.migrations); rows written."""
    if not dsn or not results:
        return 0
    import psycopg
    from psycopg.types.json import Jsonb

    at = at or dt.datetime.now(dt.UTC)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        exists = cur.execute("SELECT to_regclass('ops.dq_results')").fetchone()
        if exists is None or exists[0] is None:
            raise RuntimeError("table ops.dq_results does not exist: apply spark_jobs.migrations first")
        cur.executemany(
            "INSERT INTO ops.dq_results (run_id, table_name, rule, severity, passed, failed_count, "
            "sample_keys, evaluated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(run_id, r.table_name, r.rule, r.severity, r.passed, r.failed_count, Jsonb(r.sample_keys), at)
             for r in results],
        )  # fmt: skip
    return len(results)


def as_dicts(results: list[RuleResult]) -> list[dict]:
    return [asdict(r) for r in results]


def to_json(results: list[RuleResult]) -> str:
    return json.dumps(as_dicts(results), default=str)
