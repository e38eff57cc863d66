"""Run manifests: one typed model, one reader; a damaged manifest is reported by name and skipped."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from lakehouse.contracts.manifest import DamagedManifest, Manifest, ManifestFile, parse_manifest, read_manifests
from lakehouse.contracts.raw_layout import ManifestLocation
from lakehouse.raw_store import DirectoryRawStore

DAY = dt.date(2024, 3, 1)


def manifest(run_id: str, *records: tuple[str, int]) -> Manifest:
    files = [ManifestFile(path=p, symbol=p.split("/")[3], status="written", records=n) for p, n in records]
    return Manifest(run_id=run_id, dataset="daily_bars", provider="synthetic", ingest_date=DAY, files=files)


def test_what_is_written_reads_back_equal_with_fields_beyond_the_model_kept():
    doc = {"run_id": "r1", "dataset": "daily_bars", "ingest_date": "2024-03-01", "failures": [{"symbol": "X"}],
           "files": [{"path": "p/a.json", "records": 5, "http_status": 200, "attempts": 2}]}  # fmt: skip
    written = Manifest.model_validate(doc).to_json()
    assert json.loads(written) == doc
    assert parse_manifest(written, "m.json") == Manifest.model_validate(doc)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"run_id": "r1", "files": [', "Invalid JSON"),
        (b"\xff\xfe", "Invalid JSON"),
        (b'["r1"]', "document"),
        (b'{"files": []}', "run_id"),
        (b'{"run_id": "r1", "files": [{"path": "p", "records": "5"}]}', "files.0.records"),
        (b'{"run_id": "r1", "files": [{"path": "p", "status": "lost"}]}', "files.0.status"),
    ],
)
def test_a_damaged_manifest_is_an_error_naming_the_file(data: bytes, reason: str):
    with pytest.raises(DamagedManifest, match=r"damaged manifest _manifests/x\.json: .*") as caught:
        parse_manifest(data, "_manifests/x.json")
    assert caught.value.path == "_manifests/x.json" and reason in caught.value.reason


def test_the_reader_returns_good_manifests_and_reports_damaged_ones(tmp_path: Path, caplog):
    store = DirectoryRawStore(tmp_path)
    a = "synthetic/daily_bars/ingest_date=2024-03-01/AAPL/r1.json"
    b = "synthetic/daily_bars/ingest_date=2024-03-02/KO/r2.json"
    store.write_atomic(ManifestLocation("daily_bars", DAY, "r1").path, manifest("r1", (a, 20)).to_json())
    store.write_atomic(
        ManifestLocation("daily_bars", DAY + dt.timedelta(1), "r2").path, manifest("r2", (b, 7)).to_json()
    )
    broken = ManifestLocation("daily_bars", DAY, "r3").path
    store.write_atomic(broken, b'{"run_id": "r3", "files": [{"path": ')
    store.write_atomic("_manifests/daily_bars/ingest_date=2024-03-01/notes.txt", b"not a manifest")
    with caplog.at_level(logging.WARNING, logger="lakehouse.contracts.manifest"):
        scan = read_manifests(store, "daily_bars", [DAY, DAY + dt.timedelta(1), DAY + dt.timedelta(2)])
    assert sorted(m.run_id for m in scan.manifests.values()) == ["r1", "r2"]
    assert scan.records_per_file() == {a: 20, b: 7}
    assert [d.path for d in scan.damaged] == [broken]
    assert broken in caplog.text
