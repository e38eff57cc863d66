"""Compute: the Databricks workspace, its lake access, and the code deployed into it.

The notebooks (`spark_jobs/notebooks/*.py`) are read from the repository at deploy time and
uploaded with `pulumi-databricks` to :data:`NOTEBOOK_ROOT` (where the `adf/` activities point);
the project wheel (`dist/`, built by the delivery workflow before `pulumi up`) is uploaded to
:data:`WHEEL_ROOT`, where the notebook activities attach it as a library. So no manual upload is
needed and the workspace always runs the deployed commit. A secret scope `lakehouse` holds the
serving database DSN that job clusters read as `{{secrets/lakehouse/pg-dsn}}`.
"""

from __future__ import annotations

import base64
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_databricks as databricks
from pulumi_azure_native import authorization
from pulumi_azure_native import databricks as adb

from infra import roles

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_ROOT = "/Shared/lakehouse"
WHEEL_ROOT = "/FileStore/lakehouse/wheels"
SECRET_SCOPE = "lakehouse"  # noqa: S105 (a name, not a secret)
PG_DSN_SECRET = "pg-dsn"  # noqa: S105 (a name, not a secret)


def notebook_files(repo_root: Path = REPO_ROOT) -> list[Path]:
    """The Databricks source-format notebooks in the repository."""
    return sorted((repo_root / "spark_jobs" / "notebooks").glob("*.py"))


def wheel_name(repo_root: Path = REPO_ROOT) -> str:
    """File name of the project wheel (`pip wheel --no-deps .`), from pyproject.toml."""
    project = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"


def wheel_dbfs_uri(repo_root: Path = REPO_ROOT) -> str:
    """Where activities find the wheel (`dbfs:/...`)."""
    return f"dbfs:{WHEEL_ROOT}/{wheel_name(repo_root)}"


def resource_suffix(rel_path: str) -> str:
    """A stable, readable resource-name suffix for a repository path."""
    return rel_path.replace("/", "-").replace("_", "-").replace(".", "-").lower()


@dataclass
class ComputeArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    workspace_name: str
    tags: Mapping[str, str]
    lake_account_id: pulumi.Input[str]
    pg_dsn: pulumi.Input[str]
    public_network_access: str = "Enabled"
    repo_root: Path = field(default_factory=lambda: REPO_ROOT)


class Compute(pulumi.ComponentResource):
    """Premium Databricks workspace with secure cluster connectivity, an Access Connector holding
    Storage Blob Data Contributor on the lake, the notebooks and wheel uploaded to it, and the
    `lakehouse` secret scope."""

    def __init__(self, name: str, args: ComputeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:index:Compute", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        client = authorization.get_client_config_output()
        self.access_connector = adb.AccessConnector(
            f"{name}-access-connector",
            connector_name=f"{args.workspace_name}-connector",  # Entra principal name on PostgreSQL
            resource_group_name=args.resource_group_name,
            location=args.location,
            identity={"type": "SystemAssigned"},
            tags=tags,
            opts=child,
        )
        self.lake_grant = roles.grant(
            f"{name}-lake-contributor",
            role=roles.STORAGE_BLOB_DATA_CONTRIBUTOR,
            principal_id=self.access_connector.identity.apply(lambda i: i.principal_id),
            scope=args.lake_account_id,
            parent=self,
        )
        self.workspace = adb.Workspace(
            f"{name}-workspace",
            workspace_name=args.workspace_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku={"name": "premium"},
            managed_resource_group_id=client.subscription_id.apply(
                lambda sub: f"/subscriptions/{sub}/resourceGroups/{args.workspace_name}-managed"
            ),
            parameters={"enableNoPublicIp": {"value": True}},
            public_network_access=args.public_network_access,
            required_nsg_rules="AllRules",
            tags=tags,
            opts=child,
        )
        self.provider = databricks.Provider(
            f"{name}-databricks",
            host=self.workspace.workspace_url.apply(lambda u: f"https://{u}"),
            azure_workspace_resource_id=self.workspace.id,
            opts=child,
        )
        on_workspace = pulumi.ResourceOptions(parent=self, provider=self.provider)
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
        wheel = args.repo_root / "dist" / wheel_name(args.repo_root)
        self.wheel = databricks.DbfsFile(
            f"{name}-wheel",
            path=f"{WHEEL_ROOT}/{wheel.name}",
            source=str(wheel),
            opts=on_workspace,
        )
        self.secret_scope = databricks.SecretScope(
            f"{name}-secret-scope", name=SECRET_SCOPE, opts=on_workspace
        )
        self.pg_dsn = databricks.Secret(
            f"{name}-{PG_DSN_SECRET}",
            scope=self.secret_scope.name,
            key=PG_DSN_SECRET,
            string_value=pulumi.Output.secret(args.pg_dsn),
            opts=on_workspace,
        )

        self.workspace_id = self.workspace.id
        self.workspace_url = self.workspace.workspace_url.apply(lambda u: f"https://{u}")
        self.access_connector_id = self.access_connector.id
        self.access_connector_principal_id = self.access_connector.identity.apply(lambda i: i.principal_id)
        self.register_outputs(
            {
                "workspace_id": self.workspace_id,
                "workspace_url": self.workspace_url,
                "access_connector_id": self.access_connector_id,
                "notebooks": sorted(self.notebooks),
            }
        )
