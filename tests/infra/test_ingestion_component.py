"""The ingestion component: a hardened Linux Function app whose only secrets are Key Vault references."""

from __future__ import annotations

import pytest

from infra import roles
from infra.ingestion import FUNCTION_KEY_SECRET, MASTER_KEY_SECRET, Ingestion, IngestionArgs
from infra.key_vault import VaultPolicy

SUB = "/subscriptions/s/resourceGroups/rg/providers"
RAW_ID = f"{SUB}/Microsoft.Storage/storageAccounts/lake/blobServices/default/containers/raw"
HUB_ID = f"{SUB}/Microsoft.EventHub/namespaces/ns/eventhubs/market-quotes"
VAULT_ID = f"{SUB}/Microsoft.KeyVault/vaults/kv"
KEY_URI = "https://kv.vault.azure.net/secrets/alphavantage-api-key"


@pytest.fixture(scope="module")
def ingestion_run(run_component, common):
    args = IngestionArgs(
        common.rg, common.location, common.tags, "test-ingest", "testfunc",
        log_workspace_id=f"{SUB}/Microsoft.OperationalInsights/workspaces/logs",
        environment="test",
        lake_account_name="testlake",
        raw_container_id=RAW_ID,
        event_hub_namespace_fqdn="ns.servicebus.windows.net",
        event_hub_name="market-quotes",
        event_hub_id=HUB_ID,
        vault_id=VAULT_ID,
        market_api_key_uri=KEY_URI,
        market_provider="alpha_vantage",
        symbols=("AAPL", "MSFT"),
        ingest_daily_schedule="0 30 22 * * 1-5",
        poll_quotes_schedule="0 */5 14-20 * * 1-5",
        keys_vault_name="testfunckeys",
        vault_policy=VaultPolicy("tenant"),
    )  # fmt: skip
    return run_component(lambda: Ingestion("ingest", args))


def _settings(run) -> dict[str, str]:
    (app,) = run.of_type("azure-native:web:WebApp")
    return {s["name"]: s["value"] for s in app.inputs["siteConfig"]["appSettings"]}


def test_function_app_is_linux_python_311_https_only_without_ftp(ingestion_run):
    (app,) = ingestion_run.of_type("azure-native:web:WebApp")
    assert app.inputs["kind"] == "functionapp,linux"
    assert app.inputs["httpsOnly"] is True
    assert app.inputs["identity"] == {"type": "SystemAssigned"}
    site = app.inputs["siteConfig"]
    assert site["linuxFxVersion"] == "Python|3.11"
    assert site["ftpsState"] == "Disabled"
    assert site["minTlsVersion"] == "1.2"
    (plan,) = ingestion_run.of_type("azure-native:web:AppServicePlan")
    assert plan.inputs["reserved"] is True  # Linux


def test_basic_auth_publishing_is_off(ingestion_run):
    for type_ in ("azure-native:web:WebAppFtpAllowed", "azure-native:web:WebAppScmAllowed"):
        (policy,) = ingestion_run.of_type(type_)
        assert policy.inputs["allow"] is False


def test_market_api_key_setting_is_a_key_vault_reference(ingestion_run):
    assert _settings(ingestion_run)["ALPHAVANTAGE_API_KEY"] == f"@Microsoft.KeyVault(SecretUri={KEY_URI})"


def test_storage_connection_is_identity_based_not_a_connection_string(ingestion_run):
    settings = _settings(ingestion_run)
    (storage,) = ingestion_run.of_type("azure-native:storage:StorageAccount")
    assert settings["AzureWebJobsStorage__accountName"] == storage.inputs["accountName"]
    assert "AzureWebJobsStorage" not in settings
    assert storage.inputs["allowSharedKeyAccess"] is False


def test_every_lakehouse_setting_is_one_the_code_reads(ingestion_run):
    """An app setting the code does not know is a typo that silently falls back to a default."""
    from lakehouse.settings import Settings

    known = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields}
    lakehouse_settings = {k for k in _settings(ingestion_run) if k.startswith("LAKEHOUSE_")}
    assert lakehouse_settings <= known, sorted(lakehouse_settings - known)
    assert _settings(ingestion_run)["LAKEHOUSE_SYMBOLS"] == "AAPL,MSFT"


def test_application_insights_is_workspace_based(ingestion_run):
    (insights,) = ingestion_run.of_type("azure-native:applicationinsights:Component")
    assert insights.inputs["workspaceResourceId"].endswith("/workspaces/logs")
    assert _settings(ingestion_run)["APPLICATIONINSIGHTS_CONNECTION_STRING"] == insights.outputs["connectionString"]


def test_roles_are_raw_writer_quotes_sender_and_secrets_user_on_exact_scopes(ingestion_run):
    (app,) = ingestion_run.of_type("azure-native:web:WebApp")
    (storage,) = ingestion_run.of_type("azure-native:storage:StorageAccount")
    (keys_vault,) = ingestion_run.of_type("azure-native:keyvault:Vault")
    principal = app.outputs["identity"]["principalId"]
    grants = {
        (g.inputs["roleDefinitionId"].rsplit("/", 1)[1], g.inputs["scope"])
        for g in ingestion_run.of_type("azure-native:authorization:RoleAssignment")
        if g.inputs["principalId"] == principal
    }
    assert grants == {
        (roles.STORAGE_BLOB_DATA_CONTRIBUTOR, RAW_ID),
        (roles.EVENT_HUBS_DATA_SENDER, HUB_ID),
        (roles.KEY_VAULT_SECRETS_USER, VAULT_ID),
        (roles.KEY_VAULT_SECRETS_OFFICER, keys_vault.id),
        (roles.STORAGE_BLOB_DATA_OWNER, storage.id),
        (roles.STORAGE_QUEUE_DATA_CONTRIBUTOR, storage.id),
        (roles.STORAGE_TABLE_DATA_CONTRIBUTOR, storage.id),
    }


def test_the_host_keys_are_created_in_their_own_vault_before_the_app_and_never_read_back(ingestion_run):
    """A fresh app's host may not be up: no key is read from it, both keys exist before it starts."""
    (vault,) = ingestion_run.of_type("azure-native:keyvault:Vault")
    (app,) = ingestion_run.of_type("azure-native:web:WebApp")
    assert vault.inputs["vaultName"] == "testfunckeys"
    assert vault.inputs["properties"]["enableRbacAuthorization"] is True
    settings = _settings(ingestion_run)
    assert settings["AzureWebJobsSecretStorageType"] == "keyvault"
    assert settings["AzureWebJobsSecretStorageKeyVaultUri"] == vault.outputs["properties"]["vaultUri"]
    secrets = {s.inputs["secretName"]: s for s in ingestion_run.of_type("azure-native:keyvault:Secret")}
    # The host's Key Vault repository treats a vault without a master key as empty and rewrites it.
    assert set(secrets) == {MASTER_KEY_SECRET, FUNCTION_KEY_SECRET} == {
        "host--masterKey--master", "host--functionKey--datafactory"
    }
    passwords = {p.urn: p for p in ingestion_run.of_type("random:index/randomPassword:RandomPassword")}
    for secret in secrets.values():
        assert secret.inputs["vaultName"] == "testfunckeys"
        assert "properties" in secret.secret_inputs
        assert secret.urn in app.dependencies
        (source,) = [p for p in passwords.values() if p.outputs["result"] == secret.inputs["properties"]["value"]]
        assert source.inputs["length"] >= 32
    assert len({s.inputs["properties"]["value"] for s in secrets.values()}) == 2
