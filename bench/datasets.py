"""Deterministic inputs of the transform benchmarks: RAW daily bars from the synthetic market model.

The bars are the synthetic Alpha Vantage server's (`local.market_api.MarketModel`, the same prices
the ingestion and end-to-end benchmarks fetch over HTTP), written straight into RAW in the wire
format with a run manifest, as the ingest function lands them: `symbols` x `years` of sessions
ending 2025-12-31, ingested on 2026-01-02. A *template* lake holds RAW plus the bronze, silver and
gold the project's jobs made of it; each measured run starts from a scratch home whose input
layers are hard links into the template (Delta files are never modified in place), so a run
times one layer on exactly the same input, from an empty output table.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lakehouse.contracts import alpha_vantage as av
from lakehouse.contracts.manifest import Manifest, ManifestFile
from lakehouse.contracts.raw_layout import ManifestLocation, PayloadLocation
from lakehouse.job_summary import JobSummary
from lakehouse.raw_store import DirectoryRawStore

END = dt.date(2025, 12, 31)
INGEST_DATE = dt.date(2026, 1, 2)
SEED = 7
PROVIDER = "synthetic"
DATASET = "daily_bars"
LAYERS = ("raw_to_bronze", "bronze_to_silver", "silver_to_gold")
# The lake containers a layer job reads; a scratch home links these from the template.
INPUTS = {"raw_to_bronze": ("raw",), "bronze_to_silver": ("bronze",), "silver_to_gold": ("silver",)}


def symbols(n: int, prefix: str = "B") -> list[str]:
    """`n` ticker-like names, the same for every run: BAAA, BAAB, ... Each benchmark has its own
    prefix, so the synthetic market gives each its own series."""
    out = []
    for i in range(n):
        a, rest = divmod(i, 26 * 26)
        b, c = divmod(rest, 26)
        out.append(prefix + chr(65 + a % 26) + chr(65 + b) + chr(65 + c))
    return out


def daily_body(model, symbol: str, years: int) -> tuple[bytes, int]:
    """The full-history TIME_SERIES_DAILY_ADJUSTED body of `symbol` cut to `years` before END; (body, bars)."""
    from local.market_api import series_columns

    s = model.series(symbol)
    first = bisect.bisect_right(s.dates, END.replace(year=END.year - years))
    last = bisect.bisect_right(s.dates, END) - 1
    adj = s.close[first : last + 1] * np.exp(s.log_factor[last] - s.log_factor[first : last + 1])
    iso = s.iso[first : last + 1]
    meta = av.series_meta(symbol, iso[-1], adjusted=True, compact=False)
    return av.render_series_columns(meta, iso, series_columns(s, first, last, adj), adjusted=True), len(iso)


def write_raw(raw_root: Path, n_symbols: int, years: int, run_id: str = "bench") -> dict:
    """RAW files and manifest of `n_symbols` x `years` of daily bars; returns counts and sizes."""
    from local.market_api import MarketModel

    model = MarketModel(seed=SEED)
    store = DirectoryRawStore(raw_root)
    files, bars, size = [], 0, 0
    for symbol in symbols(n_symbols):
        payload, n = daily_body(model, symbol, years)
        path = PayloadLocation(PROVIDER, DATASET, INGEST_DATE, symbol, run_id).path
        store.write_atomic(path, payload)
        files.append(ManifestFile(path=path, bytes=len(payload), symbol=symbol, status="written", records=n,
                                  http_status=200))  # fmt: skip
        bars, size = bars + n, size + len(payload)
    manifest = Manifest(run_id=run_id, dataset=DATASET, provider=PROVIDER, ingest_date=INGEST_DATE, files=files)
    store.write_atomic(ManifestLocation(DATASET, INGEST_DATE, run_id).path, manifest.to_json())
    return {"symbols": n_symbols, "years": years, "bars": bars, "raw_megabytes": round(size / 1e6, 1)}


def data_dir(name: str) -> Path:
    """Where a benchmark keeps its data: under the harness's LAKEHOUSE_HOME."""
    return Path(os.environ.get("LAKEHOUSE_HOME", ".lakehouse/bench")) / "data" / name


def settings_for(home: Path):
    """Job settings of a lake under `home`, on the services the harness passed in the environment."""
    from lakehouse.settings import load_settings

    return load_settings(home=home, lake_root=None)


def run_layer(spark, settings, layer: str, run_id: str) -> tuple[float, JobSummary]:
    """One layer job over the benchmark's ingestion date, as the notebook calls it; (seconds, summary)."""
    from spark_jobs import jobs

    fn = getattr(jobs, f"run_{layer}")
    day = INGEST_DATE.isoformat()
    started = time.perf_counter()
    summary = fn(spark, settings, day, day, run_id)
    return time.perf_counter() - started, summary


def link_tree(src: Path, dst: Path) -> None:
    """Copy a directory tree as hard links (instant, no extra disk); the files are never rewritten."""
    shutil.copytree(src, dst, copy_function=os.link)


def build_template(root: Path, n_symbols: int, years: int) -> dict:
    """A lake with RAW and the bronze, silver and gold the project's jobs make of it, under `root`."""
    from lakehouse.lake import Lake
    from local.spark import connect
    from spark_jobs import migrations

    if root.exists():
        shutil.rmtree(root)
    settings = settings_for(root)
    if settings.pg_dsn is not None:  # the jobs record DQ results in ops.dq_results
        migrations.apply(settings.pg_dsn.get_secret_value())
    info = write_raw(Lake.from_settings(settings).local_path("raw"), n_symbols, years)
    spark = connect(settings.spark_remote)
    try:
        for layer in LAYERS:
            seconds, summary = run_layer(spark, settings, layer, f"template-{layer}")
            info[layer] = {"seconds": round(seconds, 3), "rows_written": summary.rows_written}
    finally:
        spark.stop()
    (root / "template.json").write_text(json.dumps(info, indent=2))
    return info


def template_info(root: Path) -> dict:
    path = root / "template.json"
    if not path.exists():
        raise FileNotFoundError(f"no benchmark template at {root}: the benchmark's setup() builds it first")
    return json.loads(path.read_text())


@contextlib.contextmanager
def scratch_home(template: Path, containers: tuple[str, ...]) -> Iterator[Path]:
    """A fresh LAKEHOUSE_HOME whose lake holds `containers` of the template (hard links), removed after."""
    home = template.parent / "runs" / uuid.uuid4().hex[:12]
    for container in containers:
        link_tree(template / "lake" / container, home / "lake" / container)
    home.mkdir(parents=True, exist_ok=True)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)
