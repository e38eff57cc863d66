"""`lakehouse report --out FILE`: one self-contained HTML page about the last runs and the data.

The page needs no network: its data is embedded as JSON and drawn as inline SVG by a small script
written here (no CDN, no library). It shows a Gantt timeline of the last pipeline run's activities
(child pipelines included), the error messages of failed activities of recent runs, rows written
per layer over recent runs, the alert rules' verdicts, data-quality pass/fail per rule, table
freshness, and close prices with their moving averages for chosen symbols.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

import psycopg
from pydantic import ValidationError

from lakehouse import inputs, ops_store
from lakehouse.job_summary import TableSummary
from lakehouse.lake import Lake
from lakehouse.settings import Settings
from local import ops_status
from local.ops_status import connect, table_exists, utc_now

LAYERS = ("bronze", "silver", "gold", "mart")
RECENT_RUNS = 10
MAX_TIMELINE_ROWS = 60
MAX_FAILURES = 20
PRICE_SESSIONS = 260  # about a year, enough to show the 200-session average
DEFAULT_SYMBOL_COUNT = 3


def write_report(
    dsn: str | Settings,
    out_path: str | Path,
    symbols: list[str] | tuple[str, ...] | None = None,
    now: dt.datetime | None = None,
    *,
    lake: Lake | None = None,
) -> Path:
    """Write the report to ``out_path`` and return its path.

    Args:
        dsn: the ops store / serving database DSN, or settings (which also give the lake).
        out_path: the HTML file to write (parent directories are created).
        symbols: symbols for the price chart; default the few with the most recent rows.
        now: the time the report describes (default the clock).
        lake: the lake whose gold tables are checked for freshness (default from settings).
    """
    bad = [s for s in symbols or () if not inputs.is_symbol(s)]
    if bad:
        raise ValueError(f"invalid symbols for the price chart: {bad} (expected tickers such as AAPL or BRK.B)")
    if isinstance(dsn, Settings):
        lake = lake or Lake.from_settings(dsn)
        dsn = ops_status.resolve_dsn(dsn)
    data = collect(dsn, symbols=symbols, now=now, lake=lake)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(out)
    return out


def collect(
    dsn: str,
    symbols: list[str] | tuple[str, ...] | None = None,
    now: dt.datetime | None = None,
    lake: Lake | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as JSON-able data."""
    now = utc_now(now)
    state = ops_status.status(dsn, now=now, lake=lake)
    with connect(dsn) as conn:
        runs = recent_runs(conn, now)
        timeline = run_timeline(conn, runs[0]["run_id"]) if runs else None
        layers = layer_counts(conn, runs)
        dq = dq_rules(conn, state["dq"].get("run_id"))
        prices = price_series(conn, symbols, now)
        failures = failed_activities(conn, runs)
    return {
        "generated_at": now.isoformat(),
        "latest_session": state["latest_session"],
        "pipelines": state["pipelines"],
        "timeline": timeline,
        "failures": failures,
        "layers": layers,
        "alerts": alert_results(dsn, now),
        "dq": {"run_id": state["dq"].get("run_id"), "rules": dq},
        "freshness": state["freshness"],
        "quarantine": state["quarantine"],
        "prices": prices,
    }


