"""`lakehouse docs --out FILE`: the data dictionary and lineage page, generated from what the code runs.

Every table comes from its contract (columns, types, keys, descriptions), the data-quality rules
from :data:`spark_jobs.quality.RULES`, the marts from :data:`spark_jobs.serving.MART_TABLES` and
the pipelines from ``adf/pipeline/*.json``, so the page cannot drift from the platform. The only
hand-written part is :data:`JOBS`: which tables each notebook reads and writes, checked by a test
against the contracts and the pipelines. The page is static HTML with its style inline: no script,
no network.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from spark_jobs.contracts import TYPES, Contract, all_contracts

LAYERS = ("bronze", "silver", "gold", "mart", "ops")
PIPELINE_DIR = Path(__file__).resolve().parents[1] / "adf" / "pipeline"


@dataclass(frozen=True)
class Job:
    """One notebook: each table it writes and what that table is made from (lake tables, RAW datasets)."""

    notebook: str
    summary: str
    writes: dict[str, tuple[str, ...]]

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(source for sources in self.writes.values() for source in sources))


_BRONZE_SOURCES = ("bronze.daily_bars", "bronze.corporate_actions", "bronze.security_overview", "bronze.quotes")
_MART_SOURCE = "ops.gold_changes"  # which gold rows changed since the last load

JOBS: tuple[Job, ...] = (
    Job(
        "raw_to_bronze",
        "Parses the RAW JSON and CSV files of a window into typed-as-text bronze rows; unreadable files "
        "go to bronze.rejected_files.",
        {
            "bronze.daily_bars": ("raw/daily_bars",),
            "bronze.corporate_actions": ("raw/corporate_actions",),
            "bronze.security_overview": ("raw/security_overview",),
            "bronze.quotes": ("raw/quotes",),
            "bronze.rejected_files": ("raw/daily_bars", "raw/corporate_actions", "raw/security_overview",
                                      "raw/quotes"),
        },
    ),
    Job(
        "bronze_to_silver",
        "Types, deduplicates and checks the bronze rows with the data-quality rules; merges the good rows "
        "by key and quarantines the others.",
        {
            "silver.daily_bars": ("bronze.daily_bars", "ops.processed_files"),
            "silver.corporate_actions": ("bronze.corporate_actions", "ops.processed_files"),
            "silver.securities": ("bronze.security_overview", "ops.processed_files"),
            "silver.quotes": ("bronze.quotes", "ops.processed_files"),
            "silver.quarantine": _BRONZE_SOURCES,
            "ops.processed_files": _BRONZE_SOURCES,
        },
    ),
    Job(
        "silver_to_gold",
        "Recomputes the analytics of the symbols whose silver rows changed since its watermark: adjustment "
        "factors, daily prices with rolling metrics, monthly performance, dimensions, latest quotes.",
        {
            "gold.adjustment_factors": ("silver.daily_bars", "silver.corporate_actions"),
            "gold.dim_date": ("silver.daily_bars",),
            "gold.dim_security": ("silver.securities", "ops.job_state"),
            "gold.fct_daily_prices": ("silver.daily_bars", "silver.corporate_actions", "ops.job_state"),
            "gold.fct_monthly_performance": ("silver.daily_bars", "silver.corporate_actions", "ops.job_state"),
            "gold.latest_quotes": ("silver.quotes", "ops.job_state"),
            "ops.gold_changes": ("silver.daily_bars", "silver.corporate_actions", "silver.securities",
                                 "silver.quotes"),
            "ops.job_state": ("silver.daily_bars", "silver.corporate_actions", "silver.securities", "silver.quotes"),
        },
    ),
    Job(
        "gold_to_postgres",
        "Loads the changed gold rows into the PostgreSQL marts in one transaction per load, audited in "
        "ops.load_audit.",
        {
            "mart.dim_security": ("gold.dim_security", _MART_SOURCE),
            "mart.daily_prices": ("gold.fct_daily_prices", _MART_SOURCE),
            "mart.monthly_performance": ("gold.fct_monthly_performance", _MART_SOURCE),
            "mart.latest_quotes": ("gold.latest_quotes", _MART_SOURCE),
        },
    ),
)  # fmt: skip


@dataclass(frozen=True)
class TableDoc:
    """One table of the dictionary: its columns and where it comes from."""

    name: str  # layer.table
    layer: str
    version: str
    keys: tuple[str, ...]
    columns: tuple[dict[str, Any], ...]  # name, type, postgres, nullable, description
    mirrors: str | None = None  # a mart's gold table


def descriptions(contract: Contract) -> dict[str, str]:
    """Column descriptions of a contract file (the contract loader keeps only what writers check)."""
    ref = resources.files("spark_jobs") / "contracts" / contract.layer / f"{contract.table}.json"
    return {c["name"]: c.get("description") or "" for c in json.loads(ref.read_text())["columns"]}


def _columns(contract: Contract, postgres_only: bool = False) -> tuple[dict[str, Any], ...]:
    described = descriptions(contract)
    return tuple(
        {
            "name": c.name,
            "type": TYPES[c.type].postgres if postgres_only else c.type,
            "postgres": TYPES[c.type].postgres,
            "nullable": c.nullable,
            "description": described.get(c.name, ""),
        }
        for c in contract.columns
    )


def mart_tables() -> dict[str, str]:
    """Each mart table (``mart.x``) and the gold table it mirrors (``gold.y``)."""
    from spark_jobs.serving import MART_TABLES

    return {f"mart.{t.name}": f"gold.{t.gold}" for t in MART_TABLES.values()}


def tables() -> list[TableDoc]:
    """Every lake table from its contract and every mart table, in layer order."""
    contracts = all_contracts()
    docs = [TableDoc(c.qualified_name, c.layer, c.version, c.keys, _columns(c)) for c in contracts.values()]
    for mart, gold in mart_tables().items():
        c = contracts[gold]
        docs.append(TableDoc(mart, "mart", c.version, c.keys, _columns(c, postgres_only=True), mirrors=gold))
    return sorted(docs, key=lambda t: (LAYERS.index(t.layer), t.name))


def rules() -> dict[str, list[dict[str, str]]]:
    """The data-quality rules per table: name, severity and the SQL a good row satisfies."""
    from spark_jobs.quality import RULES

    return {
        table: [{"rule": r.name, "severity": r.severity, "expectation": r.expectation} for r in table_rules]
        for table, table_rules in RULES.items()
    }


def pipelines(directory: Path = PIPELINE_DIR) -> list[dict[str, Any]]:
    """Each pipeline of adf/: its description, parameters, and the notebooks and pipelines it runs."""
    found = []
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text())
        props = doc.get("properties", {})
        notebooks, children = [], []
        stack = list(props.get("activities", []))
        while stack:
            activity = stack.pop(0)
            tp = activity.get("typeProperties", {})
            if "notebookPath" in tp:
                notebooks.append(tp["notebookPath"].rsplit("/", 1)[-1])
            if activity.get("type") == "ExecutePipeline":
                children.append(tp["pipeline"]["referenceName"])
            for key in ("activities", "ifTrueActivities", "ifFalseActivities", "defaultActivities"):
                stack.extend(tp.get(key, []))
            for case in tp.get("cases", []):
                stack.extend(case.get("activities", []))
        found.append(
            {
                "name": doc["name"],
                "description": props.get("description", ""),
                "parameters": sorted(props.get("parameters", {})),
                "notebooks": notebooks,
                "pipelines": children,
            }
        )
    return found


def collect() -> dict[str, Any]:
    """Everything the page shows, with the job and pipeline that write each table."""
    table_docs = tables()
    runs_in = {}
    for p in pipelines():
        for notebook in p["notebooks"]:
            runs_in.setdefault(notebook, []).append(p["name"])
    writers = {t: job for job in JOBS for t in job.writes}
    return {
        "tables": table_docs,
        "rules": rules(),
        "pipelines": pipelines(),
        "jobs": [{"job": job, "pipelines": runs_in.get(job.notebook, [])} for job in JOBS],
        "writers": {name: writers.get(name) for name in (t.name for t in table_docs)},
        "pipelines_of": runs_in,
    }


def write_docs(out_path: str | Path, now: dt.datetime | None = None) -> Path:
    """Write the page to ``out_path`` (parent directories created) and return its path."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_html(collect(), now or dt.datetime.now(dt.UTC)), encoding="utf-8")
    tmp.replace(out)
    return out


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _anchor(name: str) -> str:
    return "t-" + name.replace(".", "-")


