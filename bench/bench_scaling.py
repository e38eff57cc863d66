"""How RAW -> GOLD cost grows: the three jobs at 1x, 2x and 4x the data, with per-row costs.

Setup writes RAW for 4x `symbols` x `years` of daily bars (:mod:`bench.datasets`); the 1x and 2x
cases get a scratch lake holding the RAW files of the first quarter and half of the symbols (hard
links), so every size is a prefix of the next and shares its history length. Each case runs the
three jobs as the notebooks do, from an empty bronze to a loaded gold, in one process. With the
defaults 4x is the stage size the platform is sized for (500 symbols x 5 years, 628k bars), so its per-layer figures
are the stage benchmark of the transforms; `--set
symbols=500` scales the default itself (2.5M bars at 4x, about 4 GB of peak RSS).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench import datasets

DEFAULTS = {"symbols": 125, "years": 5}  # 1x = 157k bars, 4x = 628k
QUICK = {"symbols": 2, "years": 1}
RUNS = 1
WARMUP = 0  # setup ends with one untimed x1 run, on the same server and files
FACTORS = {"x1": 1, "x2": 2, "x4": 4}
FINDINGS = """\
Each job has a fixed cost (Spark Connect session and plan analysis, Delta log reads and commits,
a few dozen small actions for reconciliation, data quality and watermarks) that the per-row
column amortizes: per-row cost falls or stays flat as the data grows, and growth is linear once
that fixed part is small. raw_to_bronze is driver-side Python (JSON parsing and Arrow
conversion), so its per-row cost is flat by construction; bronze_to_silver and silver_to_gold are
Sail's (window functions partitioned by symbol, merges).
"""
TARGETS = [
    {"name": "RAW -> GOLD per-row cost, 4x / 1x data", "ratio": ["x4", "x1"], "metric": "us_per_row", "max": 1.25,
     "why": "near-linear growth: the cost of a row should not rise with the amount of data"},
    {"name": "RAW -> GOLD seconds, 4x / 1x data", "ratio": ["x4", "x1"], "metric": "seconds"},
]  # fmt: skip


def _root() -> Path:
    return datasets.data_dir("scaling")


def setup(params: dict) -> None:
    write_inputs(params)
    CASES["x1"](params)  # the warm-up: the server and the RAW files, once for all sizes


def write_inputs(params: dict) -> None:
    """RAW for the largest size; the smaller ones link a prefix of its symbols."""
    root = _root()
    shutil.rmtree(root, ignore_errors=True)
    raw = root / "template" / "lake" / "raw"
    info = datasets.write_raw(raw, 4 * params["symbols"], params["years"])
    (root / "template" / "template.json").write_text(json.dumps(info))


def _scratch_raw(home: Path, symbols: list[str]) -> None:
    """RAW of only `symbols` (hard links), with the full manifest: the jobs check only files present."""
    src = _root() / "template" / "lake" / "raw"
    day = f"ingest_date={datasets.INGEST_DATE.isoformat()}"
    for symbol in symbols:
        datasets.link_tree(src / datasets.PROVIDER / "daily_bars" / day / symbol,
                           home / "lake" / "raw" / datasets.PROVIDER / "daily_bars" / day / symbol)  # fmt: skip
    datasets.link_tree(src / "_manifests", home / "lake" / "raw" / "_manifests")


def _size_case(name: str, factor: int):
    def case(params: dict) -> dict:
        from local.spark import connect

        names = datasets.symbols(factor * params["symbols"])
        with datasets.scratch_home(_root() / "template", ()) as home:
            _scratch_raw(home, names)
            settings = datasets.settings_for(home)
            spark = connect(settings.spark_remote)
            try:
                layers, summaries = {}, {}
                for layer in datasets.LAYERS:
                    layers[layer], summaries[layer] = datasets.run_layer(spark, settings, layer, f"bench-{layer}")
            finally:
                spark.stop()
        rows = summaries["raw_to_bronze"].tables["bronze.daily_bars"].rows_written
        gold = summaries["silver_to_gold"].tables["gold.fct_daily_prices"].rows_written
        if gold != rows:
            raise RuntimeError(f"{rows} bars into bronze but {gold} rows into gold.fct_daily_prices")
        seconds = sum(layers.values())
        return {"seconds": round(seconds, 3), "rows": rows, "symbols": len(names), "factor": factor,
                "us_per_row": round(seconds / rows * 1e6, 2),
                **{f"{k}_us_per_row": round(v / rows * 1e6, 2) for k, v in layers.items()},
                **{f"{k}_s": round(v, 3) for k, v in layers.items()}}  # fmt: skip

    case.__name__ = name
    return case


CASES = {name: _size_case(name, factor) for name, factor in FACTORS.items()}
