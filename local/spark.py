"""A Spark Connect session bound to the embedded Sail server (or any remote from settings)."""

from __future__ import annotations

from pyspark.sql import SparkSession


def connect(remote: str) -> SparkSession:
    """A Spark Connect session on `remote` (sc://host:port); Sail locally, Databricks Connect remotely."""
    return SparkSession.builder.remote(remote).getOrCreate()
