"""The transforms, one layer at a time: RAW -> BRONZE -> SILVER -> GOLD on the embedded Sail server.

Setup writes `symbols` x `years` of daily bars into RAW (:mod:`bench.datasets`: the synthetic
market model in Alpha Vantage's wire format, with dividends and splits) and runs the three jobs
once to make a template lake. Each case then times one job, as its notebook calls it, on a scratch
lake holding only that job's input layer (hard links into the template) and an empty output:
the full first load of that layer. Rows per second are the job's own rows read (bronze, silver)
or rows written to fct_daily_prices (gold).
"""

from __future__ import annotations

import os

from bench import datasets

DEFAULTS = {"symbols": 500, "years": 5}  # 628k bars, 213 MB of RAW JSON
QUICK = {"symbols": 4, "years": 1}
RUNS = 2
WARMUP = 0  # setup's template build ran these same jobs on the same files and server
TARGETS: list[dict] = []  # the stage figures have no target of their own; see bench_peers and bench_scaling


def _template() -> os.PathLike:
    return datasets.data_dir("transforms") / "template"


def setup(params: dict) -> None:
    datasets.build_template(_template(), params["symbols"], params["years"])


def _layer_case(layer: str):
    def case(params: dict) -> dict:
        from local.spark import connect

        info = datasets.template_info(_template())
        if (info["symbols"], info["years"]) != (params["symbols"], params["years"]):
            raise RuntimeError(f"template holds {info['symbols']} x {info['years']}, run asked for {params}")
        with datasets.scratch_home(_template(), datasets.INPUTS[layer]) as home:
            settings = datasets.settings_for(home)
            spark = connect(settings.spark_remote)
            try:
                seconds, summary = datasets.run_layer(spark, settings, layer, f"bench-{layer}")
            finally:
                spark.stop()
        rows = _rows(layer, summary)
        if rows != info["bars"]:
            raise RuntimeError(f"{layer} handled {rows} rows, RAW holds {info['bars']} bars: {summary}")
        return {"seconds": round(seconds, 3), "rows": rows, "rows_per_s": round(rows / seconds),
                "us_per_row": round(seconds / rows * 1e6, 2), "bars": info["bars"]}  # fmt: skip

    case.__name__ = layer
    case.__doc__ = f"{layer}: the full first load of the layer from the template's input."
    return case


def _rows(layer: str, summary: dict) -> int:
    """The job's own count of the rows it handled (all bars, when nothing is quarantined)."""
    if layer == "raw_to_bronze":
        return summary["tables"]["bronze.daily_bars"]["rows_written"]
    if layer == "bronze_to_silver":
        return summary["tables"]["silver.daily_bars"]["inserted"]
    return summary["tables"]["gold.fct_daily_prices"]["rows_written"]


CASES = {layer: _layer_case(layer) for layer in datasets.LAYERS}
