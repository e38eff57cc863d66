"""Connections to the serving PostgreSQL, locally and in Azure, with retries on transient errors.

Where the DSN comes from: ``LAKEHOUSE_PG_DSN`` (settings), else the embedded PostgreSQL of the local
runtime. How it authenticates depends on ``LAKEHOUSE_PG_AUTH``:

- ``dsn`` (default): the DSN as given (locally: trust auth on loopback, no password).
- ``entra``: Azure Database for PostgreSQL Flexible Server with Microsoft Entra ID. The password
  is an access token for ``https://ossrdbms-aad.database.windows.net/.default`` from
  ``DefaultAzureCredential`` (the cluster's managed identity), and ``sslmode=require`` is enforced.
  Only when ``LAKEHOUSE_PG_PASSWORD_SECRET_URI`` names a Key Vault secret
  (``https://<vault>.vault.azure.net/secrets/<name>``) does a failed token fall back to that password.

No password or token is ever logged; error messages carry the host, never the conninfo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlparse

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from lakehouse.settings import ConfigurationError, Settings

log = logging.getLogger(__name__)

ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
AuthMode = Literal["dsn", "entra"]

# SQLSTATE classes that mean "the server or the link went away", worth another attempt:
# 08 connection exception, 57P01-57P03 admin/crash shutdown and cannot-connect-now, 53 insufficient
# resources. Authentication failures (28xxx) and everything else are not retried.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "53")
_PERMANENT_MESSAGES = ("authentication failed", "no pg_hba.conf entry", "does not exist", "SSL is not enabled")


class ServingAuth(BaseSettings):
    """How to authenticate to the serving database; read from the same environment as Settings."""

    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_", case_sensitive=False, extra="ignore")

    pg_auth: AuthMode = Field("dsn", description="dsn: use the DSN as given; entra: Entra ID token.")
    pg_password_secret_uri: str | None = Field(
        None,
        description="Key Vault secret URI of a fallback password, used only when no Entra token is had.",
    )
    pg_connect_attempts: int = Field(5, ge=1, le=20, description="Attempts on transient errors.")


def base_dsn(settings: Settings) -> str:
    """The serving DSN from settings, else the embedded PostgreSQL's (started if need be)."""
    if settings.pg_dsn is not None:
        return settings.pg_dsn.get_secret_value()
    if not settings.is_local:
        raise ConfigurationError(
            f"LAKEHOUSE_PG_DSN is not set; environment {settings.environment!r} has no embedded PostgreSQL"
        )
    from local import services

    current = services.current_endpoints(settings)
    if current is None:
        endpoints, _ = services.up(settings)
        return endpoints["postgres"].url
    return current.pg_dsn


def conninfo(
    dsn: str,
    auth: ServingAuth | None = None,
    credential: Any = None,
    secret_reader: Callable[[str, Any], str] | None = None,
) -> str:
    """The libpq conninfo to connect with: `dsn` plus the password the auth mode calls for.

    Args:
        dsn: serving DSN without a password (Entra) or complete (dsn mode).
        auth: auth mode; default read from the environment.
        credential: an azure-identity credential; default ``DefaultAzureCredential()``.
        secret_reader: reads a Key Vault secret URI with a credential; default the Key Vault SDK.

    Returns:
        A conninfo string containing the secret: never log it.
    """
    auth = auth or ServingAuth()
    if auth.pg_auth == "dsn":
        return dsn
    params = conninfo_to_dict(dsn)
    if params.get("sslmode") not in {"require", "verify-ca", "verify-full"}:
        params["sslmode"] = "require"
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    params["password"] = _entra_or_vault_password(auth, credential, secret_reader or read_keyvault_secret)
    return make_conninfo(**params)


def _entra_or_vault_password(auth: ServingAuth, credential: Any, secret_reader) -> str:
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


def retrying(attempts: int, what: str, initial_wait: float = 0.5, max_wait: float = 10.0) -> Retrying:
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
    for attempt in retrying(attempts, "connect"):
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
