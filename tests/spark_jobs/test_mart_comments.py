"""The serving database describes every mart table's columns exactly as its gold contract defines them."""

from __future__ import annotations

import json
from importlib import resources

import psycopg
import pytest

from spark_jobs import migrations
from spark_jobs.serving import MART_TABLES
from tests.spark_jobs.serving_data import fresh_database


@pytest.fixture(scope="module")
def migrated_db(pg_dsn: str):
    with fresh_database(pg_dsn) as dsn:
        migrations.apply(dsn)
        yield dsn


def contract_descriptions(layer: str, table: str) -> dict[str, str]:
    doc = json.loads((resources.files("spark_jobs") / "contracts" / layer / f"{table}.json").read_text())
    return {c["name"]: c.get("description") for c in doc["columns"]}


def column_comments(dsn: str, table: str) -> dict[str, str | None]:
    with psycopg.connect(dsn) as conn:
        return dict(
            conn.execute(
                "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (table,),
            ).fetchall()
        )


@pytest.mark.parametrize("mart", sorted(MART_TABLES))
def test_mart_column_comments_equal_the_contract_descriptions(migrated_db, mart: str):
    wanted = contract_descriptions("gold", MART_TABLES[mart].gold)
    assert all(wanted.values()), f"every column of gold.{MART_TABLES[mart].gold} needs a description"
    assert column_comments(migrated_db, f"mart.{mart}") == wanted


def test_daily_prices_comments_say_which_frame_the_metrics_are_in(migrated_db):
    got = column_comments(migrated_db, "mart.daily_prices")
    assert "adjusted high" in got["high_52w"] and "annualized" in got["volatility_20d"]
