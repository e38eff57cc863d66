"""Embedded services of the one-machine runtime: a Sail Spark Connect server and PostgreSQL.

Both run as separate processes on free loopback ports and are recorded in
``$LAKEHOUSE_HOME/services.json`` so that later commands reuse them. Where
``LAKEHOUSE_SPARK_REMOTE`` or ``LAKEHOUSE_PG_DSN`` is set, that endpoint is used instead and
nothing is started for it.

A recorded service counts as this home's only when its process is proven to be the one this home
started: it serves this home's directory (Sail's work directory, PostgreSQL's data directory) and
carries the token drawn when it was started (in its environment or command line). A pid, a port
and a process name are not enough: a copied home (``cp -a`` while services run) or a reused pid
would otherwise send writes to another home's database, or signals to someone else's process.
Nothing is ever signalled without that proof.

Services started for one command are leased: each command holds a lease while it runs, and the
last lease released stops them, so one command never stops a server another is still using.
Services started by ``lakehouse services up`` stay until ``lakehouse services down``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import psutil

from lakehouse.settings import Settings

# pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it then uses /tmp.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

ServiceName = Literal["spark", "postgres"]
DATABASE = "lakehouse"
PG_SYSTEM_USER = "pgserver"  # postgres refuses to run as root; pgserver's convention
START_ID_ENV = "LAKEHOUSE_SERVICE_START_ID"  # a per-start token in the environment of the process
HOME_ENV = "LAKEHOUSE_SERVICE_HOME"  # the home that started it, to find it without the registry
PG_CLUSTER_PREFIX = "lakehouse-"  # postgres carries its token as -c cluster_name=lakehouse-<token>


class ServiceError(RuntimeError):
    """An embedded service could not be started or reached."""


class RegistryUnreadable(ServiceError):
    """services.json is not a registry this code wrote."""


@dataclass(frozen=True)
class ServiceInfo:
    """One running service as recorded in the registry.

    ``home`` and ``token`` identify it (what it serves, and which start it was); ``scoped`` says
    it was started for a command and is stopped when the last command using it ends.
    """

    name: str
    pid: int
    port: int
    url: str
    log: str
    started_at: float
    external: bool = False
    home: str = ""
    token: str = ""
    scoped: bool = False


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


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return {}


def proven_ours(pid: int, token: str, serves: Path) -> psutil.Process | None:
    """The process `pid` if it serves `serves` (an argument of its command line) and carries
    `token` (in its command line or environment); None otherwise, and for a zombie."""
    if not token or pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = proc.cmdline()
        if str(serves) not in cmdline:
            return None
        if any(token in arg for arg in cmdline) or _environ(proc).get(START_ID_ENV) == token:
            return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return None


def _listens_on(proc: psutil.Process, port: int) -> bool:
    """True when `proc` listens on `port`; where its sockets cannot be read, when the port answers."""
    try:
        conns = proc.net_connections(kind="tcp")
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
        return port_open(port)
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


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


def _terminate(proc: psutil.Process, grace: float = 10.0) -> None:
    """SIGTERM `proc` (already proven ours) and its children, SIGKILL what outlives the grace."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)


@dataclass
class Lease:
    """A command using this home's services: its process, so a lease of a dead command is ignored."""

    pid: int
    created: float

    @classmethod
    def of_this_process(cls) -> Lease:
        return cls(os.getpid(), psutil.Process().create_time())

    def live(self) -> bool:
        try:
            return abs(psutil.Process(self.pid).create_time() - self.created) < 0.01
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False


@dataclass
class RegistryState:
    """What the registry holds: the services of this home and the leases of running commands."""

    entries: dict[str, ServiceInfo]
    leases: dict[str, Lease] = field(default_factory=dict)


