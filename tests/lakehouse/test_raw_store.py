"""The RAW store: atomic, write-once-per-name files; the ADLS backend's calls (Azure itself mocked)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from azure.storage.filedatalake import FileSystemClient

from lakehouse.lake import Lake, LakePathError
from lakehouse.raw_store import AdlsRawStore, DirectoryRawStore, app_raw_store, cluster_raw_store


def test_local_writes_replace_whole_files_and_leave_no_temporaries(tmp_path: Path):
    store = DirectoryRawStore(tmp_path)
    store.write_atomic("a/b/c.json", b"first")
    store.write_atomic("a/b/c.json", b"second")
    assert (tmp_path / "a/b/c.json").read_bytes() == b"second"
    (listed,) = store.list("a")
    assert (listed.path, listed.size) == ("a/b/c.json", 6)
    assert listed.modified.tzinfo is dt.UTC
    assert [p.name for p in tmp_path.rglob("*")] == ["a", "b", "c.json"]


def test_concurrent_readers_see_a_whole_file_or_none(tmp_path: Path):
    """A reader polling while a writer replaces a 2 MB file never sees a partial body."""
    store = DirectoryRawStore(tmp_path)
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
        DirectoryRawStore(tmp_path).write_atomic(path, b"x")


def test_the_store_of_a_local_lake_is_its_raw_directory_for_the_app_and_the_jobs(tmp_path: Path):
    for store in (app_raw_store(Lake(root=str(tmp_path))), cluster_raw_store(Lake(root=str(tmp_path)))):
        assert isinstance(store, DirectoryRawStore) and store.root == tmp_path / "raw"


def test_on_a_cluster_raw_is_read_from_its_unity_catalog_volume_without_any_credential(monkeypatch):
    """Job clusters have no managed identity: an abfss lake's RAW is the volume, read as files."""
    import azure.identity

    def no_credential(*args, **kwargs):  # pragma: no cover - must never be called
        raise AssertionError("cluster code must not build an Azure credential")

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", no_credential)
    lake = Lake(root="abfss://{container}@lakeacct.dfs.core.windows.net", raw_volume="/Volumes/lake/dev/raw")
    store = cluster_raw_store(lake)
    assert isinstance(store, DirectoryRawStore) and store.root == Path("/Volumes/lake/dev/raw")


def test_a_cluster_without_a_raw_volume_is_refused_naming_the_setting():
    with pytest.raises(LakePathError, match="LAKEHOUSE_RAW_VOLUME"):
        cluster_raw_store(Lake(root="abfss://{container}@lakeacct.dfs.core.windows.net"))


@pytest.mark.parametrize("volume", ["/Volumes/lake/dev", "/mnt/raw", "/Volumes/lake/dev/raw/../../x", "Volumes/a/b/c"])
def test_a_volume_path_must_name_catalog_schema_and_volume(volume: str):
    with pytest.raises(LakePathError, match="not a Unity Catalog volume"):
        Lake(root="abfss://{container}@acct.dfs.core.windows.net", raw_volume=volume)


class _NoCredential:
    """Azure is not reachable here; constructing clients must not need a token."""

    def get_token(self, *scopes, **kwargs):  # pragma: no cover - never called
        raise AssertionError("no network call expected")


def test_an_abfss_lake_maps_to_the_container_file_system_with_the_real_sdk():
    lake = Lake(root="abfss://{container}@lakeacct.dfs.core.windows.net")
    store = app_raw_store(lake, credential=_NoCredential())
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


def test_a_read_is_checked_against_the_fingerprints_its_manifests_recorded(tmp_path: Path):
    """Truncated or edited bytes are refused by name; bytes a manifest never listed cannot be checked."""
    from lakehouse.contracts.manifest import Fingerprint
    from lakehouse.raw_store import RawIntegrityError, read_verified

    store = DirectoryRawStore(tmp_path)
    body = b'{"Time Series (Daily)": {"2024-01-02": {"4. close": "10.5000"}}}'
    store.write_atomic("p/a.json", body)
    landed = Fingerprint.of(body)
    assert read_verified(store, "p/a.json", [landed]) == body
    assert read_verified(store, "p/a.json", []) == body  # no manifest entry: nothing to check against
    assert read_verified(store, "p/a.json", [Fingerprint(1, "0" * 64), landed]) == body  # listed by two runs
    store.write_atomic("p/a.json", body[:20])
    with pytest.raises(RawIntegrityError, match=r"p/a\.json: .*20 bytes where the manifest recorded 64"):
        read_verified(store, "p/a.json", [landed])
    store.write_atomic("p/a.json", body.replace(b"10.5000", b"99.5000"))
    with pytest.raises(RawIntegrityError, match=r"p/a\.json: .*sha256 [0-9a-f]{16}\.\.\. where the manifest recorded"):
        read_verified(store, "p/a.json", [landed])
