"""The security baseline, checked on every resource the program registers, in every stack.

Each resource type the program may create has an entry in BASELINE (its rule; `None` when the
type has nothing to check beyond the rules that apply to all). A resource of a type without an
entry fails the test, so a new kind of resource cannot be added without deciding its rules.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from ipaddress import IPv4Address

import pulumi_azure_native
import pytest

from infra import preview, roles

SECRETISH = ("KEY", "PASSWORD", "SECRET", "TOKEN", "CONNECTION", "DSN")
# An ingestion endpoint, and where the host keeps its keys (a store type and a vault URL): no credential.
NOT_SECRET_SETTINGS = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING", "AzureWebJobsSecretStorageType", "AzureWebJobsSecretStorageKeyVaultUri",
}  # fmt: skip


def _storage(r):
    i = r.inputs
    assert i["minimumTlsVersion"] == "TLS1_2" and i["enableHttpsTrafficOnly"] is True
    assert i["allowBlobPublicAccess"] is False, "public blob access"
    assert i["allowSharedKeyAccess"] is False, "shared keys: use Entra ID"


def _container(r):
    assert r.inputs.get("publicAccess", "None") == "None"


def _vault(r):
    p = r.inputs["properties"]
    assert p["enableRbacAuthorization"] is True and p["enableSoftDelete"] is True
    assert not p.get("accessPolicies"), "access policies bypass RBAC"


def _secret(r):
    assert "properties" in r.secret_inputs, "a Key Vault secret's value must be a Pulumi secret"


def _namespace(r):
    assert r.inputs["disableLocalAuth"] is True and r.inputs["minimumTlsVersion"] == "1.2"


def _web_app(r):
    i = r.inputs
    assert i["httpsOnly"] is True and i["identity"]["type"] == "SystemAssigned"
    site = i["siteConfig"]
    assert site["ftpsState"] == "Disabled" and site["minTlsVersion"] == "1.2"
    for setting in site["appSettings"]:
        name, value = setting["name"], str(setting["value"])
        if any(word in name.upper() for word in SECRETISH) and name not in NOT_SECRET_SETTINGS:
            assert value.startswith("@Microsoft.KeyVault("), f"app setting {name} must be a Key Vault reference"


def _basic_auth_off(r):
    assert r.inputs["allow"] is False


def _identity(r):
    assert "SystemAssigned" in r.inputs["identity"]["type"]


def _databricks_workspace(r):
    assert r.inputs["parameters"]["enableNoPublicIp"] == {"value": True}
    assert r.inputs["sku"]["name"] == "premium"


def _postgres(r):
    assert r.inputs["version"] == "16"
    assert r.inputs["authConfig"]["activeDirectoryAuth"] == "Enabled"
    if r.inputs["authConfig"]["passwordAuth"] == "Enabled":
        assert "administratorLoginPassword" in r.secret_inputs


def _postgres_configuration(r):
    if r.inputs["configurationName"] == "require_secure_transport":
        assert r.inputs["value"] == "on"


def _firewall(r):
    start, end = IPv4Address(r.inputs["startIpAddress"]), IPv4Address(r.inputs["endIpAddress"])
    assert start <= end
    assert (start, end) != (IPv4Address("0.0.0.0"), IPv4Address("255.255.255.255")), "open to the internet"
    assert int(end) - int(start) < 2**16 or int(end) == 0, "range wider than a /16"


def _role_assignment(r):
    assert r.inputs["principalType"] == "ServicePrincipal", "grants go to managed identities only"
    assert r.inputs["roleDefinitionId"].rsplit("/", 1)[1] in roles.ROLE_NAMES
    assert "/resourceGroups/" in r.inputs["scope"], "no subscription-wide grants"


def _secret_value(field: str) -> Callable:
    def check(r):
        assert field in r.secret_inputs, f"{field} must be a Pulumi secret"

    return check


BASELINE: dict[str, Callable | None] = {
    "azure-native:resources:ResourceGroup": None,
    "azure-native:storage:StorageAccount": _storage,
    "azure-native:storage:BlobContainer": _container,
    "azure-native:storage:BlobServiceProperties": None,
    "azure-native:storage:ManagementPolicy": None,
    "azure-native:keyvault:Vault": _vault,
    "azure-native:keyvault:Secret": _secret,
    "azure-native:eventhub:Namespace": _namespace,
    "azure-native:eventhub:EventHub": None,
    "azure-native:eventhub:ConsumerGroup": None,
    "azure-native:web:AppServicePlan": None,
    "azure-native:web:WebApp": _web_app,
    "azure-native:web:WebAppFtpAllowed": _basic_auth_off,
    "azure-native:web:WebAppScmAllowed": _basic_auth_off,
    "azure-native:applicationinsights:Component": None,
    "azure-native:applicationinsights:Workbook": None,
    "azure-native:operationalinsights:Workspace": None,
    "azure-native:databricks:Workspace": _databricks_workspace,
    "azure-native:databricks:AccessConnector": _identity,
    "azure-native:datafactory:Factory": _identity,
    "azure-native:datafactory:LinkedService": None,
    "azure-native:datafactory:Dataset": None,
    "azure-native:datafactory:Pipeline": None,
    "azure-native:datafactory:Trigger": None,
    "azure-native:dbforpostgresql:Server": _postgres,
    "azure-native:dbforpostgresql:Configuration": _postgres_configuration,
    "azure-native:dbforpostgresql:Database": None,
    "azure-native:dbforpostgresql:FirewallRule": _firewall,
    "azure-native:dbforpostgresql:AdministratorsMicrosoftEntra": None,
    "azure-native:authorization:RoleAssignment": _role_assignment,
    "azure-native:monitor:DiagnosticSetting": None,
    "azure-native:monitor:ActionGroup": None,
    "azure-native:monitor:MetricAlert": None,
    "azure-native:monitor:ScheduledQueryRule": None,
    "random:index/randomPassword:RandomPassword": None,
    "pulumi:providers:databricks": None,
    "databricks:index/notebook:Notebook": None,
    "databricks:index/workspaceFile:WorkspaceFile": None,
    "databricks:index/secretScope:SecretScope": None,
    "databricks:index/secretAcl:SecretAcl": None,
    "databricks:index/servicePrincipal:ServicePrincipal": None,
    "databricks:index/storageCredential:StorageCredential": None,
    "databricks:index/externalLocation:ExternalLocation": None,
    "databricks:index/schema:Schema": None,
    "databricks:index/volume:Volume": None,
    "databricks:index/credential:Credential": None,
    "databricks:index/grants:Grants": None,
    "azure-native:managedidentity:UserAssignedIdentity": None,
    "azure-native:datafactory:CredentialOperation": None,
    "databricks:index/secret:Secret": _secret_value("stringValue"),
}
# Resources Azure Monitor must watch (a diagnostic setting on each).
NEEDS_DIAGNOSTICS = {
    "azure-native:datafactory:Factory", "azure-native:web:WebApp", "azure-native:eventhub:Namespace",
    "azure-native:keyvault:Vault", "azure-native:dbforpostgresql:Server", "azure-native:databricks:Workspace",
}  # fmt: skip


def accepts_tags(type_: str) -> bool:
    """Whether an azure-native resource type takes `tags` (read from its SDK class)."""
    _, module, name = type_.split(":")
    cls = getattr(getattr(pulumi_azure_native, module), name)
    return "tags" in inspect.signature(cls._internal_init).parameters


def test_every_resource_type_has_a_baseline_entry(stack_run):
    unknown = sorted({r.type for r in stack_run.resources if r.custom} - set(BASELINE))
    assert unknown == [], f"add a security rule (or None, deliberately) for {unknown}"


def test_every_resource_meets_its_rules(stack_run):
    failures = []
    for resource in stack_run.resources:
        rule = BASELINE.get(resource.type) if resource.custom else None
        if rule is None:
            continue
        try:
            rule(resource)
        except (AssertionError, KeyError) as exc:
            failures.append(f"{resource.type} {resource.name}: {exc!r}")
    assert failures == []


def test_every_azure_resource_that_takes_tags_has_the_stack_tags(stack_run):
    env = stack_run.stack
    missing = [
        r.name for r in stack_run.resources
        if r.type.startswith("azure-native:") and accepts_tags(r.type)
        and (r.inputs.get("tags") or {}).get("environment") != env
    ]  # fmt: skip
    assert missing == []


def test_every_watched_resource_has_a_diagnostic_setting(stack_run):
    watched = {d.inputs["resourceUri"] for d in stack_run.of_type("azure-native:monitor:DiagnosticSetting")}
    unwatched = [r.name for r in stack_run.resources if r.type in NEEDS_DIAGNOSTICS and r.id not in watched]
    assert unwatched == []


def test_no_secret_appears_in_plain_inputs(stack_run):
    """The secret stand-ins of the run must only ever appear inside Pulumi secrets."""
    plain_secrets = {"mock-function-key", preview.SECRET_PLACEHOLDER}
    plain_secrets |= {r.outputs["result"] for r in stack_run.of_type("random:index/randomPassword:RandomPassword")}
    leaks = [
        f"{r.name}.{key}" for r in stack_run.resources for key, value in r.inputs.items()
        if key not in r.secret_inputs and any(s in str(value) for s in plain_secrets)
    ]  # fmt: skip
    assert leaks == []


@pytest.mark.parametrize("type_", ["azure-native:storage:StorageAccount", "azure-native:keyvault:Vault"])
def test_the_baseline_rejects_a_resource_that_breaks_it(dev_run, type_):
    """The rules can fail: a copy of a compliant resource with one setting flipped does not pass."""
    resource = dev_run.of_type(type_)[0]
    broken = preview.Registration(**{**resource.__dict__, "inputs": {**resource.inputs}})
    if type_.endswith("StorageAccount"):
        broken.inputs["allowSharedKeyAccess"] = True
    else:
        broken.inputs["properties"] = {**resource.inputs["properties"], "enableRbacAuthorization": False}
    BASELINE[type_](resource)
    with pytest.raises(AssertionError):
        BASELINE[type_](broken)
