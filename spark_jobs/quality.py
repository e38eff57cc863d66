"""Data-quality rules as data, evaluated by one mechanism, reported by name.

A rule is a SQL boolean expression that is TRUE for a good row, with a severity:

- ``warn``: counted and recorded, the row goes on;
- ``quarantine``: the row goes to ``silver.quarantine`` with the rule and its source file;
- ``fail``: counted and recorded, then the job stops with :class:`DataQualityError`.

A NULL outcome counts as a failure. Rules see the candidate rows of a silver table with their
typed values and a few helper columns the silver module adds (``_is_session``, ``_prev_close``,
``_rows_in_file_with_key``, ``_today``, ``_bar_split``, ``_bar_dividend``, ``_missing_sessions``,
``_sessions_behind``). Results are written to PostgreSQL ``ops.dq_results`` and emitted as
``dq_result`` telemetry events (Application Insights in Azure, the ops store locally), which the
data-quality alert reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal, get_args

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse import ops_store, telemetry
from lakehouse.job_summary import DqOutcome, FailedRule
from lakehouse.ops_store import DQ_RESULTS

Severity = Literal["warn", "quarantine", "fail"]
# A payload whose last bar of a symbol is more sessions than this before its ingestion date is stale:
# a week of sessions, beyond any provider delay or a run fetching before the close.
STALE_SESSIONS = 5
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
        Rule("prices_positive", "quarantine",
             "open > 0 AND high > 0 AND low > 0 AND close > 0 AND (adjusted_close IS NULL OR adjusted_close > 0)"),
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
        # warn: the bar itself is right (a halt also skips sessions, a late bar may still fill the gap);
        # the failing bar names where a "daily" return spans more than one session.
        Rule("no_missing_sessions", "warn", "_missing_sessions IS NULL OR _missing_sessions = 0"),
        # warn: the bars are right, only not current; on a file's last bar of a symbol only.
        Rule("symbol_not_stale", "warn", f"_sessions_behind IS NULL OR _sessions_behind <= {STALE_SESSIONS}"),
    ),
    # Severities: an event that cannot be a split or a dividend of this stock is quarantined (gold
    # would otherwise adjust every earlier price by it); a disagreement with the adjusted series is a
    # warning, since either source may be the one that is wrong.
    "silver.corporate_actions": (
        Rule("keys_not_null", "quarantine", "symbol IS NOT NULL AND action IS NOT NULL AND ex_date IS NOT NULL"),
        Rule("values_parse", "quarantine", "coalesce(split_factor, dividend_amount) IS NOT NULL"),
        Rule("values_finite", "quarantine", _finite("split_factor", "dividend_amount")),
        Rule("implausible_corporate_action", "quarantine",
             "(action = 'split' AND split_factor BETWEEN 0.001D AND 1000.0D) "
             "OR (action = 'dividend' AND dividend_amount >= 0.0D "
             "AND (_prev_close IS NULL OR dividend_amount < 0.5D * _prev_close))"),
        Rule("symbol_matches_source", "fail", "symbol IS NULL OR symbol = path_symbol"),
        Rule("agrees_with_adjusted_series", "warn",
             "(action = 'split' AND (_bar_split IS NULL OR abs(_bar_split - split_factor) < 0.00005D)) "
             "OR (action = 'dividend' AND (_bar_dividend IS NULL OR abs(_bar_dividend - dividend_amount) < 0.00005D))"),
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


FAILED_COLUMN = "_failed"  # bit i set: rule i of the table failed
COLUMNS = (FAILED_COLUMN, QUARANTINE_RULES_COLUMN, FAIL_RULES_COLUMN)  # what flag adds


def _failed(rule_index: int):
    """Over :func:`flag`'s columns: TRUE when rule `rule_index` failed."""
    return (F.col(FAILED_COLUMN).bitwiseAND(F.lit(1 << rule_index))) != 0


