"""The local platform for one command: services, schema, market API, Spark, and an ADF run context.

Commands that run pipelines (`adf run`, `backfill`, `trigger run`, `demo`) all need the same
things set up in the same order, and torn down in reverse:

1. the embedded services (reused when `lakehouse services up` already started them);
2. the serving database's migrations, and runs left ``InProgress`` by a process that died marked
   failed (``local.run_store.recover_abandoned_runs``: they would otherwise look like runs going on);
3. the synthetic market API when the provider is `synthetic` and no ALPHAVANTAGE_BASE_URL is set;
4. the environment the Function app and the notebooks read their settings from (the same
   variable names as the app settings in Azure);
5. a Spark Connect session, stopped before the services go down, behind a :class:`SparkEngine`
   that restarts the embedded Sail server when it dies during the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from pyspark.sql import SparkSession

from lakehouse.settings import Settings
from local import services
from local.adf.records import ActivityFailure
from local.reachability import mask_spark_remote
from local.spark import close_lost, connect, lost_connection

DEFAULT_MAX_WAIT_SECONDS = 5.0
SPARK_REMOTE_ENV = "LAKEHOUSE_SPARK_REMOTE"

log = logging.getLogger(__name__)
T = TypeVar("T")


class SparkEngineGone(ActivityFailure):
    """The Spark engine stopped answering and is not coming back for this run; names the server."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "SparkEngineGone")


@dataclass(frozen=True)
class EngineRestart:
    """One restart of the embedded Sail server during a run."""

    during: str  # the notebook that found it dead
    reason: str  # what showed it dead
    old_url: str
    new_url: str
    pid: int
    seconds: float


class SparkEngine:
    """The Spark session a command's notebooks run on, and the embedded Sail server behind it.

    Why here: the platform owns both the session (it connects and stops it) and the command's lease
    on the services, so it is the one place that can replace a dead server and the session bound
    to it in the middle of a run. Without that, a Sail server killed in chunk 1 of a backfill failed
    that chunk and every later one, and only the next command started it again.

    The rule, per notebook activity: when its Spark calls lose their server (gRPC UNAVAILABLE,
    ``local.spark.lost_connection``) and ``local.services`` finds the recorded server dead (the
    proven-ownership check; nothing else is ever signalled), Sail is started again on the same home
    with the same scope, a new session connects to it, and the notebook runs once more. That is
    safe because every job is idempotent for its window (docs/local-runtime.md says how each one
    is). A server found dead before a notebook starts is restarted the same way. An error the
    server answered with, or one of the notebook's own code, is never retried here (the activity's
    ADF retry policy applies to it, as to any failure).

    One restart per activity: a server that dies again after its restart, or a restart that fails,
    gives the engine up for the rest of the run. That notebook and every later one then fail at
    once with :class:`SparkEngineGone` naming the server, so the remaining chunks of a backfill end
    in seconds instead of each meeting a dead server. An external engine (LAKEHOUSE_SPARK_REMOTE)
    is not this runtime's to restart: a lost connection fails the activity naming it.
    """

    def __init__(self, settings: Settings, remote: str) -> None:
        self.settings = settings
        self.embedded = not settings.spark_remote
        self.restarts: list[EngineRestart] = []
        self._lock = threading.Lock()
        self._remote = remote
        self._session = connect(remote)
        self._generation = 0  # sessions replaced so far: an activity retrying on a newer one needs no restart
        self._gone: str | None = None

    @property
    def session(self) -> SparkSession:
        return self._session

    def run(self, work: Callable[[SparkSession], T], what: str) -> T:
        """`work` on the session; once more on a new session if the embedded server died under it.

        Raises:
            SparkEngineGone: the server died again after its restart, could not be restarted, was
                given up earlier in the run, or is external and stopped answering.
        """
        session, generation, restarted = self._ready(what)
        for retry in (False, True):
            try:
                return work(session)
            except Exception as exc:
                reason = lost_connection(exc)
                if reason is None:
                    raise
                if restarted or retry:
                    raise self._give_up(what, reason) from exc
                replaced = self._replace(generation, what, reason)
                if replaced is None:  # the server is alive: the lost call was not a dead engine
                    raise
                session = replaced
        raise AssertionError("unreachable: the second attempt returns or raises")

    def stop(self) -> None:
        if self._gone is not None:
            close_lost(self._session)
        else:
            self._session.stop()

    def _ready(self, what: str) -> tuple[SparkSession, int, bool]:
        """The session to run on; an embedded server already dead is restarted first."""
        with self._lock:
            if self._gone is not None:
                raise SparkEngineGone(self._gone)
            dead = self.embedded and not services.serving(self.settings, "spark", self._remote)
            restarted = dead and self._restart(what, "its process was gone before the notebook started")
            return self._session, self._generation, restarted

    def _replace(self, generation: int, what: str, reason: str) -> SparkSession | None:
        """A session on a live server after a lost call, or None when the server did not die."""
        with self._lock:
            if self._gone is not None:
                raise SparkEngineGone(self._gone)
            if generation != self._generation:  # another activity restarted it meanwhile
                return self._session
            if not self.embedded:
                raise self._external_lost(what, reason)
            return self._session if self._restart(what, reason) else None

    def _restart(self, what: str, reason: str) -> bool:
        """Restart the embedded server if the registry proves it dead, and reconnect (under the
        lock); False when it is alive."""
        started, old = time.monotonic(), self._remote
        try:
            info = services.restart_if_dead(self.settings, "spark", url=old)
            if info is None:
                return False
            # Connected before the lost session is closed: closing takes pyspark's session lock
            # while it waits for that session's last calls to give up, and connecting needs it too.
            session = connect(info.url)
        except Exception as exc:
            raise self._mark_gone(
                f"it stopped answering while running {what} ({reason}) and could not be restarted: {exc}"
            ) from None
        close_lost(self._session)
        self._session, self._remote = session, info.url
        self._generation += 1
        if os.environ.get(SPARK_REMOTE_ENV) == old:  # the platform's setting for this command's notebooks
            os.environ[SPARK_REMOTE_ENV] = info.url
        restart = EngineRestart(what, reason, old, info.url, info.pid, round(time.monotonic() - started, 2))
        self.restarts.append(restart)
        log.warning("the embedded Sail server at %s died (%s, during %s); restarted as pid %d at %s in %.1f s",
                    old, reason, what, info.pid, info.url, restart.seconds)  # fmt: skip
        return True

    def _give_up(self, what: str, reason: str) -> SparkEngineGone:
        with self._lock:
            if not self.embedded:
                return self._external_lost(what, reason)
            return self._mark_gone(f"it died again after its restart, while running {what} ({reason})")

    def _external_lost(self, what: str, reason: str) -> SparkEngineGone:
        return SparkEngineGone(
            f"the Spark Connect server {mask_spark_remote(self._remote)} ({SPARK_REMOTE_ENV}) stopped answering "
            f"while running {what} ({reason}); it is not started by this runtime, so it is not restarted here"
        )

    def _mark_gone(self, why: str) -> SparkEngineGone:
        """Give the engine up for the rest of the run; the error every later notebook gets."""
        server_log = self.settings.home_dir / "services" / "spark.log"
        self._gone = (
            f"the embedded Sail Spark Connect server of {self.settings.home_dir} ({self._remote}) is gone: {why}; "
            f"the run stops using it instead of restarting it again (server log: {server_log})"
        )
        return SparkEngineGone(self._gone)