def _table_link(name: str, known: set[str]) -> str:
    return f'<a href="#{_anchor(name)}">{_e(name)}</a>' if name in known else f"<code>{_e(name)}</code>"


def render_html(data: dict[str, Any], now: dt.datetime) -> str:
    table_docs: list[TableDoc] = data["tables"]
    known = {t.name for t in table_docs}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Lakehouse data dictionary</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<header><h1>Lakehouse data dictionary</h1>",
        f"<p>Generated {_e(now.strftime('%Y-%m-%d %H:%M'))} UTC from the table contracts, the data-quality "
        "rules and the Data Factory pipelines.</p>",
        '<nav aria-label="tables">',
    ]
    for layer in LAYERS:
        names = [t.name for t in table_docs if t.layer == layer]
        parts.append(f"<p><b>{_e(layer)}</b> " + " · ".join(_table_link(n, known) for n in names) + "</p>")
    parts.append("</nav></header>")

    parts.append('<section id="lineage"><h2>Lineage</h2>')
    parts.append("<table><tr><th>job (notebook)</th><th>run by pipeline</th><th>reads</th><th>writes</th></tr>")
    for item in data["jobs"]:
        job: Job = item["job"]
        parts.append(
            f'<tr class="job" data-job="{_e(job.notebook)}"><td><b>{_e(job.notebook)}</b><br>'
            f'<span class="note">{_e(job.summary)}</span></td>'
            f"<td>{'<br>'.join(_e(p) for p in item['pipelines'])}</td>"
            f"<td>{'<br>'.join(_table_link(n, known) for n in job.reads)}</td>"
            f"<td>{'<br>'.join(_table_link(n, known) for n in job.writes)}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        '<p class="flow">RAW files → <b>raw_to_bronze</b> → bronze → <b>bronze_to_silver</b> → silver → '
        "<b>silver_to_gold</b> → gold → <b>gold_to_postgres</b> → mart</p></section>"
    )

    for layer in LAYERS:
        parts.append(f'<section id="layer-{_e(layer)}"><h2>{_e(layer.capitalize())} tables</h2>')
        for t in (t for t in table_docs if t.layer == layer):
            parts.append(_table_section(t, data, known))
        parts.append("</section>")

    parts.append(
        '<section id="pipelines"><h2>Pipelines</h2><table><tr><th>pipeline</th><th>description</th>'
        "<th>parameters</th><th>runs</th></tr>"
    )
    for p in data["pipelines"]:
        runs = [f"notebook {_e(n)}" for n in p["notebooks"]] + [f"pipeline {_e(c)}" for c in p["pipelines"]]
        parts.append(
            f'<tr data-pipeline="{_e(p["name"])}"><td><b>{_e(p["name"])}</b></td><td>{_e(p["description"])}</td>'
            f"<td>{_e(', '.join(p['parameters']))}</td><td>{'<br>'.join(runs)}</td></tr>"
        )
    parts.append("</table></section></body></html>\n")
    return "\n".join(parts)


