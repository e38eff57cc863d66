"""Trading sessions of an exchange, from `exchange_calendars` (never weekday arithmetic).

`exchange_calendars` builds a calendar 20 years back by default; history older than that
needs an explicit start, so calendars here are built over a fixed wide range once per process.

Building that calendar costs about a second (its holiday rules are expanded over 1970..2200
whatever range is asked for), paid by every process that asks for a session: each daily run,
the Function app and the synthetic market. The built calendar depends only on its code, its
range and the calendar's definition, so it is kept on disk (:class:`CalendarStore`) for the next
process, under a key made of everything that defines it: the code and range, the versions of
`exchange_calendars`, pandas and numpy, every source file of `exchange_calendars` and the time
zone's rules. A change to any of them is a new key; the object read back is the one the build
made (same class, schedule, sessions and special closes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import logging
import os
import pickle
import stat
import tempfile
import zoneinfo
from functools import lru_cache
from pathlib import Path

import exchange_calendars as xcals
import pandas as pd

log = logging.getLogger(__name__)

CALENDAR_START = "1995-01-03"
CALENDAR_HORIZON_DAYS = 400  # sessions are known this far past today
# What the built calendar depends on besides its code, range and the package's sources.
DEFINING_DISTRIBUTIONS = ("exchange_calendars", "pandas", "numpy", "tzdata")


def calendar_end(now: pd.Timestamp | None = None) -> str:
    """The last day of the calendars built today."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    return (now + pd.Timedelta(days=CALENDAR_HORIZON_DAYS)).strftime("%Y-%m-%d")


@lru_cache(maxsize=4)
def calendar(code: str = "XNYS") -> xcals.ExchangeCalendar:
    return CalendarStore.default().calendar(code, CALENDAR_START, calendar_end())


def build(code: str, start: str, end: str) -> xcals.ExchangeCalendar:
    """The calendar as `exchange_calendars` makes it, without any store."""
    return xcals.get_calendar(code, start=start, end=end)


class CalendarStore:
    """Built calendars kept as files, one per key, for the processes that come after this one.

    The files are pickles, so a file is read only from a directory and as a file that only the
    current user can write (anything else is ignored and the calendar is built); a file that
    cannot be read back is built again and replaced. Writes are atomic; a failure to write is
    logged, never raised (the store only saves time).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def default(cls) -> CalendarStore:
        """The store in the user's cache directory."""
        return cls(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lakehouse" / "calendars")

    def path(self, code: str, start: str, end: str) -> Path:
        return self.directory / f"{code.lower()}-{start}-{end}-{definition_fingerprint(code)}.pickle"

    def calendar(self, code: str, start: str, end: str) -> xcals.ExchangeCalendar:
        path = self.path(code, start, end)
        stored = self._read(path)
        if stored is not None:
            return stored
        built = build(code, start, end)
        self._write(path, built)
        return built

    def _read(self, path: Path) -> xcals.ExchangeCalendar | None:
        try:
            if not (_private(path.parent) and _private(path)):
                return None
            with path.open("rb") as f:
                stored = pickle.load(f)  # noqa: S301 - a file only this user can write, see _private
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged or foreign file: build again
            log.debug("calendar store %s not used: %s", path, exc)
            return None
        return stored if isinstance(stored, xcals.ExchangeCalendar) else None

    def _write(self, path: Path, built: xcals.ExchangeCalendar) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=path.name, suffix=".tmp")
        except OSError as exc:
            log.debug("could not keep calendar in %s: %s", path, exc)
            return
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(built, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except Exception as exc:
            log.debug("could not keep calendar in %s: %s", path, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        # Calendars of earlier days (or definitions) of this code are not read again.
        for old in self.directory.glob(f"{path.name.split('-', 1)[0]}-*.pickle"):
            if old != path:
                with contextlib.suppress(OSError):
                    old.unlink()


def _private(path: Path) -> bool:
    """Owned by the current user and writable by nobody else."""
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


@lru_cache(maxsize=4)
def definition_fingerprint(code: str) -> str:
    """What a built calendar of `code` depends on besides its range: versions, sources, tz rules."""
    digest = hashlib.sha256(code.encode())
    for name in DEFINING_DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"\0{name}={version}".encode())
    package = Path(xcals.__file__).parent
    for source in sorted(package.rglob("*.py")):
        digest.update(b"\0" + str(source.relative_to(package)).encode() + b"\0" + source.read_bytes())
    digest.update(b"\0tz\0" + _zone_rules(xcals.resolve_alias(code)))
    return digest.hexdigest()[:16]


def _zone_rules(code: str) -> bytes:
    """The TZif data of the calendar's time zone, found as `zoneinfo` finds it."""
    factories = getattr(xcals.calendar_utils, "_default_calendar_factories", {})
    key = str(getattr(factories.get(code), "tz", ""))
    if not key:
        return b"unknown"
    for root in zoneinfo.TZPATH:
        candidate = Path(root) / key
        if candidate.is_file():
            return candidate.read_bytes()
    with contextlib.suppress(Exception):
        import importlib.resources

        package, _, name = f"tzdata.zoneinfo.{key}".replace("/", ".").rpartition(".")
        return importlib.resources.files(package).joinpath(name).read_bytes()
    return key.encode()


def sessions(start: dt.date, end: dt.date, code: str = "XNYS") -> list[dt.date]:
    """Trading sessions in [start, end], both inclusive."""
    if end < start:
        return []
    cal = calendar(code)
    lo = max(pd.Timestamp(start), cal.first_session)
    hi = min(pd.Timestamp(end), cal.last_session)
    if hi < lo:
        return []
    return [ts.date() for ts in cal.sessions_in_range(lo, hi)]


def is_session(day: dt.date, code: str = "XNYS") -> bool:
    return calendar(code).is_session(pd.Timestamp(day))


def latest_session(at: dt.datetime | None = None, code: str = "XNYS") -> dt.date:
    """The latest session whose market has closed at `at` (UTC, default now)."""
    cal = calendar(code)
    now = pd.Timestamp(at or dt.datetime.now(dt.UTC))
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    day = cal.date_to_session(now.normalize().tz_localize(None), direction="previous")
    if cal.session_close(day) > now:
        day = cal.previous_session(day)
    return day.date()


def session_hours(day: dt.date, code: str = "XNYS") -> tuple[dt.datetime, dt.datetime] | None:
    """Open and close (UTC) of the regular session on `day`, early closes included; None on no session."""
    cal = calendar(code)
    ts = pd.Timestamp(day)
    if not cal.is_session(ts):
        return None
    return cal.session_open(ts).to_pydatetime(), cal.session_close(ts).to_pydatetime()