@dataclass
class LocalPlatform:
    settings: Settings
    endpoints: services.Endpoints
    engine: SparkEngine
    market_api_url: str | None

    @property
    def spark(self) -> SparkSession:
        """The current session (a new one after a restart of the embedded server)."""
        return self.engine.session

    def run_context(self, on_event: Callable[[str, Any], None] | None = None):
        """An ADF run context whose notebooks run on this platform's engine and runs are recorded.

        Retry intervals and Wait activities are capped at LAKEHOUSE_ADF_MAX_WAIT_SECONDS
        (default 5 s): ADF's 120 s retry interval protects a cluster start, which locally is
        instantaneous, and a deterministic local failure should be reported in seconds.
        """
        from local.adf.runner import local_context
        from local.notebook_runner import SparkNotebookExecutor

        cap = float(os.environ.get("LAKEHOUSE_ADF_MAX_WAIT_SECONDS", DEFAULT_MAX_WAIT_SECONDS))
        context = local_context(self.spark, self.endpoints.pg_dsn, on_event=on_event)
        context.notebook_executor = SparkNotebookExecutor(owner=self.engine)
        context.sleep = lambda seconds: time.sleep(min(seconds, cap))
        return context


@contextlib.contextmanager
def overridden_environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (the Function app and notebooks read settings there)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def local_platform(settings: Settings) -> Iterator[LocalPlatform]:
    """Everything a pipeline run needs on this machine, for the duration of the block."""
    from local.adf.expressions import warm_up
    from local.run_store import recover_abandoned_runs
    from spark_jobs import migrations

    warm_up()  # .NET and the expression engine load on their own thread while the services start
    with contextlib.ExitStack() as stack:
        eps = stack.enter_context(services.running(settings))
        migrations.apply(eps.pg_dsn)
        recover_abandoned_runs(eps.pg_dsn)
        env = {
            "LAKEHOUSE_HOME": str(settings.home_dir),
            "LAKEHOUSE_SPARK_REMOTE": eps.spark_remote,
            "LAKEHOUSE_PG_DSN": eps.pg_dsn,
        }
        market_url = os.environ.get("ALPHAVANTAGE_BASE_URL")
        if settings.provider == "synthetic" and not market_url:
            from local import market_api

            server = stack.enter_context(market_api.running())
            market_url = server.url
            env["ALPHAVANTAGE_BASE_URL"] = market_url
        stack.enter_context(overridden_environment(env))
        engine = SparkEngine(settings, eps.spark_remote)
        stack.callback(engine.stop)
        yield LocalPlatform(settings, eps, engine, market_url)
