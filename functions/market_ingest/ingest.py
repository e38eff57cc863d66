"""One `ingest` call: fetch a dataset for a set of symbols and a window, land it in RAW.

The steps, per call:

1. Validate the request; invalid symbols fail alone, before any URL or path is built.
2. Plan the window on the XNYS calendar: Alpha Vantage has no date range, so a window inside
   the latest 100 sessions is fetched with ``outputsize=compact``, anything older with ``full``.
   A window the provider plan cannot serve (``full`` on a free key) is refused as a bad request,
   with the reason, before any call is made.
3. Per symbol (bounded concurrency): keep a file this run id already landed (re-runs do not
   duplicate), else reuse a payload landed earlier the same ingest day that covers the window
   (chunks of one backfill download a full history once) and still has the size and sha256 its
   manifest recorded, else fetch and land it. A payload refused for reuse is named in this run's
   manifest with the reason (``reuse_refused``), so a damaged file cannot starve a whole day.
4. Write one manifest for the run and answer a summary. One symbol's failure never fails the
   others (unless it ends the call: the day's quota is gone, the plan refuses the request, the
   key is the demo key); the call fails (non-2xx) only when no symbol succeeded.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from lakehouse import inputs, plan_checks, trading_calendar
from lakehouse.contracts.alpha_vantage import ACTIONS_DATA_KEY, CORPORATE_ACTIONS, SERIES_KEY
from lakehouse.contracts.manifest import Manifest, ManifestFile, read_manifests
from lakehouse.contracts.provider_plans import PLANS, ProviderPlan
from lakehouse.contracts.raw_layout import ManifestLocation, PayloadLocation
from lakehouse.inputs import RejectedSymbol, split_symbols
from lakehouse.raw_store import RAW_CONTAINER, RawIntegrityError, RawStore, read_verified
from market_ingest.errors import DeadlineReached, IngestError, InvalidSymbol, UnexpectedFailure
from market_ingest.providers.base import MarketDataProvider, OutputSize, Payload

log = logging.getLogger(__name__)

# daily_bars: the daily series; security_master: OVERVIEW; splits / dividends: the SPLITS and
# DIVIDENDS endpoints, each symbol's whole event history (no window, like the overview).
Dataset = Literal["daily_bars", "security_master", "splits", "dividends"]
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
    compact = not window_sessions or window_sessions[0] >= plan_checks.compact_first_session(now, calendar=calendar)
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
    plan: str | None = None

    @property
    def manifest(self) -> str:
        return ManifestLocation(self.request.dataset, self.ingest_date, self.request.run_id).path

    @property
    def status_code(self) -> int:
        """200 when a symbol succeeded (or nothing was due); else 503 if a later call may succeed
        for every failed symbol (their ``retryable`` flags), else 502."""
        if self.files or not self.failures:
            return 200
        return 503 if all(f["retryable"] for f in self.failures) else 502

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
                {
                    k: f[k]
                    for k in ("symbol", "path", "status", "records", "bytes", "reused_from", "reuse_refused")
                    if k in f
                }
                for f in self.files
            ],
            "failures": self.failures,
            "warnings": self.warnings,
            "container": RAW_CONTAINER,
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
        doc["provider_plan"] = self.plan
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
        plan: ProviderPlan | None = None,
    ):
        self.provider = provider
        self.plan = plan or getattr(provider, "plan", None) or PLANS["premium"]
        self.store = store
        self.concurrency = concurrency
        self.deadline_seconds = deadline_seconds
        self.calendar = calendar

    def run(self, request: IngestRequest, *, now: dt.datetime | None = None) -> IngestResult:
        started = time.monotonic()
        deadline = started + self.deadline_seconds
        now = now or dt.datetime.now(dt.UTC)
        function = getattr(self.provider, "daily_function", "TIME_SERIES_DAILY")
        if request.dataset == "daily_bars":
            refusal = plan_checks.daily_bars_refusal(self.plan, request.start_date, now=now, function=function,
                                                     calendar=self.calendar)  # fmt: skip
            if refusal is not None:
                raise BadRequest(refusal)
        window = plan_window(request.start_date, request.end_date, now=now, calendar=self.calendar)
        result = IngestResult(
            request=request,
            provider=self.provider.name,
            ingest_date=self._ingest_date(request, now.date()),
            window=window,
            started_at=now,
            plan=self.plan.name,
        )
        result.failures.extend(InvalidSymbol(r.reason).failure(r.symbol) for r in request.rejected)
        if request.dataset == "daily_bars" and not window.sessions:
            result.note = f"no closed XNYS session in {request.start_date}..{request.end_date}"
        elif request.symbols:
            reusable = self._landed_today(request.dataset, result.ingest_date, request.run_id)
            call_ended: list[IngestError] = []

            def one(symbol: str) -> None:
                self._one_symbol(symbol, request, window, result, reusable.get(symbol, []), deadline, call_ended)

            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="ingest") as pool:
                list(pool.map(one, request.symbols))
        result.files.sort(key=lambda f: f["symbol"])
        result.failures.sort(key=lambda f: f["symbol"])
        result.elapsed_seconds = round(time.monotonic() - started, 3)
        self.store.write_atomic(result.manifest, Manifest.model_validate(result.manifest_document()).to_json())
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
        candidates: list[ManifestFile],
        deadline: float,
        call_ended: list[IngestError],
    ) -> None:
        path = PayloadLocation(self.provider.name, request.dataset, result.ingest_date, symbol, request.run_id).path
        refused: list[dict[str, str]] = []
        try:
            if self.store.exists(path):
                entry = self._describe(symbol, path, self.store.read(path), window, request.dataset)
                entry["status"] = "existing"
            elif (origin := self._covering(candidates, window, request.dataset, refused)) is not None:
                entry = {**origin, "status": "reused", "reused_from": origin["path"]}
                entry.pop("warnings", None)
                entry.pop("reuse_refused", None)
                entry["records_in_window"] = _records_in_window_of(origin, window)
            else:
                if call_ended:
                    ended = call_ended[0]
                    raise type(ended)(f"not requested: an earlier request of this call ended it ({ended})")
                if time.monotonic() >= deadline:
                    raise DeadlineReached(f"call deadline of {self.deadline_seconds:g} s reached; not requested")
                payload = self._fetch(symbol, request.dataset, window, deadline)
                self.store.write_atomic(path, payload.body)
                entry = self._describe(symbol, path, payload.body, window, request.dataset, payload)
                entry["status"] = "written"
                for message in payload.warnings:
                    result.warnings.append({"symbol": symbol, "message": message})
        except IngestError as exc:
            if exc.ends_call:
                call_ended.append(exc)
            result.failures.append(exc.failure(symbol))
            return
        except Exception as exc:  # a bug or storage error for one symbol must not lose the others
            log.exception("ingest %s failed unexpectedly", symbol)
            result.failures.append(UnexpectedFailure.of(exc).failure(symbol))
            return
        finally:
            for refusal in refused:
                result.warnings.append({"symbol": symbol, "message": f"not reused: {refusal['reason']}"})
        if refused:
            entry["reuse_refused"] = refused
        result.files.append(entry)

    def _fetch(self, symbol: str, dataset: str, window: Window, deadline: float) -> Payload:
        if dataset == "daily_bars":
            return self.provider.daily_bars(symbol, window.outputsize, deadline=deadline)
        if dataset == "splits":
            return self.provider.splits(symbol, deadline=deadline)
        if dataset == "dividends":
            return self.provider.dividends(symbol, deadline=deadline)
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
            "sha256": hashlib.sha256(body).hexdigest(),
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
        elif dataset in CORPORATE_ACTIONS:
            # One bronze row per event: the count RAW -> BRONZE reconciles against.
            data = payload.data if payload is not None else json.loads(body)
            entry["records"] = len(data.get(ACTIONS_DATA_KEY) or [])
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
            if self.store.exists(ManifestLocation(request.dataset, day, request.run_id).path):
                return day
        return today

    def _landed_today(self, dataset: str, ingest_date: dt.date, run_id: str) -> dict[str, list[ManifestFile]]:
        """Files landed by other runs the same ingest day, by symbol, newest run first."""
        own = ManifestLocation(dataset, ingest_date, run_id).path
        by_symbol: dict[str, list[ManifestFile]] = {}
        for path, manifest in read_manifests(self.store, dataset, [ingest_date]).manifests.items():
            if path == own or manifest.provider != self.provider.name:
                continue
            for entry in manifest.files:
                if entry.status in {"written", "existing"} and entry.symbol is not None:
                    by_symbol.setdefault(entry.symbol, []).append(entry)
        for entries in by_symbol.values():
            entries.sort(key=lambda e: e.fetched_at or "", reverse=True)
        return by_symbol

    def _covering(
        self, candidates: list[ManifestFile], window: Window, dataset: str, refused: list[dict[str, str]]
    ) -> dict | None:
        """The manifest entry of a landed payload that covers the window and is intact, as a dict.

        A covering payload whose bytes are not those its entry recorded (or whose entry records no
        size and sha256 to check them against) is not reused; it is added to `refused` with the reason.
        """
        for entry in candidates:
            if dataset == "daily_bars":
                function = (entry.request or {}).get("function")
                if function != getattr(self.provider, "daily_function", function):
                    continue
                first, last = entry.first_date, entry.last_date
                if not (first and last and window.first and window.last):
                    continue
                starts_early = entry.outputsize == "full" or first <= window.first.isoformat()
                if not (starts_early and last >= window.last.isoformat()):
                    continue
            if not self.store.exists(entry.path):
                continue
            if entry.fingerprint is None:
                refused.append({"path": entry.path, "reason": f"{entry.path}: its manifest entry records no size "
                                "and sha256 to check it against"})  # fmt: skip
                continue
            try:
                read_verified(self.store, entry.path, [entry.fingerprint])
            except RawIntegrityError as exc:
                refused.append({"path": entry.path, "reason": str(exc)})
                continue
            return entry.model_dump(exclude_unset=True)
        return None


def _records_in_window_of(entry: dict, window: Window) -> int:
    if entry.get("first_date") is None:
        return entry.get("records", 1)
    # Sessions of the window inside the payload's range: exact for a complete series.
    lo, hi = entry["first_date"], entry["last_date"]
    return sum(lo <= d.isoformat() <= hi for d in window.sessions)