class Registry:
    """The services file under $LAKEHOUSE_HOME, read and written under an exclusive lock.

    Entries recorded by another home (a copied one) are refused: they are read as absent, so the
    services they name are neither used nor signalled.
    """

    def __init__(self, home: Path):
        self.home = home
        self.dir = home / "services"
        self.path = home / "services.json"
        self.leases_path = self.dir / "leases.json"

    @contextlib.contextmanager
    def locked(self, set_aside_unreadable: bool = False) -> Iterator[RegistryState]:
        """The registry for reading and changing; written back when the block ends without error.

        Args:
            set_aside_unreadable: move an unreadable services.json to services.json.unreadable
                and start from an empty registry, instead of raising RegistryUnreadable.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = self.read()
            except RegistryUnreadable:
                if not set_aside_unreadable:
                    raise
                self.path.replace(self.path.with_name(self.path.name + ".unreadable"))
                entries = {}
            state = RegistryState(entries, self._read_leases())
            yield state
            _write_json(self.path, {k: asdict(v) for k, v in state.entries.items()})
            _write_json(self.leases_path, {k: asdict(v) for k, v in state.leases.items()})

    def read(self) -> dict[str, ServiceInfo]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            entries = {name: _service_info(name, value) for name, value in raw.items()}
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise RegistryUnreadable(
                f"{self.path} is not a services registry ({type(exc).__name__}: {str(exc)[:200]}); "
                "`lakehouse services down` stops this home's services and sets the file aside"
            ) from None
        return {name: info for name, info in entries.items() if info.home == str(self.home)}

    def _read_leases(self) -> dict[str, Lease]:
        try:
            raw = json.loads(self.leases_path.read_text())
            return {key: Lease(int(v["pid"]), float(v["created"])) for key, v in raw.items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}  # no leases (or unreadable ones): services of dead commands may be stopped


def _service_info(name: str, value: Any) -> ServiceInfo:
    known = {f.name for f in fields(ServiceInfo)}
    if not isinstance(value, dict) or not set(value) <= known:
        raise ValueError(f"entry {name!r} is not a service record")
    info = ServiceInfo(**value)
    if info.name != name or not isinstance(info.pid, int) or not isinstance(info.port, int):
        raise ValueError(f"entry {name!r} has a wrong name, pid or port")
    return info


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


class _OwnedService:
    """What every embedded service does with a registry entry: find its process only when it is
    proven ours (the start token, serving this home's directory), and only then check or stop it."""

    served: Path  # the directory the process serves (Sail's working dir, PostgreSQL's data dir)

    def process(self, info: ServiceInfo) -> psutil.Process | None:
        return proven_ours(info.pid, info.token, self.served)

    def healthy(self, info: ServiceInfo) -> bool:
        proc = self.process(info)
        return proc is not None and _listens_on(proc, info.port)

    def stop(self, info: ServiceInfo) -> None:
        proc = self.process(info)
        if proc is not None:
            self.stop_process(proc)

    def stop_process(self, proc: psutil.Process) -> None:
        raise NotImplementedError


class SailService(_OwnedService):
    """Sail (pysail) serving Spark Connect; one process, `python -m pysail spark server`."""

    name: ServiceName = "spark"

    def __init__(self, home: Path):
        self.home = home
        self.workdir = self.served = home / "spark"

    def start(self, scoped: bool) -> ServiceInfo:
        port = free_port()
        token = secrets.token_hex(8)
        log = self.home / "services" / "spark.log"
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pysail", "spark", "server", "--ip", "127.0.0.1",
               "--port", str(port), "-C", str(self.workdir)]  # fmt: skip
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
               START_ID_ENV: token, HOME_ENV: str(self.home)}  # fmt: skip
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env,
            )  # fmt: skip
        try:
            _wait_for_port(port, lambda: proc.poll() is None, "Sail Spark Connect server", log)
        except ServiceError:
            with contextlib.suppress(psutil.NoSuchProcess):
                _terminate(psutil.Process(proc.pid))
            raise
        return ServiceInfo(self.name, proc.pid, port, f"sc://127.0.0.1:{port}", str(log), time.time(),
                           home=str(self.home), token=token, scoped=scoped)  # fmt: skip

    def stop_process(self, proc: psutil.Process) -> None:
        _terminate(proc)

    def unrecorded(self) -> list[psutil.Process]:
        """Sail servers this home started that no registry entry names (an unreadable registry)."""
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                env = _environ(proc)
                start_id = env.get(START_ID_ENV, "")
                if env.get(HOME_ENV) == str(self.home) and proven_ours(proc.pid, start_id, self.workdir):
                    found.append(proc)
        return found


