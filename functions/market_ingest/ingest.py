"""One `ingest` call: fetch a dataset for a set of symbols and a window, land it in RAW.

The steps, per call:

1. Validate the request; invalid symbols fail alone, before any URL or path is built.
2. Plan the window on the XNYS calendar: Alpha Vantage has no date range, so a window inside
   the latest 100 sessions is fetched with ``outputsize=compact``, anything older with ``full``.
3. Per symbol (bounded concurrency): keep a file this run id already landed (re-runs do not
   duplicate), else reuse a payload landed earlier the same ingest day that covers the window
   (chunks of one backfill download a full history once), else fetch and land it.
4. Write one manifest for the run and answer a summary. One symbol's failure never fails the
   others; the call fails (non-2xx) only when no symbol succeeded.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from lakehouse import inputs, trading_calendar
from market_ingest import landing
from market_ingest.errors import DeadlineReached, IngestError, QuotaExhausted, TransientError
from market_ingest.landing import RawStore
from market_ingest.providers.alpha_vantage import SERIES_KEY
from market_ingest.providers.base import COMPACT_SESSIONS, MarketDataProvider, OutputSize, Payload
from market_ingest.symbols import RejectedSymbol, split_symbols

log = logging.getLogger(__name__)

Dataset = Literal["daily_bars", "security_master"]
DATASETS: tuple[str, ...] = get_args(Dataset)
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
REQUEST_FIELDS = ("dataset", "symbols", "start_date", "end_date", "run_id")
RUN_LOOKBACK_DAYS = 7  # a re-run of a run id finds the ingest day of its first attempt this far back


class BadRequest(ValueError):
    """The request cannot be served; the message names the field."""


@dataclass(frozen=True)
class IngestRequest:
    dataset: str
    symbols: tuple[str, ...]
    rejected: tuple[RejectedSymbol, ...]
    start_date: dt.date
    end_date: dt.date
    run_id: str

    @classmethod
    def from_body(cls, body: object, *, default_symbols: Sequence[str], default_date: dt.date) -> IngestRequest:
        """Parse the JSON body of POST /api/ingest.

        `symbols` defaults to the configured universe, both dates to `default_date` (the latest
        session) and `run_id` to a fresh id.
        """
        if not isinstance(body, Mapping):
            raise BadRequest("the body must be a JSON object")
        unknown = sorted(set(body) - set(REQUEST_FIELDS))
        if unknown:
            raise BadRequest(f"unknown field(s) {unknown}; expected {list(REQUEST_FIELDS)}")
        dataset = body.get("dataset", "daily_bars")
        if dataset not in DATASETS:
            raise BadRequest(f"dataset must be one of {list(DATASETS)}, got {dataset!r}")
        raw_symbols = body.get("symbols")
        if raw_symbols is None:
            raw_symbols = list(default_symbols)
        elif isinstance(raw_symbols, str):
            raw_symbols = [s for s in raw_symbols.split(",") if s]
        if not isinstance(raw_symbols, list) or not raw_symbols:
            raise BadRequest("symbols must be a non-empty list of tickers")
        if len(raw_symbols) > inputs.MAX_SYMBOLS:
            raise BadRequest(f"symbols has {len(raw_symbols)} entries; at most {inputs.MAX_SYMBOLS} per call")
        symbols, rejected = split_symbols(raw_symbols)
        if not symbols:
            detail = "; ".join(f"{r.symbol!r}: {r.reason}" for r in rejected[:5])
            raise BadRequest(f"no valid symbol in symbols ({detail})")
        start = _date_field(body, "start_date", default_date)
        end = _date_field(body, "end_date", start if "start_date" in body else default_date)
        if end < start:
            raise BadRequest(f"end_date {end} is before start_date {start}")
        run_id = body.get("run_id") or f"manual-{uuid.uuid4().hex}"
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
            raise BadRequest(f"run_id must match {RUN_ID_PATTERN.pattern}, got {run_id!r}")
        return cls(dataset, tuple(symbols), tuple(rejected), start, end, run_id)


def _date_field(body: Mapping, name: str, default: dt.date) -> dt.date:
    value = body.get(name)
    if value in (None, ""):
        return default
    try:
        return inputs.date(value, name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


@dataclass(frozen=True)
class Window:
    """A request window on the trading calendar."""

    start: dt.date
    end: dt.date
    sessions: tuple[dt.date, ...]
    outputsize: OutputSize

    @property
    def first(self) -> dt.date | None:
        return self.sessions[0] if self.sessions else None

    @property
    def last(self) -> dt.date | None:
        return self.sessions[-1] if self.sessions else None


def plan_window(start: dt.date, end: dt.date, *, now: dt.datetime, calendar: str = "XNYS") -> Window:
    """Sessions of [start, end] that have closed by `now`, and the output size that covers them."""
    latest = trading_calendar.latest_session(now, code=calendar)
    window_sessions = tuple(trading_calendar.sessions(start, min(end, latest), code=calendar))
    recent = trading_calendar.sessions(latest - dt.timedelta(days=200), latest, code=calendar)
    compact_first = recent[-COMPACT_SESSIONS]
    compact = not window_sessions or window_sessions[0] >= compact_first
    return Window(start, end, window_sessions, "compact" if compact else "full")


@dataclass
class IngestResult:
    """What one call did; `answer()` is the HTTP body and most of the manifest."""

    request: IngestRequest
    provider: str
    ingest_date: dt.date
    window: Window
    started_at: dt.datetime
    files: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    note: str | None = None

    @property
    def manifest(self) -> str:
        return landing.manifest_path(self.request.dataset, self.ingest_date, self.request.run_id)

    @property
    def status_code(self) -> int:
        """200 when a symbol succeeded (or nothing was due); else 503 if only transient, else 502."""
        if self.files or not self.failures:
            return 200
        transient = {"throttled", "server_error", "timeout", "connection", "truncated", "quota_exhausted",
                     "deadline"}  # fmt: skip
        return 503 if all(f["kind"] in transient for f in self.failures) else 502

    def answer(self) -> dict[str, Any]:
        written = [f for f in self.files if f["status"] == "written"]
        summary: dict[str, Any] = {
            "run_id": self.request.run_id,
            "dataset": self.request.dataset,
            "provider": self.provider,
            "ingest_date": self.ingest_date.isoformat(),
            "start_date": self.request.start_date.isoformat(),
            "end_date": self.request.end_date.isoformat(),
            "sessions": len(self.window.sessions),
            "outputsize": self.window.outputsize if self.request.dataset == "daily_bars" else None,
            "symbols_requested": len(self.request.symbols) + len(self.request.rejected),
            "symbols_succeeded": len(self.files),
            "files_written": len(written),
            "files_reused": sum(f["status"] == "reused" for f in self.files),
            "records": sum(f["records"] for f in self.files),
            "records_in_window": sum(f.get("records_in_window", f["records"]) for f in self.files),
            "bytes": sum(f["bytes"] for f in written),
            "files": [
                {k: f[k] for k in ("symbol", "path", "status", "records", "bytes", "reused_from") if k in f}
                for f in self.files
            ],
            "failures": self.failures,
            "warnings": self.warnings,
            "container": landing.RAW,
            "manifest": self.manifest,
            "elapsed_seconds": self.elapsed_seconds,
        }
        if self.note:
            summary["note"] = self.note
        return summary

    def manifest_document(self) -> dict[str, Any]:
        doc = self.answer()
        doc["files"] = self.files
        doc["window"] = {
            "first_session": self.window.first.isoformat() if self.window.first else None,
            "last_session": self.window.last.isoformat() if self.window.last else None,
        }
        doc["started_at"] = self.started_at.isoformat()
        doc["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
        doc["symbols"] = list(self.request.symbols)
        return doc


class Ingestion:
    """Runs `ingest` calls against one provider and one RAW store.

    Args:
        deadline_seconds: no request starts after this long (ADF waits 230 s for the answer).
        concurrency: symbols fetched in parallel.
    """

    def __init__(
        self,
        provider: MarketDataProvider,
        store: RawStore,
        *,
        concurrency: int = 4,
        deadline_seconds: float = 170.0,
        calendar: str = "XNYS",
    ):
        self.provider = provider
        self.store = store
        self.concurrency = concurrency
        self.deadline_seconds = deadline_seconds
        self.calendar = calendar

    def run(self, request: IngestRequest, *, now: dt.datetime | None = None) -> IngestResult:
        started = time.monotonic()
        deadline = started + self.deadline_seconds
        now = now or dt.datetime.now(dt.UTC)
        window = plan_window(request.start_date, request.end_date, now=now, calendar=self.calendar)
        result = IngestResult(
            request=request,
            provider=self.provider.name,
            ingest_date=self._ingest_date(request, now.date()),
            window=window,
            started_at=now,
        )
        result.failures.extend(
            {"symbol": r.symbol, "kind": "invalid_symbol", "reason": r.reason} for r in request.rejected
        )
        if request.dataset == "daily_bars" and not window.sessions:
            result.note = f"no closed XNYS session in {request.start_date}..{request.end_date}"
        elif request.symbols:
            reusable = self._landed_today(request.dataset, result.ingest_date, request.run_id)
            quota_gone = threading.Event()

            def one(symbol: str) -> None:
                self._one_symbol(symbol, request, window, result, reusable.get(symbol, []), deadline, quota_gone)

            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="ingest") as pool:
                list(pool.map(one, request.symbols))
        result.files.sort(key=lambda f: f["symbol"])
        result.failures.sort(key=lambda f: f["symbol"])
        result.elapsed_seconds = round(time.monotonic() - started, 3)
        self.store.write_atomic(result.manifest, json.dumps(result.manifest_document(), indent=2).encode())
        log.info(
            "ingest run_id=%s dataset=%s symbols=%d succeeded=%d written=%d failed=%d in %.2fs",
            request.run_id, request.dataset, len(request.symbols), len(result.files),
            sum(f["status"] == "written" for f in result.files), len(result.failures),
            result.elapsed_seconds,
        )  # fmt: skip
        return result

    # --- per symbol ---------------------------------------------------------------------------

    def _one_symbol(
        self,
        symbol: str,
        request: IngestRequest,
        window: Window,
        result: IngestResult,
        candidates: list[dict[str, Any]],
        deadline: float,
        quota_gone: threading.Event,
    ) -> None:
        path = landing.payload_path(self.provider.name, request.dataset, result.ingest_date, symbol, request.run_id)
        try:
            if self.store.exists(path):
                entry = self._describe(symbol, path, self.store.read(path), window, request.dataset)
                entry["status"] = "existing"
            elif (origin := self._covering(candidates, window, request.dataset)) is not None:
                entry = {**origin, "status": "reused", "reused_from": origin["path"]}
                entry.pop("warnings", None)
                entry["records_in_window"] = _records_in_window_of(origin, window)
            else:
                if quota_gone.is_set():
                    raise QuotaExhausted("daily quota exhausted earlier in this call; not requested")
                if time.monotonic() >= deadline:
                    raise DeadlineReached(f"call deadline of {self.deadline_seconds:g} s reached; not requested")
                payload = self._fetch(symbol, request.dataset, window, deadline)
                self.store.write_atomic(path, payload.body)
                entry = self._describe(symbol, path, payload.body, window, request.dataset, payload)
                entry["status"] = "written"
                for message in payload.warnings:
                    result.warnings.append({"symbol": symbol, "message": message})
        except IngestError as exc:
            if isinstance(exc, QuotaExhausted):
                quota_gone.set()
            retryable = isinstance(exc, TransientError | QuotaExhausted | DeadlineReached)
            result.failures.append({"symbol": symbol, "kind": exc.kind, "reason": str(exc), "retryable": retryable})
            return
        except Exception as exc:  # a bug or storage error for one symbol must not lose the others
            log.exception("ingest %s failed unexpectedly", symbol)
            reason = f"{type(exc).__name__}: {exc}"[:300]
            result.failures.append({"symbol": symbol, "kind": "internal", "reason": reason, "retryable": True})
            return
        result.files.append(entry)

    def _fetch(self, symbol: str, dataset: str, window: Window, deadline: float) -> Payload:
        if dataset == "daily_bars":
            return self.provider.daily_bars(symbol, window.outputsize, deadline=deadline)
        return self.provider.overview(symbol, deadline=deadline)

    def _describe(
        self,
        symbol: str,
        path: str,
        body: bytes,
        window: Window,
        dataset: str,
        payload: Payload | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "symbol": symbol,
            "path": path,
            "sha256": landing.sha256(body),
            "bytes": len(body),
            "records": 1,
        }
        if dataset == "daily_bars":
            data = payload.data if payload is not None else json.loads(body)
            dates = sorted(data.get(SERIES_KEY, {}))
            # ISO dates sort as dates: the window's bars are one slice of the sorted keys.
            in_window = bisect.bisect_right(dates, window.end.isoformat()) - bisect.bisect_left(
                dates, window.start.isoformat()
            )
            entry.update(
                records=len(dates),
                first_date=dates[0] if dates else None,
                last_date=dates[-1] if dates else None,
                records_in_window=in_window,
            )
        if payload is not None:
            entry.update(
                http_status=payload.http_status,
                request=payload.params,
                endpoint=payload.endpoint,
                elapsed_seconds=payload.elapsed_seconds,
                attempts=payload.attempts,
                fetched_at=dt.datetime.now(dt.UTC).isoformat(),
                warnings=list(payload.warnings),
            )
            if dataset == "daily_bars":
                entry["outputsize"] = payload.params.get("outputsize")
        return entry

    # --- what RAW already holds -----------------------------------------------------------------

    def _ingest_date(self, request: IngestRequest, today: dt.date) -> dt.date:
        """The ingest day of this run id's first attempt, so a re-run lands in the same folder."""
        for back in range(RUN_LOOKBACK_DAYS):
            day = today - dt.timedelta(days=back)
            if self.store.exists(landing.manifest_path(request.dataset, day, request.run_id)):
                return day
        return today

    def _landed_today(self, dataset: str, ingest_date: dt.date, run_id: str) -> dict[str, list[dict]]:
        """Files landed by other runs the same ingest day, by symbol, newest run first."""
        by_symbol: dict[str, list[dict]] = {}
        for path in self.store.list(landing.manifest_folder(dataset, ingest_date)):
            if not path.endswith(".json") or path.endswith(f"/{run_id}.json"):
                continue
            try:
                manifest = json.loads(self.store.read(path))
            except (OSError, ValueError):
                log.warning("skipping unreadable manifest %s", path)
                continue
            if manifest.get("provider") != self.provider.name:
                continue
            for entry in manifest.get("files", []):
                if entry.get("status") in {"written", "existing"}:
                    by_symbol.setdefault(entry["symbol"], []).append(entry)
        for entries in by_symbol.values():
            entries.sort(key=lambda e: e.get("fetched_at", ""), reverse=True)
        return by_symbol

    def _covering(self, candidates: list[dict], window: Window, dataset: str) -> dict | None:
        for entry in candidates:
            if dataset == "daily_bars":
                function = entry.get("request", {}).get("function")
                if function != getattr(self.provider, "daily_function", function):
                    continue
                first, last = entry.get("first_date"), entry.get("last_date")
                if not (first and last and window.first and window.last):
                    continue
                starts_early = entry.get("outputsize") == "full" or first <= window.first.isoformat()
                if not (starts_early and last >= window.last.isoformat()):
                    continue
            if self.store.exists(entry["path"]):
                return entry
        return None


def _records_in_window_of(entry: dict, window: Window) -> int:
    if entry.get("first_date") is None:
        return entry.get("records", 1)
    # Sessions of the window inside the payload's range: exact for a complete series.
    lo, hi = entry["first_date"], entry["last_date"]
    return sum(lo <= d.isoformat() <= hi for d in window.sessions)
