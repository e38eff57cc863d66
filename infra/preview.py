"""Run the Pulumi program under mocks with a stack's configuration: no cloud, no Pulumi CLI.

:func:`run` executes `infra/__main__.py` exactly as `pulumi up` would, except that the engine is
Pulumi's mock monitor: every resource registration is recorded (type, name, inputs, parent,
dependencies) and answered with deterministic, Azure-shaped outputs (resource ids, principal
ids of managed identities, endpoints). :func:`preview` turns that into the JSON-serializable
resource tree behind `lakehouse infra preview --stack dev [--json]`. The tests use :func:`run`
for the whole-program checks and :func:`run_program` for small per-component programs.
"""

from __future__ import annotations

import contextvars
import json
import runpy
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PROGRAM = REPO_ROOT / "infra" / "__main__.py"
MOCK_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
MOCK_TENANT = "11111111-1111-1111-1111-111111111111"
SECRET_PLACEHOLDER = "[secret]"  # noqa: S105 (a name, not a secret)
# Config keys that hold secrets (`pulumi config set --secret`); previews stand in a placeholder
# for the required ones.
SECRET_KEYS = ("lakehouse:marketApiKey", "lakehouse:postgresAdminPassword")
REQUIRED_SECRET_KEYS = ("lakehouse:marketApiKey",)

# ARM provider paths of the resource types the program creates, for realistic mock ids.
_ARM_TYPES = {
    "storage:StorageAccount": ("Microsoft.Storage/storageAccounts", "accountName"),
    "keyvault:Vault": ("Microsoft.KeyVault/vaults", "vaultName"),
    "eventhub:Namespace": ("Microsoft.EventHub/namespaces", "namespaceName"),
    "web:AppServicePlan": ("Microsoft.Web/serverfarms", "name"),
    "web:WebApp": ("Microsoft.Web/sites", "name"),
    "applicationinsights:Component": ("Microsoft.Insights/components", "resourceName"),
    "applicationinsights:Workbook": ("Microsoft.Insights/workbooks", "resourceName"),
    "operationalinsights:Workspace": ("Microsoft.OperationalInsights/workspaces", "workspaceName"),
    "databricks:Workspace": ("Microsoft.Databricks/workspaces", "workspaceName"),
    "databricks:AccessConnector": ("Microsoft.Databricks/accessConnectors", "connectorName"),
    "managedidentity:UserAssignedIdentity": ("Microsoft.ManagedIdentity/userAssignedIdentities", "resourceName"),
    "datafactory:Factory": ("Microsoft.DataFactory/factories", "factoryName"),
    "dbforpostgresql:Server": ("Microsoft.DBforPostgreSQL/flexibleServers", "serverName"),
    "monitor:ActionGroup": ("Microsoft.Insights/actionGroups", "actionGroupName"),
    "monitor:MetricAlert": ("Microsoft.Insights/metricAlerts", "ruleName"),
    "monitor:ScheduledQueryRule": ("Microsoft.Insights/scheduledQueryRules", "ruleName"),
}
# Child resources by parent type (whose name input is in _ARM_TYPES): (child path segment, child name input).
_ARM_CHILDREN_OF = {
    "storage:StorageAccount": {
        "storage:BlobContainer": ("blobServices/default/containers", "containerName"),
        "storage:BlobServiceProperties": ("blobServices", "blobServicesName"),
        "storage:ManagementPolicy": ("managementPolicies", "managementPolicyName"),
    },
    "datafactory:Factory": {
        "datafactory:LinkedService": ("linkedservices", "linkedServiceName"),
        "datafactory:Dataset": ("datasets", "datasetName"),
        "datafactory:Pipeline": ("pipelines", "pipelineName"),
        "datafactory:Trigger": ("triggers", "triggerName"),
    },
    "eventhub:Namespace": {
        "eventhub:EventHub": ("eventhubs", "eventHubName"),
        "eventhub:ConsumerGroup": ("eventhubs", "consumerGroupName"),
    },
    "keyvault:Vault": {"keyvault:Secret": ("secrets", "secretName")},
    "dbforpostgresql:Server": {
        "dbforpostgresql:Database": ("databases", "databaseName"),
        "dbforpostgresql:FirewallRule": ("firewallRules", "firewallRuleName"),
        "dbforpostgresql:Configuration": ("configurations", "configurationName"),
        "dbforpostgresql:AdministratorsMicrosoftEntra": ("administrators", "objectId"),
    },
}
_ARM_CHILDREN = {
    child: (parent, _ARM_TYPES[parent][1], *path)
    for parent, children in _ARM_CHILDREN_OF.items()
    for child, path in children.items()
}


