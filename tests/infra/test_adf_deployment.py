"""What the factory gets is exactly `adf/` after parameterization: no second copy, nothing dropped.

Reads every JSON file under adf/ at test time, so new pipelines, triggers, linked services and
datasets are covered as soon as they are added.
"""

from __future__ import annotations

import json

import pytest

from infra import preview
from infra.compute import WHEEL_FOLDER
from infra.databricks_runtime import SPARK_VERSION_KEY
from infra.orchestration import ADF_ROOT, KINDS, PIPELINE_PROPERTIES, flatten_type_properties, parameterize

RESOURCE_TYPES = {
    "linkedService": ("azure-native:datafactory:LinkedService", "linkedServiceName"),
    "dataset": ("azure-native:datafactory:Dataset", "datasetName"),
    "pipeline": ("azure-native:datafactory:Pipeline", "pipelineName"),
    "trigger": ("azure-native:datafactory:Trigger", "triggerName"),
}


def adf_files(kind: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((ADF_ROOT / kind).glob("*.json"))}


def deployed(run: preview.ProgramRun, kind: str) -> dict[str, dict]:
    type_, name_key = RESOURCE_TYPES[kind]
    out = {}
    for r in run.of_type(type_):
        body = r.inputs["properties"] if kind != "pipeline" else {
            wire: r.inputs[wire] for wire in PIPELINE_PROPERTIES if wire in r.inputs
        }  # fmt: skip
        out[r.inputs[name_key]] = body
    return out


def deployment_values(run: preview.ProgramRun) -> dict[str, str]:
    (factory,) = run.of_type("azure-native:datafactory:Factory")
    return {k: v["value"] for k, v in factory.inputs["globalParameters"].items()}


def test_adf_folder_has_the_pipelines_the_platform_runs():
    assert {"pl_lakehouse_daily", "pl_backfill"} <= set(adf_files("pipeline"))


@pytest.mark.parametrize("kind", KINDS)
def test_each_adf_file_is_deployed_once_and_nothing_else_is(stack_run, kind):
    assert set(deployed(stack_run, kind)) == set(adf_files(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_deployed_properties_equal_the_files_after_parameterization(stack_run, kind):
    values = deployment_values(stack_run)
    got = deployed(stack_run, kind)
    for name, document in adf_files(kind).items():
        expected = flatten_type_properties(parameterize(kind, document["properties"], values))
        assert got[name] == expected, f"{kind}/{name}.json differs from what is deployed"


def test_every_linked_service_parameter_gets_a_value_for_this_stack(stack_run):
    for name, body in deployed(stack_run, "linkedService").items():
        for param, spec in (body.get("parameters") or {}).items():
            assert spec.get("defaultValue") not in (None, ""), f"{name}.{param} has no value in {stack_run.stack}"


def test_deployment_values_point_at_this_stacks_resources(stack_run):
    values = deployment_values(stack_run)
    lake = next(r for r in stack_run.of_type("azure-native:storage:StorageAccount") if r.inputs["isHnsEnabled"])
    (vault,) = [v for v in stack_run.of_type("azure-native:keyvault:Vault") if "-kv-" in v.inputs["vaultName"]]
    workspace = stack_run.of_type("azure-native:databricks:Workspace")[0]
    app = stack_run.of_type("azure-native:web:WebApp")[0]
    assert values["environment"] == stack_run.stack
    assert values["accountUrl"] == lake.outputs["primaryEndpoints"]["dfs"]
    assert values["lakeRoot"] == f"abfss://{{container}}@{lake.inputs['accountName']}.dfs.core.windows.net"
    assert values["vaultUrl"] == vault.outputs["properties"]["vaultUri"]
    assert values["workspaceUrl"] == f"https://{workspace.outputs['workspaceUrl']}"
    assert values["workspaceResourceId"] == workspace.id
    assert values["functionAppUrl"] == f"https://{app.outputs['defaultHostName']}"


def _walk(value):
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _deployed_pipelines(run: preview.ProgramRun) -> list[dict]:
    return list(deployed(run, "pipeline").values())


def test_every_notebook_an_activity_runs_is_deployed_to_that_path(dev_run):
    notebooks = {n.inputs["path"] for n in dev_run.of_type("databricks:index/notebook:Notebook")}
    wanted = {node["notebookPath"] for doc in _deployed_pipelines(dev_run) for node in _walk(doc)
              if isinstance(node.get("notebookPath"), str)}  # fmt: skip
    assert wanted, "the pipelines run notebooks"
    missing = sorted(wanted - notebooks)
    assert missing == [], f"activities run notebooks that are not deployed there: {missing}"


def test_every_wheel_an_activity_installs_is_the_workspace_file_deployed(dev_run):
    """The wheel is a workspace file, never a DBFS-root library (disabled from Runtime 15)."""
    (wheel,) = dev_run.of_type("databricks:index/workspaceFile:WorkspaceFile")
    assert wheel.inputs["path"].startswith(f"{WHEEL_FOLDER}/")
    attached = {lib["whl"] for doc in _deployed_pipelines(dev_run) for node in _walk(doc)
                for lib in node.get("libraries", []) if isinstance(lib, dict) and "whl" in lib}  # fmt: skip
    assert attached == {f"/Workspace{wheel.inputs['path']}"}
    assert not dev_run.of_type("databricks:index/dbfsFile:DbfsFile")


def test_clusters_get_the_runtime_volume_and_credential_this_stack_created(stack_run):
    values = deployment_values(stack_run)
    (volume,) = stack_run.of_type("databricks:index/volume:Volume")
    (credential,) = stack_run.of_type("databricks:index/credential:Credential")
    (schema,) = stack_run.of_type("databricks:index/schema:Schema")
    assert values["sparkVersion"] == SPARK_VERSION_KEY
    catalog, schema_name = volume.inputs["catalogName"], schema.inputs["name"]
    assert values["rawVolume"] == f"/Volumes/{catalog}/{schema_name}/{volume.inputs['name']}"
    assert values["pgServiceCredential"] == credential.inputs["name"]
    assert credential.inputs["purpose"] == "SERVICE"


def test_prod_signs_in_to_postgres_with_entra_and_dev_with_its_password(dev_run, prod_run):
    assert deployment_values(prod_run)["pgAuth"] == "entra"
    assert deployment_values(dev_run)["pgAuth"] == "dsn"


def test_function_keys_vault_url_is_the_vault_holding_the_host_keys(stack_run):
    values = deployment_values(stack_run)
    (app,) = stack_run.of_type("azure-native:web:WebApp")
    settings = {s["name"]: s["value"] for s in app.inputs["siteConfig"]["appSettings"]}
    assert settings["AzureWebJobsSecretStorageType"] == "keyvault"
    assert values["functionKeysVaultUrl"] == settings["AzureWebJobsSecretStorageKeyVaultUri"]
    vaults = {v.outputs["properties"]["vaultUri"]: v for v in stack_run.of_type("azure-native:keyvault:Vault")}
    host_keys = {s.inputs["secretName"] for s in stack_run.of_type("azure-native:keyvault:Secret")
                 if s.inputs["vaultName"] == vaults[values["functionKeysVaultUrl"]].inputs["vaultName"]}  # fmt: skip
    assert host_keys == {"host--masterKey--master", "host--functionKey--datafactory"}


def test_the_local_runner_fills_notebook_paths_as_the_deployment_does(dev_run):
    from local.adf.factory import local_deployment_values

    assert local_deployment_values()["notebookRoot"] == deployment_values(dev_run)["notebookRoot"]
