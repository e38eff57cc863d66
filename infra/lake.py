"""The lake: an ADLS Gen2 account with one container per layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_azure_native import storage

from infra.component import Component, ComponentArgs
from lakehouse.lake import CONTAINERS

# What every storage account of the platform has, the Function host's own one included:
# TLS 1.2, HTTPS only, no public blob access, no shared keys (Entra ID by default).
ACCOUNT_BASELINE = {
    "kind": "StorageV2",
    "minimum_tls_version": "TLS1_2",
    "enable_https_traffic_only": True,
    "allow_blob_public_access": False,
    "allow_shared_key_access": False,
    "default_to_o_auth_authentication": True,
}


def supports_blob_versioning(hierarchical_namespace: bool) -> bool:
    """Blob versioning is not available on accounts with a hierarchical namespace."""
    return not hierarchical_namespace


def storage_account(
    resource_name: str,
    blob_service_resource_name: str,
    account_name: str,
    args: ComponentArgs,
    *,
    sku: str,
    hierarchical_namespace: bool,
    soft_delete_days: int,
    parent: Component,
    **properties: Any,
) -> tuple[storage.StorageAccount, storage.BlobServiceProperties]:
    """A storage account with the :data:`ACCOUNT_BASELINE` and its blob service, whose deleted blobs and
    containers are kept for ``soft_delete_days`` and which keeps versions where the account allows."""
    account = storage.StorageAccount(
        resource_name,
        account_name=account_name,
        sku={"name": sku},
        is_hns_enabled=hierarchical_namespace,
        **ACCOUNT_BASELINE,
        **properties,
        **args.placement,
        opts=parent.child,
    )
    blob_service = storage.BlobServiceProperties(
        blob_service_resource_name,
        account_name=account.name,
        resource_group_name=args.resource_group_name,
        blob_services_name="default",
        delete_retention_policy={"enabled": True, "days": soft_delete_days},
        container_delete_retention_policy={"enabled": True, "days": soft_delete_days},
        is_versioning_enabled=supports_blob_versioning(hierarchical_namespace),
        opts=parent.child,
    )
    return account, blob_service


@dataclass
class LakeArgs(ComponentArgs):
    account_name: str
    sku: str = "Standard_LRS"
    raw_cool_after_days: int = 30
    soft_delete_days: int = 7
    containers: Sequence[str] = field(default_factory=lambda: tuple(CONTAINERS))


class Lake(Component):
    """StorageAccount with HNS and the :data:`ACCOUNT_BASELINE` (TLS 1.2, HTTPS only, no public blob
    access, no shared keys).

    RAW is moved to the cool tier after a configurable number of days; deleted blobs and
    containers are kept for ``soft_delete_days``.
    """

    account: storage.StorageAccount
    containers: dict[str, storage.BlobContainer]

    def __init__(self, name: str, args: LakeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        self.account, self.blob_service = storage_account(
            f"{name}-account", f"{name}-blob-service", args.account_name, args,
            sku=args.sku, hierarchical_namespace=True, soft_delete_days=args.soft_delete_days, parent=self,
            access_tier="Hot",
        )  # fmt: skip
        self.containers = {
            container: storage.BlobContainer(
                f"{name}-{container}",
                container_name=container,
                account_name=self.account.name,
                resource_group_name=args.resource_group_name,
                public_access="None",
                opts=self.child,
            )
            for container in args.containers
        }
        self.lifecycle = storage.ManagementPolicy(
            f"{name}-lifecycle",
            account_name=self.account.name,
            resource_group_name=args.resource_group_name,
            management_policy_name="default",
            policy={
                "rules": [
                    {
                        "name": "raw-to-cool",
                        "enabled": True,
                        "type": "Lifecycle",
                        "definition": {
                            "filters": {"blobTypes": ["blockBlob"], "prefixMatch": ["raw/"]},
                            "actions": {
                                "baseBlob": {
                                    "tierToCool": {"daysAfterModificationGreaterThan": args.raw_cool_after_days}
                                }
                            },
                        },
                    }
                ]
            },
            opts=self.child_with(depends_on=[self.containers["raw"]]),
        )
        self.account_id = self.account.id
        self.account_name = self.account.name
        self.blob_service_id = self.account.id.apply(lambda i: f"{i}/blobServices/default")
        self.dfs_endpoint = self.account.primary_endpoints.apply(lambda e: e.dfs)
        self.register_outputs(
            {
                "account_id": self.account_id,
                "account_name": self.account_name,
                "dfs_endpoint": self.dfs_endpoint,
                "container_ids": {c: r.id for c, r in self.containers.items()},
            }
        )