@dataclass
class Registration:
    """One resource the program registered, as the engine would have seen it."""

    urn: str
    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str
    parent: str | None
    dependencies: list[str]
    provider: str | None = None
    secret_inputs: frozenset[str] = frozenset()


@dataclass
class ProgramRun:
    """The outcome of a mocked run: every registration, in registration order."""

    stack: str
    resources: list[Registration] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registration:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def by_urn(self, urn: str) -> Registration:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise KeyError(urn)

    def by_id(self, id_: str) -> Registration:
        for r in self.resources:
            if r.id == id_:
                return r
        raise KeyError(id_)


_SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc._special_sig_key
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (a marker) - pulumi.runtime.rpc._special_secret_sig


def is_secret(value: Any) -> bool:
    """Whether a deserialized input value is (or contains) a Pulumi secret."""
    if isinstance(value, dict):
        return value.get(_SIG_KEY) == _SECRET_SIG or any(is_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(is_secret(v) for v in value)
    return False


def reveal(value: Any) -> Any:
    """The plain value inside Pulumi secret wrappers, recursively."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return reveal(value.get("value"))
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def _short_type(type_: str) -> str:
    parts = type_.split(":")
    return ":".join(parts[1:]) if parts[0] == "azure-native" else type_


def mock_outputs(type_: str, name: str, inputs: Mapping[str, Any], ids: Mapping[str, str]) -> tuple[str, dict]:
    """Deterministic, Azure-shaped id and outputs for a resource registration.

    Args:
        type_: the resource type token.
        name: the Pulumi resource name.
        inputs: the registered inputs (wire names).
        ids: ids already handed out, by "short type/azure name", to build child ids.
    """
    short = _short_type(type_)
    state = dict(inputs)
    rg = inputs.get("resourceGroupName", "rg")
    base = f"/subscriptions/{MOCK_SUBSCRIPTION}/resourceGroups/{rg}/providers"
    if short == "resources:ResourceGroup":
        id_ = f"/subscriptions/{MOCK_SUBSCRIPTION}/resourceGroups/{inputs.get('resourceGroupName', name)}"
        state["name"] = inputs.get("resourceGroupName", name)
    elif short in _ARM_TYPES:
        arm, key = _ARM_TYPES[short]
        azure_name = inputs.get(key, name)
        id_ = f"{base}/{arm}/{azure_name}"
        state["name"] = azure_name
    elif short in _ARM_CHILDREN:
        parent_type, parent_key, segment, key = _ARM_CHILDREN[short]
        parent_name = inputs.get(parent_key, "parent")
        parent_id = ids.get(f"{parent_type}/{parent_name}") or f"{base}/unknown/{parent_name}"
        azure_name = inputs.get(key, name)
        if short == "eventhub:ConsumerGroup":
            segment = f"eventhubs/{inputs.get('eventHubName')}/consumergroups"
        id_ = f"{parent_id}/{segment}/{azure_name}"
        state["name"] = azure_name
    elif short == "authorization:RoleAssignment":
        assignment = uuid.uuid5(uuid.NAMESPACE_URL, name)
        id_ = f"{inputs.get('scope')}/providers/Microsoft.Authorization/roleAssignments/{assignment}"
    elif short == "monitor:DiagnosticSetting":
        id_ = f"{inputs.get('resourceUri')}/providers/Microsoft.Insights/diagnosticSettings/{inputs.get('name', name)}"
    else:
        id_ = f"{name}-id"

    identity = inputs.get("identity")
    if isinstance(identity, dict) and "SystemAssigned" in str(identity.get("type", "")):
        state["identity"] = {
            **identity,
            "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"principal/{id_}")),
            "tenantId": MOCK_TENANT,
        }
    azure_name = state.get("name", name)
    if short == "managedidentity:UserAssignedIdentity":
        state["principalId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"principal/{id_}"))
        state["clientId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"client/{id_}"))
        state["tenantId"] = MOCK_TENANT
    elif short == "storage:StorageAccount":
        state["primaryEndpoints"] = {
            "dfs": f"https://{azure_name}.dfs.core.windows.net/",
            "blob": f"https://{azure_name}.blob.core.windows.net/",
        }
    elif short == "keyvault:Vault":
        state["properties"] = {**inputs.get("properties", {}), "vaultUri": f"https://{azure_name}.vault.azure.net/"}
    elif short == "keyvault:Secret":
        vault = inputs.get("vaultName")
        state["properties"] = {"secretUri": f"https://{vault}.vault.azure.net/secrets/{azure_name}"}
    elif short == "databricks:Workspace":
        workspace_number = uuid.uuid5(uuid.NAMESPACE_URL, azure_name).int % 10**16
        state["workspaceUrl"] = f"adb-{workspace_number:016d}.azuredatabricks.net"
    elif short == "web:WebApp":
        state["defaultHostName"] = f"{azure_name}.azurewebsites.net"
    elif short == "applicationinsights:Component":
        key = uuid.uuid5(uuid.NAMESPACE_URL, f"ikey/{id_}")
        state["connectionString"] = f"InstrumentationKey={key};IngestionEndpoint=https://mock.in.applicationinsights.azure.com/"
    elif type_ == "random:index/randomPassword:RandomPassword":
        state["result"] = f"mock-{uuid.uuid5(uuid.NAMESPACE_URL, name).hex}"
    elif short == "dbforpostgresql:Server":
        state["fullyQualifiedDomainName"] = f"{azure_name}.postgres.database.azure.com"
    return id_, state


def mock_call(token: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Answers of the provider functions the program invokes."""
    if token == "azure-native:authorization:getClientConfig":  # noqa: S105
        return {
            "clientId": "22222222-2222-2222-2222-222222222222",
            "objectId": "33333333-3333-3333-3333-333333333333",
            "subscriptionId": MOCK_SUBSCRIPTION,
            "tenantId": MOCK_TENANT,
        }
    raise NotImplementedError(f"the mocked program invoked {token}, which infra/preview.py does not answer")


def stack_config(stack: str, repo_root: Path = REPO_ROOT) -> dict[str, Any]:
    """The `config:` map of `Pulumi.<stack>.yaml`, with secure values replaced by a placeholder."""
    path = repo_root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name.split(".")[1] for p in repo_root.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path.name}; stacks in this repository: {known}")
    config = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}
    for key, value in list(config.items()):
        if isinstance(value, dict) and "secure" in value:
            config[key] = SECRET_PLACEHOLDER
    for key in REQUIRED_SECRET_KEYS:
        config.setdefault(key, SECRET_PLACEHOLDER)
    return config


