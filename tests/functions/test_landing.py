"""RAW stores: atomic, write-once-per-name files; the ADLS store's calls (Azure itself mocked)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from azure.storage.filedatalake import FileSystemClient
from market_ingest import landing
from market_ingest.landing import AdlsRawStore, LocalRawStore

from lakehouse.lake import Lake, LakePathError


def test_payload_and_manifest_paths_follow_the_raw_contract():
    day = dt.date(2024, 5, 24)
    assert landing.payload_path("synthetic", "daily_bars", day, "BRK.B", "run-1") == (
        "synthetic/daily_bars/ingest_date=2024-05-24/BRK.B/run-1.json"
    )
    assert (
        landing.manifest_path("daily_bars", day, "run-1") == "_manifests/daily_bars/ingest_date=2024-05-24/run-1.json"
    )


def test_local_writes_replace_whole_files_and_leave_no_temporaries(tmp_path: Path):
    store = LocalRawStore(tmp_path)
    store.write_atomic("a/b/c.json", b"first")
    store.write_atomic("a/b/c.json", b"second")
    assert (tmp_path / "a/b/c.json").read_bytes() == b"second"
    assert store.list("a") == ["a/b/c.json"]
    assert [p.name for p in tmp_path.rglob("*")] == ["a", "b", "c.json"]


def test_concurrent_readers_see_a_whole_file_or_none(tmp_path: Path):
    """A reader polling while a writer replaces a 2 MB file never sees a partial body."""
    store = LocalRawStore(tmp_path)
    bodies = [bytes([65 + i]) * 2_000_000 for i in range(5)]
    seen: set[int] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            if store.exists("x.json"):
                seen.add(len(store.read("x.json")))

    reader = threading.Thread(target=read)
    reader.start()
    for body in bodies:
        store.write_atomic("x.json", body)
    done.set()
    reader.join()
    assert seen <= {2_000_000}


@pytest.mark.parametrize("path", ["../escape.json", "a/../../b", "", "/"])
def test_paths_that_could_escape_the_container_are_refused(tmp_path: Path, path: str):
    with pytest.raises(LakePathError):
        LocalRawStore(tmp_path).write_atomic(path, b"x")


def test_the_store_of_a_local_lake_is_its_raw_directory(tmp_path: Path):
    store = landing.raw_store(Lake(root=str(tmp_path)))
    assert isinstance(store, LocalRawStore) and store.root == tmp_path / "raw"


class _NoCredential:
    """Azure is not reachable here; constructing clients must not need a token."""

    def get_token(self, *scopes, **kwargs):  # pragma: no cover - never called
        raise AssertionError("no network call expected")


def test_an_abfss_lake_maps_to_the_container_file_system_with_the_real_sdk():
    lake = Lake(root="abfss://{container}@lakeacct.dfs.core.windows.net")
    store = landing.raw_store(lake, credential=_NoCredential())
    assert isinstance(store, AdlsRawStore)
    assert isinstance(store.fs, FileSystemClient)
    assert store.fs.file_system_name == "raw"
    assert store.fs.url.startswith("https://lakeacct.dfs.core.windows.net/raw")
    assert store.base == ""


def test_a_base_folder_in_the_uri_prefixes_every_path():
    store = AdlsRawStore.from_uri("abfss://raw@acct.dfs.core.windows.net/tenant-a", credential=_NoCredential())
    client = store.fs.get_file_client(store._full("synthetic/x.json"))
    assert client.path_name == "tenant-a/synthetic/x.json"


def test_not_an_adls_uri_is_refused():
    with pytest.raises(LakePathError, match="not an ADLS Gen2 URI"):
        AdlsRawStore.from_uri("https://acct.blob.core.windows.net/raw")


class RecordingFileSystem:
    """Stands in for Azure's FileSystemClient (the service is mocked; the store's calls are real)."""

    file_system_name = "raw"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def get_file_client(self, path: str):
        fs = self

        class File:
            def upload_data(self, data, overwrite):
                fs.calls.append(("upload", path, data, overwrite))

            def rename_file(self, new_name):
                fs.calls.append(("rename", path, new_name))

        return File()


def test_adls_write_uploads_a_hidden_temporary_then_renames_it_into_place():
    fs = RecordingFileSystem()
    AdlsRawStore(fs).write_atomic("synthetic/daily_bars/ingest_date=2024-05-24/AAPL/r.json", b"{}")
    (upload, temp, data, overwrite), (rename, renamed, target) = fs.calls
    assert (upload, rename, data, overwrite) == ("upload", "rename", b"{}", True)
    assert temp == renamed
    assert temp.startswith("synthetic/daily_bars/ingest_date=2024-05-24/AAPL/.r.json.") and temp.endswith(".tmp")
    assert target == "raw/synthetic/daily_bars/ingest_date=2024-05-24/AAPL/r.json"
