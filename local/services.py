"""Embedded services of the one-machine runtime: a Sail Spark Connect server and PostgreSQL.

Both run as separate processes on free loopback ports and are recorded in
``$LAKEHOUSE_HOME/services.json`` so that later commands reuse them. A recorded service whose
process died, or whose port now answers for someone else, is started again on a new port.
Where ``LAKEHOUSE_SPARK_REMOTE`` or ``LAKEHOUSE_PG_DSN`` is set, that endpoint is used instead
and nothing is started for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import psutil

from lakehouse.settings import Settings

# pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it then uses /tmp.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

ServiceName = Literal["spark", "postgres"]
DATABASE = "lakehouse"
PG_SYSTEM_USER = "pgserver"  # postgres refuses to run as root; pgserver's convention


class ServiceError(RuntimeError):
    """An embedded service could not be started or reached."""


@dataclass(frozen=True)
class ServiceInfo:
    """One running service as recorded in the registry."""

    name: str
    pid: int
    port: int
    url: str
    log: str
    started_at: float
    external: bool = False


@dataclass(frozen=True)
class Endpoints:
    """What a job needs to reach the services."""

    spark_remote: str
    pg_dsn: str


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _process_alive(pid: int, marker: str) -> bool:
    """True when `pid` runs and its command line contains `marker` (guards against pid reuse)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _wait_for_port(port: int, proc_alive, what: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if not proc_alive():
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise ServiceError(f"{what} did not start on port {port}; log {log}:\n{tail}")


def _terminate(pid: int, grace: float = 10.0) -> None:
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [proc, *proc.children(recursive=True)]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)


class Registry:
    """The services file under $LAKEHOUSE_HOME, read and written under an exclusive lock."""

    def __init__(self, home: Path):
        self.dir = home / "services"
        self.path = home / "services.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, ServiceInfo]]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self.read()
            yield entries
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({k: asdict(v) for k, v in entries.items()}, indent=2))
            tmp.replace(self.path)

    def read(self) -> dict[str, ServiceInfo]:
        if not self.path.exists():
            return {}
        return {k: ServiceInfo(**v) for k, v in json.loads(self.path.read_text()).items()}


class SailService:
    """Sail (pysail) serving Spark Connect; one process, `python -m pysail spark server`."""

    name: ServiceName = "spark"
    marker = "pysail"

    def __init__(self, home: Path):
        self.home = home

    def start(self) -> ServiceInfo:
        port = free_port()
        log = self.home / "services" / "spark.log"
        workdir = self.home / "spark"
        workdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pysail", "spark", "server", "--ip", "127.0.0.1",
               "--port", str(port), "-C", str(workdir)]  # fmt: skip
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env,
            )  # fmt: skip
        _wait_for_port(port, lambda: proc.poll() is None, "Sail Spark Connect server", log)
        return ServiceInfo(self.name, proc.pid, port, f"sc://127.0.0.1:{port}", str(log), time.time())

    def healthy(self, info: ServiceInfo) -> bool:
        return _process_alive(info.pid, self.marker) and port_open(info.port)

    def stop(self, info: ServiceInfo) -> None:
        _terminate(info.pid)


class PostgresService:
    """PostgreSQL from the `pgserver` wheel, data under $LAKEHOUSE_HOME/postgres, TCP on loopback."""

    name: ServiceName = "postgres"
    marker = "postgres"

    def __init__(self, home: Path):
        self.home = home
        self.pgdata = home / "postgres" / "data"

    def _run_as(self) -> dict:
        """Keyword arguments that make pg binaries run as an unprivileged user when we are root."""
        if os.geteuid() != 0:
            return {}
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.pgdata)
        _ensure_pg_binaries_readable()
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        return {"user": PG_SYSTEM_USER}

    def start(self) -> ServiceInfo:
        from pgserver import _commands as pg

        self.pgdata.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        if not (self.pgdata / "PG_VERSION").exists():
            pg.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=self.pgdata, **run_as)
        pidfile = self.pgdata / "postmaster.pid"
        if pidfile.exists():  # left by a killed server; its process is gone (we checked health)
            pidfile.unlink()
        port = free_port()
        log = self.pgdata / "server.log"
        options = f"-h 127.0.0.1 -p {port} -k {self.pgdata}"
        try:
            pg.pg_ctl(["-w", "-t", "60", "-o", options, "-l", str(log), "start"], pgdata=self.pgdata,
                      timeout=90, **run_as)  # fmt: skip
        except subprocess.CalledProcessError as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServiceError(f"PostgreSQL did not start: {exc}; log {log}:\n{tail}") from None
        pid = int(pidfile.read_text().splitlines()[0])
        url = f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
        _ensure_database(port)
        return ServiceInfo(self.name, pid, port, url, str(log), time.time())

    def healthy(self, info: ServiceInfo) -> bool:
        return _process_alive(info.pid, self.marker) and port_open(info.port)

    def stop(self, info: ServiceInfo) -> None:
        from pgserver import _commands as pg

        if _process_alive(info.pid, self.marker):
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pg.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, timeout=60, **self._run_as())
        _terminate(info.pid)


