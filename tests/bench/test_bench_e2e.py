"""The end-to-end benchmark's data set, dates and time split (the runs themselves are `make bench`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bench.bench_e2e import DEFAULTS, Plan, bench_symbols, market_config, split
from lakehouse.inputs import is_symbol
from lakehouse.trading_calendar import sessions


def test_symbols_are_distinct_valid_tickers_the_same_every_run():
    names = bench_symbols(500)
    assert len(set(names)) == 500 and names == bench_symbols(500)
    assert all(is_symbol(s) for s in names)


def test_plan_puts_the_daily_run_on_the_session_after_both_histories():
    # Wednesday 2025-03-12 23:00 UTC: the 12th has closed.
    plan = Plan.make(DEFAULTS, now=dt.datetime(2025, 3, 12, 23, tzinfo=dt.UTC))
    assert (plan.daily, plan.history_end) == (dt.date(2025, 3, 12), dt.date(2025, 3, 11))
    five_years = sessions(plan.start_5y, plan.history_end)
    assert plan.start_5y == sessions(dt.date(2020, 3, 11), dt.date(2020, 3, 20))[0]
    assert 1255 <= len(five_years) <= 1260
    assert len(sessions(plan.start_1m, plan.history_end)) == DEFAULTS["month_sessions"] + 1
    assert Plan.from_dict(plan.as_dict()) == plan


def test_every_symbol_of_the_data_set_starts_on_the_first_session():
    """So N symbols x S sessions bars, whatever listing date the default market gives a symbol."""
    from local.market_api import MarketModel

    first, as_of = dt.date(2024, 1, 2), dt.date(2024, 3, 28)
    config = market_config(7, first, as_of)
    model = MarketModel(config.seed, listed_from=config.listed_from)
    for symbol in bench_symbols(5):
        series = model.series(symbol)
        assert series.dates[0] == first
        assert model.last_index(series, as_of) + 1 == len(sessions(first, as_of))


@dataclass
class _Activity:
    activity_type: str
    duration_s: float
    output: dict = field(default_factory=dict)


@dataclass
class _Run:
    pipeline: str
    activity_runs: list
    children: list = field(default_factory=list)

    def all_pipeline_runs(self):
        found = [self]
        for child in self.children:
            found.extend(child.all_pipeline_runs())
        return found


def test_split_sums_activities_per_step_and_leaves_the_rest_to_the_runner():
    notebook, function = "DatabricksNotebook", "AzureFunctionActivity"
    chunk = _Run("pl_lakehouse_daily", [_Activity("ExecutePipeline", 9.0)], [
        _Run("pl_ingest_market_data", [_Activity(function, 2.0), _Activity(function, 1.0)]),
        _Run("pl_raw_to_bronze", [_Activity(notebook, 1.5, {"runOutput": {"rows_written": 1000}})]),
        _Run("pl_bronze_to_silver", [_Activity(notebook, 1.25)]),
        _Run("pl_silver_to_gold", [_Activity(notebook, 0.5)]),
        _Run("pl_gold_to_postgres", [_Activity(notebook, 0.75)]),
    ])  # fmt: skip
    parts = split(_Run("pl_backfill", [], [chunk]), pipeline_seconds=10.0)
    assert parts == {
        "ingest_s": 3.0, "raw_to_bronze_s": 1.5, "bronze_to_silver_s": 1.25, "silver_to_gold_s": 0.5,
        "gold_to_postgres_s": 0.75, "runner_overhead_s": 3.0, "chunks": 1, "bronze_rows": 1000,
    }  # fmt: skip
