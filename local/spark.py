"""A Spark Connect session bound to the embedded Sail server (or any remote from settings).

The Spark Connect client's default retry policy waits about ten minutes before it gives up on a
server that is gone: a killed Sail server made each call of a backfill hang that long. Here the
retries are bounded (a restarting server gets a few seconds) and gRPC keepalive pings notice a
peer that stopped answering, so a dead engine fails the call in seconds.

What failed the call then tells a lost server from an error the server answered with:
:func:`lost_connection` (``local.runtime.SparkEngine`` restarts a dead embedded server on that).
"""

from __future__ import annotations

import os
import threading

import grpc
from pyspark.errors.exceptions.connect import SparkConnectGrpcException
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
# The status of a call whose channel has no server behind it: refused, reset, keepalive unanswered.
# Everything the server itself answers (a plan, data or Delta error) has another status.
LOST_SERVER = grpc.StatusCode.UNAVAILABLE


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


def lost_connection(exc: BaseException) -> str | None:
    """What the channel said, when `exc` or an exception it came from (its cause or context, as a
    notebook wraps the error of its cell) is a call that lost its server; None for anything else:
    an error the server answered with, or one of the caller's own code."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SparkConnectGrpcException) and current.getGrpcStatusCode() == LOST_SERVER:
            return f"{LOST_SERVER.name}: {_first_line(current.getMessage())}"
        if isinstance(current, grpc.RpcError) and isinstance(current, grpc.Call) and current.code() == LOST_SERVER:
            return f"{LOST_SERVER.name}: {_first_line(current.details() or '')}"
        current = current.__cause__ or current.__context__
    return None


def _first_line(text: str) -> str:
    """The gRPC details line of a message that may hold a whole call's repr."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("details = "):
            return line.removeprefix("details = ").strip('"')
    return text.strip().splitlines()[0][:300] if text.strip() else ""


def close_lost(session: SparkSession) -> None:
    """Close a session whose server is gone: without its release call, and in the background, as
    ``stop()`` waits (up to 10 s, holding pyspark's session lock) for the releases of the session's
    last results to give up on a server that cannot answer them."""
    session.release_session_on_close = False
    threading.Thread(target=session.stop, name="spark-close-lost", daemon=True).start()
