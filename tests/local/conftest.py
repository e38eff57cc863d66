"""Fixtures shared by the tests of the local runtime."""

from __future__ import annotations

import pytest

from local.run_store import PostgresRunStore
from spark_jobs import migrations


@pytest.fixture(scope="module")
def store(pg_dsn):
    """The run store on the session's PostgreSQL, migrated; one per test module."""
    migrations.apply(pg_dsn)
    with PostgresRunStore(pg_dsn) as s:
        yield s
