"""The DuckDB pipeline peer does the project's backfill work: its marts equal the project's, checked so a
single differing value fails the benchmark run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest

from bench import bench_e2e, bench_peers, datasets, duckdb_pipeline
from bench import bench_pipeline_peer as peer
from local import services
from spark_jobs.quality import RULES

TINY = {**peer.DEFAULTS, "symbols": 3, "years": 1}


@pytest.mark.parametrize("table", sorted(RULES))
def test_every_rule_translates_to_sql_duckdb_accepts(table: str) -> None:
    """The peer applies the project's rules themselves: each must bind in DuckDB, or the peer would drop it."""
    con = duckdb.connect()
    columns = {name for rule in RULES[table] for name in _identifiers(rule.expectation)}
    con.execute("CREATE TABLE t (" + ", ".join(f'"{c}" {_type(c)}' for c in sorted(columns)) + ")")
    for rule in RULES[table]:
        con.execute(f"SELECT coalesce(({duckdb_pipeline.duckdb_sql(rule.expectation)}), false) FROM t")


def _identifiers(expectation: str) -> set[str]:
    import re

    words = set(re.findall(r"\b[_a-z][_a-z0-9]*\b", re.sub(r"'[^']*'", "", expectation)))
    sql = {"is", "not", "null", "and", "or", "between", "coalesce", "isnan", "abs", "least", "greatest", "double",
           "d", "e"}  # fmt: skip
    return {w for w in words if w not in sql}


def _type(column: str) -> str:
    if column in ("_is_session",):
        return "BOOLEAN"
    if column.endswith("_date") or column == "_today":
        return "DATE"
    if column in ("symbol", "path_symbol", "action", "name") or column.endswith("_raw"):
        return "VARCHAR"
    return "DOUBLE"


def test_a_bar_that_fails_a_quarantine_rule_never_reaches_the_marts(tmp_path: Path, pg_dsn: str) -> None:
    datasets.write_raw(tmp_path / "raw", 1, 1)
    payload = next((tmp_path / "raw" / datasets.PROVIDER).rglob("*.json"))
    body = json.loads(payload.read_bytes())
    series = body["Time Series (Daily)"]
    broken_day = sorted(series)[100]
    series[broken_day]["2. high"] = "0.5000"  # below its low: ohlc_consistent
    payload.write_text(json.dumps(body))
    dsn = _database(pg_dsn, "peer_quarantine")
    metrics = duckdb_pipeline.run(tmp_path / "raw", dsn, provider=datasets.PROVIDER)
    assert metrics["quarantined_rows"] == 1
    assert metrics["silver_rows"] == metrics["bronze_rows"] - 1 == metrics["daily_rows"]
    with psycopg.connect(dsn) as conn:
        dates = conn.execute("SELECT trade_date::text FROM mart.daily_prices").fetchall()
    assert len(dates) == metrics["daily_rows"] and (broken_day,) not in dates


