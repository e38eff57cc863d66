"""The compute component: Databricks with no public IPs, the lake through Unity Catalog, the repo's code."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from infra import roles
from infra.compute import NOTEBOOK_ROOT, SECRET_SCOPE, WHEEL_FOLDER, Compute, ComputeArgs, wheel_name, wheel_uri
from lakehouse.lake import CONTAINERS

LAKE_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/lake"
CATALOG = "lakehouse_test"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A miniature repository: two notebooks and a pyproject naming the wheel."""
    tmp_path = tmp_path_factory.mktemp("repo")
    (tmp_path / "spark_jobs" / "notebooks").mkdir(parents=True)
    (tmp_path / "spark_jobs" / "notebooks" / "raw_to_bronze.py").write_text("# Databricks notebook source\nprint(1)\n")
    (tmp_path / "spark_jobs" / "notebooks" / "silver_to_gold.py").write_text("# Databricks notebook source\nprint(2)\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "market-lakehouse"\nversion = "9.8.7"\n')
    return tmp_path


@pytest.fixture(scope="module")
def compute_run(run_component, common, repo):
    args = ComputeArgs(
        common.rg, common.location, common.tags, "test-dbw", LAKE_ID, "postgresql://u@h/db",
        lake_account_name="testlake", catalog_name=CATALOG, repo_root=repo,
        insights_connection_string="InstrumentationKey=test",
    )
    return run_component(lambda: Compute("compute", args))


def test_workspace_is_premium_with_secure_cluster_connectivity(compute_run):
    (ws,) = compute_run.of_type("azure-native:databricks:Workspace")
    assert ws.inputs["sku"] == {"name": "premium"}
    assert ws.inputs["parameters"]["enableNoPublicIp"] == {"value": True}


def test_access_connector_identity_may_read_and_write_the_lake(compute_run):
    (connector,) = compute_run.of_type("azure-native:databricks:AccessConnector")
    (grant,) = [g for g in compute_run.of_type("azure-native:authorization:RoleAssignment")
                if g.inputs["principalId"] == connector.outputs["identity"]["principalId"]]  # fmt: skip
    assert grant.inputs["scope"] == LAKE_ID
    assert grant.inputs["roleDefinitionId"].endswith(roles.STORAGE_BLOB_DATA_CONTRIBUTOR)


def test_every_notebook_in_the_repo_is_uploaded_with_its_exact_content(compute_run, repo):
    notebooks = {n.inputs["path"]: n for n in compute_run.of_type("databricks:index/notebook:Notebook")}
    expected = {f"{NOTEBOOK_ROOT}/{p.stem}": p for p in sorted((repo / "spark_jobs" / "notebooks").glob("*.py"))}
    assert set(notebooks) == set(expected)
    for path, source in expected.items():
        assert base64.b64decode(notebooks[path].inputs["contentBase64"]) == source.read_bytes()
        assert notebooks[path].inputs["language"] == "PYTHON"


def test_workspace_objects_are_created_through_the_workspace_provider(compute_run):
    (provider,) = compute_run.of_type("pulumi:providers:databricks")
    (ws,) = compute_run.of_type("azure-native:databricks:Workspace")
    assert provider.inputs["host"] == f"https://{ws.outputs['workspaceUrl']}"
    assert provider.inputs["azureWorkspaceResourceId"] == ws.id
    for reg in compute_run.resources:
        if reg.type.startswith("databricks:index/"):
            assert reg.provider and reg.provider.startswith(provider.urn), reg.name


def test_project_wheel_is_a_workspace_file_where_activities_install_it(compute_run, repo):
    (wheel,) = compute_run.of_type("databricks:index/workspaceFile:WorkspaceFile")
    assert wheel_name(repo) == "market_lakehouse-9.8.7-py3-none-any.whl"
    assert wheel.inputs["path"] == f"{WHEEL_FOLDER}/market_lakehouse-9.8.7-py3-none-any.whl"
    assert wheel.inputs["source"] == str(repo / "build" / "dist" / "market_lakehouse-9.8.7-py3-none-any.whl")
    assert wheel_uri(repo) == f"/Workspace{wheel.inputs['path']}"
    assert not compute_run.of_type("databricks:index/dbfsFile:DbfsFile"), "libraries in DBFS root are disabled"


def _jobs_application_id(run) -> str:
    (identity,) = run.of_type("azure-native:managedidentity:UserAssignedIdentity")
    (principal,) = run.of_type("databricks:index/servicePrincipal:ServicePrincipal")
    assert principal.inputs["applicationId"] == identity.outputs["clientId"]
    return principal.inputs["applicationId"]


def _grants(run, securable: str) -> dict[str, dict[str, set[str]]]:
    """Granted privileges by securable name and principal."""
    out: dict[str, dict[str, set[str]]] = {}
    for g in run.of_type("databricks:index/grants:Grants"):
        if securable in g.inputs:
            out[g.inputs[securable]] = {e["principal"]: set(e["privileges"]) for e in g.inputs["grants"]}
    return out


def test_workspace_is_bound_to_its_access_connector_and_a_unity_catalog_default_catalog(compute_run):
    (ws,) = compute_run.of_type("azure-native:databricks:Workspace")
    (connector,) = compute_run.of_type("azure-native:databricks:AccessConnector")
    assert ws.inputs["accessConnector"] == {"id": connector.id, "identityType": "SystemAssigned"}
    assert ws.inputs["defaultCatalog"] == {"initialType": "UnityCatalog", "initialName": CATALOG}


def test_the_access_connector_backs_the_storage_credential_of_one_external_location_per_container(compute_run):
    (connector,) = compute_run.of_type("azure-native:databricks:AccessConnector")
    (credential,) = compute_run.of_type("databricks:index/storageCredential:StorageCredential")
    assert credential.inputs["azureManagedIdentity"] == {"accessConnectorId": connector.id}
    registered = compute_run.of_type("databricks:index/externalLocation:ExternalLocation")
    locations = {loc.inputs["url"]: loc for loc in registered}
    assert set(locations) == {f"abfss://{c}@testlake.dfs.core.windows.net/" for c in CONTAINERS}
    assert {loc.inputs["credentialName"] for loc in locations.values()} == {credential.inputs["name"]}


def test_the_jobs_identity_may_read_raw_and_read_and_write_every_other_container(compute_run):
    jobs = _jobs_application_id(compute_run)
    names = {loc.inputs["url"].split("@")[0].removeprefix("abfss://"): loc.inputs["name"]
             for loc in compute_run.of_type("databricks:index/externalLocation:ExternalLocation")}  # fmt: skip
    granted = _grants(compute_run, "externalLocation")
    for container, location in names.items():
        expected = {"READ_FILES"} if container == "raw" else {"READ_FILES", "WRITE_FILES"}
        assert granted[location] == {jobs: expected}, container


def test_raw_is_an_external_volume_the_jobs_may_read(compute_run):
    jobs = _jobs_application_id(compute_run)
    (volume,) = compute_run.of_type("databricks:index/volume:Volume")
    (schema,) = compute_run.of_type("databricks:index/schema:Schema")
    assert volume.inputs["volumeType"] == "EXTERNAL"
    assert volume.inputs["storageLocation"] == "abfss://raw@testlake.dfs.core.windows.net/"
    assert (volume.inputs["catalogName"], volume.inputs["schemaName"]) == (CATALOG, schema.inputs["name"])
    assert _grants(compute_run, "catalog") == {CATALOG: {jobs: {"USE_CATALOG"}}}
    assert _grants(compute_run, "schema") == {schema.id: {jobs: {"USE_SCHEMA"}}}
    assert _grants(compute_run, "volume") == {volume.id: {jobs: {"READ_VOLUME"}}}


def test_a_service_credential_of_the_access_connector_gives_the_jobs_their_postgres_token(compute_run):
    jobs = _jobs_application_id(compute_run)
    (connector,) = compute_run.of_type("azure-native:databricks:AccessConnector")
    (credential,) = compute_run.of_type("databricks:index/credential:Credential")
    assert credential.inputs["purpose"] == "SERVICE"
    assert credential.inputs["azureManagedIdentity"] == {"accessConnectorId": connector.id}
    assert _grants(compute_run, "credential") == {credential.inputs["name"]: {jobs: {"ACCESS"}}}


def test_the_jobs_identity_drives_the_workspace_and_reads_the_secret_scope(compute_run):
    jobs = _jobs_application_id(compute_run)
    (identity,) = compute_run.of_type("azure-native:managedidentity:UserAssignedIdentity")
    (ws,) = compute_run.of_type("azure-native:databricks:Workspace")
    grants = {(g.inputs["roleDefinitionId"].rsplit("/", 1)[1], g.inputs["scope"])
              for g in compute_run.of_type("azure-native:authorization:RoleAssignment")
              if g.inputs["principalId"] == identity.outputs["principalId"]}  # fmt: skip
    assert grants == {(roles.CONTRIBUTOR, ws.id)}
    (acl,) = compute_run.of_type("databricks:index/secretAcl:SecretAcl")
    assert (acl.inputs["scope"], acl.inputs["principal"], acl.inputs["permission"]) == (SECRET_SCOPE, jobs, "READ")


def test_serving_dsn_is_a_secret_in_the_lakehouse_scope(compute_run):
    (scope,) = compute_run.of_type("databricks:index/secretScope:SecretScope")
    (secret,) = [s for s in compute_run.of_type("databricks:index/secret:Secret") if s.inputs["key"] == "pg-dsn"]
    assert scope.inputs["name"] == SECRET_SCOPE
    assert (secret.inputs["scope"], secret.inputs["key"]) == (SECRET_SCOPE, "pg-dsn")
    assert secret.inputs["stringValue"] == "postgresql://u@h/db"
    assert "stringValue" in secret.secret_inputs


def test_every_cluster_secret_the_linked_service_reads_exists_in_the_scope(compute_run):
    """ls_databricks.json reads {{secrets/<scope>/<key>}}: a missing secret stops every job cluster."""
    import json
    import re
    from pathlib import Path

    adf = Path(__file__).resolve().parents[2] / "adf"
    text = json.dumps(json.loads((adf / "linkedService" / "ls_databricks.json").read_text()))
    wanted = set(re.findall(r"\{\{secrets/([^/]+)/([^}]+)\}\}", text))
    assert wanted, "the linked service reads no secret: the test would prove nothing"
    created = {(s.inputs["scope"], s.inputs["key"]) for s in compute_run.of_type("databricks:index/secret:Secret")}
    assert wanted <= created
    (insights,) = [s for s in compute_run.of_type("databricks:index/secret:Secret")
                   if s.inputs["key"] == "appinsights-connection-string"]  # fmt: skip
    assert insights.inputs["stringValue"] == "InstrumentationKey=test" and "stringValue" in insights.secret_inputs