def _table_section(t: TableDoc, data: dict[str, Any], known: set[str]) -> str:
    writer: Job | None = data["writers"].get(t.name)
    lines = [
        f'<article class="table" id="{_anchor(t.name)}" data-table="{_e(t.name)}">',
        f'<h3>{_e(t.name)} <span class="note">v{_e(t.version)}</span></h3>',
    ]
    facts = [f"key: {_e(', '.join(t.keys))}"]
    if t.mirrors:
        facts.append(f"mirrors {_table_link(t.mirrors, known)} (PostgreSQL serving database)")
    if writer is not None:
        pipes = ", ".join(data["pipelines_of"].get(writer.notebook, []))
        sources = ", ".join(_table_link(n, known) for n in writer.writes[t.name])
        facts.append(f"written by <b>{_e(writer.notebook)}</b> ({_e(pipes)}) from {sources}")
    lines.append(f"<p>{' · '.join(facts)}</p>")
    lines.append("<table><tr><th>column</th><th>type</th><th>null</th><th>definition</th></tr>")
    for c in t.columns:
        lines.append(
            f"<tr><td><code>{_e(c['name'])}</code></td><td>{_e(c['type'])}</td>"
            f"<td>{'yes' if c['nullable'] else 'no'}</td><td>{_e(c['description'])}</td></tr>"
        )
    lines.append("</table>")
    table_rules = data["rules"].get(t.name)
    if table_rules:
        lines.append(
            "<h4>Data-quality rules</h4><table><tr><th>rule</th><th>severity</th><th>a good row satisfies</th></tr>"
        )
        for r in table_rules:
            lines.append(
                f'<tr><td>{_e(r["rule"])}</td><td class="sev-{_e(r["severity"])}">{_e(r["severity"])}</td>'
                f"<td><code>{_e(r['expectation'])}</code></td></tr>"
            )
        lines.append("</table>")
    lines.append("</article>")
    return "\n".join(lines)


_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f2933;
       background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d9e2ec; }
h3 { font-size: 15px; margin: 18px 0 4px; } h4 { font-size: 13px; margin: 10px 0 4px; }
nav p { margin: 2px 0; } .note { color: #616e7c; font-weight: normal; font-size: 12px; }
table { border-collapse: collapse; margin: 4px 0 8px; } td, th { padding: 3px 12px 3px 0; text-align: left;
  vertical-align: top; border-bottom: 1px solid #f0f4f8; } th { color: #52606d; font-weight: 600; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; } a { color: #1c63c9; }
.sev-fail { color: #c92a2a; } .sev-quarantine { color: #d9480f; } .sev-warn { color: #a17700; }
.flow { color: #3e4c59; }
"""
