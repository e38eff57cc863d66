"""Failpoints: named places where a test can have the process killed, to prove crash recovery.

A test hook, never armed in production. The code under test calls ``failpoint("name")`` at an
activity boundary, or wraps a write in ``with during("name", started=...)``; nothing happens
unless the environment variable ``LAKEHOUSE_FAILPOINTS`` names that failpoint (comma-separated
names; ``*`` globs allowed, e.g. ``delta_commit:silver.*``). When armed, the process is killed
with SIGKILL, the signal nothing can catch or clean up after: no ``finally`` block, no atexit,
no rollback by the process itself. What survives is what a real crash leaves behind.

Unarmed cost: one environment lookup per call.

``during`` kills while the wrapped operation is in flight, from a watcher thread, as soon as its
``started`` predicate is true (e.g. "a new data file of this Delta table exists", that is, the
write is under way and not yet committed), or after ``LAKEHOUSE_FAILPOINT_DELAY`` seconds
(default 0.05) when no predicate is given. Processes listed in ``LAKEHOUSE_FAILPOINT_ALSO_KILL``
(pids) are killed first: that is how a test kills the Spark engine together with its client.
Before dying, the failpoint appends one JSON line to ``LAKEHOUSE_FAILPOINT_LOG`` (if set) naming
the failpoint and what it observed, so a test can assert the kill happened where it meant.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

ENV = "LAKEHOUSE_FAILPOINTS"
ENV_DELAY = "LAKEHOUSE_FAILPOINT_DELAY"
ENV_ALSO_KILL = "LAKEHOUSE_FAILPOINT_ALSO_KILL"
ENV_LOG = "LAKEHOUSE_FAILPOINT_LOG"
DEFAULT_DELAY = 0.05
POLL_SECONDS = 0.0002  # a small write's data files and its commit can be a millisecond apart
GIVE_UP_SECONDS = 600.0


def armed(name: str) -> bool:
    """True when LAKEHOUSE_FAILPOINTS names `name` (exactly or by a glob)."""
    spec = os.environ.get(ENV)
    if not spec:
        return False
    return any(fnmatch.fnmatchcase(name, pattern.strip()) for pattern in spec.split(",") if pattern.strip())


def failpoint(name: str, **observed: object) -> None:
    """Kill this process here if `name` is armed; otherwise return at once."""
    if os.environ.get(ENV) and armed(name):
        _die(name, {"when": "at", **observed})


@contextlib.contextmanager
def during(name: str, started: Callable[[], Callable[[], object]] | None = None) -> Iterator[None]:
    """Kill this process while the block runs, if `name` is armed.

    Args:
        name: the failpoint's name.
        started: called once, only when armed, before the block (e.g. ``DeltaWriteStarted(path)``,
            which lists the table as it is); what it returns is polled by a watcher thread and the
            kill comes as soon as that returns something truthy (logged as what was observed).
            Without it, the kill comes after LAKEHOUSE_FAILPOINT_DELAY seconds. If the block ends
            first, the process is killed right after it (logged as "missed").
    """
    if not (os.environ.get(ENV) and armed(name)):
        yield
        return
    done = threading.Event()
    poll = started() if started else None

    def watch() -> None:
        deadline = time.monotonic() + (GIVE_UP_SECONDS if poll else _delay())
        while not done.is_set() and time.monotonic() < deadline:
            seen = poll() if poll else None
            if seen:
                _die(name, {"when": "during", "observed": seen})
            time.sleep(POLL_SECONDS if poll else 0.005)
        if not done.is_set():
            _die(name, {"when": "during", "observed": "delay elapsed"})

    watcher = threading.Thread(target=watch, name=f"failpoint-{name}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
    _die(name, {"when": "after", "observed": "missed: the operation ended before the watcher saw it"})


def _delay() -> float:
    try:
        return float(os.environ.get(ENV_DELAY, DEFAULT_DELAY))
    except ValueError:
        return DEFAULT_DELAY


_DYING = threading.Lock()


def _die(name: str, details: dict) -> None:
    _DYING.acquire()  # the watcher and the block's end may both get here: one logs and kills, the other waits
    others = [int(p) for p in os.environ.get(ENV_ALSO_KILL, "").split(",") if p.strip().isdigit()]
    for pid in others:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    log = os.environ.get(ENV_LOG)
    if log:
        record = {"failpoint": name, "pid": os.getpid(), "also_killed": others, **details}
        with open(log, "a") as out:  # one small line: written before the kill, flushed on close
            out.write(json.dumps(record, default=str) + "\n")
    os.kill(os.getpid(), signal.SIGKILL)


class DeltaWriteStarted:
    """A ``started`` factory for :func:`during`: true once a Delta write to a local table is under
    way and not yet committed, i.e. a new data file exists and ``_delta_log`` has no new version.

    If the commit is already there when first seen, it reports that instead (the kill then comes
    just after the commit, which the log line says).
    """

    def __init__(self, table_dir: str) -> None:
        self.root = table_dir.removeprefix("file://")

    def __call__(self) -> Callable[[], object]:
        before_files, before_version = self._data_files(), self._version()

        def poll() -> object:
            new = self._data_files() - before_files
            if not new:
                return None
            version = self._version()
            state = "data files written, commit not yet" if version == before_version else "already committed"
            return {"state": state, "new_data_files": len(new), "version_before": before_version,
                    "version_now": version}  # fmt: skip

        return poll

    def _data_files(self) -> set[str]:
        found = set()
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d != "_delta_log"]
            found.update(os.path.join(folder, f) for f in files if f.endswith(".parquet"))
        return found

    def _version(self) -> int:
        try:
            names = os.listdir(os.path.join(self.root, "_delta_log"))
        except FileNotFoundError:
            return -1
        versions = [int(n.split(".")[0]) for n in names if n.endswith(".json") and n.split(".")[0].isdigit()]
        return max(versions, default=-1)
