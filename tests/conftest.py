"""Session-wide services for the suite: one Sail server and one PostgreSQL per test run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.settings import Settings, load_settings
from local import services


@pytest.fixture(scope="session")
def session_home() -> Iterator[Path]:
    """LAKEHOUSE_HOME of the embedded services shared by the whole run.

    Not under pytest's temporary root: every pytest process started on the machine resets that
    root to mode 0700, and the embedded PostgreSQL, which runs as its own user, then loses access
    to its data directory mid-run.
    """
    home = Path(tempfile.mkdtemp(prefix="lakehouse-test-home-"))
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def service_settings(session_home: Path) -> Settings:
    return load_settings(home=session_home)


@pytest.fixture(scope="session")
def endpoints(service_settings: Settings) -> Iterator[services.Endpoints]:
    """The embedded Sail and PostgreSQL servers (or the external ones named in the environment)."""
    with services.running(service_settings) as eps:
        yield eps


@pytest.fixture(scope="session")
def spark(endpoints: services.Endpoints):
    from local.spark import connect

    session = connect(endpoints.spark_remote)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def pg_dsn(endpoints: services.Endpoints) -> str:
    return endpoints.pg_dsn


@pytest.fixture
def lakehouse_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoints: services.Endpoints) -> Path:
    """A fresh LAKEHOUSE_HOME per test, pointed at the session's running services."""
    home = tmp_path / "home"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", endpoints.spark_remote)
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", endpoints.pg_dsn)
    for name in list(os.environ):
        if name.startswith("ALPHAVANTAGE_"):
            monkeypatch.delenv(name)
    return home
