"""The RAW container: write-once payload files and run manifests, locally or in ADLS Gen2.

Both stores take paths relative to the container (``synthetic/daily_bars/...``) and write
atomically: the bytes go to a temporary name in the same directory, then one rename makes them
visible. A reader therefore sees a whole file or none. Temporary names start with ``.`` and end
with ``.tmp`` so that globbing ``*.json`` / ``*.avro`` never picks them up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from lakehouse.lake import Lake, LakePathError

RAW = "raw"
MANIFESTS = "_manifests"


class RawStore(Protocol):
    """Files of one lake container, addressed by paths relative to it."""

    def exists(self, path: str) -> bool: ...

    def read(self, path: str) -> bytes: ...

    def write_atomic(self, path: str, data: bytes) -> None: ...

    def list(self, prefix: str) -> list[str]:
        """Paths of the files under a folder (recursively), relative to the container."""
        ...


def _check_relative(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in {".", ".."} for p in parts):
        raise LakePathError(f"unsafe RAW path {path!r}")
    return "/".join(parts)


def _temp_name(path: str) -> str:
    head, _, name = path.rpartition("/")
    temp = f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    return f"{head}/{temp}" if head else temp


class LocalRawStore:
    """A lake container as a directory (the local runtime)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _abs(self, path: str) -> Path:
        return self.root / _check_relative(path)

    def exists(self, path: str) -> bool:
        return self._abs(path).is_file()

    def read(self, path: str) -> bytes:
        return self._abs(path).read_bytes()

    def write_atomic(self, path: str, data: bytes) -> None:
        target = self._abs(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = self.root / _temp_name(_check_relative(path))
        try:
            with open(temp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        base = self._abs(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )


class AdlsRawStore:
    """A lake container in ADLS Gen2 (hierarchical namespace), authenticated by Entra ID.

    Args:
        file_system: a ``FileSystemClient`` of azure-storage-file-datalake.
        base: folder inside the file system under which `path` arguments live ('' for the root).
    """

    def __init__(self, file_system, base: str = ""):
        self.fs = file_system
        self.base = base.strip("/")

    @classmethod
    def from_uri(cls, uri: str, credential=None) -> AdlsRawStore:
        """Client for ``abfss://{container}@{account}.dfs.core.windows.net[/base]``.

        `credential` defaults to DefaultAzureCredential (the app's managed identity in Azure).
        """
        from azure.storage.filedatalake import DataLakeServiceClient

        parsed = urlparse(uri)
        if parsed.scheme not in {"abfss", "abfs"} or "@" not in parsed.netloc:
            raise LakePathError(f"not an ADLS Gen2 URI: {uri!r}")
        container, host = parsed.netloc.split("@", 1)
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        service = DataLakeServiceClient(account_url=f"https://{host}", credential=credential)
        return cls(service.get_file_system_client(container), base=parsed.path)

    def _full(self, path: str) -> str:
        path = _check_relative(path)
        return f"{self.base}/{path}" if self.base else path

    def exists(self, path: str) -> bool:
        return bool(self.fs.get_file_client(self._full(path)).exists())

    def read(self, path: str) -> bytes:
        return self.fs.get_file_client(self._full(path)).download_file().readall()

    def write_atomic(self, path: str, data: bytes) -> None:
        full = self._full(path)
        temp = self.fs.get_file_client(_temp_name(full))
        temp.upload_data(data, overwrite=True)
        # A rename on a hierarchical-namespace account is atomic and replaces the target.
        temp.rename_file(f"{self.fs.file_system_name}/{full}")

    def list(self, prefix: str) -> list[str]:
        folder = self._full(prefix)
        directory = self.fs.get_directory_client(folder)
        if not directory.exists():
            return []
        cut = len(self.base) + 1 if self.base else 0
        return sorted(
            p.name[cut:]
            for p in self.fs.get_paths(path=folder, recursive=True)
            if not p.is_directory and not p.name.rsplit("/", 1)[-1].startswith(".")
        )


def raw_store(lake: Lake, container: str = RAW, credential=None) -> RawStore:
    """The store of a lake container: a directory locally, ADLS Gen2 in Azure."""
    if lake.is_local:
        return LocalRawStore(lake.local_path(container))
    return AdlsRawStore.from_uri(lake.uri(container), credential=credential)


def payload_path(provider: str, dataset: str, ingest_date: dt.date, symbol: str, run_id: str) -> str:
    """``{provider}/{dataset}/ingest_date=YYYY-MM-DD/{symbol}/{run_id}.json`` (the RAW contract)."""
    return "/".join([provider, dataset, f"ingest_date={ingest_date.isoformat()}", symbol, f"{run_id}.json"])


def manifest_path(dataset: str, ingest_date: dt.date, run_id: str) -> str:
    return "/".join([MANIFESTS, dataset, f"ingest_date={ingest_date.isoformat()}", f"{run_id}.json"])


def manifest_folder(dataset: str, ingest_date: dt.date | None = None) -> str:
    parts = [MANIFESTS, dataset]
    if ingest_date is not None:
        parts.append(f"ingest_date={ingest_date.isoformat()}")
    return "/".join(parts)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
