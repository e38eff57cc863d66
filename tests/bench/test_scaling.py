"""The scaling cases run the three jobs on a prefix of the symbols and count every bar through to gold."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bench_scaling, datasets


@pytest.fixture
def bench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoints) -> Path:
    """The environment the harness gives a case: its home and the running Sail server (no DSN here)."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "bench-home"))
    monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", endpoints.spark_remote)
    monkeypatch.delenv("LAKEHOUSE_PG_DSN", raising=False)
    bench_scaling.write_inputs({"symbols": 1, "years": 1})  # RAW for 4 symbols
    return tmp_path / "bench-home"


def test_a_smaller_size_sees_only_the_first_symbols_raw(bench_home: Path) -> None:
    home = bench_home / "scratch"
    bench_scaling._scratch_raw(home, datasets.symbols(2))
    files = sorted(p.parent.name for p in (home / "lake" / "raw" / datasets.PROVIDER).rglob("*.json"))
    assert files == ["BAAA", "BAAB"]


def test_every_bar_of_the_size_reaches_gold_and_the_scratch_lake_is_removed(bench_home: Path) -> None:
    one = bench_scaling.CASES["x1"]({"symbols": 1, "years": 1})
    bars_per_symbol = datasets.template_info(bench_home / "data" / "scaling" / "template")["bars"] // 4
    assert (one["symbols"], one["rows"]) == (1, bars_per_symbol)
    assert one["seconds"] == pytest.approx(sum(one[f"{x}_s"] for x in datasets.LAYERS), abs=0.01)
    assert not list((bench_home / "data" / "scaling" / "runs").iterdir())
