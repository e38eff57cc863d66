"""The run manifest: what one ingestion run landed in RAW, typed, with its one reader.

The ingestion writes one manifest per run (:class:`Manifest`); the ingestion itself (to reuse a
payload another run landed the same day), raw_to_bronze (to cross-check record counts) and the
reconciliation read them back through :func:`read_manifests`. Each payload's size and sha256
(:class:`Fingerprint`) are what every later reader checks the bytes against: RAW is never
modified, so bytes that differ from their manifest entry were damaged or tampered with.

A damaged manifest (not JSON, or not this shape) is reported and skipped, never fatal: RAW
payloads, not manifests, are what the jobs load, and each file is reconciled against its own
parse. Failing instead would stop the ingestion and loading of undamaged data because of one bad
side file. Skipping is never silent: the reader logs the file and the reason and returns it in
:attr:`ManifestScan.damaged`, which callers report.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, StrictInt, ValidationError

from lakehouse.contracts.raw_layout import PAYLOAD_SUFFIX, manifest_folder

log = logging.getLogger(__name__)

FileStatus = Literal["written", "existing", "reused"]


@dataclass(frozen=True)
class Fingerprint:
    """Size and sha256 of a payload's bytes, as the manifest records them."""

    size: int
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> Fingerprint:
        return cls(len(data), hashlib.sha256(data).hexdigest())

    def difference(self, data: bytes) -> str | None:
        """Why `data` are not the bytes this fingerprint was taken of; None when they are."""
        if len(data) != self.size:
            return f"{len(data)} bytes where the manifest recorded {self.size}"
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            return f"sha256 {digest[:16]}... where the manifest recorded {self.sha256[:16]}..."
        return None


class ManifestFile(BaseModel):
    """One payload of a run: where it is, what it holds, how it was fetched (fields beyond these kept)."""

    model_config = ConfigDict(extra="allow")

    path: str
    symbol: str | None = None
    status: FileStatus | None = None
    records: StrictInt | None = None
    bytes: StrictInt | None = None
    sha256: str | None = None
    first_date: str | None = None
    last_date: str | None = None
    fetched_at: str | None = None
    outputsize: str | None = None
    reused_from: str | None = None
    reuse_refused: list[dict[str, str]] | None = None  # landed payloads not reused, and why
    request: dict[str, Any] | None = None

    @property
    def fingerprint(self) -> Fingerprint | None:
        """Size and sha256 of the payload, or None when the entry lacks either."""
        if self.bytes is None or self.sha256 is None:
            return None
        return Fingerprint(self.bytes, self.sha256)


class Manifest(BaseModel):
    """One ingestion run's manifest (the ingestion's answer plus per-file details)."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    dataset: str | None = None
    provider: str | None = None
    ingest_date: dt.date | None = None
    files: list[ManifestFile] = []

    def to_json(self) -> bytes:
        """The document as written to RAW: only the fields that were set, indented."""
        return self.model_dump_json(exclude_unset=True, indent=2).encode()

    def records_per_file(self) -> dict[str, int]:
        """Records each listed payload holds, as the ingestion counted them."""
        return {f.path: f.records for f in self.files if f.records is not None}


class DamagedManifest(ValueError):
    """A manifest that is not readable JSON of the manifest's shape; the message names the file."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"damaged manifest {path}: {reason}")
        self.path = path
        self.reason = reason


def parse_manifest(data: bytes, path: str) -> Manifest:
    """The manifest in `data` (read from `path`), or DamagedManifest naming `path`."""
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "document"
        raise DamagedManifest(path, f"{where}: {first['msg']}") from None


class _ManifestSource(Protocol):
    def list(self, prefix: str) -> list: ...  # items with a .path (lakehouse.raw_store.RawFile)

    def read(self, path: str) -> bytes: ...


@dataclass
class ManifestScan:
    """Manifests found under some ingest days, by path, and the damaged ones that were skipped."""

    manifests: dict[str, Manifest] = field(default_factory=dict)
    damaged: list[DamagedManifest] = field(default_factory=list)

    def records_per_file(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for manifest in self.manifests.values():
            found.update(manifest.records_per_file())
        return found

    def fingerprints(self) -> dict[str, frozenset[Fingerprint]]:
        """The fingerprints recorded for each payload path (a reused payload is listed by several runs)."""
        found: dict[str, set[Fingerprint]] = {}
        for manifest in self.manifests.values():
            for entry in manifest.files:
                if entry.fingerprint is not None:
                    found.setdefault(entry.path, set()).add(entry.fingerprint)
        return {path: frozenset(prints) for path, prints in found.items()}


def read_manifests(store: _ManifestSource, dataset: str, ingest_dates: Iterable[dt.date]) -> ManifestScan:
    """Every manifest of `dataset` landed on `ingest_dates`; damaged ones are logged and listed, not read."""
    scan = ManifestScan()
    for day in ingest_dates:
        for item in store.list(manifest_folder(dataset, day)):
            if not item.path.endswith(PAYLOAD_SUFFIX):
                continue
            try:
                scan.manifests[item.path] = _read(store, item.path)
            except DamagedManifest as exc:
                log.warning("%s (skipped)", exc)
                scan.damaged.append(exc)
    return scan


def _read(store: _ManifestSource, path: str) -> Manifest:
    try:
        data = store.read(path)
    except OSError as exc:
        raise DamagedManifest(path, f"unreadable ({exc.strerror or exc})") from None
    return parse_manifest(data, path)
