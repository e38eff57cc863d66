"""A Spark Connect session bound to the embedded Sail server (or any remote from settings).

The Spark Connect client's default retry policy waits about ten minutes before it gives up on a
server that is gone: a killed Sail server made each call of a backfill hang that long. Here the
retries are bounded (a restarting server gets a few seconds) and gRPC keepalive pings notice a
peer that stopped answering, so a dead engine fails the call in seconds.
"""

from __future__ import annotations

import os

from pyspark.sql import SparkSession
from pyspark.sql.connect.client import DefaultChannelBuilder
from pyspark.sql.connect.client.retries import DefaultPolicy
from pyspark.sql.connect.session import SparkSession as ConnectSession

# Tries after the first failure, and their waits: 0.2 + 0.8 + 2 + 2 s, plus jitter.
MAX_RETRIES = 4
INITIAL_BACKOFF_MS = 200
MAX_BACKOFF_MS = 2_000
MAX_SERVER_RETRY_DELAY_MS = 5_000
# A ping every 10 s on an open call; no answer within 10 s closes the channel (UNAVAILABLE).
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
]


def bounded_retries() -> DefaultPolicy:
    """The client's retry policy with a bound of seconds, not minutes, on an unreachable server."""
    return DefaultPolicy(
        max_retries=MAX_RETRIES,
        initial_backoff=INITIAL_BACKOFF_MS,
        max_backoff=MAX_BACKOFF_MS,
        max_server_retry_delay=MAX_SERVER_RETRY_DELAY_MS,
    )


def connect(remote: str) -> SparkSession:
    """A new Spark Connect session on `remote` (sc://host:port); Sail locally, Databricks Connect remotely.

    A new session, not `getOrCreate()`: whoever connects stops their own session when done, and
    must not stop a session another part of the process (a test fixture, a runner) still uses.
    """
    channel = DefaultChannelBuilder(remote, channelOptions=KEEPALIVE_OPTIONS)
    # What `SparkSession.builder.remote(...).create()` sets: pyspark.sql.functions and friends
    # dispatch to their Spark Connect versions only when it is.
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    session = ConnectSession.builder.channelBuilder(channel).create()
    session.client.set_retry_policies([bounded_retries()])
    return session
