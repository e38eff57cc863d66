"""Hand-made RAW files in the exact wire format of the cross-team contract.

Alpha Vantage JSON bodies under ``raw/{provider}/{dataset}/ingest_date=.../{symbol}/{run_id}.json``
with run manifests, and Event Hubs Capture Avro files under ``raw/eventhubs/...``, so the jobs read
them exactly as they read the ingestion's output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
from dataclasses import dataclass

from lakehouse.lake import Lake

CAPTURE_SCHEMA = {
    "type": "record",
    "name": "EventData",
    "namespace": "Microsoft.ServiceBus.Messaging",
    "fields": [
        {"name": "SequenceNumber", "type": "long"},
        {"name": "Offset", "type": "string"},
        {"name": "EnqueuedTimeUtc", "type": "string"},
        {"name": "SystemProperties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
        {"name": "Properties", "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]}},
        {"name": "Body", "type": ["null", "bytes"]},
    ],
}


@dataclass
class Bar:
    """One daily bar as a test states it; written as Alpha Vantage strings."""

    open: float
    high: float
    low: float
    close: float
    volume: int
    dividend: float = 0.0
    split: float = 1.0


def bar_body(symbol: str, bars: dict[str, Bar | dict], adjusted: bool = True) -> bytes:
    """A TIME_SERIES_DAILY(_ADJUSTED) body; a dict value is written verbatim (for broken bars)."""
    series = {}
    for day in sorted(bars, reverse=True):  # Alpha Vantage lists the newest day first
        b = bars[day]
        if isinstance(b, dict):
            series[day] = b
        elif adjusted:
            series[day] = {
                "1. open": f"{b.open:.4f}", "2. high": f"{b.high:.4f}", "3. low": f"{b.low:.4f}",
                "4. close": f"{b.close:.4f}", "5. adjusted close": f"{b.close:.4f}", "6. volume": str(b.volume),
                "7. dividend amount": f"{b.dividend:.4f}", "8. split coefficient": f"{b.split:.1f}",
            }  # fmt: skip
        else:
            series[day] = {
                "1. open": f"{b.open:.4f}", "2. high": f"{b.high:.4f}", "3. low": f"{b.low:.4f}",
                "4. close": f"{b.close:.4f}", "5. volume": str(b.volume),
            }  # fmt: skip
    info = (
        "Daily Time Series with Splits and Dividend Events"
        if adjusted
        else "Daily Prices (open, high, low, close) and Volumes"
    )
    meta = {"1. Information": info, "2. Symbol": symbol, "3. Last Refreshed": max(bars) if bars else "",
            "4. Output Size": "Full size", "5. Time Zone": "US/Eastern"}  # fmt: skip
    return json.dumps({"Meta Data": meta, "Time Series (Daily)": series}, indent=4).encode()


class RawLake:
    """Writes RAW files and manifests into a tmp lake, as the ingestion does."""

    def __init__(self, lake: Lake, provider: str = "synthetic"):
        self.lake = lake
        self.provider = provider
        self.root = lake.local_path("raw")
        # Continue after the newest file already in the lake: a second RawLake on the same lake then
        # writes later ingestions, not files whose ingested_at ties with the first one's.
        files = self.root.rglob("*") if self.root.exists() else []
        held = [p.stat().st_mtime for p in files if p.is_file() and "_manifests" not in p.parts]
        self._mtime = max([dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp(), *held])

    def _write(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._mtime += 60  # later files are later ingestions, deterministically
        os.utime(path, (self._mtime, self._mtime))
        return rel

    def file(self, dataset: str, symbol: str, ingest_date: str, run_id: str, data: bytes, records: int) -> str:
        rel = f"{self.provider}/{dataset}/ingest_date={ingest_date}/{symbol}/{run_id}.json"
        self._write(rel, data)
        manifest = self.root / "_manifests" / dataset / f"ingest_date={ingest_date}" / f"{run_id}.json"
        doc = json.loads(manifest.read_text()) if manifest.exists() else {"run_id": run_id, "files": []}
        doc["files"].append({
            "path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "symbol": symbol,
            "http_status": 200, "params": {"function": dataset, "symbol": symbol}, "records": records,
        })  # fmt: skip
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps(doc))
        return rel

    def daily_bars(self, symbol: str, bars: dict[str, Bar | dict], ingest_date: str, run_id: str = "run1",
                   adjusted: bool = True) -> str:  # fmt: skip
        return self.file("daily_bars", symbol, ingest_date, run_id, bar_body(symbol, bars, adjusted), len(bars))

    def overview(self, symbol: str, ingest_date: str, run_id: str = "run1", **attrs: str) -> str:
        body = {"Symbol": symbol, "AssetType": "Common Stock", "Name": f"{symbol} Inc", "Exchange": "NASDAQ",
                "Currency": "USD", "Country": "USA", "Sector": "TECHNOLOGY", "Industry": "SOFTWARE"}  # fmt: skip
        body.update(attrs)
        return self.file("security_master", symbol, ingest_date, run_id, json.dumps(body).encode(), 1)

    def capture(self, events: list[dict], at: dt.datetime, partition: str = "0", first_sequence: int = 0) -> str:
        """One Capture Avro file with `events` (message dicts) as bodies, written at `at`."""
        import fastavro

        records = []
        for i, message in enumerate(events):
            body = message if isinstance(message, bytes) else json.dumps(message).encode()
            records.append({
                "SequenceNumber": first_sequence + i, "Offset": str(1000 + first_sequence + i),
                "EnqueuedTimeUtc": at.strftime("%m/%d/%Y %I:%M:%S %p"),
                "SystemProperties": {"x-opt-enqueued-time": 0}, "Properties": {"k": None}, "Body": body,
            })  # fmt: skip
        buf = io.BytesIO()
        fastavro.writer(buf, fastavro.parse_schema(CAPTURE_SCHEMA), records)
        rel = f"eventhubs/local/market-quotes/{partition}/{at:%Y/%m/%d/%H/%M/%S}.avro"
        return self._write(rel, buf.getvalue())


def quote_message(symbol: str, price: float, fetched_at: str, day: str, run_id: str = "q1", **extra: str) -> dict:
    quote = {
        "01. symbol": symbol, "02. open": f"{price - 1:.4f}", "03. high": f"{price + 1:.4f}",
        "04. low": f"{price - 2:.4f}", "05. price": f"{price:.4f}", "06. volume": "1000",
        "07. latest trading day": day, "08. previous close": f"{price - 0.5:.4f}", "09. change": "0.5000",
        "10. change percent": "0.5000%",
    }  # fmt: skip
    quote.update(extra)
    return {"symbol": symbol, "fetched_at": fetched_at, "run_id": run_id, "quote": quote}


def random_walk_bars(days: list[dt.date], seed: int, start: float = 100.0,
                     events: dict[int, dict] | None = None) -> dict[str, Bar]:  # fmt: skip
    """Deterministic bars rounded to 4 decimals (so RAW strings parse back to the same floats).

    `events` maps a bar index to ``{"split": 2.0}`` and/or ``{"dividend": 0.5}``; a split divides
    the price level from that day on, as a real split does.
    """
    import random

    rng = random.Random(seed)
    events = events or {}
    bars: dict[str, Bar] = {}
    level = start
    for i, day in enumerate(days):
        event = events.get(i, {})
        level = level * (1 + rng.uniform(-0.03, 0.03)) / event.get("split", 1.0)
        open_ = round(level * (1 + rng.uniform(-0.01, 0.01)), 4)
        close = round(level, 4)
        high = round(max(open_, close) * (1 + rng.uniform(0, 0.01)), 4)
        low = round(min(open_, close) * (1 - rng.uniform(0, 0.01)), 4)
        bars[day.isoformat()] = Bar(open_, high, low, close, rng.randint(1_000, 50_000),
                                    dividend=event.get("dividend", 0.0), split=event.get("split", 1.0))  # fmt: skip
    return bars