def flag(df: DataFrame, table: str) -> DataFrame:
    """`df` plus the failed rules as one bit mask (:data:`FAILED_COLUMN`) and two columns naming the
    failed quarantine / fail rules.

    One integer instead of a boolean per rule: the flagged rows of a large batch are staged (written
    and read back), and the rules' outcomes are read only by the counts and the samples.
    """
    rules = RULES[table]
    if len(rules) > 62:
        raise ValueError(f"{table}: {len(rules)} rules do not fit the failure bit mask")
    flagged = df.withColumn(FAILED_COLUMN, failed_mask(table))

    def names(severity: str):
        picked = [F.when(_failed(i), F.lit(r.name)) for i, r in enumerate(rules) if r.severity == severity]
        return F.concat_ws(",", *picked) if picked else F.lit("")

    return flagged.withColumns({QUARANTINE_RULES_COLUMN: names("quarantine"), FAIL_RULES_COLUMN: names("fail")})


def failed_mask(table: str, names: Collection[str] | None = None) -> Column:
    """The :data:`FAILED_COLUMN` bit mask of `table`'s rules (bit i: ``RULES[table][i]`` failed);
    with `names`, of those rules only, in the same bit positions."""
    mask = F.lit(0)
    for i, r in enumerate(RULES[table]):
        if names is None or r.name in names:
            mask = mask + F.when(F.coalesce(F.expr(r.expectation), F.lit(False)), 0).otherwise(1 << i)
    return mask.cast("bigint")


def passes_all(table: str):
    """TRUE when a row passes every rule of `table`, whatever the severity: the rules' expressions
    themselves, for a check that needs no :func:`flag` columns (silver's pre-filter)."""
    ok = F.lit(True)
    for r in RULES[table]:
        ok = ok & F.coalesce(F.expr(r.expectation), F.lit(False))
    return ok


def failure_counts(table: str) -> list:
    """Aggregate expressions counting each rule's failures (``f0``, ``f1``, ...), for one pass."""
    return [F.sum(F.when(_failed(i), 1).otherwise(0)).alias(f"f{i}") for i in range(len(RULES[table]))]


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
            rows = flagged.filter(_failed(i)).select(*keys).orderBy(*key_columns).limit(SAMPLE_SIZE)
            sample = [r.asDict() for r in rows.collect()]
        results.append(RuleResult(table, rule.name, rule.severity, failed == 0, failed, sample))
    return results


def outcome(results: list[RuleResult], recorded: int) -> DqOutcome:
    """The DQ part of a job's summary; `recorded` is the rows written to ``ops.dq_results``."""
    failed = [r for r in results if not r.passed]
    return DqOutcome(
        passed=not any(r.severity == "fail" for r in failed),
        rules_evaluated=len(results),
        failed_rules=[
            FailedRule(table=r.table_name, rule=r.rule, severity=r.severity, failed_count=r.failed_count)
            for r in failed
        ],
        results_recorded=recorded,
    )


def raise_on_fail(results: list[RuleResult]) -> None:
    failing = [r for r in results if r.severity == "fail" and not r.passed]
    if failing:
        detail = "; ".join(f"{r.table_name}.{r.rule}: {r.failed_count} rows, e.g. {r.sample_keys[:2]}" for r in failing)
        raise DataQualityError(f"data-quality rules with severity 'fail' did not hold: {detail}")


def record(dsn: str | None, run_id: str, results: list[RuleResult], at: dt.datetime | None = None) -> int:
    """Emit one ``dq_result`` event per result, and insert the results into ``ops.dq_results``
    (table created by spark_jobs.migrations); returns the rows written to the table.

    The events go wherever the job's telemetry is configured, so the data-quality alert sees the
    same outcomes in both runtimes, with or without a serving database.
    """
    telemetry.record_dq_results(results, run_id)
    if not dsn or not results:
        return 0
    import psycopg
    from psycopg.types.json import Jsonb

    at = at or dt.datetime.now(dt.UTC)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        if not ops_store.table_exists(conn, DQ_RESULTS):
            raise RuntimeError(f"table {DQ_RESULTS} does not exist: apply spark_jobs.migrations first")
        cur.executemany(
            f"INSERT INTO {DQ_RESULTS} (run_id, table_name, rule, severity, passed, failed_count, "
            "sample_keys, evaluated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(run_id, r.table_name, r.rule, r.severity, r.passed, r.failed_count, Jsonb(r.sample_keys), at)
             for r in results],
        )  # fmt: skip
    return len(results)
