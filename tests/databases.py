"""Databases of their own on the run's one PostgreSQL, for tests that must not meet each other's rows."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from spark_jobs import migrations


@contextlib.contextmanager
def fresh_database(server_dsn: str, prefix: str = "t") -> Iterator[str]:
    """A new empty database on the server of `server_dsn`, dropped afterwards; yields its DSN."""
    params = conninfo_to_dict(server_dsn)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(**{**params, "dbname": name})
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def migrated_database(server_dsn: str, prefix: str = "t") -> Iterator[str]:
    """A fresh database with the project's migrations applied, as the serving database gets them."""
    with fresh_database(server_dsn, prefix) as dsn:
        migrations.apply(dsn)
        yield dsn
