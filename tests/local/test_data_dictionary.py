"""`lakehouse docs`: the data dictionary and lineage page covers every table, column, rule and writer,
and renders in headless Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from local.data_dictionary import JOBS, collect, mart_tables, pipelines
from spark_jobs.contracts import all_contracts
from spark_jobs.quality import RULES
from tests.local.chromium import png_pixels, rendered_dom, require_chromium, screenshot

LINEAGE_LAYERS = ("bronze", "silver", "gold", "mart")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site" / "dictionary.html"
    done = subprocess.run(
        [sys.executable, "-m", "local.cli", "docs", "--out", str(out)],
        capture_output=True, text=True, env=os.environ.copy(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout.replace("\n", "")
    return out


def test_every_table_is_listed_with_every_column_and_a_writer() -> None:
    data = collect()
    names = {t.name for t in data["tables"]}
    assert set(all_contracts()) | set(mart_tables()) == names
    for table in data["tables"]:
        if table.layer in ("gold", "mart"):
            assert all(c["description"] for c in table.columns), f"{table.name} has undefined columns"
        if table.layer in LINEAGE_LAYERS:
            assert data["writers"][table.name] is not None, f"no job writes {table.name}"
    assert {t.name: [c["type"] for c in t.columns] for t in data["tables"]}["mart.monthly_performance"][:3] == [
        "text", "date", "double precision",
    ]  # fmt: skip


def test_the_lineage_names_only_real_tables_and_notebooks_the_pipelines_run() -> None:
    tables = set(all_contracts()) | set(mart_tables())
    run_by_pipelines = {n for p in pipelines() for n in p["notebooks"]}
    for job in JOBS:
        assert job.notebook in run_by_pipelines, f"{job.notebook} is run by no pipeline of adf/"
        assert all(t in tables for t in job.writes), job.writes
        assert all(t in tables or t.startswith("raw/") for t in job.reads), job.reads
    writes = [t for job in JOBS for t in job.writes if t != "ops.job_state" and t != "ops.processed_files"]
    assert len(writes) == len(set(writes)), "each table has one writer"


def test_the_page_shows_tables_columns_rules_and_pipelines(page: Path) -> None:
    text = page.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text, "self-contained"
    for name, contract in all_contracts().items():
        section = re.search(rf'<article class="table" id="[^"]+" data-table="{re.escape(name)}">(.*?)</article>', text,
                            re.S)  # fmt: skip
        assert section, name
        for column in contract.columns:
            assert f"<code>{column.name}</code>" in section.group(1), (name, column.name)
        for rule in RULES.get(name, ()):
            assert f"<td>{rule.name}</td>" in section.group(1), (name, rule.name)
    for p in pipelines():
        assert f'data-pipeline="{p["name"]}"' in text
    daily = re.search(r'data-table="gold.fct_daily_prices">(.*?)</article>', text, re.S).group(1)
    assert "written by <b>silver_to_gold</b> (pl_silver_to_gold)" in daily
    assert "Highest adjusted high (high scaled like adj_close) over the last 252 sessions." in daily


def test_the_page_renders_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    require_chromium()
    dom = rendered_dom(page, tmp_path / "profile-dom")
    shown = set(re.findall(r'data-table="([a-z_]+\.[a-z_0-9]+)"', dom))
    wanted = {n for n in all_contracts() if n.startswith("gold.")} | set(mart_tables())
    assert wanted <= shown, f"missing from the rendered page: {sorted(wanted - shown)}"
    png = screenshot(page, tmp_path / "docs.png", tmp_path / "profile-shot", width=1000, height=1200)
    width, height, colours = png_pixels(png)
    assert (width, height) == (1000, 1200)
    assert len(colours) > 20, "the screenshot is not a blank page"