def _database(pg_dsn: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    admin = make_conninfo(**{**conninfo_to_dict(pg_dsn), "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_conninfo(**{**conninfo_to_dict(pg_dsn), "dbname": name})


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory, endpoints: services.Endpoints) -> Iterator[dict]:
    """Both cases at 3 symbols x 1 year: the project's backfill, then the peer on its RAW files."""
    env = {"LAKEHOUSE_HOME": str(tmp_path_factory.mktemp("peer-home")), "LAKEHOUSE_PG_DSN": endpoints.pg_dsn,
           "LAKEHOUSE_SPARK_REMOTE": endpoints.spark_remote}  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        for name in [n for n in os.environ if n.startswith("ALPHAVANTAGE_")]:
            mp.delenv(name)
        with peer.own_home():
            work = bench_e2e.work_dir()
            work.mkdir(parents=True)
            (work / "plan.json").write_text(json.dumps(bench_e2e.Plan.make(TINY).as_dict()))
        project = peer.project_backfill(TINY)
        duck = peer.duckdb_backfill(TINY)
        yield {"project": project, "duckdb": duck, "project_dsn": bench_e2e._dsn(peer.PROJECT_DATABASE),
               "peer_dsn": bench_e2e._dsn(peer.PEER_DATABASE)}  # fmt: skip


def test_the_peer_loads_the_same_marts_as_the_project(backfilled: dict) -> None:
    project, duck = backfilled["project"], backfilled["duckdb"]
    assert duck["daily_rows"] == project["mart_rows"] == project["bars"] == duck["silver_rows"]
    assert duck["max_relative_difference"] <= 1e-9
    assert duck["refused_files"] == 0 and duck["files"] >= 3 * 3  # bars, splits and dividends per symbol
    assert peer.check_marts(backfilled["project_dsn"], backfilled["peer_dsn"]) <= 1e-9


@pytest.fixture
def peer_marts(backfilled: dict) -> Iterator[str]:
    """The peer's database, for a test to damage; the peer reloads it from RAW afterwards."""
    yield backfilled["peer_dsn"]
    with peer.own_home():
        duckdb_pipeline.run(peer.raw_root(), backfilled["peer_dsn"], load_id="duckdb-backfill")
    assert peer.check_marts(backfilled["project_dsn"], backfilled["peer_dsn"]) <= 1e-9


@pytest.mark.parametrize(
    ("table", "change", "message"),
    [
        ("daily_prices", "SET ma_20 = ma_20 * (1 + 1e-7) WHERE (symbol, trade_date) = "
         "(SELECT symbol, max(trade_date) FROM mart.daily_prices GROUP BY symbol ORDER BY symbol LIMIT 1)",
         r"mart\.daily_prices: ma_20 at \('SAAA', .*relative"),
        ("monthly_performance", "SET monthly_return = NULL WHERE (symbol, month) = "
         "(SELECT symbol, max(month) FROM mart.monthly_performance GROUP BY symbol ORDER BY symbol DESC LIMIT 1)",
         r"mart\.monthly_performance: monthly_return at \('SAAC', .*peer None"),
        ("daily_prices", "SET volume = volume + 1 WHERE trade_date = (SELECT min(trade_date) FROM mart.daily_prices) "
         "AND symbol = 'SAAB'", r"volume at \('SAAB'"),
    ],
    ids=["value off by 1e-7", "NULL on one side", "volume off by one"],
)  # fmt: skip
def test_one_perturbed_mart_value_fails_the_check(peer_marts: str, backfilled: dict, table: str, change: str,
                                                 message: str) -> None:  # fmt: skip
    with psycopg.connect(peer_marts, autocommit=True) as conn:
        assert conn.execute(f"UPDATE mart.{table} {change}").rowcount == 1
    with pytest.raises(bench_peers.PeerMismatch, match=message):
        peer.check_marts(backfilled["project_dsn"], peer_marts)


def test_a_missing_row_fails_the_check(peer_marts: str, backfilled: dict) -> None:
    with psycopg.connect(peer_marts, autocommit=True) as conn:
        deleted = conn.execute("DELETE FROM mart.daily_prices WHERE symbol = 'SAAB' AND trade_date = "
                               "(SELECT max(trade_date) FROM mart.daily_prices)").rowcount  # fmt: skip
    assert deleted == 1
    with pytest.raises(bench_peers.PeerMismatch, match=r"mart\.daily_prices: \d+ rows expected, peer has"):
        peer.check_marts(backfilled["project_dsn"], peer_marts)


def test_a_series_with_a_date_twice_keeps_both_bars_and_the_later_copy_wins(tmp_path: Path, pg_dsn: str) -> None:
    """DuckDB reads a series as a map, which cannot hold a date twice: such a file is read member by
    member, as the project keeps both bars (the later in the file wins)."""
    datasets.write_raw(tmp_path / "raw", 1, 1)
    payload = next((tmp_path / "raw" / datasets.PROVIDER).rglob("*.json"))
    body = json.loads(payload.read_bytes())
    day, bar = next(iter(body["Time Series (Daily)"].items()))
    earlier = json.dumps({**bar, "4. close": bar["3. low"]})  # valid, and different from the later copy
    text = payload.read_text()
    first_bar = text.index('"Time Series (Daily)": {') + len('"Time Series (Daily)": {')
    payload.write_text(f"{text[:first_bar]}{json.dumps(day)}: {earlier}, {text[first_bar:]}")
    dsn = _database(pg_dsn, "peer_twice")
    metrics = duckdb_pipeline.run(tmp_path / "raw", dsn, provider=datasets.PROVIDER)
    assert metrics["bronze_rows"] == metrics["silver_rows"] + 1 == metrics["daily_rows"] + 1
    with psycopg.connect(dsn) as conn:
        close = conn.execute("SELECT close FROM mart.daily_prices WHERE trade_date = %s", (day,)).fetchone()
    assert close == (float(bar["4. close"]),)


def test_a_bar_that_is_not_an_object_stops_the_peer_rather_than_dropping_the_file(tmp_path: Path) -> None:
    """The project rejects such a file; the peer stops rather than comparing unequal work."""
    datasets.write_raw(tmp_path / "raw", 1, 1)
    payload = next((tmp_path / "raw" / datasets.PROVIDER).rglob("*.json"))
    text = payload.read_text()
    first_bar = text.index('"Time Series (Daily)": {') + len('"Time Series (Daily)": {')
    payload.write_text(f'{text[:first_bar]}"2000-01-03": "1.0", "2000-01-03": "2.0", {text[first_bar:]}')
    with pytest.raises(duckdb_pipeline.PipelineError, match="not an object of fields"):
        duckdb_pipeline.run(tmp_path / "raw", "dbname=unused", provider=datasets.PROVIDER)


def test_a_payload_that_differs_from_its_manifest_is_refused(tmp_path: Path, pg_dsn: str) -> None:
    datasets.write_raw(tmp_path / "raw", 2, 1)
    manifest = next((tmp_path / "raw" / "_manifests").rglob("*.json"))
    doc = json.loads(manifest.read_text())
    tampered = doc["files"][0]
    tampered["sha256"] = "0" * 64  # not the sha256 of the bytes in RAW
    manifest.write_text(json.dumps(doc))
    dsn = _database(pg_dsn, "peer_refused")
    metrics = duckdb_pipeline.run(tmp_path / "raw", dsn, provider=datasets.PROVIDER)
    assert (metrics["files"], metrics["refused_files"]) == (1, 1)
    with psycopg.connect(dsn) as conn:
        symbols = conn.execute("SELECT DISTINCT symbol FROM mart.daily_prices").fetchall()
    assert symbols == [(doc["files"][1]["symbol"],)]
