"""Orchestration: the Data Factory and everything in `adf/`, deployed from the JSON files.

`adf/` (ADF's git-integration layout) is the single source of truth: this component reads the
files at deploy time, substitutes the stack's deployment values, and creates one Pulumi resource
per file. There is no second, hand-written copy of any pipeline here.

Parameterization (the contract with `adf/`):

* ``${name}`` inside any JSON string is replaced by the deployment value ``name``
  (see :class:`DeploymentValues`); an unknown name is an error naming the file.
* A linked service that declares a parameter whose name is a deployment value gets that value
  as the parameter's ``defaultValue``.
* Factory global parameters: every deployment value, plus those declared in `adf/factory/*.json`.
* The factory credential :data:`JOBS_CREDENTIAL` (the jobs identity, a user-assigned managed
  identity) is created here: `adf/linkedService/ls_databricks.json` signs in to Databricks with it.
* ``runtimeState`` of triggers is dropped (read-only in Azure); the stack's ``startTriggers``
  decide which triggers the delivery workflow starts after a deployment.

Azure-native's resource schema flattens ADF's ``typeProperties`` into their parent object, so
each document is flattened (:func:`flatten_type_properties`) after parameterization.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi_azure_native import datafactory

from infra import roles
from infra.component import Component, ComponentArgs

REPO_ROOT = Path(__file__).resolve().parent.parent
ADF_ROOT = REPO_ROOT / "adf"
KINDS = ("linkedService", "dataset", "pipeline", "trigger")
JOBS_CREDENTIAL = "cred_databricks_jobs"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PIPELINE_PROPERTIES = {
    "activities": "activities",
    "annotations": "annotations",
    "concurrency": "concurrency",
    "description": "description",
    "folder": "folder",
    "parameters": "parameters",
    "policy": "policy",
    "runDimensions": "run_dimensions",
    "variables": "variables",
}


class AdfDocumentError(ValueError):
    """An `adf/` file that cannot be deployed; the message names the file."""


@dataclass(frozen=True)
class AdfDocument:
    kind: str
    name: str
    path: Path
    properties: dict[str, Any]


def load_documents(adf_root: Path = ADF_ROOT) -> dict[str, list[AdfDocument]]:
    """Every deployable JSON file under `adf/`, by kind, sorted by name."""
    found: dict[str, list[AdfDocument]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        for path in sorted((adf_root / kind).glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise AdfDocumentError(f"{path}: not valid JSON: {exc}") from None
            if not isinstance(doc, dict) or "name" not in doc or not isinstance(doc.get("properties"), dict):
                raise AdfDocumentError(f"{path}: expected an object with 'name' and 'properties'")
            if doc["name"] != path.stem:
                raise AdfDocumentError(f"{path}: name {doc['name']!r} differs from the file name")
            found[kind].append(AdfDocument(kind, doc["name"], path, doc["properties"]))
    return found


def declared_global_parameters(adf_root: Path = ADF_ROOT) -> dict[str, Any]:
    """Global parameters declared by `adf/factory/*.json` (ADF's factory file), if any."""
    declared: dict[str, Any] = {}
    for path in sorted((adf_root / "factory").glob("*.json")):
        declared.update(json.loads(path.read_text(encoding="utf-8")).get("properties", {}).get("globalParameters", {}))
    return declared


def placeholders(value: Any) -> set[str]:
    """The ``${name}`` placeholders used anywhere in a JSON value."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    return set()


def parameterize(kind: str, properties: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """The document's properties with the stack's deployment values filled in.

    Args:
        kind: one of :data:`KINDS`.
        properties: the file's ``properties`` object.
        values: deployment values by name (plain strings).

    Returns:
        A new properties object; the input is not modified.
    """

    def substitute(value: Any) -> Any:
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
        if isinstance(value, Mapping):
            return {k: substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v) for v in value]
        return value

    missing = placeholders(properties) - set(values)
    if missing:
        raise AdfDocumentError(f"{kind}: unknown deployment values {sorted(missing)}; known: {sorted(values)}")
    result = substitute(properties)
    if kind == "linkedService":
        for param, spec in (result.get("parameters") or {}).items():
            if param in values and isinstance(spec, dict):
                spec["defaultValue"] = values[param]
    if kind == "trigger":
        result.pop("runtimeState", None)
    return result


def flatten_type_properties(value: Any) -> Any:
    """Merge every ``typeProperties`` object into its parent, recursively (azure-native's shape)."""
    if isinstance(value, list):
        return [flatten_type_properties(v) for v in value]
    if not isinstance(value, Mapping):
        return value
    out = {k: flatten_type_properties(v) for k, v in value.items() if k != "typeProperties"}
    inner = value.get("typeProperties")
    if isinstance(inner, Mapping):
        clash = set(out) & set(inner)
        if clash:
            raise AdfDocumentError(f"typeProperties keys {sorted(clash)} clash with their parent's keys")
        out.update(flatten_type_properties(dict(inner)))
    return out


def referenced(value: Any, reference_type: str) -> set[str]:
    """Names of the objects of ``reference_type`` (e.g. PipelineReference) a document refers to."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        if value.get("type") == reference_type and isinstance(value.get("referenceName"), str):
            found.add(value["referenceName"])
        for v in value.values():
            found |= referenced(v, reference_type)
    elif isinstance(value, list):
        for v in value:
            found |= referenced(v, reference_type)
    return found


@dataclass
class OrchestrationArgs(ComponentArgs):
    factory_name: str
    deployment_values: Mapping[str, pulumi.Input[str]]
    jobs_identity_id: pulumi.Input[str]
    vault_id: pulumi.Input[str]
    function_keys_vault_id: pulumi.Input[str]
    start_triggers: Sequence[str] = ()
    adf_root: Path = field(default_factory=lambda: ADF_ROOT)


class Orchestration(Component):
    """Data Factory with the linked services, datasets, pipelines and triggers of `adf/`.

    The factory's system-assigned identity holds Key Vault Secrets User (on the platform's vault
    and on the vault of the Function app's access keys) and nothing on the lake or the serving
    database: the jobs reach both through Unity Catalog. The jobs identity (user-assigned, granted
    on the workspace by the compute component) is attached to the factory and exposed as the
    credential :data:`JOBS_CREDENTIAL`, with which the Databricks linked service signs in."""

    def __init__(self, name: str, args: OrchestrationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        documents = load_documents(args.adf_root)
        trigger_names = {d.name for d in documents["trigger"]}
        unknown = sorted(set(args.start_triggers) - trigger_names)
        if unknown:
            raise AdfDocumentError(
                f"lakehouse:startTriggers names {unknown}, which are not in {args.adf_root / 'trigger'} "
                f"(known: {sorted(trigger_names)})"
            )
        for docs in documents.values():
            for doc in docs:
                missing = placeholders(doc.properties) - set(args.deployment_values)
                if missing:
                    raise AdfDocumentError(f"{doc.path}: unknown deployment values {sorted(missing)}")

        values = pulumi.Output.all(**dict(args.deployment_values))
        declared = declared_global_parameters(args.adf_root)
        globals_ = values.apply(
            lambda v: {
                **declared,
                **{k: {"type": "String", "value": s} for k, s in sorted(v.items())},
            }
        )
        self.factory = datafactory.Factory(
            f"{name}-factory",
            factory_name=args.factory_name,
            identity=pulumi.Output.from_input(args.jobs_identity_id).apply(
                lambda jobs: {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {jobs: {}}}
            ),
            public_network_access="Enabled",
            global_parameters=globals_,
            **args.placement,
            opts=self.child,
        )
        principal = roles.principal_of(self.factory)
        self.grants = roles.grant_each(name, principal, (
            ("secrets-user", roles.KEY_VAULT_SECRETS_USER, args.vault_id),
            ("function-keys-user", roles.KEY_VAULT_SECRETS_USER, args.function_keys_vault_id),
        ), parent=self)  # fmt: skip
        self.jobs_credential = datafactory.CredentialOperation(
            f"{name}-{JOBS_CREDENTIAL}",
            credential_name=JOBS_CREDENTIAL,
            factory_name=self.factory.name,
            resource_group_name=args.resource_group_name,
            properties={"type": "ManagedIdentity", "resourceId": args.jobs_identity_id},
            opts=self.child,
        )

        def body(doc: AdfDocument) -> pulumi.Output[dict[str, Any]]:
            return values.apply(lambda v: flatten_type_properties(parameterize(doc.kind, doc.properties, v)))

        common = {"factory_name": self.factory.name, "resource_group_name": args.resource_group_name}
        self.linked_services = {
            d.name: datafactory.LinkedService(
                f"{name}-{d.name}", linked_service_name=d.name, properties=body(d), **common,
                opts=self.child_with(depends_on=[*self.grants, self.jobs_credential]),
            )
            for d in documents["linkedService"]
        }  # fmt: skip
        self.datasets = {
            d.name: datafactory.Dataset(
                f"{name}-{d.name}", dataset_name=d.name, properties=body(d), **common,
                opts=self.child_with(depends_on=list(self.linked_services.values())),
            )
            for d in documents["dataset"]
        }  # fmt: skip
        self.pipelines: dict[str, datafactory.Pipeline] = {}
        for doc in self._in_dependency_order(documents["pipeline"]):
            unknown_keys = set(doc.properties) - set(PIPELINE_PROPERTIES)
            if unknown_keys:
                raise AdfDocumentError(f"{doc.path}: unsupported pipeline properties {sorted(unknown_keys)}")
            flat = body(doc)
            children = [self.pipelines[p] for p in sorted(referenced(doc.properties, "PipelineReference"))]
            self.pipelines[doc.name] = datafactory.Pipeline(
                f"{name}-{doc.name}",
                pipeline_name=doc.name,
                **common,
                **{PIPELINE_PROPERTIES[k]: flat.apply(lambda p, k=k: p[k]) for k in doc.properties},
                opts=self.child_with(depends_on=[*self.linked_services.values(), *self.datasets.values(), *children]),
            )
        self.triggers = {
            d.name: datafactory.Trigger(
                f"{name}-{d.name}", trigger_name=d.name, properties=body(d), **common,
                opts=self.child_with(
                    depends_on=[self.pipelines[p] for p in sorted(referenced(d.properties, "PipelineReference"))
                                if p in self.pipelines],
                ),
            )
            for d in documents["trigger"]
        }  # fmt: skip

        self.factory_id = self.factory.id
        self.factory_name = self.factory.name
        self.principal_id = principal
        self.triggers_to_start = sorted(args.start_triggers)
        self.register_outputs(
            {
                "factory_id": self.factory_id,
                "factory_name": self.factory_name,
                "pipelines": sorted(self.pipelines),
                "triggers": sorted(self.triggers),
                "triggers_to_start": self.triggers_to_start,
            }
        )

    @staticmethod
    def _in_dependency_order(pipelines: list[AdfDocument]) -> list[AdfDocument]:
        """Pipelines ordered so that an Execute Pipeline target comes before its caller."""
        by_name = {d.name: d for d in pipelines}
        ordered: list[AdfDocument] = []
        state: dict[str, str] = {}

        def visit(doc: AdfDocument, chain: tuple[str, ...]) -> None:
            if state.get(doc.name) == "done":
                return
            if state.get(doc.name) == "visiting":
                raise AdfDocumentError(f"pipelines call each other in a cycle: {' -> '.join((*chain, doc.name))}")
            state[doc.name] = "visiting"
            for child in sorted(referenced(doc.properties, "PipelineReference")):
                if child not in by_name:
                    raise AdfDocumentError(f"{doc.path}: executes pipeline {child!r}, which is not in adf/pipeline")
                visit(by_name[child], (*chain, doc.name))
            state[doc.name] = "done"
            ordered.append(doc)

        for doc in pipelines:
            visit(doc, ())
        return ordered
