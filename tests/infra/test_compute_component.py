"""The compute component: Databricks with no public IPs, lake access, and the repo's code deployed."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from infra import roles
from infra.compute import NOTEBOOK_ROOT, SECRET_SCOPE, WHEEL_ROOT, Compute, ComputeArgs, wheel_name

LAKE_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/lake"


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
        common.rg, common.location, "test-dbw", common.tags, LAKE_ID, "postgresql://u@h/db", repo_root=repo
    )
    return run_component(lambda: Compute("compute", args))


def test_workspace_is_premium_with_secure_cluster_connectivity(compute_run):
    (ws,) = compute_run.of_type("azure-native:databricks:Workspace")
    assert ws.inputs["sku"] == {"name": "premium"}
    assert ws.inputs["parameters"]["enableNoPublicIp"] == {"value": True}


def test_access_connector_identity_may_read_and_write_the_lake(compute_run):
    (connector,) = compute_run.of_type("azure-native:databricks:AccessConnector")
    (grant,) = compute_run.of_type("azure-native:authorization:RoleAssignment")
    assert grant.inputs["principalId"] == connector.outputs["identity"]["principalId"]
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


def test_project_wheel_is_uploaded_where_activities_attach_it(compute_run, repo):
    (wheel,) = compute_run.of_type("databricks:index/dbfsFile:DbfsFile")
    assert wheel_name(repo) == "market_lakehouse-9.8.7-py3-none-any.whl"
    assert wheel.inputs["path"] == f"{WHEEL_ROOT}/market_lakehouse-9.8.7-py3-none-any.whl"
    assert wheel.inputs["source"] == str(repo / "dist" / "market_lakehouse-9.8.7-py3-none-any.whl")


def test_serving_dsn_is_a_secret_in_the_lakehouse_scope(compute_run):
    (scope,) = compute_run.of_type("databricks:index/secretScope:SecretScope")
    (secret,) = compute_run.of_type("databricks:index/secret:Secret")
    assert scope.inputs["name"] == SECRET_SCOPE
    assert (secret.inputs["scope"], secret.inputs["key"]) == (SECRET_SCOPE, "pg-dsn")
    assert secret.inputs["stringValue"] == "postgresql://u@h/db"
    assert "stringValue" in secret.secret_inputs
