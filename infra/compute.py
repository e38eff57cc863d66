"""Compute: the Databricks workspace, its lake access through Unity Catalog, and the code deployed into it.

Job clusters have no managed identity. They reach the lake through Unity Catalog: the Access
Connector's identity (Storage Blob Data Contributor on the lake) backs a storage credential, one
external location per container serves Spark's path-based Delta reads and writes on
``abfss://``, and an external volume on the raw container gives the driver plain file access to
RAW under ``/Volumes/...`` (:data:`Compute.raw_volume_path`, the clusters' ``LAKEHOUSE_RAW_VOLUME``).
The same identity backs a service credential, through which the jobs get their Microsoft Entra
token for PostgreSQL (``LAKEHOUSE_PG_SERVICE_CREDENTIAL``).

The jobs run as the *jobs identity*, a user-assigned managed identity that Data Factory uses for
its Databricks linked service; it is registered in the workspace as a service principal and is
the principal of every Unity Catalog grant below.

The notebooks (`spark_jobs/notebooks/*.py`) are uploaded to :data:`NOTEBOOK_ROOT` and the
project wheel (`build/dist/`, built by `make package` before `pulumi up`) to workspace files
under :data:`WHEEL_FOLDER` (never DBFS root: libraries there are disabled since Runtime 15); the
`adf/` activities point there through the ``notebookRoot`` and ``wheelUri`` deployment values.
A secret scope `lakehouse` holds the serving database DSN (`{{secrets/lakehouse/pg-dsn}}`) and the
Application Insights connection string the clusters' telemetry exports to
(`{{secrets/lakehouse/appinsights-connection-string}}`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_databricks as databricks
from pulumi_azure_native import authorization, managedidentity
from pulumi_azure_native import databricks as adb

from infra import roles
from infra.artifacts import wheel_name
from infra.component import Component, ComponentArgs
from lakehouse.lake import CONTAINERS

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_ROOT = "/Shared/lakehouse"
WHEEL_FOLDER = "/Shared/lakehouse/wheels"
SECRET_SCOPE = "lakehouse"  # noqa: S105 (a name, not a secret)
PG_DSN_SECRET = "pg-dsn"  # noqa: S105 (a name, not a secret)
# The clusters' telemetry target (ls_databricks.json: {{secrets/lakehouse/appinsights-connection-string}}).
INSIGHTS_SECRET = "appinsights-connection-string"  # noqa: S105 (a name, not a secret)
RAW_SCHEMA = "landing"
RAW_VOLUME = "raw"
# The jobs' Unity Catalog privileges, by securable. RAW is immutable: the jobs only read it.
LOCATION_PRIVILEGES = ("READ_FILES", "WRITE_FILES")
RAW_LOCATION_PRIVILEGES = ("READ_FILES",)


def notebook_files(repo_root: Path = REPO_ROOT) -> list[Path]:
    """The Databricks source-format notebooks in the repository."""
    return sorted((repo_root / "spark_jobs" / "notebooks").glob("*.py"))


def wheel_uri(repo_root: Path = REPO_ROOT) -> str:
    """Where activities install the wheel from: a workspace file (``/Workspace/...``)."""
    return f"/Workspace{WHEEL_FOLDER}/{wheel_name(repo_root)}"


def container_url(container: str, account_name: str) -> str:
    """The ``abfss://`` URL of a lake container's root."""
    return f"abfss://{container}@{account_name}.dfs.core.windows.net/"


def resource_suffix(rel_path: str) -> str:
    """A stable, readable resource-name suffix for a repository path."""
    return rel_path.replace("/", "-").replace("_", "-").replace(".", "-").lower()


@dataclass
class ComputeArgs(ComponentArgs):
    workspace_name: str
    lake_account_id: pulumi.Input[str]
    pg_dsn: pulumi.Input[str]
    lake_account_name: pulumi.Input[str]
    catalog_name: str  # the workspace's default catalog; metastore-wide, so named per stack
    insights_connection_string: pulumi.Input[str] | None = None  # notebook telemetry to Application Insights
    containers: Sequence[str] = field(default_factory=lambda: tuple(CONTAINERS))
    public_network_access: str = "Enabled"
    repo_root: Path = field(default_factory=lambda: REPO_ROOT)


