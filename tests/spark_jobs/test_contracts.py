"""Table contracts: shipped as data, checked before every write, versioned by compatibility."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spark_jobs import contracts
from spark_jobs.contracts import ContractError, classify_change, from_dict, version_problem

BASELINE = Path(__file__).with_name("contract_baseline.json")
GOLD_SHARED_COLUMNS = {  # the cross-team contract with the PostgreSQL marts
    "fct_daily_prices": "symbol trade_date open high low close adj_close volume daily_return log_return ma_20 ma_50 "
                        "ma_200 volatility_20d high_52w low_52w drawdown load_id schema_version",
    "fct_monthly_performance": "symbol month open high low close adj_close volume monthly_return trading_days "
                               "load_id schema_version",
    "dim_security": "symbol name exchange currency country sector industry valid_from valid_to is_current load_id "
                    "schema_version",
    "dim_date": "trade_date year quarter month day_of_month day_of_week is_month_end previous_trade_date",
    "latest_quotes": "symbol price open high low volume previous_close change change_percent latest_trading_day "
                     "quote_time load_id schema_version",
}  # fmt: skip


def test_every_contract_change_since_the_baseline_has_the_right_version_bump():
    """Fails when a contract file changes incompatibly without a major bump (or adds columns without a minor one).

    After a deliberate, correctly versioned change, copy the new contract into contract_baseline.json.
    """
    baseline = {name: from_dict(doc) for name, doc in json.loads(BASELINE.read_text()).items()}
    current = contracts.all_contracts()
    assert set(baseline) <= set(current), f"tables removed: {set(baseline) - set(current)}"
    problems = [p for name, old in baseline.items() if (p := version_problem(old, current[name]))]
    assert problems == []


def contract_doc(**changes) -> dict:
    doc = {"layer": "gold", "table": "t", "version": "1.2.0", "keys": ["k"],
           "columns": [{"name": "k", "type": "string", "nullable": False},
                       {"name": "v", "type": "double", "nullable": True}]}  # fmt: skip
    doc.update(changes)
    return doc


K = {"name": "k", "type": "string", "nullable": False}
V = {"name": "v", "type": "double", "nullable": True}


@pytest.mark.parametrize(
    ("columns", "change"),
    [
        ([K, V], "none"),
        ([K, V, {"name": "w", "type": "int", "nullable": True}], "minor"),
        ([K, V, {"name": "w", "type": "int", "nullable": False}], "major"),
        ([K], "major"),
        ([K, {**V, "type": "bigint"}], "major"),
        ([K, {**V, "nullable": False}], "major"),
    ],
)  # fmt: skip
def test_adding_a_nullable_column_is_minor_and_anything_else_major(columns, change):
    assert classify_change(from_dict(contract_doc()), from_dict(contract_doc(columns=columns))) == change


def test_a_major_change_without_a_major_bump_is_reported():
    old = from_dict(contract_doc())
    retyped = contract_doc(columns=[{"name": "k", "type": "string", "nullable": False},
                                    {"name": "v", "type": "string", "nullable": True}])  # fmt: skip
    assert "major version" in version_problem(old, from_dict({**retyped, "version": "1.3.0"}))
    assert version_problem(old, from_dict({**retyped, "version": "2.0.0"})) is None


def test_gold_contracts_keep_the_columns_shared_with_the_marts():
    for table, names in GOLD_SHARED_COLUMNS.items():
        assert contracts.load("gold", table).column_names == names.split()


def test_writer_check_names_the_columns_that_differ(spark):
    c = contracts.load("gold", "dim_date")
    df = spark.createDataFrame([], c.ddl().replace("`year` int", "`year` string")).drop("month")
    with pytest.raises(ContractError) as err:
        c.check(df.selectExpr("*", "1 AS extra"))
    message = str(err.value)
    assert "missing columns ['month']" in message
    assert "unexpected columns ['extra']" in message
    assert "column 'year' is string, contract says int" in message


def test_a_broken_contract_file_fails_naming_the_problem():
    with pytest.raises(ContractError, match=r"not MAJOR\.MINOR\.PATCH"):
        from_dict(contract_doc(version="1"))
    with pytest.raises(ContractError, match="keys \\['nope'\\] are not columns"):
        from_dict(contract_doc(keys=["nope"]))
