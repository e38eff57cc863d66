"""The orchestration component: the factory and the `adf/` files deployed from JSON, parameterized."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import roles
from infra.orchestration import (
    JOBS_CREDENTIAL,
    AdfDocumentError,
    Orchestration,
    OrchestrationArgs,
    flatten_type_properties,
    parameterize,
    placeholders,
)

SUB = "/subscriptions/s/resourceGroups/rg/providers"
JOBS_ID, VAULT_ID, KEYS_VAULT_ID = (
    f"{SUB}/Microsoft.ManagedIdentity/userAssignedIdentities/dbw-jobs",
    f"{SUB}/Microsoft.KeyVault/vaults/kv",
    f"{SUB}/Microsoft.KeyVault/vaults/funckeys",
)
VALUES = {"vaultUrl": "https://kv.vault.azure.net/", "environment": "test"}


def _write(root: Path, kind: str, name: str, properties: dict) -> None:
    (root / kind).mkdir(parents=True, exist_ok=True)
    (root / kind / f"{name}.json").write_text(json.dumps({"name": name, "properties": properties}))


@pytest.fixture
def adf(tmp_path: Path) -> Path:
    """A small factory: a Key Vault linked service, a parent pipeline calling a child, a trigger."""
    _write(tmp_path, "linkedService", "ls_kv", {
        "type": "AzureKeyVault",
        "parameters": {"vaultUrl": {"type": "String"}},
        "typeProperties": {"baseUrl": "@{linkedService().vaultUrl}"},
    })
    _write(tmp_path, "pipeline", "pl_parent", {
        "activities": [{
            "name": "Run child", "type": "ExecutePipeline", "dependsOn": [],
            "typeProperties": {"pipeline": {"referenceName": "pl_child", "type": "PipelineReference"},
                               "waitOnCompletion": True},
        }],
        "parameters": {"env": {"type": "String", "defaultValue": "${environment}"}},
    })
    _write(tmp_path, "pipeline", "pl_child", {
        "activities": [{"name": "Wait", "type": "Wait", "typeProperties": {"waitTimeInSeconds": 1}}],
    })
    _write(tmp_path, "trigger", "tr_daily", {
        "type": "ScheduleTrigger", "runtimeState": "Started",
        "pipelines": [{"pipelineReference": {"referenceName": "pl_parent", "type": "PipelineReference"}}],
        "typeProperties": {"recurrence": {"frequency": "Day", "interval": 1}},
    })  # fmt: skip
    return tmp_path


def _orchestration(run_component, common, adf_root, **overrides):
    values = {"deployment_values": VALUES, "jobs_identity_id": JOBS_ID, "vault_id": VAULT_ID,
              "function_keys_vault_id": KEYS_VAULT_ID, "adf_root": adf_root,
              **overrides}  # fmt: skip
    args = OrchestrationArgs(common.rg, common.location, common.tags, "test-adf", **values)
    return run_component(lambda: Orchestration("adf", args))


def test_placeholders_are_replaced_and_unknown_ones_named():
    props = {"a": "${environment}-x", "b": ["${vaultUrl}", 1], "c": {"d": "@pipeline().RunId"}}
    assert placeholders(props) == {"environment", "vaultUrl"}
    assert parameterize("pipeline", props, VALUES) == {
        "a": "test-x", "b": ["https://kv.vault.azure.net/", 1], "c": {"d": "@pipeline().RunId"},
    }  # fmt: skip
    assert props["a"] == "${environment}-x", "the file's content must not be modified"
    with pytest.raises(AdfDocumentError, match="nope"):
        parameterize("pipeline", {"x": "${nope}"}, VALUES)


def test_linked_service_parameters_named_like_deployment_values_get_them_as_defaults():
    props = {"parameters": {"vaultUrl": {"type": "String"}, "other": {"type": "String"}}}
    out = parameterize("linkedService", props, VALUES)
    assert out["parameters"] == {
        "vaultUrl": {"type": "String", "defaultValue": "https://kv.vault.azure.net/"},
        "other": {"type": "String"},
    }


def test_trigger_runtime_state_is_not_deployed():
    assert parameterize("trigger", {"type": "ScheduleTrigger", "runtimeState": "Started"}, {}) == {
        "type": "ScheduleTrigger"
    }


def test_type_properties_are_flattened_recursively_and_clashes_rejected():
    nested = {
        "name": "loop", "type": "ForEach",
        "typeProperties": {"items": "@x", "activities": [{"name": "w", "type": "Wait",
                                                          "typeProperties": {"waitTimeInSeconds": 5}}]},
    }  # fmt: skip
    assert flatten_type_properties(nested) == {
        "name": "loop", "type": "ForEach", "items": "@x",
        "activities": [{"name": "w", "type": "Wait", "waitTimeInSeconds": 5}],
    }  # fmt: skip
    with pytest.raises(AdfDocumentError, match="clash"):
        flatten_type_properties({"type": "x", "typeProperties": {"type": "y"}})


def test_factory_has_a_managed_identity_with_vault_and_lake_roles(run_component, common, adf):
    run = _orchestration(run_component, common, adf)
    (factory,) = run.of_type("azure-native:datafactory:Factory")
    assert factory.inputs["identity"]["type"] == "SystemAssigned,UserAssigned"
    principal = factory.outputs["identity"]["principalId"]
    grants = {
        (g.inputs["roleDefinitionId"].rsplit("/", 1)[1], g.inputs["scope"])
        for g in run.of_type("azure-native:authorization:RoleAssignment")
        if g.inputs["principalId"] == principal
    }
    assert grants == {
        (roles.KEY_VAULT_SECRETS_USER, VAULT_ID),
        (roles.KEY_VAULT_SECRETS_USER, KEYS_VAULT_ID),
    }


def test_the_jobs_identity_is_the_factory_credential_linked_services_sign_in_with(run_component, common, adf):
    run = _orchestration(run_component, common, adf)
    (factory,) = run.of_type("azure-native:datafactory:Factory")
    assert factory.inputs["identity"]["userAssignedIdentities"] == {JOBS_ID: {}}
    (credential,) = run.of_type("azure-native:datafactory:CredentialOperation")
    assert credential.inputs["credentialName"] == JOBS_CREDENTIAL
    assert credential.inputs["properties"] == {"type": "ManagedIdentity", "resourceId": JOBS_ID}
    for linked in run.of_type("azure-native:datafactory:LinkedService"):
        assert credential.urn in linked.dependencies


def test_the_databricks_linked_service_signs_in_with_the_credential_the_factory_has():
    ls = json.loads((Path(__file__).resolve().parents[2] / "adf" / "linkedService" / "ls_databricks.json").read_text())
    reference = ls["properties"]["typeProperties"]["credential"]
    assert reference == {"referenceName": JOBS_CREDENTIAL, "type": "CredentialReference"}


def test_deployment_values_become_factory_global_parameters(run_component, common, adf):
    (factory,) = _orchestration(run_component, common, adf).of_type("azure-native:datafactory:Factory")
    assert factory.inputs["globalParameters"] == {
        name: {"type": "String", "value": value} for name, value in VALUES.items()
    }


def test_each_file_becomes_one_resource_with_its_parameterized_flattened_properties(run_component, common, adf):
    run = _orchestration(run_component, common, adf)
    (ls,) = run.of_type("azure-native:datafactory:LinkedService")
    assert ls.inputs["linkedServiceName"] == "ls_kv"
    assert ls.inputs["properties"] == {
        "type": "AzureKeyVault",
        "parameters": {"vaultUrl": {"type": "String", "defaultValue": "https://kv.vault.azure.net/"}},
        "baseUrl": "@{linkedService().vaultUrl}",
    }
    pipelines = {p.inputs["pipelineName"]: p for p in run.of_type("azure-native:datafactory:Pipeline")}
    assert pipelines["pl_parent"].inputs["parameters"] == {"env": {"type": "String", "defaultValue": "test"}}
    assert pipelines["pl_parent"].inputs["activities"][0]["pipeline"]["referenceName"] == "pl_child"
    (trigger,) = run.of_type("azure-native:datafactory:Trigger")
    assert "runtimeState" not in trigger.inputs["properties"]
    assert trigger.inputs["properties"]["recurrence"] == {"frequency": "Day", "interval": 1}


def test_called_pipelines_and_triggered_pipelines_are_created_first(run_component, common, adf):
    run = _orchestration(run_component, common, adf)
    pipelines = {p.inputs["pipelineName"]: p for p in run.of_type("azure-native:datafactory:Pipeline")}
    (trigger,) = run.of_type("azure-native:datafactory:Trigger")
    assert pipelines["pl_child"].urn in pipelines["pl_parent"].dependencies
    assert pipelines["pl_parent"].urn in trigger.dependencies


def test_start_triggers_must_name_triggers_in_adf(run_component, common, adf):
    with pytest.raises(AdfDocumentError, match="tr_nightly"):
        _orchestration(run_component, common, adf, start_triggers=("tr_nightly",))


def test_a_file_whose_name_differs_from_its_content_is_rejected(run_component, common, adf):
    (adf / "pipeline" / "pl_copy.json").write_text(json.dumps({"name": "pl_other", "properties": {}}))
    with pytest.raises(AdfDocumentError, match=r"pl_copy\.json"):
        _orchestration(run_component, common, adf)


def test_an_unknown_placeholder_fails_naming_the_file(run_component, common, adf):
    _write(adf, "pipeline", "pl_bad", {"activities": [], "description": "${workspaceUrl}"})
    with pytest.raises(AdfDocumentError, match=r"pl_bad\.json.*workspaceUrl"):
        _orchestration(run_component, common, adf)


def test_pipelines_calling_each_other_in_a_cycle_are_rejected(run_component, common, adf):
    _write(adf, "pipeline", "pl_child", {"activities": [{
        "name": "back", "type": "ExecutePipeline",
        "typeProperties": {"pipeline": {"referenceName": "pl_parent", "type": "PipelineReference"}},
    }]})  # fmt: skip
    with pytest.raises(AdfDocumentError, match="cycle"):
        _orchestration(run_component, common, adf)
