"""The performance page: every results file renders, and each target reads met or missed from the medians."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report


def harness_result(name: str, cases: dict[str, dict[str, float]], targets: list[dict], **extra) -> dict:
    """A results document shaped as bench.harness writes it, with one run per case."""
    return {
        "benchmark": name, "measured_at": "2026-01-01T00:00:00+00:00", "runs": 1, "warmup": 0,
        "machine": {"cores": 2, "memory_gb": 23.5, "cpu": "test cpu", "load_average_before": [0.5, 0.4, 0.3],
                    "load_average_after": [1.0, 0.5, 0.3]},
        "method": "0 warm-up run(s), then 1 measured run(s) per case", "params": {"symbols": 3},
        "targets": targets, "_file": f"bench/results/{name}.json",
        "cases": {case: {"runs": [metrics], "summary": {k: {"median": v, "min": v, "max": v}
                                                        for k, v in metrics.items()}}
                  for case, metrics in cases.items()},
        **extra,
    }  # fmt: skip


SERVING = harness_result(
    "serving",
    {"project_load": {"seconds": 14.0, "peak_rss_mb": 900.0}, "server_copy": {"seconds": 10.0}},
    [{"name": "load / COPY", "ratio": ["project_load", "server_copy"], "metric": "seconds", "max": 1.3},
     {"name": "load RSS", "case": "project_load", "metric": "peak_rss_mb", "max": 3072}],
    findings="The swap's index rebuild is half the time.",
)  # fmt: skip


def test_a_ratio_over_its_ceiling_is_missed_and_a_single_figure_under_it_is_met() -> None:
    ratio, rss = (report.evaluate(SERVING, t) for t in SERVING["targets"])
    assert ratio["figure"] == 1.4 and ratio["status"] == "**missed**" and ratio["threshold"] == "<= 1.3"
    assert rss["figure"] == 900.0 and rss["status"] == "met"


def test_a_floor_target_is_met_at_or_above_it_and_a_ratio_may_use_two_metrics() -> None:
    peers = harness_result("peers", {"jvm": {"seconds": 50.0, "with_start": 60.0}, "project": {"seconds": 10.0}}, [])
    floor = {"name": "jvm / project", "ratio": ["jvm", "project"], "metric": "seconds", "min": 5.0}
    mixed = {"name": "with start", "ratio": ["jvm", "project"], "metric": ["with_start", "seconds"]}
    assert report.evaluate(peers, floor)["status"] == "met"
    assert report.evaluate(peers, {**floor, "min": 5.01})["status"] == "**missed**"
    assert report.evaluate(peers, mixed)["figure"] == 6.0 and report.evaluate(peers, mixed)["status"] == "(no target)"


def test_a_target_whose_case_did_not_run_is_reported_not_measured() -> None:
    target = {"name": "daily", "case": "daily_run", "metric": "seconds", "max": 10}
    assert report.evaluate(SERVING, target)["status"] == "not measured"


def test_page_renders_harness_results_of_any_module_and_legacy_files(tmp_path: Path) -> None:
    e2e = harness_result("e2e", {"backfill": {"seconds": 75.0, "wall_s": 80.0}}, [
        {"name": "backfill wall", "case": "backfill", "metric": "wall_s", "max": 60}])  # fmt: skip
    legacy = {"benchmark": "ingest", "symbols": 500, "phases": {"full": {"seconds": 76.9}}}
    for doc in (SERVING, e2e, legacy):
        (tmp_path / f"{doc['benchmark']}.json").write_text(json.dumps({k: v for k, v in doc.items() if k != "_file"}))
    out = tmp_path / "performance.md"
    report.main(["--results", str(tmp_path), "--out", str(out)])
    page = out.read_text()
    assert page.index("## ingest") < page.index("## serving") < page.index("## e2e")  # pipeline order
    assert "| [e2e](#e2e) | backfill wall | **80.0** wall_s |  | <= 60 | **missed** |" in page
    assert "| [serving](#serving) | load / COPY | **1.40** | 14.0 / 10.0 seconds | <= 1.3 | **missed** |" in page
    assert "The swap's index rebuild is half the time." in page
    assert "| phases.full.seconds | 76.9 |" in page  # a file not written by the harness still shows its figures
    assert "0.5/0.4/0.3 -> 1/0.5/0.3" in page  # the machine's load before and after


def test_databricks_arithmetic_uses_the_measured_per_row_costs() -> None:
    layers = {"raw_to_bronze_us_per_row": 40.0, "bronze_to_silver_us_per_row": 30.0, "silver_to_gold_us_per_row": 10.0}
    scaling = harness_result("scaling", {"x1": {"rows": 1000.0, "seconds": 0.08, "us_per_row": 80.0, **layers}}, [])
    text = "\n".join(report.databricks_section([scaling]))
    # 50.4M bars x 80 us = 4,032 s = 1.1 h on one machine; the driver-side parse alone 50.4M x 40 us = 0.6 h.
    assert "= **1.1 h**" in text and "= **0.6 h**" in text
    # silver + gold: 50.4M x 40 us x 2 cores / 64 cores = 63 s = 1 min
    assert "x 40 us x 2 cores / 64 = **1 min**" in text


def test_a_declared_breakdown_splits_the_figure_by_stage_and_names_the_cut_that_would_meet_it() -> None:
    stages = [["fetch", ["fetch_s", None]], ["transform", ["transform_s", "work_s"]]]
    peer = harness_result(
        "pipeline_peer",
        {"project": {"seconds": 9.0, "fetch_s": 4.0, "transform_s": 5.0}, "peer": {"seconds": 4.0, "work_s": 3.5}},
        [{"name": "project / peer", "ratio": ["project", "peer"], "metric": "seconds", "max": 1.5,
          "breakdown": {"cases": ["project", "peer"], "rows": stages}}],
    )  # fmt: skip
    split = report.breakdown(peer, peer["targets"][0])
    assert split["rows"] == [("fetch", [4.0, None]), ("transform", [5.0, 3.5])]
    assert split["totals"] == [9.0, 3.5]  # the peer's 0.5 s outside its stages shows as a gap to its seconds
    assert split["cut"] == {"case": "project", "now": 9.0, "allowed": 6.0, "excess": 3.0}
    page = "\n".join(report.breakdown_section([peer]))
    assert "### project / peer (pipeline_peer): **2.25**, <= 1.5, **missed**" in page
    assert "| fetch | 4 | - |" in page and "| transform | 5 | 3.5 |" in page
    assert "| sum of the stages | 9 | 3.5 |" in page and "| the case's seconds | 9 | 4 |" in page
    assert "project would have to take 6 s instead of 9: 3 s less" in page


def test_a_met_target_gets_its_breakdown_but_no_cut_and_targets_without_one_add_no_section() -> None:
    split = {"cases": ["a", "b"], "rows": [["x", "x_s"]]}
    met = harness_result("e2e", {"a": {"seconds": 1.0, "x_s": 1.0}, "b": {"seconds": 2.0, "x_s": 2.0}},
                         [{"name": "a / b", "ratio": ["a", "b"], "max": 1.2, "breakdown": split}])  # fmt: skip
    page = "\n".join(report.breakdown_section([met]))
    assert "| x | 1 | 2 |" in page and "would have to take" not in page
    assert report.breakdown_section([SERVING]) == []


def test_every_stage_a_module_declares_is_a_metric_its_recorded_runs_report() -> None:
    from bench import bench_e2e, bench_pipeline_peer

    for module, name in ((bench_e2e, "e2e"), (bench_pipeline_peer, "pipeline_peer")):
        recorded = json.loads((report.RESULTS / f"{name}.json").read_text())["cases"]
        for target in (t for t in module.TARGETS if "breakdown" in t):
            cases = target["breakdown"]["cases"]
            for _, metric in target["breakdown"]["rows"]:
                for i, case in enumerate(cases):
                    m = metric if isinstance(metric, str) else metric[i]
                    assert m is None or m in recorded[case]["summary"], (name, case, m)
