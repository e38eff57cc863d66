"""The Key Vault component: an RBAC Key Vault whose secrets come from config or pulumi_random."""

from __future__ import annotations

import pulumi

from infra.key_vault import MARKET_API_KEY_SECRET, POSTGRES_PASSWORD_SECRET, Secrets, SecretsArgs, VaultPolicy


def _secrets(run_component, common, purge_protection=False, **overrides):
    values = {"market_api_key": pulumi.Output.secret("api-key-from-config")}
    values.update(overrides)
    policy = VaultPolicy("tenant-1", purge_protection=purge_protection)
    args = SecretsArgs(common.rg, common.location, common.tags, "test-kv", policy, **values)
    return run_component(lambda: Secrets("secrets", args))


def test_vault_uses_rbac_authorization_and_soft_delete(run_component, common):
    run = _secrets(run_component, common)
    (vault,) = run.of_type("azure-native:keyvault:Vault")
    props = vault.inputs["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["tenantId"] == "tenant-1"
    assert "accessPolicies" not in props


def test_purge_protection_is_on_when_asked_and_absent_otherwise(run_component, common):
    """Azure rejects enablePurgeProtection=false, so 'off' must mean 'not sent'."""
    on = _secrets(run_component, common, purge_protection=True).of_type("azure-native:keyvault:Vault")[0]
    off = _secrets(run_component, common, purge_protection=False).of_type("azure-native:keyvault:Vault")[0]
    assert on.inputs["properties"]["enablePurgeProtection"] is True
    assert "enablePurgeProtection" not in off.inputs["properties"]


def test_market_api_key_is_stored_from_the_secret_config_value(run_component, common):
    run = _secrets(run_component, common)
    secrets = {s.inputs["secretName"]: s for s in run.of_type("azure-native:keyvault:Secret")}
    assert secrets[MARKET_API_KEY_SECRET].inputs["properties"]["value"] == "api-key-from-config"
    assert "properties" in secrets[MARKET_API_KEY_SECRET].secret_inputs, "the value must stay a Pulumi secret"


def test_postgres_password_is_generated_when_not_configured(run_component, common):
    run = _secrets(run_component, common)
    (generated,) = run.of_type("random:index/randomPassword:RandomPassword")
    assert generated.inputs["length"] >= 24
    secrets = {s.inputs["secretName"]: s for s in run.of_type("azure-native:keyvault:Secret")}
    assert secrets[POSTGRES_PASSWORD_SECRET].inputs["properties"]["value"] == generated.outputs["result"]
    assert "properties" in secrets[POSTGRES_PASSWORD_SECRET].secret_inputs


def test_configured_postgres_password_is_used_instead_of_a_generated_one(run_component, common):
    run = _secrets(run_component, common, postgres_admin_password=pulumi.Output.secret("from-config"))
    assert run.of_type("random:index/randomPassword:RandomPassword") == []
    secrets = {s.inputs["secretName"]: s for s in run.of_type("azure-native:keyvault:Secret")}
    assert secrets[POSTGRES_PASSWORD_SECRET].inputs["properties"]["value"] == "from-config"


def test_no_password_secret_when_the_server_uses_entra_only(run_component, common):
    run = _secrets(run_component, common, store_postgres_password=False)
    names = [s.inputs["secretName"] for s in run.of_type("azure-native:keyvault:Secret")]
    assert names == [MARKET_API_KEY_SECRET]
    assert run.of_type("random:index/randomPassword:RandomPassword") == []
