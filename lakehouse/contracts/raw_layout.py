"""Where RAW files live inside the raw container: built and parsed by the same definitions.

Payloads: ``{provider}/{dataset}/ingest_date=YYYY-MM-DD/{symbol}/{run_id}.json``.
Run manifests: ``_manifests/{dataset}/ingest_date=YYYY-MM-DD/{run_id}.json``.
Event Hubs Capture files: ``eventhubs/{namespace}/{hub}/{partition}/YYYY/MM/DD/HH/mm/SS.avro``.

Every location is a frozen dataclass whose ``path`` builds the path and whose ``parse`` is its
inverse: ``Location.parse(loc.path) == loc``. A path that does not follow the layout is refused
with :class:`RawLayoutError`, never half-parsed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MANIFESTS = "_manifests"
CAPTURE_ROOT = "eventhubs"
PAYLOAD_SUFFIX = ".json"
CAPTURE_SUFFIX = ".avro"

# One segment of a RAW path: no separator, no "." / "..", nothing a URL or a shell would mangle.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_DAY = "ingest_date="


class RawLayoutError(ValueError):
    """A RAW path, or a part of one, that does not follow the layout; the message says which."""


def _segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise RawLayoutError(f"{what} {value!r} cannot be a RAW path segment")
    return value


def _day_segment(day: dt.date) -> str:
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise RawLayoutError(f"ingest date must be a date, got {day!r}")
    return f"{_DAY}{day.isoformat()}"


def _parse_day(segment: str, path: str) -> dt.date:
    text = segment.removeprefix(_DAY)
    if text == segment or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise RawLayoutError(f"{path!r}: expected an 'ingest_date=YYYY-MM-DD' folder, got {segment!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise RawLayoutError(f"{path!r}: {text!r} is not a calendar date") from None


def _split(path: str, parts: int, suffix: str, what: str) -> list[str]:
    segments = path.split("/")
    if len(segments) != parts or not segments[-1].endswith(suffix):
        raise RawLayoutError(f"{path!r} is not a {what} path ({parts} segments ending in {suffix})")
    return segments


@dataclass(frozen=True)
class PayloadLocation:
    """One landed API payload."""

    provider: str
    dataset: str
    ingest_date: dt.date
    symbol: str
    run_id: str

    @property
    def path(self) -> str:
        if self.provider in (MANIFESTS, CAPTURE_ROOT):
            raise RawLayoutError(f"provider {self.provider!r} is a reserved RAW folder")
        return "/".join([
            _segment(self.provider, "provider"), _segment(self.dataset, "dataset"),
            _day_segment(self.ingest_date), _segment(self.symbol, "symbol"),
            _segment(self.run_id, "run id") + PAYLOAD_SUFFIX,
        ])  # fmt: skip

    @classmethod
    def parse(cls, path: str) -> PayloadLocation:
        provider, dataset, day, symbol, name = _split(path, 5, PAYLOAD_SUFFIX, "payload")
        location = cls(provider, dataset, _parse_day(day, path), symbol, name.removesuffix(PAYLOAD_SUFFIX))
        return _checked(location, path)


@dataclass(frozen=True)
class ManifestLocation:
    """The manifest of one ingestion run."""

    dataset: str
    ingest_date: dt.date
    run_id: str

    @property
    def path(self) -> str:
        return "/".join([
            MANIFESTS, _segment(self.dataset, "dataset"), _day_segment(self.ingest_date),
            _segment(self.run_id, "run id") + PAYLOAD_SUFFIX,
        ])  # fmt: skip

    @classmethod
    def parse(cls, path: str) -> ManifestLocation:
        root, dataset, day, name = _split(path, 4, PAYLOAD_SUFFIX, "manifest")
        if root != MANIFESTS:
            raise RawLayoutError(f"{path!r} is not under {MANIFESTS}/")
        return _checked(cls(dataset, _parse_day(day, path), name.removesuffix(PAYLOAD_SUFFIX)), path)


@dataclass(frozen=True)
class CaptureLocation:
    """One Event Hubs Capture Avro file (one partition, one capture second, UTC)."""

    namespace: str
    hub: str
    partition: str
    captured_at: dt.datetime

    @property
    def path(self) -> str:
        moment = self.captured_at.astimezone(dt.UTC)
        return "/".join([
            CAPTURE_ROOT, _segment(self.namespace, "namespace"), _segment(self.hub, "hub"),
            _segment(self.partition, "partition"), f"{moment:%Y/%m/%d/%H/%M/%S}{CAPTURE_SUFFIX}",
        ])  # fmt: skip

    @property
    def day(self) -> dt.date:
        return self.captured_at.astimezone(dt.UTC).date()

    @classmethod
    def parse(cls, path: str) -> CaptureLocation:
        segments = _split(path, 10, CAPTURE_SUFFIX, "Capture")
        root, namespace, hub, partition, *clock = segments
        clock[-1] = clock[-1].removesuffix(CAPTURE_SUFFIX)
        if root != CAPTURE_ROOT or not all(re.fullmatch(r"\d{4}" if i == 0 else r"\d{2}", c)
                                           for i, c in enumerate(clock)):  # fmt: skip
            raise RawLayoutError(f"{path!r} is not a Capture path (eventhubs/.../YYYY/MM/DD/HH/mm/SS.avro)")
        try:
            moment = dt.datetime(*map(int, clock), tzinfo=dt.UTC)
        except ValueError:
            raise RawLayoutError(f"{path!r}: {'/'.join(clock)} is not a time") from None
        return _checked(cls(namespace, hub, partition, moment), path)


def _checked(location, path: str):
    """The parsed location, if building it gives back exactly `path` (segments are valid, nothing lost)."""
    if location.path != path:
        raise RawLayoutError(f"{path!r} does not follow the RAW layout (rebuilt as {location.path!r})")
    return location


def payload_folder(provider: str, dataset: str, ingest_date: dt.date) -> str:
    """The folder of one ingest day's payloads of a dataset (all symbols)."""
    return "/".join([_segment(provider, "provider"), _segment(dataset, "dataset"), _day_segment(ingest_date)])


def manifest_folder(dataset: str, ingest_date: dt.date | None = None) -> str:
    """The folder of a dataset's manifests, or of one ingest day's."""
    parts = [MANIFESTS, _segment(dataset, "dataset")]
    if ingest_date is not None:
        parts.append(_day_segment(ingest_date))
    return "/".join(parts)


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    """The ingest days of [start, end], one folder each."""
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
