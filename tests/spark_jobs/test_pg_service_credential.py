"""PostgreSQL from a job cluster: the Entra token comes from a Unity Catalog service credential.

Job-cluster VMs have no managed identity, so cluster code never builds an azure-identity
credential: the token is the service credential's (backed by the Access Connector's identity),
obtained through ``dbutils.credentials.getServiceCredentialsProvider``. Databricks' dbutils is
mocked here (there is no workspace offline); everything else is the real code.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from psycopg.conninfo import conninfo_to_dict

from lakehouse.settings import ConfigurationError, load_settings
from spark_jobs import pg

REPO = Path(__file__).resolve().parents[2]
AZURE_DSN = "host=mktlh-prod-pg.postgres.database.azure.com dbname=lakehouse user=mktlh-prod-dbw-connector"


class FakeProvider:
    """What getServiceCredentialsProvider returns: an azure-identity style credential."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("eyJ.service-credential.token", 2_000_000_000)


class FakeDbutils:
    def __init__(self) -> None:
        self.provider = FakeProvider()
        self.asked: list[str] = []
        self.credentials = types.SimpleNamespace(getServiceCredentialsProvider=self._provider)

    def _provider(self, name: str) -> FakeProvider:
        self.asked.append(name)
        return self.provider


@pytest.fixture
def cluster_dbutils(monkeypatch) -> FakeDbutils:
    """``databricks.sdk.runtime.dbutils`` as a cluster has it."""
    dbutils = FakeDbutils()
    runtime = types.ModuleType("databricks.sdk.runtime")
    runtime.dbutils = dbutils
    monkeypatch.setitem(sys.modules, "databricks", types.ModuleType("databricks"))
    monkeypatch.setitem(sys.modules, "databricks.sdk", types.ModuleType("databricks.sdk"))
    monkeypatch.setitem(sys.modules, "databricks.sdk.runtime", runtime)
    return dbutils


def test_entra_mode_takes_the_token_of_the_named_service_credential(cluster_dbutils):
    auth = load_settings(pg_auth="entra", pg_service_credential="mktlh-prod-dbw-serving")
    params = conninfo_to_dict(pg.conninfo(AZURE_DSN, auth))
    assert cluster_dbutils.asked == ["mktlh-prod-dbw-serving"]
    assert cluster_dbutils.provider.scopes == [("https://ossrdbms-aad.database.windows.net/.default",)]
    assert params["password"] == "eyJ.service-credential.token"
    assert params["user"] == "mktlh-prod-dbw-connector"
    assert params["sslmode"] == "require"


def test_entra_mode_without_a_service_credential_is_a_configuration_error_naming_the_setting(monkeypatch):
    monkeypatch.delenv("LAKEHOUSE_PG_SERVICE_CREDENTIAL", raising=False)
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_PG_SERVICE_CREDENTIAL"):
        pg.conninfo(AZURE_DSN, load_settings(pg_auth="entra"))


def test_the_service_credential_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_PG_SERVICE_CREDENTIAL", "mktlh-dev-dbw-serving")
    assert load_settings().pg_service_credential == "mktlh-dev-dbw-serving"


def test_service_credential_uses_the_dbutils_it_is_given():
    dbutils = FakeDbutils()
    assert pg.service_credential("cred", dbutils) is dbutils.provider
    assert dbutils.asked == ["cred"]


def test_no_code_that_runs_on_a_cluster_builds_an_azure_identity_credential():
    """Job clusters have no managed identity: DefaultAzureCredential there can only fail."""
    sources = sorted((REPO / "spark_jobs").rglob("*.py"))
    assert any(p.parent.name == "notebooks" for p in sources)
    offenders = [str(p.relative_to(REPO)) for p in sources
                 if re.search(r"DefaultAzureCredential|ManagedIdentityCredential", p.read_text())]  # fmt: skip
    assert offenders == []
