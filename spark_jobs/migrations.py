"""Versioned SQL migrations of the serving database, applied in order, each exactly once.

The migrations are the files ``spark_jobs/sql/NNN_name.sql`` shipped inside the package. ``apply``
runs the ones not yet recorded in ``public.schema_migrations``, in number order, each in its own
transaction together with its bookkeeping row, so a failing migration leaves nothing half-applied.
A transaction-scoped advisory lock serializes concurrent callers (two notebooks starting at once).
An applied file whose content changed since is an error: the database no longer matches the repo.

Why not Alembic: the schema is plain DDL with no ORM models to autogenerate from, the migrations
must ship inside the wheel run by Databricks and be readable by the DBA as SQL, and the runner is
the 60 lines below. Alembic would add SQLAlchemy plus an env.py and a revision graph for nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import psycopg

MIGRATION_FILE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql$")
# pg_advisory_xact_lock key: 'migr' as a 32-bit integer, one lock for every caller.
LOCK_KEY = int.from_bytes(b"migr", "big")


class MigrationError(RuntimeError):
    """A migration file or the recorded history is inconsistent; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path | Traversable | None = None) -> list[Migration]:
    """The migrations in `directory` (default: the package's ``sql`` folder), in version order."""
    root = directory if directory is not None else resources.files("spark_jobs") / "sql"
    found: dict[str, Migration] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = MIGRATION_FILE.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNN_lower_snake_name.sql")
        version = match["version"]
        if version in found:
            raise MigrationError(
                f"migration number {version} is used twice: {found[version].filename} and {entry.name}"
            )
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def apply(dsn: str, directory: Path | Traversable | None = None) -> list[str]:
    """Apply the pending migrations to the database at `dsn`.

    Args:
        dsn: libpq connection string of the serving database.
        directory: folder of ``NNN_*.sql`` files; default the package's ``sql`` folder.

    Returns:
        File names applied by this call, in order; empty when the database was up to date.
    """
    migrations = discover(directory)
    applied_now: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS public.schema_migrations ("
                " version text PRIMARY KEY, filename text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )
        for migration in migrations:
            with conn.transaction():
                # Re-taken per migration: the lock is held until this migration commits.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                row = conn.execute(
                    "SELECT filename, checksum FROM public.schema_migrations WHERE version = %s",
                    (migration.version,),
                ).fetchone()
                if row is not None:
                    if row[1] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.filename} changed after it was applied (as {row[0]}); "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                try:
                    conn.execute(migration.sql)
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {migration.filename} failed: {exc}") from exc
                conn.execute(
                    "INSERT INTO public.schema_migrations (version, filename, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.filename, migration.checksum),
                )
                applied_now.append(migration.filename)
    return applied_now


def applied(dsn: str) -> list[str]:
    """File names recorded as applied, in version order (empty for a database never migrated)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None:
            return []
        rows = conn.execute("SELECT filename FROM public.schema_migrations ORDER BY version").fetchall()
    return [r[0] for r in rows]
