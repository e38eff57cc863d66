"""The RAW layout: every path is built and parsed by one definition, and parsing undoes building."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse.contracts.raw_layout import (
    CaptureLocation,
    ManifestLocation,
    PayloadLocation,
    RawLayoutError,
    days,
    manifest_folder,
    payload_folder,
)

DAY = dt.date(2024, 5, 24)


def test_paths_are_the_documented_layout():
    assert PayloadLocation("synthetic", "daily_bars", DAY, "BRK.B", "run-1").path == (
        "synthetic/daily_bars/ingest_date=2024-05-24/BRK.B/run-1.json"
    )
    assert (
        ManifestLocation("daily_bars", DAY, "run-1").path == "_manifests/daily_bars/ingest_date=2024-05-24/run-1.json"
    )
    moment = dt.datetime(2024, 5, 24, 18, 3, 9, tzinfo=dt.UTC)
    assert CaptureLocation("local", "market-quotes", "2", moment).path == (
        "eventhubs/local/market-quotes/2/2024/05/24/18/03/09.avro"
    )
    assert payload_folder("synthetic", "daily_bars", DAY) == "synthetic/daily_bars/ingest_date=2024-05-24"
    assert manifest_folder("daily_bars", DAY) == "_manifests/daily_bars/ingest_date=2024-05-24"
    assert manifest_folder("daily_bars") == "_manifests/daily_bars"


@pytest.mark.parametrize(
    "location",
    [
        PayloadLocation("alpha_vantage", "security_master", DAY, "RDS-A", "8f14e45f-ceea-467f-a0e6-b2b3c4d5e6f7"),
        PayloadLocation("synthetic", "daily_bars", dt.date(1999, 11, 1), "A", "daily-19991101"),
        ManifestLocation("daily_bars", DAY, "manual-0a1b"),
        CaptureLocation("ns", "market-quotes", "31", dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
    ],
)
def test_parse_is_the_inverse_of_build(location):
    assert type(location).parse(location.path) == location


def test_a_capture_time_in_another_zone_is_placed_by_its_utc_time():
    local = dt.datetime(2024, 5, 24, 20, 3, 9, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    location = CaptureLocation("local", "hub", "0", local)
    assert location.path.endswith("/2024/05/24/18/03/09.avro") and location.day == DAY


@pytest.mark.parametrize(
    "path",
    [
        "synthetic/daily_bars/ingest_date=2024-05-24/AAPL/run-1.txt",  # not a payload suffix
        "synthetic/daily_bars/ingest_date=2024-13-01/AAPL/run-1.json",  # no such month
        "synthetic/daily_bars/2024-05-24/AAPL/run-1.json",  # folder without ingest_date=
        "synthetic/daily_bars/ingest_date=2024-5-24/AAPL/run-1.json",  # not ISO
        "synthetic/daily_bars/ingest_date=2024-05-24/AAPL/extra/run-1.json",  # too deep
        "synthetic/daily_bars/ingest_date=2024-05-24/run-1.json",  # no symbol folder
        "synthetic/daily_bars/ingest_date=2024-05-24/../run-1.json",
        "synthetic/daily_bars/ingest_date=2024-05-24/AAPL/.run-1.json.0a1b.tmp",  # a temporary
        "synthetic//ingest_date=2024-05-24/AAPL/run-1.json",
        "/synthetic/daily_bars/ingest_date=2024-05-24/AAPL/run-1.json",
        "_manifests/daily_bars/ingest_date=2024-05-24/AAPL/run-1.json",  # a reserved folder
    ],
)
def test_malformed_payload_paths_are_refused(path: str):
    with pytest.raises(RawLayoutError):
        PayloadLocation.parse(path)


@pytest.mark.parametrize(
    "path",
    [
        "manifests/daily_bars/ingest_date=2024-05-24/run-1.json",
        "_manifests/daily_bars/run-1.json",
        "_manifests/daily_bars/ingest_date=2024-02-30/run-1.json",
    ],
)
def test_malformed_manifest_paths_are_refused(path: str):
    with pytest.raises(RawLayoutError):
        ManifestLocation.parse(path)


@pytest.mark.parametrize(
    "path",
    [
        "eventhubs/local/hub/0/2024/05/24/18/03/9.avro",
        "eventhubs/local/hub/0/2024/05/24/25/03/09.avro",
        "eventhubs/local/hub/0/2024/05/24/18/03/09.json",
        "capture/local/hub/0/2024/05/24/18/03/09.avro",
        "eventhubs/local/hub/0/2024/05/24/18/03.avro",
    ],
)
def test_malformed_capture_paths_are_refused(path: str):
    with pytest.raises(RawLayoutError):
        CaptureLocation.parse(path)


@pytest.mark.parametrize(
    "location",
    [
        PayloadLocation("synthetic", "daily_bars", DAY, "../AAPL", "run-1"),
        PayloadLocation("synthetic", "daily_bars", DAY, "AAPL", "a/b"),
        PayloadLocation("synthetic", "daily_bars", DAY, "", "run-1"),
        PayloadLocation("synthetic", "daily_bars", DAY, ".hidden", "run-1"),
        PayloadLocation("_manifests", "daily_bars", DAY, "AAPL", "run-1"),
        PayloadLocation("synthetic", "daily_bars", "2024-05-24", "AAPL", "run-1"),  # type: ignore[arg-type]
        ManifestLocation("daily_bars", dt.datetime(2024, 5, 24, tzinfo=dt.UTC), "run-1"),
    ],
)
def test_parts_that_would_break_the_layout_are_refused_when_building(location):
    with pytest.raises(RawLayoutError):
        _ = location.path


def test_days_are_every_calendar_day_of_the_window():
    assert days(dt.date(2024, 2, 28), dt.date(2024, 3, 1)) == [
        dt.date(2024, 2, 28), dt.date(2024, 2, 29), dt.date(2024, 3, 1),
    ]  # fmt: skip
    assert days(DAY, DAY - dt.timedelta(days=1)) == []