def _ensure_pg_binaries_readable() -> None:
    import stat

    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

    marker = POSTGRES_BIN_PATH.parent / ".lakehouse-perms"
    if marker.exists():
        return
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
    marker.touch()


def _ensure_database(port: int) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def _services(home: Path) -> list[SailService | PostgresService]:
    return [SailService(home), PostgresService(home)]


def _external(settings: Settings) -> dict[str, ServiceInfo]:
    found = {}
    if settings.spark_remote:
        found["spark"] = ServiceInfo("spark", 0, 0, settings.spark_remote, "", 0.0, external=True)
    if settings.pg_dsn:
        dsn = settings.pg_dsn.get_secret_value()
        found["postgres"] = ServiceInfo("postgres", 0, 0, dsn, "", 0.0, external=True)
    return found


def up(
    settings: Settings, needs: tuple[ServiceName, ...] = ("spark", "postgres")
) -> tuple[dict[str, ServiceInfo], list[str]]:
    """Start what is needed and not running; return the endpoints and the names started now."""
    home = settings.ensure_home()
    external = _external(settings)
    started: list[str] = []
    with Registry(home).locked() as entries:
        for service in _services(home):
            if service.name in external or service.name not in needs:
                continue
            current = entries.get(service.name)
            if current is not None and service.healthy(current):
                continue
            if current is not None:  # dead or its port taken over: clean up what is left
                service.stop(current)
            entries[service.name] = service.start()
            started.append(service.name)
        result = {k: v for k, v in {**entries, **external}.items() if k in needs}
    return result, started


def down(settings: Settings, only: list[str] | None = None) -> list[str]:
    """Stop the embedded services this home started; return the names stopped."""
    home = settings.home_dir
    if not home.exists():
        return []
    stopped = []
    with Registry(home).locked() as entries:
        for service in _services(home):
            info = entries.get(service.name)
            if info is None or (only is not None and service.name not in only):
                continue
            service.stop(info)
            del entries[service.name]
            stopped.append(service.name)
    return stopped


def status(settings: Settings) -> list[dict]:
    """One row per service: name, state, url/dsn, pid, port."""
    home = settings.home_dir
    entries = Registry(home).read() if home.exists() else {}
    external = _external(settings)
    rows = []
    for service in _services(home):
        if service.name in external:
            info = external[service.name]
            rows.append({"name": service.name, "state": "external", "url": _masked(info.url),
                         "pid": None, "port": None})  # fmt: skip
            continue
        info = entries.get(service.name)
        if info is None:
            rows.append({"name": service.name, "state": "stopped", "url": None, "pid": None, "port": None})
            continue
        state = "running" if service.healthy(info) else "dead"
        rows.append({"name": service.name, "state": state, "url": info.url, "pid": info.pid, "port": info.port})
    return rows


def _masked(url: str) -> str:
    """A DSN without its password, for display."""
    if url.startswith("sc://"):
        return url
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(url)
    except Exception:
        return "<unparseable DSN>"
    if "password" in parts:
        parts["password"] = "*****"  # noqa: S105 - a mask, not a password
    return make_conninfo(**parts)


@contextlib.contextmanager
def running(
    settings: Settings, needs: tuple[ServiceName, ...] = ("spark", "postgres")
) -> Iterator[Endpoints]:
    """Endpoints for the duration of a command; stops at exit only what this call started.

    Services already running (from `lakehouse services up`) are reused and left running.
    An endpoint not in `needs` is reported as an empty string.
    """
    endpoints, started = up(settings, needs)
    try:
        yield Endpoints(
            spark_remote=endpoints["spark"].url if "spark" in endpoints else "",
            pg_dsn=endpoints["postgres"].url if "postgres" in endpoints else "",
        )
    finally:
        if started:
            down(settings, only=started)


def current_endpoints(settings: Settings) -> Endpoints | None:
    """Endpoints of services already running (or external), without starting anything."""
    external = _external(settings)
    entries = Registry(settings.home_dir).read() if settings.home_dir.exists() else {}
    found = {}
    for service in _services(settings.home_dir):
        info = external.get(service.name) or entries.get(service.name)
        if info is None or not (info.external or service.healthy(info)):
            return None
        found[service.name] = info.url
    return Endpoints(spark_remote=found["spark"], pg_dsn=found["postgres"])
