"""Benchmark inputs are deterministic RAW in the ingest function's layout, and their counts are right."""

from __future__ import annotations

import json
from pathlib import Path

from bench import datasets
from spark_jobs import raw


def test_the_same_sizes_give_the_same_bytes_and_the_manifest_counts_every_bar(tmp_path: Path) -> None:
    first = datasets.write_raw(tmp_path / "a", 3, 1)
    second = datasets.write_raw(tmp_path / "b", 3, 1)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json"))
    assert [(tmp_path / "a" / f).read_bytes() for f in files] == [(tmp_path / "b" / f).read_bytes() for f in files]
    manifest = json.loads(next((tmp_path / "a" / "_manifests").rglob("*.json")).read_text())
    parsed = {e["path"]: len(raw.parse_daily_bars((tmp_path / "a" / e["path"]).read_bytes(), e["path"]).records)
              for e in manifest["files"]}  # fmt: skip
    assert parsed == {e["path"]: e["records"] for e in manifest["files"]}
    assert first == second and first["bars"] == sum(parsed.values())
    # one year of XNYS sessions ending 2025-12-31, per symbol
    assert set(parsed.values()) == {250}


def test_a_smaller_data_set_is_a_prefix_of_a_larger_one() -> None:
    assert datasets.symbols(3) == datasets.symbols(500)[:3] == ["BAAA", "BAAB", "BAAC"]
    assert len(set(datasets.symbols(2000))) == 2000