def project_name(repo_root: Path = REPO_ROOT) -> str:
    return yaml.safe_load((repo_root / "Pulumi.yaml").read_text(encoding="utf-8"))["name"]


def _wire_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Config values as the engine hands them to a program: strings, structured values as JSON."""
    out = {}
    for key, value in config.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = json.dumps(value)
    return out


def run_program(
    program: Callable[[], None],
    config: Mapping[str, Any],
    *,
    stack: str = "test",
    project: str = "lakehouse",
    secret_keys: tuple[str, ...] = SECRET_KEYS,
) -> ProgramRun:
    """Run ``program`` under Pulumi's mocks with ``config`` and record what it registers.

    Each call runs in a fresh context, so several stacks can run in one process.
    """
    return contextvars.Context().run(_run_isolated, program, dict(config), stack, project, secret_keys)


def _run_isolated(program, config, stack, project, secret_keys) -> ProgramRun:
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import settings as pulumi_settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    result = ProgramRun(stack)
    ids: dict[str, str] = {}

    class _Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            if not args.custom:
                return "", {}
            id_, state = mock_outputs(args.typ, args.name, reveal(args.inputs), ids)
            name = state.get("name")
            if name:
                ids[f"{_short_type(args.typ)}/{name}"] = id_
            return id_, state

        def call(self, args: pulumi.runtime.MockCallArgs):
            return mock_call(args.token, args.args)

    class _RecordingMonitor(pulumi_mocks.MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                registration = self.resources.get(response.urn)
                raw = pulumi.runtime.rpc.deserialize_properties(request.object)
                result.resources.append(
                    Registration(
                        urn=response.urn,
                        type=request.type,
                        name=request.name,
                        custom=bool(request.custom),
                        inputs=reveal(raw),
                        outputs=reveal(dict(registration.state)) if registration else {},
                        id=registration.id if registration else "",
                        parent=request.parent or None,
                        dependencies=sorted(set(request.dependencies)),
                        provider=request.provider or None,
                        secret_inputs=frozenset(k for k, v in raw.items() if is_secret(v)),
                    )
                )
            return response

    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_all_config(_wire_config(config), list(secret_keys))
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=_RecordingMonitor(mocks))
    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(program))
    exported = getattr(pulumi_settings.get_root_resource(), "outputs", {}) or {}
    result.outputs = _sync_await(pulumi.Output.from_input(dict(exported)).future()) or {}
    return result


def run(stack: str, repo_root: Path = REPO_ROOT) -> ProgramRun:
    """Run `infra/__main__.py` under mocks with `Pulumi.<stack>.yaml`."""
    return run_program(
        lambda: runpy.run_path(str(repo_root / "infra" / "__main__.py"), run_name="__main__"),
        stack_config(stack, repo_root),
        stack=stack,
        project=project_name(repo_root),
    )


_LONG = 120


def key_properties(inputs: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """The inputs worth showing: scalars and small objects; long text and bulk lists summarized."""
    shown: dict[str, Any] = {}
    for key, value in sorted(inputs.items()):
        if key == "contentBase64":
            shown[key] = f"<{len(value)} base64 chars>"
        elif isinstance(value, str):
            shown[key] = value if len(value) <= _LONG else value[:_LONG] + f"... <{len(value)} chars>"
        elif isinstance(value, bool | int | float) or value is None:
            shown[key] = int(value) if isinstance(value, float) and value.is_integer() else value
        elif isinstance(value, dict):
            shown[key] = key_properties(value, depth + 1) if depth < 2 else f"<object, {len(value)} keys>"
        elif isinstance(value, list):
            if all(isinstance(v, str | int | float | bool) for v in value) and len(value) <= 20:
                shown[key] = value
            else:
                shown[key] = f"<{len(value)} items>"
    return shown


def _label(urn: str) -> str:
    """`type::name` of a URN (the last type of the parent chain)."""
    parts = urn.split("::")
    return f"{parts[-2].split('$')[-1]}::{parts[-1]}"


def preview(stack: str, repo_root: Path = REPO_ROOT) -> dict[str, Any]:
    """The resource tree the stack would create, JSON-serializable (see :func:`tree`)."""
    return tree(run(stack, repo_root), project_name(repo_root))


def tree(ran: ProgramRun, project: str) -> dict[str, Any]:
    """The resource tree of a mocked run, JSON-serializable.

    Returns:
        ``{"stack", "project", "resource_count", "counts_by_type", "resources": [tree], "outputs"}``;
        each tree node has ``type``, ``name``, ``properties``, ``depends_on`` and ``children``.
    """
    nodes: dict[str, dict[str, Any]] = {}
    roots: list[dict[str, Any]] = []
    for reg in ran.resources:
        deps = [d for d in reg.dependencies if d != reg.parent]
        nodes[reg.urn] = {
            "type": reg.type,
            "name": reg.name,
            "properties": key_properties(
                {k: (SECRET_PLACEHOLDER if k in reg.secret_inputs else v) for k, v in reg.inputs.items()}
            )
            if reg.custom
            else {},
            "depends_on": sorted(_label(d) for d in deps),
            "children": [],
        }
    for reg in ran.resources:
        parent = nodes.get(reg.parent or "")
        (parent["children"] if parent else roots).append(nodes[reg.urn])
    counts: dict[str, int] = {}
    for reg in ran.resources:
        if reg.custom:
            counts[reg.type] = counts.get(reg.type, 0) + 1
    return json.loads(
        json.dumps(
            {
                "stack": ran.stack,
                "project": project,
                "resource_count": sum(counts.values()),
                "counts_by_type": dict(sorted(counts.items())),
                "resources": roots,
                "outputs": ran.outputs,
            },
            default=str,
        )
    )


def render_text(resource_tree: Mapping[str, Any]) -> str:
    """A plain-text rendering of :func:`preview`'s tree for the terminal."""
    t = resource_tree
    lines = [f"stack {t['stack']} of {t['project']}: {t['resource_count']} resources (mocked, no cloud)"]

    def walk(node: Mapping[str, Any], indent: str) -> None:
        props = node["properties"]
        summary = ", ".join(
            f"{k}={v}" for k, v in props.items() if not isinstance(v, dict) and k not in ("resourceGroupName",)
        )
        line = f"{indent}{node['type']}  {node['name']}"
        if summary:
            line += f"  [{summary[:160]}]"
        if node["depends_on"]:
            line += f"  <- {', '.join(node['depends_on'])[:160]}"
        lines.append(line)
        for child in node["children"]:
            walk(child, indent + "  ")

    for root in resource_tree["resources"]:
        walk(root, "")
    lines.append("outputs: " + ", ".join(sorted(resource_tree["outputs"])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m infra.preview --stack dev [--json]` (also run by `lakehouse infra preview`)."""
    import argparse

    parser = argparse.ArgumentParser(description="Preview the Pulumi program under mocks (no cloud).")
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--json", action="store_true", dest="as_json")
    ns = parser.parse_args(argv)
    result = preview(ns.stack)
    print(json.dumps(result, indent=2) if ns.as_json else render_text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