def recent_runs(conn: psycopg.Connection, now: dt.datetime, limit: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """Top-level pipeline runs (not children of another run) started by ``now``, newest first."""
    if not table_exists(conn, "ops.pipeline_runs"):
        return []
    return conn.execute(
        "SELECT run_id, pipeline, status, started_at, ended_at FROM ops.pipeline_runs "
        "WHERE parent_run_id IS NULL AND started_at <= %s ORDER BY started_at DESC LIMIT %s",
        (now, limit),
    ).fetchall()


def _tree(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    return ops_store.run_tree(conn, [run_id])


def error_message(error: Any) -> str | None:
    """The message of an activity's recorded error (ADF's ``{"message": ..., "errorCode": ...}``)."""
    if not error:
        return None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("errorCode") or json.dumps(error))
    return str(error)


def failed_activities(
    conn: psycopg.Connection, runs: list[dict[str, Any]], limit: int = MAX_FAILURES
) -> list[dict[str, Any]]:
    """Failed activity attempts of the recent runs' trees, newest first, with their error messages."""
    ids = {r["run_id"]: run["run_id"] for run in runs for r in _tree(conn, run["run_id"])}
    if not ids:
        return []
    rows = conn.execute(
        "SELECT pipeline_run_id, pipeline, activity, attempt, started_at, error FROM ops.activity_runs "
        "WHERE pipeline_run_id = ANY(%s) AND status = 'Failed' ORDER BY started_at DESC, attempt DESC LIMIT %s",
        (list(ids), limit),
    ).fetchall()
    return [
        {
            "run_id": ids[r["pipeline_run_id"]],
            "pipeline_run_id": r["pipeline_run_id"],
            "pipeline": r["pipeline"],
            "activity": r["activity"],
            "attempt": r["attempt"],
            "started_at": r["started_at"].isoformat(),
            "message": error_message(r["error"]) or "no error message recorded",
        }
        for r in rows
    ]


def alert_results(dsn: str, now: dt.datetime) -> list[dict[str, Any]]:
    """The alert rules evaluated at ``now`` (as `lakehouse alerts` does), without their evidence rows."""
    from local.alerts import evaluate_alerts

    keep = ("name", "severity", "state", "fires", "reason")
    return [{k: r.get(k) for k in keep} for r in evaluate_alerts(dsn, now=now)]


def run_timeline(conn: psycopg.Connection, run_id: str, max_rows: int = MAX_TIMELINE_ROWS) -> dict[str, Any]:
    """The activities of a run and of its child pipeline runs, in start order.

    A backfill's tree holds hundreds of activities; past ``max_rows`` the deepest nesting levels
    are left out first (the top-level run is always shown) and the count left out is reported.
    """
    head = conn.execute(
        "SELECT run_id, pipeline, status, started_at, ended_at FROM ops.pipeline_runs WHERE run_id = %s", (run_id,)
    ).fetchone()
    depth = {r["run_id"]: r["depth"] for r in _tree(conn, run_id)}
    all_rows = conn.execute(
        "SELECT pipeline_run_id, pipeline, activity, activity_type, status, attempt, started_at, ended_at, error "
        "FROM ops.activity_runs WHERE pipeline_run_id = ANY(%s) ORDER BY started_at, attempt",
        (list(depth),),
    ).fetchall()
    deepest = 0
    for level in sorted(set(depth.values())):
        if level == 0 or sum(1 for r in all_rows if depth[r["pipeline_run_id"]] <= level) <= max_rows:
            deepest = level
    rows = [r for r in all_rows if depth[r["pipeline_run_id"]] <= deepest][:max_rows]
    return {
        "run_id": head["run_id"],
        "pipeline": head["pipeline"],
        "status": head["status"],
        "start": head["started_at"].isoformat(),
        "end": (
            head["ended_at"] or max([r["ended_at"] or r["started_at"] for r in rows], default=head["started_at"])
        ).isoformat(),
        "hidden": len(all_rows) - len(rows),
        "activities": [
            {
                "pipeline": r["pipeline"],
                "activity": r["activity"],
                "type": r["activity_type"],
                "status": r["status"],
                "attempt": r["attempt"],
                "start": r["started_at"].isoformat(),
                "end": (r["ended_at"] or r["started_at"]).isoformat(),
                "error": error_message(r["error"]) if r["status"] == "Failed" else None,
            }
            for r in rows
        ],
    }


def _rows_written(counts: Any) -> int:
    """Rows a table's entry of a job summary says were written; 0 for an entry of another shape."""
    try:
        return TableSummary.model_validate(counts).rows_written
    except ValidationError:
        return 0


def layer_counts(conn: psycopg.Connection, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows written per layer by each run (its whole tree), oldest run first.

    Sources: the notebooks' exit summaries (:class:`~lakehouse.job_summary.JobSummary` in
    ``activity_runs.output.runOutput``, tables keyed like ``silver.daily_bars``) and, for the
    marts, ``ops.load_audit`` rows of succeeded loads.
    """
    has_audit = table_exists(conn, "ops.load_audit")
    out = []
    for run in reversed(runs):
        ids = [r["run_id"] for r in _tree(conn, run["run_id"])]
        totals = dict.fromkeys(LAYERS, 0)
        outputs = conn.execute(
            "SELECT output -> 'runOutput' -> 'tables' AS tables FROM ops.activity_runs "
            "WHERE pipeline_run_id = ANY(%s) AND status = 'Succeeded' "
            "AND jsonb_typeof(output -> 'runOutput' -> 'tables') = 'object'",
            (ids,),
        ).fetchall()
        for row in outputs:
            for table, counts in row["tables"].items():
                layer = table.split(".", 1)[0]
                if layer in totals:
                    totals[layer] += _rows_written(counts)
        if has_audit and not totals["mart"]:
            loaded = conn.execute(
                "SELECT coalesce(sum(rows_loaded), 0) AS n FROM ops.load_audit "
                "WHERE load_id = ANY(%s) AND status = 'succeeded'",
                (ids,),
            ).fetchone()["n"]
            totals["mart"] = int(loaded)
        out.append(
            {
                "run_id": run["run_id"],
                "pipeline": run["pipeline"],
                "status": run["status"],
                "started_at": run["started_at"].isoformat(),
                "rows": totals,
            }
        )
    return out


def dq_rules(conn: psycopg.Connection, run_id: str | None) -> list[dict[str, Any]]:
    if run_id is None:
        return []
    return [
        dict(r)
        for r in conn.execute(
            "SELECT table_name, rule, severity, passed, failed_count FROM ops.dq_results WHERE run_id = %s "
            "ORDER BY passed, table_name, rule",
            (run_id,),
        )
    ]


def price_series(
    conn: psycopg.Connection, symbols: list[str] | tuple[str, ...] | None, now: dt.datetime
) -> list[dict[str, Any]]:
    """Close and moving averages of the last :data:`PRICE_SESSIONS` sessions per symbol."""
    if not table_exists(conn, "mart.daily_prices"):
        return []
    if not symbols:
        symbols = [
            r["symbol"]
            for r in conn.execute(
                "SELECT symbol FROM mart.daily_prices GROUP BY symbol ORDER BY max(trade_date) DESC, symbol LIMIT %s",
                (DEFAULT_SYMBOL_COUNT,),
            )
        ]
    series = []
    for symbol in symbols:
        rows = conn.execute(
            "SELECT trade_date, close, ma_20, ma_50, ma_200 FROM ("
            "  SELECT * FROM mart.daily_prices WHERE symbol = %s AND trade_date <= %s"
            "  ORDER BY trade_date DESC LIMIT %s) recent ORDER BY trade_date",
            (symbol, now.date(), PRICE_SESSIONS),
        ).fetchall()
        series.append(
            {
                "symbol": symbol,
                "dates": [r["trade_date"].isoformat() for r in rows],
                **{k: [r[k] for r in rows] for k in ("close", "ma_20", "ma_50", "ma_200")},
            }
        )
    return series


def _json_for_script(data: Any) -> str:
    """JSON that cannot close its <script> element."""
    text = json.dumps(data, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(data: dict[str, Any]) -> str:
    title = f"Lakehouse report {data['generated_at'][:16].replace('T', ' ')} UTC"
    return (
        _PAGE.replace("__TITLE__", html.escape(title))
        .replace("__STYLE__", _STYLE)
        .replace("__DATA__", _json_for_script(data))
        .replace("__SCRIPT__", _SCRIPT)
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<header><h1>__TITLE__</h1><p id="subtitle"></p></header>
<noscript><p class="warn">The charts are drawn by the page's own script; enable JavaScript to see them.</p></noscript>
<div id="errors" class="warn" hidden></div>
<section><h2>Last pipeline run</h2><div id="gantt" class="chart"></div></section>
<section><h2>Failed activities, recent runs</h2><div id="failures"></div></section>
<section><h2>Rows written per layer, recent runs</h2><div id="layers" class="chart"></div></section>
<section><h2>Alerts</h2><div id="alerts"></div></section>
<section><h2>Data quality, last run</h2><div id="dq" class="chart"></div></section>
<section class="two">
  <div><h2>Freshness</h2><div id="freshness"></div></div>
  <div><h2>Quarantine</h2><div id="quarantine"></div></div>
</section>
<section><h2>Prices</h2><div id="prices"></div></section>
<script type="application/json" id="report-data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f2933;
       background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 8px; }
header p { color: #52606d; margin: 0; }
section { margin-bottom: 16px; } .two { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
.chart svg { display: block; max-width: 100%; height: auto; }
.warn { background: #fff3c4; padding: 8px; border-radius: 4px; }
.empty { color: #7b8794; font-style: italic; }
table { border-collapse: collapse; } td, th { padding: 2px 14px 2px 0; text-align: left; white-space: nowrap; }
.chip { padding: 1px 8px; border-radius: 8px; color: #fff; font-size: 12px; }
.fresh { background: #2f9e44; } .stale { background: #e03131; } .empty-state { background: #868e96; }
.legend span { margin-right: 14px; font-size: 12px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
svg text { font-size: 11px; fill: #3e4c59; } svg text.axis-title { font-size: 12px; fill: #1f2933; font-weight: 600; }
svg text.group-label { font-weight: 600; }
td { vertical-align: top; }
#failures td:last-child, #alerts td:last-child { white-space: normal; max-width: 560px; }
"""

# The page's renderer: reads the embedded JSON and builds SVG with DOM calls (text via textContent,
# so names from the data are never parsed as markup).
_SCRIPT = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var STATUS = {Succeeded: "#2f9e44", Failed: "#e03131", Skipped: "#adb5bd", InProgress: "#1c7ed6",
                Cancelled: "#f08c00"};
  var LAYER = {bronze: "#b08968", silver: "#868e96", gold: "#f2b705", mart: "#1c7ed6"};
  var SERIES = {close: "#1f2933", ma_20: "#1c7ed6", ma_50: "#f08c00", ma_200: "#e03131"};
  var data = JSON.parse(document.getElementById("report-data").textContent);

  function svg(tag, attrs, parent, text) {
    var node = document.createElementNS(NS, tag);
    for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]); }
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function html(tag, attrs, parent, text) {
    var node = document.createElement(tag);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function empty(container, text) { html("p", {"class": "empty"}, container, text); }
  function root(container, name, width, height) {
    return svg("svg", {"data-chart": name, viewBox: "0 0 " + width + " " + height, width: width, height: height,
                       role: "img"}, container);
  }
  function fmt(n) { return n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e3 ? (n / 1e3).toFixed(1) + "k" : String(n); }
  function niceMax(v) {
    if (v <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    return Math.ceil(v / p) * p;
  }
  // A time axis step people read: 1, 2 or 5 times a power of ten below a minute, then whole
  // minutes and hours (1, 2, 5, 10, 15, 30 of them).
  function timeStep(seconds, ticks) {
    var raw = seconds / ticks, steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                                        21600, 43200, 86400];
    if (raw < 1) {
      var p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
      return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
    }
    for (var i = 0; i < steps.length; i++) { if (steps[i] >= raw) return steps[i]; }
    return Math.ceil(raw / 86400) * 86400;
  }
  function duration(v, step) {
    if (step < 1) return v.toFixed(Math.max(0, -Math.floor(Math.log10(step)))) + " s";
    if (step < 60) return Math.round(v) + " s";
    var h = Math.floor(v / 3600), m = Math.round((v - h * 3600) / 60);
    return h ? h + " h" + (m ? " " + m + " min" : "") : m + " min";
  }
  function legend(container, colors) {
    var box = html("div", {"class": "legend"}, container);
    Object.keys(colors).forEach(function (k) {
      var item = html("span", {}, box); html("i", {"class": "swatch", style: "background:" + colors[k]}, item);
      item.appendChild(document.createTextNode(k));
    });
  }

  function gantt() {
    var box = document.getElementById("gantt"), t = data.timeline;
    if (!t || !t.activities.length) { empty(box, "No pipeline run recorded yet."); return; }
    var t0 = Date.parse(t.start), t1 = Math.max(Date.parse(t.end), t0 + 1000);
    var rowH = 22, left = 330, width = 960, plot = width - left - 20, top = 24;
    var height = top + t.activities.length * rowH + 48;
    var s = root(box, "gantt", width, height);
    svg("text", {x: 0, y: 14}, s, t.pipeline + "  " + t.run_id + "  " + t.status);
    var seconds = (t1 - t0) / 1000, step = timeStep(seconds, 6);
    for (var k = 0; k * step <= seconds + 1e-9; k++) {
      var v = k * step, gx = left + plot * v / seconds;
      svg("line", {x1: gx, x2: gx, y1: top, y2: height - 42, stroke: "#e4e7eb"}, s);
      svg("text", {"class": "tick", x: gx, y: height - 28, "text-anchor": "middle"}, s, duration(v, step));
    }
    svg("text", {"class": "axis-title", x: left + plot / 2, y: height - 6, "text-anchor": "middle"}, s,
        "time since the run started (run took " + duration(seconds, seconds < 60 ? 0.1 : 60) + ")");
    t.activities.forEach(function (a, i) {
      var y = top + i * rowH, x = left + plot * (Date.parse(a.start) - t0) / (t1 - t0);
      var w = Math.max(2, plot * (Date.parse(a.end) - Date.parse(a.start)) / (t1 - t0));
      var label = (a.pipeline !== t.pipeline ? a.pipeline + " / " : "") + a.activity +
                  (a.attempt > 1 ? " #" + a.attempt : "");
      svg("text", {x: left - 6, y: y + 15, "text-anchor": "end"}, s,
          label.length > 52 ? label.slice(0, 51) + "\u2026" : label);
      var bar = svg("rect", {"class": "bar", "data-activity": a.activity, "data-status": a.status, x: x, y: y + 3,
                             width: w, height: rowH - 6, rx: 3, fill: STATUS[a.status] || "#495057"}, s);
      svg("title", {}, bar, a.activity + " (" + a.type + "): " + a.status + ", " +
          ((Date.parse(a.end) - Date.parse(a.start)) / 1000).toFixed(1) + " s" + (a.error ? ": " + a.error : ""));
    });
    legend(box, STATUS);
    if (t.hidden) {
      html("p", {"class": "empty"}, box, t.hidden + " activities of deeper nested pipeline runs are not shown.");
    }
  }

  function layers() {
    var box = document.getElementById("layers"), runs = data.layers;
    if (!runs.length) { empty(box, "No runs recorded yet."); return; }
    var keys = Object.keys(LAYER), width = 960, height = 300, left = 80, bottom = 72, top = 10;
    var plotW = width - left - 10, plotH = height - top - bottom;
    var max = niceMax(Math.max.apply(null, runs.map(function (r) {
      return Math.max.apply(null, keys.map(function (k) { return r.rows[k]; }));
    })));
    var s = root(box, "layers", width, height);
    for (var i = 0; i <= 4; i++) {
      var gy = top + plotH - plotH * i / 4;
      svg("line", {x1: left, x2: width - 10, y1: gy, y2: gy, stroke: "#e4e7eb"}, s);
      svg("text", {"class": "tick", x: left - 6, y: gy + 4, "text-anchor": "end"}, s, fmt(max * i / 4));
    }
    svg("text", {"class": "axis-title", x: 14, y: top + plotH / 2, "text-anchor": "middle",
                 transform: "rotate(-90 14 " + (top + plotH / 2) + ")"}, s, "rows written");
    svg("text", {"class": "axis-title", x: left + plotW / 2, y: height - 4, "text-anchor": "middle"}, s,
        "run (pipeline, start time UTC, status); bars: " + keys.join(", "));
    var groupW = plotW / runs.length, barW = Math.min(28, (groupW - 12) / keys.length);
    runs.forEach(function (r, g) {
      var gx = left + g * groupW + (groupW - barW * keys.length) / 2;
      keys.forEach(function (k, j) {
        var h = plotH * r.rows[k] / max;
        var bar = svg("rect", {"class": "bar", "data-layer": k, "data-run": r.run_id, "data-rows": r.rows[k],
                               x: gx + j * barW, y: top + plotH - h, width: barW - 2, height: h, fill: LAYER[k]}, s);
        svg("title", {}, bar, r.run_id + " " + k + ": " + r.rows[k] + " rows");
      });
      var cx = left + g * groupW + groupW / 2, total = keys.reduce(function (n, k) { return n + r.rows[k]; }, 0);
      svg("line", {x1: left + g * groupW, x2: left + g * groupW, y1: top, y2: top + plotH, stroke: "#f0f4f8"}, s);
      svg("text", {"class": "group-label", "data-run": r.run_id, x: cx, y: height - 58, "text-anchor": "middle"}, s,
          r.pipeline.replace(/^pl_/, ""));
      svg("text", {x: cx, y: height - 45, "text-anchor": "middle"}, s,
          r.started_at.slice(5, 10) + " " + r.started_at.slice(11, 16));
      svg("text", {x: cx, y: height - 32, "text-anchor": "middle", fill: STATUS[r.status] || "#495057"}, s,
          r.status + (total ? "" : ", no rows"));
    });
    legend(box, LAYER);
  }

  function dq() {
    var box = document.getElementById("dq"), rules = data.dq.rules;
    if (!rules.length) { empty(box, "No data-quality results recorded yet."); return; }
    var rowH = 20, left = 420, width = 960, top = 20, height = top + rules.length * rowH + 10;
    var max = Math.max(1, Math.max.apply(null, rules.map(function (r) { return r.failed_count; })));
    var s = root(box, "dq", width, height);
    svg("text", {x: 0, y: 12}, s, "run " + data.dq.run_id + ": failing rows per rule");
    rules.forEach(function (r, i) {
      var y = top + i * rowH;
      svg("text", {x: left - 22, y: y + 14, "text-anchor": "end"}, s,
          r.table_name + "." + r.rule + " (" + r.severity + ")");
      svg("circle", {cx: left - 10, cy: y + 10, r: 5, fill: r.passed ? "#2f9e44" : "#e03131"}, s);
      var w = r.passed ? 0 : Math.max(3, (width - left - 60) * Math.log(1 + r.failed_count) / Math.log(1 + max));
      var color = r.severity === "fail" ? "#e03131" : r.severity === "quarantine" ? "#f08c00" : "#fab005";
      svg("rect", {"class": "bar", "data-rule": r.rule, "data-passed": String(r.passed), x: left, y: y + 4, width: w,
                   height: rowH - 8, fill: color}, s);
      svg("text", {x: left + w + 6, y: y + 14}, s, r.passed ? "pass" : fmt(r.failed_count) + " failed");
    });
  }

  function tableOf(container, head, rows) {
    var t = html("table", {}, container), tr = html("tr", {}, t);
    head.forEach(function (h) { html("th", {}, tr, h); });
    rows.forEach(function (r) {
      var row = html("tr", {}, t);
      r.forEach(function (c) {
        if (c instanceof Node) { html("td", {}, row).appendChild(c); }
        else { html("td", {}, row, c === null ? "" : String(c)); }
      });
    });
    return t;
  }

  function failures() {
    var box = document.getElementById("failures");
    if (!data.failures.length) { empty(box, "No failed activity in the recent runs."); return; }
    tableOf(box, ["run", "pipeline / activity", "attempt", "started (UTC)", "error"], data.failures.map(function (f) {
      return [f.run_id, f.pipeline + " / " + f.activity, f.attempt, f.started_at.slice(0, 19).replace("T", " "),
              f.message];
    })).setAttribute("data-table", "failures");
  }

  function alerts() {
    var box = document.getElementById("alerts");
    if (!data.alerts.length) { empty(box, "No alert rules."); return; }
    var fired = data.alerts.filter(function (a) { return a.fires; });
    html("p", {}, box, fired.length ? fired.length + " alert(s) firing: " +
         fired.map(function (a) { return a.name; }).join(", ") : "No alert firing.");
    tableOf(box, ["state", "rule", "severity", "reason"], data.alerts.map(function (a) {
      var chip = document.createElement("span");
      chip.className = "chip " + (a.state === "firing" || a.state === "error" ? "stale" : a.state === "ok" ? "fresh"
                                  : "empty-state");
      chip.textContent = a.state;
      return [chip, a.name, a.severity, a.reason];
    })).setAttribute("data-table", "alerts");
  }

  function freshness() {
    var box = document.getElementById("freshness");
    if (!data.freshness.length) { empty(box, "No gold or mart tables yet."); }
    else {
      tableOf(box, ["table", "state", "latest", "expected", "behind"], data.freshness.map(function (f) {
        var chip = document.createElement("span");
        chip.className = "chip " + (f.state === "empty" ? "empty-state" : f.state);
        chip.textContent = f.state;
        return [f.table, chip, f.latest, f.expected, f.lag ? f.lag + " " + f.lag_unit : ""];
      }));
    }
    var q = document.getElementById("quarantine");
    if (!data.quarantine.tables || !data.quarantine.tables.length) { empty(q, "Nothing quarantined."); }
    else {
      tableOf(q, ["source table", "rows", "from last run"], data.quarantine.tables.map(function (t) {
        return [t.source_table, t.total, t.last_run];
      }));
    }
  }

  function prices() {
    var box = document.getElementById("prices");
    if (!data.prices.length) { empty(box, "No prices in mart.daily_prices yet."); return; }
    data.prices.forEach(function (p) {
      html("h3", {}, box, p.symbol);
      if (!p.dates.length) { empty(box, "No rows for " + p.symbol + "."); return; }
      var width = 960, height = 280, left = 60, right = 20, top = 10, bottom = 30;
      var plotW = width - left - right, plotH = height - top - bottom, n = p.dates.length;
      var values = [];
      Object.keys(SERIES).forEach(function (k) { p[k].forEach(function (v) { if (v !== null) values.push(v); }); });
      var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values), pad = (hi - lo) * 0.05 || 1;
      lo -= pad; hi += pad;
      var s = root(box, "price-" + p.symbol, width, height);
      function X(i) { return left + (n === 1 ? plotW / 2 : plotW * i / (n - 1)); }
      function Y(v) { return top + plotH - plotH * (v - lo) / (hi - lo); }
      for (var i = 0; i <= 4; i++) {
        var v = lo + (hi - lo) * i / 4;
        svg("line", {x1: left, x2: width - right, y1: Y(v), y2: Y(v), stroke: "#e4e7eb"}, s);
        svg("text", {x: left - 6, y: Y(v) + 4, "text-anchor": "end"}, s, v.toFixed(2));
      }
      svg("text", {x: left, y: height - 8}, s, p.dates[0]);
      svg("text", {x: width - right, y: height - 8, "text-anchor": "end"}, s, p.dates[n - 1]);
      Object.keys(SERIES).forEach(function (k) {
        var d = "", points = 0;
        p[k].forEach(function (v, i) {
          if (v === null) return;
          d += (points === 0 ? "M" : "L") + X(i).toFixed(1) + "," + Y(v).toFixed(1);
          points += 1;
        });
        if (points) {
          svg("path", {"class": "series", "data-series": k, "data-points": points, d: d, fill: "none",
                       stroke: SERIES[k], "stroke-width": k === "close" ? 1.6 : 1.2}, s);
        }
      });
      legend(box, SERIES);
    });
  }

  var errors = [];
  [gantt, failures, layers, alerts, dq, freshness, prices].forEach(function (draw) {
    try { draw(); } catch (e) { errors.push(draw.name + ": " + e.message); }
  });
  document.getElementById("subtitle").textContent = "Latest XNYS session " + data.latest_session +
      (data.timeline ? "; last run " + data.timeline.pipeline + " " + data.timeline.status : "");
  if (errors.length) {
    var box = document.getElementById("errors");
    box.hidden = false;
    box.textContent = errors.join("; ");
  }
  document.body.setAttribute("data-rendered", errors.length ? "with-errors" : "ok");
})();
"""
