"""Regenerate docs/performance.md from bench/results/*.json: `python -m bench.report`.

Every results file the harness writes is rendered the same way, whichever module made it: its
cases (median, min-max over the measured runs, peak RSS, CPU steal), its targets (declared as data
in the module's ``TARGETS``, copied into the results, evaluated here on medians) and its
findings (the module's ``FINDINGS``: what profiling found where a target is missed), and for a target
that declares its stages (``breakdown``), its figure split by stage from the same run. Files not
written by the harness are listed with their scalar fields. The scaling results feed the
Databricks section's arithmetic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.harness import REPO, RESULTS

DOC = REPO / "docs" / "performance.md"
ORDER = ("ingest", "serving", "e2e", "pipeline_peer", "peers", "scaling")
MAIN = ("seconds", "rows", "rows_per_s", "wall_s", "peak_rss_mb", "cpu_steal_pct")
HIDDEN = {"load_1m_before", "peak_rss_client_mb"}


def load_results(directory: Path = RESULTS) -> list[dict]:
    """Every results JSON of `directory`, the stages in pipeline order, then any others by name."""
    found = {}
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text())
        doc.setdefault("benchmark", path.stem)
        doc["_file"] = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
        found[path.stem] = doc
    rank = {name: i for i, name in enumerate(ORDER)}
    return [found[k] for k in sorted(found, key=lambda k: (rank.get(k, len(ORDER)), k))]


def median(result: dict, case: str, metric: str) -> float | None:
    summary = result.get("cases", {}).get(case, {}).get("summary", {})
    value = summary.get(metric, {}).get("median")
    return float(value) if isinstance(value, int | float) else None


def evaluate(result: dict, target: dict) -> dict:
    """One target against the medians: the figure, its parts, and met / missed / info / not measured."""
    metric = target.get("metric", "seconds")
    if "ratio" in target:
        m_top, m_bottom = (metric, metric) if isinstance(metric, str) else metric
        a, b = _ratio_medians(result, target)
        figure = a / b if a is not None and b else None
        parts = f"{_num(a)} / {_num(b)} {m_bottom if m_top == m_bottom else ''}".rstrip() if figure else ""
        shown = f"**{figure:.2f}**" if figure is not None else "-"
    else:
        figure = median(result, target["case"], metric)
        parts = ""
        shown = f"**{_num(figure)}** {metric}" if figure is not None else "-"
    if figure is None:
        status, threshold = "not measured", _threshold(target)
    elif "max" in target:
        status, threshold = ("met" if figure <= target["max"] else "**missed**"), _threshold(target)
    elif "min" in target:
        status, threshold = ("met" if figure >= target["min"] else "**missed**"), _threshold(target)
    else:
        status, threshold = "(no target)", ""
    return {"name": target["name"], "figure": figure, "shown": shown, "parts": parts, "threshold": threshold,
            "status": status, "why": target.get("why", "")}  # fmt: skip


def _ratio_medians(result: dict, target: dict) -> tuple[float | None, float | None]:
    """A ratio target's numerator and denominator medians; ``metric`` is one name or one per side."""
    top, bottom = target["ratio"]
    metric = target.get("metric", "seconds")
    m_top, m_bottom = (metric, metric) if isinstance(metric, str) else metric
    return median(result, top, m_top), median(result, bottom, m_bottom)


def _threshold(target: dict) -> str:
    if "max" in target:
        return f"<= {target['max']:g}"
    if "min" in target:
        return f">= {target['min']:g}"
    return ""


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def _spread(summary: dict, metric: str) -> str:
    s = summary.get(metric)
    if not s:
        return ""
    if s["min"] == s["max"]:
        return _num(s["median"])
    return f"{_num(s['median'])} ({_num(s['min'])}-{_num(s['max'])})"


# --------------------------------------------------------------------------- sections