class PostgresService(_OwnedService):
    """PostgreSQL from the `pgserver` wheel, data under $LAKEHOUSE_HOME/postgres, TCP on loopback."""

    name: ServiceName = "postgres"

    def __init__(self, home: Path):
        self.home = home
        self.pgdata = self.served = home / "postgres" / "data"

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

    def _postmaster(self) -> psutil.Process | None:
        """The live server `postmaster.pid` names, when it is a postgres serving this data directory.

        A pid file copied from another home names that home's directory; one left by a killed
        server names a dead (or reused) pid: neither is a server of ours.
        """
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, datadir = int(lines[0]), lines[1]
        except (OSError, ValueError, IndexError):
            return None
        if datadir != str(self.pgdata) or pid <= 0:  # a negative pid: a standalone backend (initdb)
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE and str(self.pgdata) in proc.cmdline():
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None
        return None

    def start(self, scoped: bool) -> ServiceInfo:
        from pgserver import _commands as pg

        self.pgdata.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        if not (self.pgdata / "PG_VERSION").exists():
            pg.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=self.pgdata, **run_as)
        pidfile = self.pgdata / "postmaster.pid"
        running = self._postmaster()
        if running is not None:
            raise ServiceError(
                f"a PostgreSQL server (pid {running.pid}) already serves {self.pgdata} but is not the one "
                "services.json records; `lakehouse services down` stops it"
            )
        if pidfile.exists():  # left by a killed server, or copied from another home
            pidfile.unlink()
        port = free_port()
        token = secrets.token_hex(8)
        log = self.pgdata / "server.log"
        # TCP only (-k ''): a socket under the home breaks on a space in its path (pg_ctl hands -o to a
        # shell) and on a path over 107 bytes; nothing here connects through a socket.
        options = f"-h 127.0.0.1 -p {port} -k '' -c cluster_name={PG_CLUSTER_PREFIX}{token}"
        try:
            pg.pg_ctl(["-w", "-t", "60", "-o", options, "-l", str(log), "start"], pgdata=self.pgdata,
                      timeout=90, **run_as)  # fmt: skip
        except subprocess.CalledProcessError as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServiceError(f"PostgreSQL did not start: {exc}; log {log}:\n{tail}") from None
        pid = int(pidfile.read_text().splitlines()[0])
        url = f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
        info = ServiceInfo(self.name, pid, port, url, str(log), time.time(),
                           home=str(self.home), token=token, scoped=scoped)  # fmt: skip
        try:
            _ensure_database(port)
        except Exception:
            self.stop(info)
            raise
        return info

    def stop_process(self, proc: psutil.Process) -> None:
        from pgserver import _commands as pg

        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pg.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, timeout=60, **self._run_as())
        _terminate(proc)

    def unrecorded(self) -> list[psutil.Process]:
        """The server on this data directory when this code started it (its cluster name says so)."""
        proc = self._postmaster()
        with contextlib.suppress(psutil.Error):
            if proc is not None and any(PG_CLUSTER_PREFIX in arg for arg in proc.cmdline()):
                return [proc]
        return []


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
    settings: Settings,
    needs: tuple[ServiceName, ...] = ("spark", "postgres"),
    *,
    scoped: bool = False,
    lease: str | None = None,
) -> tuple[dict[str, ServiceInfo], list[str]]:
    """Start what is needed and not running; return the endpoints and the names started now.

    Args:
        settings: the home and the configured endpoints.
        needs: the services wanted.
        scoped: start them for one command (stopped when the last lease is released) rather than
            until `services down`; a persistent service found running stays persistent, and a
            scoped one asked for unscoped becomes persistent.
        lease: record this lease in the same locked step, so no other command stops what it got.
    """
    home = settings.ensure_home()
    external = _external(settings)
    started: list[str] = []
    with Registry(home).locked() as state:
        entries = state.entries
        try:
            for service in _services(home):
                if service.name in external or service.name not in needs:
                    continue
                current = entries.get(service.name)
                if current is not None and service.healthy(current):
                    if current.scoped and not scoped:
                        entries[service.name] = replace(current, scoped=False)
                    continue
                if current is not None:  # dead, hung or not ours: stop it only if proven ours
                    service.stop(current)
                    del entries[service.name]
                entries[service.name] = service.start(scoped)
                started.append(service.name)
        except BaseException:
            for service in _services(home):
                if service.name in started:
                    service.stop(entries.pop(service.name))
            raise
        if lease is not None:
            state.leases[lease] = Lease.of_this_process()
        result = {k: v for k, v in {**entries, **external}.items() if k in needs}
    return result, started