class Compute(Component):
    """Premium Databricks workspace bound to Unity Catalog, the lake reached through an Access
    Connector, the jobs identity and its grants, the notebooks and wheel, and the secret scope."""

    def __init__(self, name: str, args: ComputeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        client = authorization.get_client_config_output()
        self.access_connector = adb.AccessConnector(
            f"{name}-access-connector",
            connector_name=f"{args.workspace_name}-connector",  # Entra principal name on PostgreSQL
            identity={"type": "SystemAssigned"},
            **args.placement,
            opts=self.child,
        )
        self.lake_grant = roles.grant(
            f"{name}-lake-contributor",
            role=roles.STORAGE_BLOB_DATA_CONTRIBUTOR,
            principal_id=roles.principal_of(self.access_connector),
            scope=args.lake_account_id,
            parent=self,
        )
        self.jobs_identity = managedidentity.UserAssignedIdentity(
            f"{name}-jobs-identity",
            resource_name_=f"{args.workspace_name}-jobs",
            **args.placement,
            opts=self.child,
        )
        self.workspace = adb.Workspace(
            f"{name}-workspace",
            workspace_name=args.workspace_name,
            sku={"name": "premium"},
            managed_resource_group_id=client.subscription_id.apply(
                lambda sub: f"/subscriptions/{sub}/resourceGroups/{args.workspace_name}-managed"
            ),
            parameters={"enableNoPublicIp": {"value": True}},
            public_network_access=args.public_network_access,
            required_nsg_rules="AllRules",
            access_connector={"id": self.access_connector.id, "identityType": "SystemAssigned"},
            default_catalog={"initialType": "UnityCatalog", "initialName": args.catalog_name},
            **args.placement,
            opts=self.child,
        )
        # The jobs identity drives the workspace (Data Factory submits the runs as it).
        self.jobs_workspace_grant = roles.grant(
            f"{name}-jobs-workspace-contributor",
            role=roles.CONTRIBUTOR,
            principal_id=self.jobs_identity.principal_id,
            scope=self.workspace.id,
            parent=self,
        )
        self.workspace_url = self.workspace.workspace_url.apply(lambda u: f"https://{u}")
        self.provider = databricks.Provider(
            f"{name}-databricks",
            host=self.workspace_url,
            azure_workspace_resource_id=self.workspace.id,
            opts=self.child,
        )
        on_workspace = self.child_with(provider=self.provider)
        self.jobs_principal = databricks.ServicePrincipal(
            f"{name}-jobs-principal",
            application_id=self.jobs_identity.client_id,
            display_name=f"{args.workspace_name}-jobs",
            opts=on_workspace,
        )
        jobs = self.jobs_principal.application_id
        after_workspace = self.child_with(provider=self.provider, depends_on=[self.workspace])

        def grant_jobs(
            suffix: str, privileges: Sequence[str], opts: pulumi.ResourceOptions = on_workspace, **securable: object
        ) -> databricks.Grants:
            """The jobs' privileges on one Unity Catalog securable (the only principal granted here)."""
            return databricks.Grants(
                f"{name}-{suffix}", grants=[{"principal": jobs, "privileges": list(privileges)}], opts=opts, **securable
            )

        # Unity Catalog: credential -> external locations -> volume, each granted to the jobs.
        self.storage_credential = databricks.StorageCredential(
            f"{name}-storage-credential",
            name=f"{args.workspace_name}-lake",
            azure_managed_identity={"access_connector_id": self.access_connector.id},
            comment="The Access Connector's identity: Storage Blob Data Contributor on the lake.",
            opts=self.child_with(provider=self.provider, depends_on=[self.lake_grant]),
        )
        self.external_locations = {
            container: databricks.ExternalLocation(
                f"{name}-location-{container}",
                name=f"{args.workspace_name}-{container}",
                url=pulumi.Output.from_input(args.lake_account_name).apply(lambda a, c=container: container_url(c, a)),
                credential_name=self.storage_credential.name,
                comment=f"The lake's {container} container.",
                opts=on_workspace,
            )
            for container in args.containers
        }
        self.location_grants = [
            grant_jobs(
                f"location-{container}-grants",
                RAW_LOCATION_PRIVILEGES if container == "raw" else LOCATION_PRIVILEGES,
                external_location=location.name,
            )
            for container, location in self.external_locations.items()
        ]
        self.raw_schema = databricks.Schema(
            f"{name}-schema-{RAW_SCHEMA}",
            catalog_name=args.catalog_name,
            name=RAW_SCHEMA,
            comment="Landing data exposed to the jobs as volumes.",
            opts=after_workspace,
        )
        self.raw_volume = databricks.Volume(
            f"{name}-volume-{RAW_VOLUME}",
            catalog_name=args.catalog_name,
            schema_name=self.raw_schema.name,
            name=RAW_VOLUME,
            volume_type="EXTERNAL",
            storage_location=self.external_locations["raw"].url,
            comment="RAW payloads, read on the driver with plain file I/O.",
            opts=on_workspace,
        )
        self.catalog_grants = [
            grant_jobs("catalog-grants", ["USE_CATALOG"], catalog=args.catalog_name, opts=after_workspace),
            grant_jobs("schema-grants", ["USE_SCHEMA"], schema=self.raw_schema.id),
            grant_jobs("volume-grants", ["READ_VOLUME"], volume=self.raw_volume.id),
        ]
        self.service_credential = databricks.Credential(
            f"{name}-service-credential",
            name=f"{args.workspace_name}-serving",
            purpose="SERVICE",
            azure_managed_identity={"access_connector_id": self.access_connector.id},
            comment="Microsoft Entra tokens of the Access Connector's identity, for PostgreSQL.",
            opts=on_workspace,
        )
        self.service_credential_grants = grant_jobs(
            "service-credential-grants", ["ACCESS"], credential=self.service_credential.name
        )

        self.notebooks = {
            path.stem: databricks.Notebook(
                f"{name}-notebook-{resource_suffix(path.stem)}",
                path=f"{NOTEBOOK_ROOT}/{path.stem}",
                language="PYTHON",
                content_base64=base64.b64encode(path.read_bytes()).decode(),
                opts=on_workspace,
            )
            for path in notebook_files(args.repo_root)
        }
        wheel = args.repo_root / "build" / "dist" / wheel_name(args.repo_root)  # written by `make package`
        self.wheel = databricks.WorkspaceFile(
            f"{name}-wheel",
            path=f"{WHEEL_FOLDER}/{wheel.name}",
            source=str(wheel),
            opts=on_workspace,
        )
        self.secret_scope = databricks.SecretScope(f"{name}-secret-scope", name=SECRET_SCOPE, opts=on_workspace)
        # What the clusters read from the scope: the serving DSN and their telemetry target.
        self.scope_secrets = {
            key: databricks.Secret(
                f"{name}-{key}", scope=self.secret_scope.name, key=key,
                string_value=pulumi.Output.secret(value), opts=on_workspace,
            )
            for key, value in ((PG_DSN_SECRET, args.pg_dsn), (INSIGHTS_SECRET, args.insights_connection_string or ""))
        }  # fmt: skip
        self.secret_scope_acl = databricks.SecretAcl(
            f"{name}-secret-scope-jobs-read",
            scope=self.secret_scope.name,
            principal=jobs,
            permission="READ",
            opts=on_workspace,
        )

        self.workspace_id = self.workspace.id
        self.access_connector_id = self.access_connector.id
        self.access_connector_principal_id = roles.principal_of(self.access_connector)
        self.jobs_identity_id = self.jobs_identity.id
        self.jobs_identity_principal_id = self.jobs_identity.principal_id
        self.raw_volume_path = f"/Volumes/{args.catalog_name}/{RAW_SCHEMA}/{RAW_VOLUME}"
        self.service_credential_name = self.service_credential.name
        self.register_outputs(
            {
                "workspace_id": self.workspace_id,
                "workspace_url": self.workspace_url,
                "access_connector_id": self.access_connector_id,
                "jobs_identity_id": self.jobs_identity_id,
                "raw_volume_path": self.raw_volume_path,
                "notebooks": sorted(self.notebooks),
            }
        )
