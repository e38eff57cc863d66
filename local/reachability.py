"""Whether a configured external service answers, decided in seconds.

A DSN or a Spark Connect URL that points nowhere (a firewalled address, a stopped server) would
otherwise make the first query wait for the operating system's TCP timeout or the client's retries,
minutes with nothing printed. These checks connect for real, with short timeouts, and say what failed.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 5


class Unreachable(RuntimeError):
    """A configured service did not answer (``local.services.running`` reports it as a ServiceError)."""


def spark_address(remote: str) -> tuple[str, int]:
    """Host and port of a Spark Connect URL (sc://host:port/;params); port 15002 when not given."""
    parts = urlsplit(remote.split(";", 1)[0])
    if parts.scheme != "sc" or not parts.hostname:
        raise Unreachable(f"not a Spark Connect URL (sc://host:port): {mask_spark_remote(remote)}")
    return parts.hostname, parts.port or 15002


def mask_spark_remote(remote: str) -> str:
    """A Spark Connect URL with the value of its token parameter hidden, for display."""
    base, sep, params = remote.partition(";")
    if not sep:
        return remote
    shown = []
    for param in params.split(";"):
        name, eq, _ = param.partition("=")
        shown.append(f"{name}=*****" if eq and name.strip().lower() == "token" else param)
    return base + sep + ";".join(shown)


def require_tcp(setting: str, shown: str, address: tuple[str, int], timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds, naming the setting, when nothing accepts a connection at `address`."""
    host, port = address
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise Unreachable(
            f"{setting} {shown}: nothing answers at {host}:{port} within {timeout:g} s "
            f"({exc.strerror or exc or 'timed out'}); check the setting, or unset it to use the embedded service"
        ) from None


def require_external(spark_remote: str | None, pg_dsn: str | None) -> None:
    """Refuse, at once, a configured Spark Connect URL or DSN nothing answers at (rather than
    hanging in the first query); the embedded services are not checked here."""
    if spark_remote:
        require_tcp("LAKEHOUSE_SPARK_REMOTE", mask_spark_remote(spark_remote), spark_address(spark_remote))
    if pg_dsn:
        check_postgres(pg_dsn)


def check_spark(remote: str, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """Open a TCP connection to the server, then run ``SELECT 1`` through Spark Connect; return a
    one-line description, or raise :class:`Unreachable`."""
    host, port = spark_address(remote)
    require_tcp("LAKEHOUSE_SPARK_REMOTE", mask_spark_remote(remote), (host, port), timeout)
    from local.spark import connect

    try:
        session = connect(remote)
        try:
            session.sql("SELECT 1").collect()
        finally:
            session.stop()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unreachable(f"LAKEHOUSE_SPARK_REMOTE {mask_spark_remote(remote)}: SELECT 1 failed ({first})") from None
    return f"SELECT 1 answered at {host}:{port}"


def check_postgres(dsn: str, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """Connect and run ``SELECT version()``; return a one-line description, or raise :class:`Unreachable`
    (the message never contains the password)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        with psycopg.connect(dsn, connect_timeout=max(1, round(timeout)), autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            where = f"{conn.info.host}:{conn.info.port}"
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        password = conninfo_to_dict(dsn).get("password")
        if password:
            reason = reason.replace(str(password), "*****")
        raise Unreachable(
            f"LAKEHOUSE_PG_DSN: cannot connect within {timeout:g} s ({reason}); check the setting, "
            "or unset it to use the embedded PostgreSQL"
        ) from None
    return f"PostgreSQL {version} answered at {where}"