def release(settings: Settings, lease: str) -> list[str]:
    """End a command's lease; when no live lease remains, stop the command-scoped services."""
    home = settings.home_dir
    stopped = []
    with contextlib.ExitStack() as stack:
        try:
            state = stack.enter_context(Registry(home).locked())
        except RegistryUnreadable:  # damaged while the command ran: `services down` is the way out
            return []
        state.leases.pop(lease, None)
        state.leases = {k: v for k, v in state.leases.items() if v.live()}
        if state.leases:
            return []
        for service in _services(home):
            info = state.entries.get(service.name)
            if info is not None and info.scoped:
                service.stop(info)
                del state.entries[service.name]
                stopped.append(service.name)
    return stopped


def down(settings: Settings, only: list[str] | None = None) -> list[str]:
    """Stop the embedded services this home started; return the names stopped.

    Works on an unreadable services.json too: it is set aside, and the servers proven to be this
    home's (by their directory and the marks their start left) are found without it.
    """
    home = settings.home_dir
    if not home.exists():
        return []
    stopped = []
    with Registry(home).locked(set_aside_unreadable=True) as state:
        for service in _services(home):
            if only is not None and service.name not in only:
                continue
            info = state.entries.pop(service.name, None)
            if info is not None and service.process(info) is not None:
                service.stop(info)
                stopped.append(service.name)
            elif only is None:
                orphans = service.unrecorded()
                for proc in orphans:
                    service.stop_process(proc)
                if orphans:
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
    """A DSN without its password, or a Spark Connect URL without its token, for display."""
    if url.startswith("sc://"):
        from local.reachability import mask_spark_remote

        return mask_spark_remote(url)
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(url)
    except Exception:
        return "<unparseable DSN>"
    if "password" in parts:
        parts["password"] = "*****"  # noqa: S105 - a mask, not a password
    return make_conninfo(**parts)


@contextlib.contextmanager
def running(settings: Settings, needs: tuple[ServiceName, ...] = ("spark", "postgres")) -> Iterator[Endpoints]:
    """Endpoints for the duration of a command, under a lease.

    Services already running are reused; those started here are command-scoped, and are stopped
    when the last command holding a lease on them ends (not when this one does, if another still
    uses them). Services from `lakehouse services up` are left running. An endpoint not in
    `needs` is reported as an empty string.
    """
    from local.reachability import Unreachable, require_external

    external = _external(settings)
    try:
        require_external(*(external[n].url if n in external and n in needs else None for n in ("spark", "postgres")))
    except Unreachable as exc:
        raise ServiceError(str(exc)) from None
    lease = uuid.uuid4().hex
    endpoints, _ = up(settings, needs, scoped=True, lease=lease)
    try:
        yield Endpoints(
            spark_remote=endpoints["spark"].url if "spark" in endpoints else "",
            pg_dsn=endpoints["postgres"].url if "postgres" in endpoints else "",
        )
    finally:
        release(settings, lease)


def restart_if_dead(settings: Settings, name: ServiceName, url: str | None = None) -> ServiceInfo | None:
    """The live server of `name` to use instead of one that stopped answering, or None when there is
    none to switch to: `name` is external, or the recorded server is healthy and is the one at `url`.

    A dead recorded server is handled as ``up`` handles it, under the registry's lock: stopped only
    if proven ours (a dead one is not, so nothing is signalled), then started again on this home
    with the same scope (command-scoped or not), on a new port. A healthy recorded server at another
    URL was restarted meanwhile by another command on this home: that one is returned.

    Raises:
        ServiceError: nothing is recorded for `name` (``services down`` stopped it: not restarted
            behind its back), or the new server did not start (the error shows its log).
    """
    if name in _external(settings):
        return None
    home = settings.home_dir
    service = next(s for s in _services(home) if s.name == name)
    registry = Registry(home)
    with registry.locked() as state:
        current = state.entries.get(name)
        if current is None:
            raise ServiceError(f"no {name} server is recorded in {registry.path} any more (`lakehouse services "
                               "down`?); it is not started again behind that")  # fmt: skip
        if service.healthy(current):
            return None if url in (None, current.url) else current
        service.stop(current)
        state.entries[name] = service.start(current.scoped)
        return state.entries[name]


def serving(settings: Settings, name: ServiceName, url: str) -> bool:
    """True unless the registry shows the server of `name` at `url` gone: its recorded process is
    not proven ours and listening, or another server is recorded now. A check without the lock,
    that changes nothing; an unreadable registry proves nothing gone (True)."""
    home = settings.home_dir
    try:
        current = Registry(home).read().get(name)
    except RegistryUnreadable:
        return True
    service = next(s for s in _services(home) if s.name == name)
    return current is not None and current.url == url and service.healthy(current)


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
