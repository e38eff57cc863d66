"""Lake locations: one mapping from (container, path) to a URI, local or ADLS Gen2."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.lake import Lake, LakePathError
from lakehouse.settings import load_settings


def test_local_lake_is_a_directory_per_container_under_home(tmp_path: Path) -> None:
    lake = Lake.from_settings(load_settings(home=tmp_path))
    assert lake.uri("silver", "daily_bars") == f"{tmp_path}/lake/silver/daily_bars"
    assert lake.local_path("raw", "synthetic/daily_bars") == tmp_path / "lake/raw/synthetic/daily_bars"


def test_adls_lake_puts_each_layer_in_its_container() -> None:
    lake = Lake("abfss://{container}@stlakedev.dfs.core.windows.net")
    assert lake.table("gold", "fct_daily_prices") == (
        "abfss://gold@stlakedev.dfs.core.windows.net/fct_daily_prices"
    )
    assert not lake.is_local
    with pytest.raises(LakePathError):
        lake.local_path("gold", "x")


@pytest.mark.parametrize("bad", ["../etc", "a/../../b", "x y", "a\\b", "%2e%2e"])
def test_path_segments_cannot_escape_the_container(bad: str) -> None:
    with pytest.raises(LakePathError, match="unsafe"):
        Lake("/lake").uri("raw", bad)


def test_unknown_container_is_rejected() -> None:
    with pytest.raises(LakePathError, match="unknown lake container"):
        Lake("/lake").uri("platinum", "t")  # type: ignore[arg-type]
