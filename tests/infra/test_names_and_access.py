"""Names that survive a destroy and re-create, and access that something actually uses."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import runpy
import shutil
from pathlib import Path

import pulumi_azure_native
import pytest

from infra import orchestration, preview, stack_config
from infra.stack_config import StackConfigError

# Resource types whose physical name is unique across Azure (or a Unity Catalog metastore), by name input.
GLOBAL_NAMES = {
    "azure-native:keyvault:Vault": "vaultName",
    "azure-native:storage:StorageAccount": "accountName",
    "azure-native:web:WebApp": "name",
    "azure-native:dbforpostgresql:Server": "serverName",
    "azure-native:eventhub:Namespace": "namespaceName",
    "azure-native:datafactory:Factory": "factoryName",
    "azure-native:databricks:Workspace": "workspaceName",
}


def run_main() -> None:
    runpy.run_path(str(preview.PROGRAM), run_name="__main__")


def global_names(run: preview.ProgramRun) -> dict[str, str]:
    names = {r.name: r.inputs[key] for t, key in GLOBAL_NAMES.items() for r in run.of_type(t)}
    assert len(names) == 9, names  # 2 vaults, 2 storage accounts and one of each other kind
    return names


def test_globally_unique_names_end_in_a_suffix_hashed_from_project_and_stack(stack_run):
    project = preview.project_name()
    expected = hashlib.sha256(f"{project}/{stack_run.stack}".encode()).hexdigest()[:6]
    for logical, physical in global_names(stack_run).items():
        assert physical.endswith(expected), f"{logical}: {physical}"
    (catalog,) = {r.inputs["catalogName"] for r in stack_run.of_type("databricks:index/volume:Volume")}
    assert catalog.endswith(expected)


def test_dev_and_prod_share_no_globally_unique_name(dev_run, prod_run):
    assert not set(global_names(dev_run).values()) & set(global_names(prod_run).values())


def test_name_suffix_is_rotatable_per_stack_without_renaming_logical_resources(prod_run):
    rotated = preview.run_program(
        run_main,
        {**preview.stack_config("prod"), "lakehouse:nameSuffix": "r2026"},
        stack="prod",
        project=preview.project_name(),
    )
    before, after = global_names(prod_run), global_names(rotated)
    assert before.keys() == after.keys(), "rotating renames Azure resources, not Pulumi's logical names"
    for logical, physical in after.items():
        assert physical.endswith("r2026") and physical != before[logical], logical
    admins = rotated.of_type("azure-native:dbforpostgresql:AdministratorsMicrosoftEntra")
    (connector,) = rotated.of_type("azure-native:databricks:AccessConnector")
    assert [a.inputs["principalName"] for a in admins] == [connector.inputs["connectorName"]]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lakehouse:nameSuffix": "Bad-1"}, "3-6 lower-case"),
        ({"lakehouse:nameSuffix": "ab"}, "3-6 lower-case"),
        ({"lakehouse:namePrefix": "abcdefghijkl", "lakehouse:environment": "staging1"}, "over Azure's 24"),
    ],
)
def test_names_azure_would_reject_fail_naming_the_key(overrides, message):
    with pytest.raises(StackConfigError, match=rf"lakehouse:nameSuffix.*{message}"):
        preview.run_program(
            stack_config.load,
            {**preview.stack_config("dev"), **overrides},
        )


def test_the_factory_is_not_a_postgres_administrator(stack_run):
    (connector,) = stack_run.of_type("azure-native:databricks:AccessConnector")
    admins = stack_run.of_type("azure-native:dbforpostgresql:AdministratorsMicrosoftEntra")
    assert [a.inputs["objectId"] for a in admins] == [connector.outputs["identity"]["principalId"]]


def unused_linked_services(adf_root) -> list[str]:
    """Linked services no pipeline, dataset or other linked service refers to."""
    docs = orchestration.load_documents(adf_root)
    used = set()
    for kind in ("pipeline", "dataset", "linkedService"):
        for doc in docs[kind]:
            used |= orchestration.referenced(doc.properties, "LinkedServiceReference")
    return sorted({d.name for d in docs["linkedService"]} - used)


def test_every_linked_service_is_used_by_the_factory(tmp_path):
    assert unused_linked_services(orchestration.ADF_ROOT) == []
    # The rule can fail: the lake linked service no pipeline used, put back into a copy of adf/.
    copy = tmp_path / "adf"
    shutil.copytree(orchestration.ADF_ROOT, copy)
    unused = {"name": "ls_adls", "properties": {"type": "AzureBlobFS", "typeProperties": {"url": "x"}}}
    (copy / "linkedService" / "ls_adls.json").write_text(json.dumps(unused), encoding="utf-8")
    assert unused_linked_services(copy) == ["ls_adls"]


def test_the_factory_has_no_role_on_the_lake(stack_run):
    factory = stack_run.of_type("azure-native:datafactory:Factory")[0]
    principal = factory.outputs["identity"]["principalId"]
    lake_scopes = {r.id for r in stack_run.of_type("azure-native:storage:StorageAccount")}
    lake_scopes |= {r.id for r in stack_run.of_type("azure-native:storage:BlobContainer")}
    grants = [
        g.inputs["scope"] for g in stack_run.of_type("azure-native:authorization:RoleAssignment")
        if g.inputs["principalId"] == principal
    ]  # fmt: skip
    assert grants and not set(grants) & lake_scopes


def test_prod_postgres_allows_no_azure_wide_firewall_rule(prod_run):
    rules = prod_run.of_type("azure-native:dbforpostgresql:FirewallRule")
    assert [r.name for r in rules if r.inputs["startIpAddress"] == "0.0.0.0"] == []


def test_postgres_allows_azure_services_only_when_the_stack_says_so():
    """The key defaults to closed: a stack that omits it gets no Azure-wide rule."""
    config = {k: v for k, v in preview.stack_config("dev").items() if k != "lakehouse:postgresAllowAzureServices"}
    run = preview.run_program(
        run_main, config,
        stack="dev", project=preview.project_name(),
    )  # fmt: skip
    assert run.of_type("azure-native:dbforpostgresql:FirewallRule") == []


def api_version(type_: str) -> str:
    """The Azure REST API version an azure-native resource type uses (from its SDK documentation)."""
    _, module, name = type_.split(":")
    source = Path(inspect.getsourcefile(getattr(getattr(pulumi_azure_native, module), name))).read_text()
    found = re.search(r"Uses Azure REST API version (\S+?)\.", source)
    assert found, f"no API version documented for {type_}"
    return found.group(1)


def test_postgres_resources_use_stable_api_versions(stack_run):
    types = {r.type for r in stack_run.resources if r.type.startswith("azure-native:dbforpostgresql:")}
    assert "azure-native:dbforpostgresql:AdministratorsMicrosoftEntra" in types
    assert {t: api_version(t) for t in types if api_version(t).endswith("preview")} == {}
    assert api_version("azure-native:dbforpostgresql:Administrator").endswith("preview"), "the rule can fail"
