"""The transform tests' fixtures: each test's lake is its own, whatever the shell running the suite exports."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse.lake import Lake


@pytest.fixture
def exporting_shell(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """A shell left with another run's settings exported: a shared lake, a DSN of a server since stopped."""
    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", str(tmp_path / "shared-lake"))
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", "postgresql://postgres@127.0.0.1:9/gone")
    monkeypatch.setenv("LAKEHOUSE_PROVIDER", "alpha_vantage")


def test_a_transform_test_lake_takes_nothing_from_the_shell(exporting_shell, lake_settings, tmp_path):
    assert Lake.from_settings(lake_settings).root == str((tmp_path / "home" / "lake").resolve())
    assert (lake_settings.pg_dsn, lake_settings.provider) == (None, "synthetic")


def test_a_second_raw_lake_on_the_same_lake_writes_later_ingestions(lake_settings):
    """Files' times are their ingestion times: a RawLake opened on a lake that holds files goes on
    after them, so a test using two never ties the second one's files with the first one's."""
    from tests.spark_jobs.raw_files import RawLake, random_walk_bars

    lake = Lake.from_settings(lake_settings)
    bars = random_walk_bars([dt.date(2024, 3, 1)], seed=1)
    first = [RawLake(lake).daily_bars("AAPL", bars, "2024-03-01", run_id=f"h{i}") for i in range(3)]
    second = RawLake(lake).daily_bars("AAPL", bars, "2024-03-04", run_id="d")
    root = lake.local_path("raw")
    assert (root / second).stat().st_mtime > max((root / f).stat().st_mtime for f in first)
