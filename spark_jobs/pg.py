"""Connections to the serving PostgreSQL, locally and in Azure, with retries on transient errors.

Where the DSN comes from: ``LAKEHOUSE_PG_DSN`` (settings); the local runtime sets it to its embedded
PostgreSQL for the jobs it runs. How it authenticates depends on ``LAKEHOUSE_PG_AUTH``:

- ``dsn`` (default): the DSN as given (locally: trust auth on loopback, no password).
- ``entra``: Azure Database for PostgreSQL Flexible Server with Microsoft Entra ID. The password
  is an access token for ``https://ossrdbms-aad.database.windows.net/.default`` and
  ``sslmode=require`` is enforced. Job clusters have no managed identity: the token comes from the
  Unity Catalog service credential named by ``LAKEHOUSE_PG_SERVICE_CREDENTIAL`` (backed by the
  workspace's Access Connector, whose identity is the PostgreSQL role in the DSN), through
  ``dbutils.credentials.getServiceCredentialsProvider``. Only when
  ``LAKEHOUSE_PG_PASSWORD_SECRET_URI`` names a Key Vault secret
  (``https://<vault>.vault.azure.net/secrets/<name>``) does a failed token fall back to that password.

No password or token is ever logged; error messages carry the host, never the conninfo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from lakehouse.settings import ConfigurationError, Settings, load_settings

log = logging.getLogger(__name__)

ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"

# SQLSTATE classes that mean "the server or the link went away", worth another attempt:
# 08 connection exception, 57P01-57P03 admin/crash shutdown and cannot-connect-now, 53 insufficient
# resources. Authentication failures (28xxx) and everything else are not retried.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "53")
_PERMANENT_MESSAGES = ("authentication failed", "no pg_hba.conf entry", "does not exist", "SSL is not enabled")


def base_dsn(settings: Settings) -> str:
    """The serving DSN from settings.

    The jobs never start a database themselves: in Azure the DSN is an app setting, and locally the
    runtime that runs a job (``lakehouse adf run``, the demo, the tests) starts the embedded
    PostgreSQL and passes its DSN the same way.
    """
    if settings.pg_dsn is not None:
        return settings.pg_dsn.get_secret_value()
    where = (
        "the local runtime sets it for the jobs it runs (`lakehouse adf run ...`; "
        "`lakehouse services status` shows the embedded PostgreSQL's DSN)"
        if settings.is_local
        else f"environment {settings.environment!r} has no embedded PostgreSQL"
    )
    raise ConfigurationError(f"LAKEHOUSE_PG_DSN is not set; {where}")


def conninfo(
    dsn: str,
    auth: Settings | None = None,
    credential: Any = None,
    secret_reader: Callable[[str, Any], str] | None = None,
) -> str:
    """The libpq conninfo to connect with: `dsn` plus the password the auth mode calls for.

    Args:
        dsn: serving DSN without a password (Entra) or complete (dsn mode).
        auth: settings holding the auth mode (``pg_auth``...); default read from the environment.
        credential: an azure-identity style credential (``get_token``); default the service
            credential named by ``LAKEHOUSE_PG_SERVICE_CREDENTIAL`` (:func:`service_credential`).
        secret_reader: reads a Key Vault secret URI with a credential; default the Key Vault SDK.

    Returns:
        A conninfo string containing the secret: never log it.
    """
    auth = auth or load_settings()
    if auth.pg_auth == "dsn":
        return dsn
    params = conninfo_to_dict(dsn)
    if params.get("sslmode") not in {"require", "verify-ca", "verify-full"}:
        params["sslmode"] = "require"
    if credential is None:
        if not auth.pg_service_credential:
            raise ConfigurationError(
                "LAKEHOUSE_PG_AUTH=entra needs LAKEHOUSE_PG_SERVICE_CREDENTIAL: the Unity Catalog service "
                "credential whose identity signs in to PostgreSQL"
            )
        credential = service_credential(auth.pg_service_credential)
    params["password"] = _entra_or_vault_password(auth, credential, secret_reader or read_keyvault_secret)
    return make_conninfo(**params)


def service_credential(name: str, dbutils: Any = None) -> Any:
    """The credential of a Unity Catalog service credential, on a Databricks cluster.

    Args:
        name: the service credential (the caller needs its ACCESS privilege).
        dbutils: Databricks utilities; default the cluster's (``databricks.sdk.runtime``).

    Returns:
        An object with azure-identity's ``get_token(*scopes)``.
    """
    if dbutils is None:
        from databricks.sdk.runtime import dbutils
    return dbutils.credentials.getServiceCredentialsProvider(name)


def _entra_or_vault_password(auth: Settings, credential: Any, secret_reader) -> str:
    from azure.core.exceptions import ClientAuthenticationError

    try:
        return credential.get_token(ENTRA_SCOPE).token
    except ClientAuthenticationError as exc:
        if not auth.pg_password_secret_uri:
            raise ConfigurationError(
                "LAKEHOUSE_PG_AUTH=entra: no Entra ID token for PostgreSQL "
                f"({type(exc).__name__}) and no LAKEHOUSE_PG_PASSWORD_SECRET_URI fallback configured"
            ) from exc
        log.warning("no Entra ID token for PostgreSQL (%s); using the Key Vault password", type(exc).__name__)
        return secret_reader(auth.pg_password_secret_uri, credential)


def read_keyvault_secret(secret_uri: str, credential: Any) -> str:
    """The value of a Key Vault secret given its URI ``https://<vault>/secrets/<name>[/<version>]``."""
    parsed = urlparse(secret_uri)
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.scheme != "https" or len(parts) not in (2, 3) or parts[0] != "secrets":
        raise ConfigurationError(
            f"LAKEHOUSE_PG_PASSWORD_SECRET_URI={secret_uri!r} is not https://<vault>/secrets/<name>[/<version>]"
        )
    from azure.keyvault.secrets import SecretClient

    client = SecretClient(vault_url=f"https://{parsed.netloc}", credential=credential)
    version = parts[2] if len(parts) == 3 else None
    return client.get_secret(parts[1], version=version).value


def is_transient(exc: BaseException) -> bool:
    """True for errors a new connection may not hit: lost link, server restart, too many clients."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
    message = str(exc)
    return not any(m in message for m in _PERMANENT_MESSAGES)


def retrying(attempts: int, initial_wait: float = 0.5, max_wait: float = 10.0) -> Retrying:
    """A tenacity policy: exponential backoff with jitter on transient PostgreSQL errors only."""
    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=initial_wait, max=max_wait),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )


def connect(info: str, attempts: int = 5, **kwargs: Any) -> psycopg.Connection:
    """Open a connection, retrying transient failures with backoff.

    Args:
        info: conninfo from :func:`conninfo`.
        attempts: tries in all.
        **kwargs: passed to ``psycopg.connect`` (``autocommit``, ``row_factory``...).
    """
    kwargs.setdefault("connect_timeout", 10)
    kwargs.setdefault("application_name", "lakehouse-serving")
    for attempt in retrying(attempts):
        with attempt:
            return psycopg.connect(info, **kwargs)
    raise AssertionError("unreachable")  # pragma: no cover


def host_of(info: str) -> str:
    """host:port/dbname of a conninfo, for messages (no credentials)."""
    try:
        p = conninfo_to_dict(info)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    return f"{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"
