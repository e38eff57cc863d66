"""A Spark Connect session bound to the embedded Sail server (or any remote from settings)."""

from __future__ import annotations

from pyspark.sql import SparkSession


def connect(remote: str) -> SparkSession:
    """A new Spark Connect session on `remote` (sc://host:port); Sail locally, Databricks Connect remotely.

    A new session, not `getOrCreate()`: whoever connects stops their own session when done, and
    must not stop a session another part of the process (a test fixture, a runner) still uses.
    """
    return SparkSession.builder.remote(remote).create()
