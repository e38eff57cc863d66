"""`lakehouse report`: a self-contained page whose charts are drawn in the browser.

The page is opened in headless Chromium (Debian's ``chromium``, see tests/local/chromium.py) and the
DOM is read back *after* its script ran: the HTML file itself holds no SVG, so every chart element
found proves the page rendered it. Expected marks are computed from the seeded rows.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest

from lakehouse import trading_calendar
from lakehouse.alert_rules import ALERT_RULES
from local.ops_status import connect
from local.report import collect, run_timeline, write_report
from tests.databases import migrated_database
from tests.local import ops_seed as seed
from tests.local.chromium import png_pixels, require_chromium, screenshot
from tests.local.chromium import rendered_dom as chromium_dom
from tests.local.ops_store_db import reset

NOW = seed.at("2024-03-05 23:30")


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


def rendered_dom(chromium: str, page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran."""
    return chromium_dom(page, profile)


class Marks(HTMLParser):
    """Elements of the rendered DOM grouped by the chart (``svg[data-chart]``) they are drawn in."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
        self.body: dict[str, str] = {}
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = values
        if tag == "svg":
            self._chart = values.get("data-chart")
        elif self._chart:
            self.charts[self._chart].append((tag, values))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = None

    def of(self, chart: str, tag: str, attr: str) -> list[dict[str, str]]:
        return [a for t, a in self.charts[chart] if t == tag and attr in a]


@pytest.fixture(scope="module")
def module_dsn(pg_dsn: str) -> Iterator[str]:
    with migrated_database(pg_dsn, "obs_report") as dsn:
        yield dsn


def notebook_output(tables: dict[str, dict]) -> dict:
    return {"runOutput": {"tables": tables}, "executionDuration": 1}


ACTIVITIES = [
    # (pipeline, run, activity, type, status, start, end, attempt, output)
    ("pl_ingest_market_data", "obs-r2-ingest", "ingest_daily_bars", "AzureFunctionActivity", "Failed",
     "22:00:00", "22:00:20", 1, None),
    ("pl_ingest_market_data", "obs-r2-ingest", "ingest_daily_bars", "AzureFunctionActivity", "Succeeded",
     "22:00:30", "22:01:00", 2, None),
    ("pl_lakehouse_daily", "obs-r2", "raw_to_bronze", "DatabricksNotebook", "Succeeded", "22:01:05", "22:02:00", 1,
     notebook_output({"bronze.daily_bars": {"rows_read": 500, "rows_written": 500},
                      "bronze.quotes": {"rows_read": 20, "rows_written": 20}})),
    ("pl_lakehouse_daily", "obs-r2", "bronze_to_silver", "DatabricksNotebook", "Succeeded", "22:02:05", "22:03:30", 1,
     notebook_output({"silver.daily_bars": {"rows_read": 500, "rows_quarantined": 3, "inserted": 490,
                                           "revised": 7, "rows_written": 497}})),
    ("pl_lakehouse_daily", "obs-r2", "silver_to_gold", "DatabricksNotebook", "Succeeded", "22:03:35", "22:05:00", 1,
     notebook_output({"gold.fct_daily_prices": {"rows_written": 497}, "gold.dim_date": {"rows_written": 1}})),
    ("pl_lakehouse_daily", "obs-r2", "gold_to_postgres", "DatabricksNotebook", "Succeeded", "22:05:05", "22:06:00", 1,
     notebook_output({"mart.daily_prices": {"rows_written": 497}})),
]  # fmt: skip


@pytest.fixture
def seeded(module_dsn: str) -> dict:
    """Two daily runs (the last with a retried ingestion in a child pipeline), DQ results, a year of prices."""
    dsn = module_dsn
    reset(dsn)
    seed.pipeline_run(dsn, "obs-r1", "pl_lakehouse_daily", "Failed", "2024-03-04 22:00", "2024-03-04 22:03")
    seed.activity_run(dsn, "obs-r1", "pl_lakehouse_daily", "raw_to_bronze", "DatabricksNotebook", "Succeeded",
                      "2024-03-04 22:00", "2024-03-04 22:01",
                      notebook_output({"bronze.daily_bars": {"rows_read": 40, "rows_written": 40}}))  # fmt: skip
    seed.pipeline_run(dsn, "obs-r2", "pl_lakehouse_daily", "Succeeded", "2024-03-05 22:00", "2024-03-05 22:06")
    seed.pipeline_run(dsn, "obs-r2-ingest", "pl_ingest_market_data", "Succeeded", "2024-03-05 22:00",
                      "2024-03-05 22:01", parent="obs-r2")  # fmt: skip
    for pipeline, run, activity, kind, status, start, end, attempt, output in ACTIVITIES:
        seed.activity_run(dsn, run, pipeline, activity, kind, status, f"2024-03-05 {start}", f"2024-03-05 {end}",
                          output, attempt)  # fmt: skip
    seed.dq_result(dsn, "obs-r2", "silver.daily_bars", "prices_positive", "quarantine", False, 3, "2024-03-05 22:03")
    seed.dq_result(dsn, "obs-r2", "silver.daily_bars", "keys_not_null", "quarantine", True, 0, "2024-03-05 22:03")
    seed.dq_result(dsn, "obs-r2", "silver.daily_bars", "ohlc_consistent", "warn", False, 1, "2024-03-05 22:03")
    days = trading_calendar.sessions(dt.date(2023, 3, 1), dt.date(2024, 3, 5))[-250:]
    prices = {s: seed.daily_prices(dsn, s, days, base=b) for s, b in (("AAPL", 180.0), ("MSFT", 400.0))}
    return {"dsn": dsn, "prices": prices, "days": days}


def test_the_data_of_the_report_follows_the_seeded_runs(seeded: dict) -> None:
    data = collect(seeded["dsn"], symbols=["AAPL"], now=NOW)
    assert (data["timeline"]["run_id"], data["timeline"]["status"]) == ("obs-r2", "Succeeded")
    assert [(a["activity"], a["attempt"]) for a in data["timeline"]["activities"]] == [
        (a[2], a[7]) for a in ACTIVITIES
    ], "child pipeline activities and retries are on the timeline, in start order"
    assert [(r["run_id"], r["rows"]) for r in data["layers"]] == [
        ("obs-r1", {"bronze": 40, "silver": 0, "gold": 0, "mart": 0}),
        ("obs-r2", {"bronze": 520, "silver": 497, "gold": 498, "mart": 497}),
    ]
    assert [(r["rule"], r["passed"]) for r in data["dq"]["rules"]] == [
        ("ohlc_consistent", False), ("prices_positive", False), ("keys_not_null", True),
    ]  # fmt: skip
    (aapl,) = data["prices"]
    assert aapl["dates"] == [d.isoformat() for d in seeded["days"]]
    assert aapl["close"] == [r["close"] for r in seeded["prices"]["AAPL"]]


def test_a_timeline_too_long_to_read_leaves_out_the_deepest_child_runs_first(seeded: dict) -> None:
    with connect(seeded["dsn"]) as conn:
        full = run_timeline(conn, "obs-r2", max_rows=6)
        capped = run_timeline(conn, "obs-r2", max_rows=5)
    assert (len(full["activities"]), full["hidden"]) == (6, 0)
    assert [a["activity"] for a in capped["activities"]] == [a[2] for a in ACTIVITIES if a[0] == "pl_lakehouse_daily"]
    assert capped["hidden"] == 2


def test_the_report_renders_its_charts_in_headless_chromium(seeded: dict, chromium: str, tmp_path: Path) -> None:
    page = write_report(seeded["dsn"], tmp_path / "out" / "report.html", symbols=["AAPL", "MSFT"], now=NOW)
    source = page.read_text()
    assert "<svg" not in source and "http://" not in source.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in source, "nothing is fetched from the network"

    marks = Marks()
    marks.feed(rendered_dom(chromium, page, tmp_path / "profile"))
    assert marks.body.get("data-rendered") == "ok"
    assert set(marks.charts) == {"gantt", "layers", "dq", "price-AAPL", "price-MSFT"}

    bars = marks.of("gantt", "rect", "data-activity")
    assert [(b["data-activity"], b["data-status"]) for b in bars] == [(a[2], a[4]) for a in ACTIVITIES]
    assert all(float(b["width"]) >= 2 for b in bars)

    layer_bars = {
        (b["data-run"], b["data-layer"]): int(b["data-rows"]) for b in marks.of("layers", "rect", "data-layer")
    }
    assert layer_bars[("obs-r2", "bronze")] == 520 and layer_bars[("obs-r2", "mart")] == 497
    assert len(layer_bars) == 2 * 4
    heights = {
        k: float(b["height"])
        for b in marks.of("layers", "rect", "data-layer")
        for k in [(b["data-run"], b["data-layer"])]
    }
    assert heights[("obs-r2", "bronze")] > heights[("obs-r2", "silver")] > heights[("obs-r1", "bronze")] > 0

    dq = {b["data-rule"]: b["data-passed"] for b in marks.of("dq", "rect", "data-rule")}
    assert dq == {"ohlc_consistent": "false", "prices_positive": "false", "keys_not_null": "true"}

    for symbol, rows in seeded["prices"].items():
        lines = {p["data-series"]: int(p["data-points"]) for p in marks.of(f"price-{symbol}", "path", "data-series")}
        expected = {k: sum(1 for r in rows if r[k] is not None) for k in ("close", "ma_20", "ma_50", "ma_200")}
        assert lines == expected == {"close": 250, "ma_20": 231, "ma_50": 201, "ma_200": 51}


def test_an_empty_ops_store_still_renders_a_page(module_dsn: str, chromium: str, tmp_path: Path) -> None:
    reset(module_dsn)
    page = write_report(module_dsn, tmp_path / "empty.html", now=NOW)
    dom = rendered_dom(chromium, page, tmp_path / "profile")
    marks = Marks()
    marks.feed(dom)
    assert marks.body.get("data-rendered") == "ok"
    assert dict(marks.charts) == {}
    assert "No pipeline run recorded yet." in dom and "No prices in mart.daily_prices yet." in dom


def test_a_malformed_symbol_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"invalid symbols for the price chart: \['aapl;drop'\]"):
        write_report("dbname=unused", tmp_path / "r.html", symbols=["AAPL", "aapl;drop"])
    assert not (tmp_path / "r.html").exists()


def gantt_ticks(dom: str) -> list[str]:
    chart = re.search(r'<svg data-chart="gantt".*?</svg>', dom, re.S)
    assert chart, "the gantt chart was drawn"
    return re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', chart.group(0))


def test_a_short_failed_run_reads_in_nice_steps_with_its_error_and_the_alerts(
    module_dsn: str, chromium: str, tmp_path: Path
) -> None:
    dsn = module_dsn
    reset(dsn)
    seed.pipeline_run(dsn, "short-1", "pl_raw_to_bronze", "Failed", "2024-03-05 22:00:00", "2024-03-05 22:00:01.4")
    seed.activity_run(dsn, "short-1", "pl_raw_to_bronze", "raw_to_bronze", "DatabricksNotebook", "Succeeded",
                      "2024-03-05 22:00:00", "2024-03-05 22:00:00.6",
                      notebook_output({"bronze.daily_bars": {"rows_read": 12, "rows_written": 12}}))  # fmt: skip
    seed.activity_run(dsn, "short-1", "pl_raw_to_bronze", "Return summary", "SetVariable", "Failed",
                      "2024-03-05 22:00:00.7", "2024-03-05 22:00:01.4")  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE ops.activity_runs SET error = %s WHERE activity = 'Return summary'",
            (json.dumps({"message": "bronze.daily_bars: <b>file AAPL.json</b> unreadable", "errorCode": "2011"}),),
        )

    data = collect(dsn, now=NOW)
    assert [(f["activity"], f["message"]) for f in data["failures"]] == [
        ("Return summary", "bronze.daily_bars: <b>file AAPL.json</b> unreadable")
    ]
    assert {a["name"] for a in data["alerts"]} == {r.name for r in ALERT_RULES}

    page = write_report(dsn, tmp_path / "short.html", now=NOW)
    dom = rendered_dom(chromium, page, tmp_path / "profile")
    assert 'data-rendered="ok"' in dom
    assert gantt_ticks(dom) == ["0.0 s", "0.5 s", "1.0 s"], "a 1.4 s run is not labelled 0s 1s 1s"
    assert "time since the run started" in dom and "rows written" in dom
    assert re.search(r'class="group-label" data-run="short-1"[^>]*>raw_to_bronze<', dom)
    assert "bronze.daily_bars: &lt;b&gt;file AAPL.json&lt;/b&gt; unreadable" in dom, "shown as text, not markup"
    alerts = re.search(r'<table data-table="alerts">.*?</table>', dom, re.S)
    assert alerts and all(f">{r.name}<" in alerts.group(0) for r in ALERT_RULES)


def test_a_long_run_is_labelled_in_minutes(module_dsn: str, chromium: str, tmp_path: Path) -> None:
    reset(module_dsn)
    seed.pipeline_run(module_dsn, "long-1", "pl_lakehouse_daily", "Succeeded", "2024-03-05 21:00", "2024-03-05 21:47")
    seed.activity_run(module_dsn, "long-1", "pl_lakehouse_daily", "raw_to_bronze", "DatabricksNotebook", "Succeeded",
                      "2024-03-05 21:00", "2024-03-05 21:47")  # fmt: skip
    dom = rendered_dom(chromium, write_report(module_dsn, tmp_path / "long.html", now=NOW), tmp_path / "profile")
    assert gantt_ticks(dom) == ["0 min", "10 min", "20 min", "30 min", "40 min"]


def test_a_screenshot_of_the_report_is_a_drawn_page(seeded: dict, chromium: str, tmp_path: Path) -> None:
    page = write_report(seeded["dsn"], tmp_path / "report.html", symbols=["AAPL"], now=NOW)
    png = screenshot(page, tmp_path / "report.png", tmp_path / "profile", width=1000, height=1400)
    width, height, colours = png_pixels(png)
    assert (width, height) == (1000, 1400)
    assert len(colours) > 20, "the screenshot is not a blank page"
