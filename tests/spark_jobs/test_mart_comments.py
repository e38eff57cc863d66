"""The serving database describes mart.daily_prices' columns exactly as the gold contract defines them."""

from __future__ import annotations

import json
from importlib import resources

import psycopg
import pytest

from spark_jobs import migrations
from tests.spark_jobs.serving_data import fresh_database


@pytest.fixture
def migrated_db(pg_dsn: str):
    with fresh_database(pg_dsn) as dsn:
        migrations.apply(dsn)
        yield dsn


def contract_descriptions(layer: str, table: str) -> dict[str, str]:
    doc = json.loads((resources.files("spark_jobs") / "contracts" / layer / f"{table}.json").read_text())
    return {c["name"]: c.get("description") for c in doc["columns"]}


def test_daily_prices_column_comments_equal_the_contract_descriptions(migrated_db):
    wanted = contract_descriptions("gold", "fct_daily_prices")
    assert all(wanted.values()), "every column of gold.fct_daily_prices needs a description"
    with psycopg.connect(migrated_db) as conn:
        got = dict(
            conn.execute(
                "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
                "WHERE a.attrelid = 'mart.daily_prices'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
            ).fetchall()
        )
    assert got == wanted
    assert "adjusted high" in got["high_52w"] and "annualized" in got["volatility_20d"]