def method_section(results: list[dict]) -> list[str]:
    lines = [
        "## Method",
        "",
        "One harness (`bench/harness.py`) runs every benchmark the same way: an untimed `setup` builds the",
        "input deterministically (the synthetic market model: same data every run), then each case runs",
        "its warm-up run(s) and N measured runs, **each in a fresh process**. Reported: median and min-max",
        "over the measured runs; the case times its own work (`seconds`), the harness adds the process",
        "wall time (`wall_s`, which includes Python start and imports). **Peak RSS** is per run: the run's",
        "process (VmHWM), its live descendants (a JVM) and largest waited-for child, plus the embedded Sail",
        "server, which does the Spark work in its own process (its high-water mark is reset before each",
        "run; PostgreSQL's per-connection backends are not counted, its shared buffers are). **CPU steal**",
        "is the share of CPU time the hypervisor gave to other machines during the run",
        "and the load average is recorded before every run: on a shared virtual machine they explain most",
        "of the spread. Ratios between cases are measured in one run of one module, on the same data.",
        "Before the first run the harness compiles the project's modules to bytecode, as installing a",
        "package does: with `PYTHONDONTWRITEBYTECODE` set, each fresh process would otherwise compile",
        "them from source again inside the timings (~0.3 s for the jobs and the runner).",
        "",
        "| benchmark | measured at (UTC) | runs | machine | load before -> after | setup | total |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r.get("machine", {})
        cores = m.get("cores", m.get("cpus", "?"))
        machine = f"{cores} cores, {m.get('memory_gb', '?')} GB, {m.get('cpu', '') or m.get('system', '')}".strip(", ")
        load = f"{_load(m.get('load_average_before'))} -> {_load(m.get('load_average_after'))}"
        runs = f"{r.get('warmup', '?')} + {r.get('runs', '?')}" if "cases" in r else "(not on the harness)"
        if r.get("quick"):
            runs += " (quick)"
        lines.append(f"| [{r['benchmark']}](#{r['benchmark']}) | {r.get('measured_at', '?')} | {runs} | {machine} | "
                     f"{load} | {_secs(r.get('setup_seconds'))} | {_secs(r.get('total_seconds'))} |")  # fmt: skip
    lines += ["", "`runs` is warm-up + measured runs per case; load averages are 1, 5 and 15 minutes.", ""]
    return lines


def _load(values) -> str:
    return "/".join(f"{v:g}" for v in values) if values else "?"


def _secs(x) -> str:
    return f"{x:,.0f} s" if isinstance(x, int | float) else "-"


def targets_section(results: list[dict]) -> list[str]:
    lines = ["## Targets", "", "| benchmark | target | figure | parts (medians) | target | status |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        for t in r.get("targets", []):
            e = evaluate(r, t)
            lines.append(f"| [{r['benchmark']}](#{r['benchmark']}) | {e['name']} | {e['shown']} | {e['parts']} | "
                         f"{e['threshold']} | {e['status']} |")  # fmt: skip
    lines += [
        "",
        "A missed target's measured reason is in its benchmark's findings below; where a target",
        "declares its stages, the next section splits its figure by stage from the same run.",
        "",
    ]
    return lines


def _stage_metric(metric: str | list | None, index: int) -> str | None:
    return metric if isinstance(metric, str) or metric is None else metric[index]


def breakdown(result: dict, target: dict) -> dict:
    """A target's figure split by stage: the medians of each declared stage for each declared case.

    A target declares ``breakdown = {"cases": [...], "rows": [[label, metric], ...]}``; a row's
    metric is one name for every case or a list with one per case (None where the case has no such
    stage). For a ratio with a ceiling, ``cut`` is how much the numerator case exceeds it: the
    seconds it would have to lose, at the denominator's measured time, for the target to be met.
    """
    spec = target["breakdown"]
    cases = spec["cases"]
    rows = []
    for label, metric in spec["rows"]:
        values = [median(result, case, m) if (m := _stage_metric(metric, i)) else None for i, case in enumerate(cases)]
        rows.append((label, values))
    totals = [sum(v[i] for _, v in rows if v[i] is not None) for i in range(len(cases))]
    cut = None
    if "ratio" in target and "max" in target:
        a, b = _ratio_medians(result, target)
        if a is not None and b:
            cut = {"case": target["ratio"][0], "now": a, "allowed": target["max"] * b, "excess": a - target["max"] * b}
    return {"cases": cases, "rows": rows, "totals": totals, "cut": cut}


def breakdown_section(results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        for t in r.get("targets", []):
            if "breakdown" not in t:
                continue
            e, b = evaluate(r, t), breakdown(r, t)
            if not lines:
                intro = "Each declared stage's median, per case, from the run that measured the target."
                lines += ["## Where the targets' time goes", "", intro, ""]
            lines += [f"### {e['name']} ({r['benchmark']}): {e['shown']}, {e['threshold'] or 'no target'}, "
                      f"{e['status']}", ""]  # fmt: skip
            lines += ["| stage (s) | " + " | ".join(b["cases"]) + " |", "|---|" + "---|" * len(b["cases"])]
            for label, values in b["rows"]:
                lines.append(f"| {label} | " + " | ".join(_num(v) for v in values) + " |")
            lines.append("| sum of the stages | " + " | ".join(_num(v) for v in b["totals"]) + " |")
            lines += [
                "| the case's seconds | " + " | ".join(_num(median(r, c, "seconds")) for c in b["cases"]) + " |",
                "",
            ]
            cut = b["cut"]
            if cut is not None and cut["excess"] > 0:
                lines += [f"To meet it, {cut['case']} would have to take {_num(cut['allowed'])} s instead of "
                          f"{_num(cut['now'])}: {_num(cut['excess'])} s less, at the other case's measured time.",
                          ""]  # fmt: skip
    return lines


def benchmark_section(r: dict) -> list[str]:
    name = r["benchmark"]
    lines = [f"## {name}", ""]
    if r.get("description"):
        lines += [r["description"], ""]
    if "cases" not in r:
        lines += [f"Results in `{r['_file']}` were written by a standalone script, not the harness; its top-level",
                  "figures:", "", "| field | value |", "|---|---|"]  # fmt: skip
        lines += [f"| {k} | {v} |" for k, v in _scalars(r)][:30]
        return [*lines, ""]
    params = ", ".join(f"{k}={v}" for k, v in r.get("params", {}).items())
    lines += [f"Parameters: {params or '-'}. {r.get('method', '')}. Raw runs: `{r['_file']}`.", ""]
    lines += ["| case | seconds | rows | rows/s | wall s | peak RSS MB | CPU steal % | other medians |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    notes = []
    for case, data in r["cases"].items():
        s = data.get("summary", {})
        other = ", ".join(f"{k} {_num(v['median'])}" for k, v in s.items() if k not in MAIN and k not in HIDDEN)
        cells = [_spread(s, k) for k in MAIN]
        lines.append(f"| {case} | " + " | ".join(cells) + f" | {other} |")
        seen = dict.fromkeys(run["notes"] for run in data.get("runs", []) if run.get("notes"))
        notes += [f"- {case}: {n}" for n in seen]
    lines.append("")
    if r.get("targets"):
        lines += ["| target | figure | target | status | why this target |", "|---|---|---|---|---|"]
        for t in r["targets"]:
            e = evaluate(r, t)
            lines.append(f"| {e['name']} | {e['shown']} | {e['threshold']} | {e['status']} | {e['why']} |")
        lines.append("")
    if notes:
        lines += ["Notes from the runs:", "", *notes, ""]
    if r.get("findings"):
        lines += ["Findings:", "", r["findings"].strip(), ""]
    return lines


def _scalars(doc: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for k, v in doc.items():
        if k.startswith("_"):
            continue
        if isinstance(v, dict):
            out += _scalars(v, f"{prefix}{k}.")
        elif isinstance(v, int | float | str) and not isinstance(v, bool):
            out.append((f"{prefix}{k}", v))
    return out


def databricks_section(results: list[dict]) -> list[str]:
    """Scaling table and the arithmetic of running the same jobs on Databricks."""
    by_name = {r["benchmark"]: r for r in results}
    scaling, peers = by_name.get("scaling"), by_name.get("peers")
    lines = ["## Scaling beyond one machine (Databricks)", ""]
    sizes = [c for c in ("x1", "x2", "x4") if scaling and median(scaling, c, "rows")]
    if not sizes:
        return [*lines, "No scaling results yet (`python -m bench.harness scaling`).", ""]
    layers = ("raw_to_bronze", "bronze_to_silver", "silver_to_gold")
    lines += ["Measured here (the `scaling` benchmark, medians):", "",
              "| data | bars | seconds | us/row | " + " | ".join(f"{x} us/row" for x in layers) + " |",
              "|---|---|---|---|" + "---|" * len(layers)]  # fmt: skip
    for c in sizes:
        cells = [_num(median(scaling, c, f"{x}_us_per_row")) for x in layers]
        lines.append(f"| {c} | {_num(median(scaling, c, 'rows'))} | {_num(median(scaling, c, 'seconds'))} | "
                     f"{_num(median(scaling, c, 'us_per_row'))} | " + " | ".join(cells) + " |")  # fmt: skip
    top = sizes[-1]
    per_row = {x: median(scaling, top, f"{x}_us_per_row") or 0.0 for x in layers}
    market = 10_000 * 252 * 20  # 10,000 symbols x 20 years
    total_us = sum(per_row.values())
    single_h = market * total_us / 1e6 / 3600
    driver_h = market * per_row["raw_to_bronze"] / 1e6 / 3600
    spread_us = per_row["bronze_to_silver"] + per_row["silver_to_gold"]
    cluster_min = market * spread_us * 2 / 64 / 1e6 / 60
    jvm_fixed = peers and median(peers, "jvm_raw_to_gold", "seconds")
    daily_rows = 10_000 * (1 + 252)  # one new bar per symbol, plus the 252-bar look-back of the rolling metrics
    daily_s = 10_000 * total_us / 1e6 + daily_rows * per_row["silver_to_gold"] / 1e6
    lines += [
        "",
        f"The cost per row at {top} is {total_us:,.0f} us on this 2-core machine (both cores busy), of which",
        f"raw_to_bronze {per_row['raw_to_bronze']:,.0f} us, bronze_to_silver {per_row['bronze_to_silver']:,.0f} us and",
        f"silver_to_gold {per_row['silver_to_gold']:,.0f} us. Growth from x1 to {top} is in the table: near-linear",
        "means the us/row column stays flat.",
        "",
        "**What does not change on Databricks.** The jobs, notebooks, contracts, data-quality rules and ADF",
        "pipelines are the same files; every job still takes a date window and a run id and replaces exactly",
        "its window (MERGE on the business key), so backfills are the same job over more windows.",
        "",
        "**What changes.** Tables are laid out so that work and rewrites follow the data: bronze partitioned",
        "by `ingest_date` (a daily run appends one partition); silver and gold partitioned by trade date",
        "(by month of `trade_date`, so files stay large) and clustered by `symbol` (liquid clustering on",
        "`(trade_date, symbol)` where available). A MERGE of one new session then rewrites the files of one",
        "month partition, not whole tables, and a backfill chunk touches only its months. Every gold",
        "computation is a window `PARTITION BY symbol ORDER BY trade_date`, so symbols spread over executors",
        "with one shuffle by symbol and no cross-symbol work. RAW -> BRONZE parses JSON on the driver (whole",
        "files, to avoid split-file reads): on a cluster that part does not spread, so at scale it moves to",
        "the executors (one task per batch of files) or to Auto Loader.",
        "",
        f"**Arithmetic** for 10,000 symbols x 20 years ({market / 1e6:.0f}M bars) from the measured per-row costs:",
        "",
        f"- on this one machine: {market:,} x {total_us:,.0f} us = **{single_h:.1f} h**;",
        f"- the driver-side parse alone: {market:,} x {per_row['raw_to_bronze']:,.0f} us = **{driver_h:.1f} h**"
        " on one core, unless it moves to the executors;",
        f"- silver and gold on 64 executor cores at this machine's cost per core, spread evenly by symbol:"
        f" {market:,} x {spread_us:,.0f} us x 2 cores / 64 = **{cluster_min:.0f} min**;",
        f"- one daily session for 10,000 symbols: 10,000 new bars through all layers plus {daily_rows:,} look-back"
        f" rows through gold = **{daily_s:.0f} s** of work at these costs, so cluster start-up (minutes), not data,"
        " dominates the daily run; a job cluster or serverless jobs compute is the right size, not a large"
        " all-purpose cluster.",
        "",
        "These are extrapolations from a 2-core machine, assuming per-row costs hold and work spreads evenly.",
        "What they leave out is fixed cost per job, which does not shrink with more executors: on a cold",
        "JVM the three jobs took "
        + (f"{jvm_fixed:,.0f} s" if jvm_fixed else "minutes")
        + " in the `peers` benchmark almost regardless of size (planning, code generation and JIT of",
        "each of the jobs' many small actions). On Databricks that is paid per job run, so the daily",
        "run should stay one job per layer over the day's partitions, never one job per symbol.",
        "",
    ]
    return lines


def reproduce_section() -> list[str]:
    return [
        "## Reproduce",
        "",
        "```bash",
        "make bench                                        # every benchmark, then this page",
        ".venv/bin/python -m bench.harness scaling         # one benchmark (results in bench/results/)",
        ".venv/bin/python -m bench.harness peers --case duckdb_gold --runs 3",
        ".venv/bin/python -m bench.harness scaling --set symbols=500   # sizes are parameters",
        ".venv/bin/python -m bench.harness --quick          # smoke test at tiny sizes (bench/results/quick/)",
        ".venv/bin/python -m bench.report                  # regenerate this page from bench/results/*.json",
        "```",
        "",
        "Services run under `LAKEHOUSE_BENCH_HOME` (default `.lakehouse/bench`); `BENCH_RUNS` overrides every",
        "module's run count. Figures vary with the machine's load: compare ratios from one run.",
        "",
    ]


def render(results: list[dict]) -> str:
    lines = [
        "# Performance",
        "",
        "<!-- Generated by `python -m bench.report` from bench/results/*.json; edit bench/report.py or the",
        "     bench modules' TARGETS / FINDINGS instead of this file. -->",
        "",
    ]
    if not results:
        return "\n".join([*lines, "No results yet: run `make bench`.", ""])
    lines += method_section(results) + targets_section(results) + breakdown_section(results)
    for r in results:
        lines += benchmark_section(r)
    lines += databricks_section(results) + reproduce_section()
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory of results JSON")
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args(argv)
    args.out.write_text(render(load_results(args.results)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
