"""Connections to the serving database: DSN resolution, Entra ID tokens, Key Vault fallback, retries.

Azure itself is mocked here and only here: ``FakeCredential`` stands in for azure-identity's
``DefaultAzureCredential`` (there is no Entra ID tenant offline), and the Key Vault read is a
function given the secret URI. Everything PostgreSQL is the run's real server.
"""

from __future__ import annotations

import psycopg
import pytest
from azure.core.credentials import AccessToken
from azure.identity import CredentialUnavailableError
from psycopg.conninfo import conninfo_to_dict

from lakehouse.settings import ConfigurationError, load_settings
from local.services import free_port
from spark_jobs import pg

AZURE_DSN = "host=lakehouse-dev.postgres.database.azure.com dbname=lakehouse user=adb-serving-identity"


class FakeCredential:
    """Mock of DefaultAzureCredential: records the scopes asked for, returns or raises."""

    def __init__(self, token: str | None = "eyJ.fake.token", error: Exception | None = None):
        self.token, self.error, self.scopes = token, error, []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        if self.error is not None:
            raise self.error
        return AccessToken(self.token, 2_000_000_000)


def test_dsn_mode_uses_the_dsn_as_given():
    auth = load_settings(pg_auth="dsn")
    assert pg.conninfo("postgresql://postgres@127.0.0.1:5432/lakehouse", auth) == (
        "postgresql://postgres@127.0.0.1:5432/lakehouse"
    )


def test_entra_mode_sends_a_token_for_the_postgres_scope_with_ssl_required():
    credential = FakeCredential()
    info = pg.conninfo(AZURE_DSN, load_settings(pg_auth="entra"), credential)
    params = conninfo_to_dict(info)
    assert credential.scopes == [("https://ossrdbms-aad.database.windows.net/.default",)]
    assert params["password"] == "eyJ.fake.token"
    assert params["sslmode"] == "require"
    assert params["user"] == "adb-serving-identity"


def test_entra_mode_keeps_a_stricter_sslmode():
    info = pg.conninfo(AZURE_DSN + " sslmode=verify-full", load_settings(pg_auth="entra"), FakeCredential())
    assert conninfo_to_dict(info)["sslmode"] == "verify-full"


def test_without_a_token_the_key_vault_password_is_used_only_if_configured():
    no_token = FakeCredential(error=CredentialUnavailableError("no managed identity"))
    reads = []

    def vault(uri, credential):
        reads.append(uri)
        return "vault-password"

    uri = "https://kv-lakehouse.vault.azure.net/secrets/pg-admin-password"
    configured = load_settings(pg_auth="entra", pg_password_secret_uri=uri)
    assert conninfo_to_dict(pg.conninfo(AZURE_DSN, configured, no_token, vault))["password"] == "vault-password"
    assert reads == [uri]

    with pytest.raises(ConfigurationError, match="no LAKEHOUSE_PG_PASSWORD_SECRET_URI fallback"):
        pg.conninfo(AZURE_DSN, load_settings(pg_auth="entra"), no_token, vault)
    assert reads == [uri]


@pytest.mark.parametrize("uri", ["http://kv.vault.azure.net/secrets/x", "https://kv.vault.azure.net/keys/x"])
def test_a_malformed_secret_uri_is_named(uri):
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_PG_PASSWORD_SECRET_URI"):
        pg.read_keyvault_secret(uri, FakeCredential())


def test_auth_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_PG_AUTH", "entra")
    monkeypatch.setenv("LAKEHOUSE_PG_PASSWORD_SECRET_URI", "https://kv.vault.azure.net/secrets/pg")
    auth = load_settings()
    assert (auth.pg_auth, auth.pg_password_secret_uri) == ("entra", "https://kv.vault.azure.net/secrets/pg")


def test_the_dsn_comes_from_settings_when_set(pg_dsn):
    assert pg.base_dsn(load_settings(pg_dsn=pg_dsn)) == pg_dsn


def test_a_cloud_environment_without_a_dsn_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_PG_DSN is not set"):
        pg.base_dsn(load_settings(environment="prod", home=tmp_path))


def test_a_job_never_starts_the_embedded_database_itself(tmp_path, monkeypatch):
    """Starting services is the local runtime's job: a job without a DSN says where it comes from."""
    monkeypatch.delenv("LAKEHOUSE_PG_DSN", raising=False)
    with pytest.raises(ConfigurationError, match=r"LAKEHOUSE_PG_DSN is not set; the local runtime sets it"):
        pg.base_dsn(load_settings(home=tmp_path))
    assert not (tmp_path / "services.json").exists() and list(tmp_path.iterdir()) == []


def test_a_refused_connection_is_transient_and_a_missing_database_is_not(pg_dsn):
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/lakehouse", connect_timeout=2)
    assert pg.is_transient(refused.value)
    params = conninfo_to_dict(pg_dsn)
    with pytest.raises(psycopg.OperationalError) as missing:
        psycopg.connect(f"postgresql://postgres@{params['host']}:{params['port']}/no_such_db")
    assert not pg.is_transient(missing.value)
    assert not pg.is_transient(ValueError("not a database error"))


def test_connect_retries_a_transient_failure_then_gives_up_with_the_error(monkeypatch):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/lakehouse"
    policies = []
    original = pg.retrying

    def fast(attempts, initial_wait=0.5, max_wait=10.0):
        policies.append(original(attempts, initial_wait=0.01, max_wait=0.02))
        return policies[-1]

    monkeypatch.setattr(pg, "retrying", fast)
    with pytest.raises(psycopg.OperationalError, match=r"127.0.0.1"):
        pg.connect(dead, attempts=3, connect_timeout=2)
    assert policies[0].statistics["attempt_number"] == 3


def test_host_of_never_shows_the_password():
    assert pg.host_of("host=db.example.com port=6432 dbname=lakehouse user=u password=hunter2") == (
        "db.example.com:6432/lakehouse"
    )
