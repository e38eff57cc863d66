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
def session_home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """LAKEHOUSE_HOME of the embedded services shared by the whole run.

    Not under pytest's temporary root: every pytest process started on the machine resets that
    root to mode 0700, and the embedded PostgreSQL, which runs as its own user, then loses access
    to its data directory mid-run. After a run with failures the servers' logs are copied under
    the temporary root first: a failure that does not come back is then still explained.
    """
    home = Path(tempfile.mkdtemp(prefix="lakehouse-test-home-"))
    home.chmod(0o755)
    yield home
    if request.session.testsfailed:
        _keep_service_logs(home, tmp_path_factory.getbasetemp() / "service-logs", request.config)
    shutil.rmtree(home, ignore_errors=True)


def _keep_service_logs(home: Path, to: Path, config: pytest.Config) -> None:
    """Copy the Sail and PostgreSQL logs of `home` (stopped by then) to `to`, and say where."""
    logs = {"spark.log": home / "services" / "spark.log", "postgres.log": home / "postgres" / "data" / "server.log"}
    found = {name: log for name, log in logs.items() if log.is_file()}
    if not found:
        return
    to.mkdir(parents=True, exist_ok=True)
    for name, log in found.items():
        shutil.copyfile(log, to / name)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"service logs of this run: {to}")


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


# Where Settings and the code's test hooks read the environment: LAKEHOUSE_*, and a few by their own names.
SETTINGS_ENV_PREFIXES = ("LAKEHOUSE_", "ALPHAVANTAGE_", "APPLICATIONINSIGHTS_")


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of the settings of the shell the suite runs in, for the test's duration: a
    LAKEHOUSE_LAKE_ROOT would put every test's tables on one shared lake, a LAKEHOUSE_PG_DSN
    send its DQ results to another run's PostgreSQL (gone once that run ends)."""
    for name in list(os.environ):
        if name.upper().startswith(SETTINGS_ENV_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture
def lakehouse_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoints: services.Endpoints,
                  clean_environment: None) -> Path:  # fmt: skip
    """A fresh LAKEHOUSE_HOME per test, pointed at the session's running services."""
    home = tmp_path / "home"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("LAKEHOUSE_SPARK_REMOTE", endpoints.spark_remote)
    monkeypatch.setenv("LAKEHOUSE_PG_DSN", endpoints.pg_dsn)
    return home
