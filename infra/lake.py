"""The lake: an ADLS Gen2 account with one container per layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import storage

from lakehouse.lake import CONTAINERS


def supports_blob_versioning(hierarchical_namespace: bool) -> bool:
    """Blob versioning is not available on accounts with a hierarchical namespace."""
    return not hierarchical_namespace


@dataclass
class LakeArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    account_name: str
    tags: Mapping[str, str]
    sku: str = "Standard_LRS"
    raw_cool_after_days: int = 30
    soft_delete_days: int = 7
    containers: Sequence[str] = field(default_factory=lambda: tuple(CONTAINERS))


class Lake(pulumi.ComponentResource):
    """StorageAccount with HNS, TLS 1.2, HTTPS only, no public blob access and no shared keys.

    RAW is moved to the cool tier after a configurable number of days; deleted blobs and
    containers are kept for ``soft_delete_days``.
    """

    account: storage.StorageAccount
    containers: dict[str, storage.BlobContainer]

    def __init__(self, name: str, args: LakeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:index:Lake", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        hns = True
        self.account = storage.StorageAccount(
            f"{name}-account",
            account_name=args.account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="StorageV2",
            sku={"name": args.sku},
            is_hns_enabled=hns,
            minimum_tls_version="TLS1_2",
            enable_https_traffic_only=True,
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            access_tier="Hot",
            tags=dict(args.tags),
            opts=child,
        )
        self.blob_service = storage.BlobServiceProperties(
            f"{name}-blob-service",
            account_name=self.account.name,
            resource_group_name=args.resource_group_name,
            blob_services_name="default",
            delete_retention_policy={"enabled": True, "days": args.soft_delete_days},
            container_delete_retention_policy={"enabled": True, "days": args.soft_delete_days},
            is_versioning_enabled=supports_blob_versioning(hns),
            opts=child,
        )
        self.containers = {
            container: storage.BlobContainer(
                f"{name}-{container}",
                container_name=container,
                account_name=self.account.name,
                resource_group_name=args.resource_group_name,
                public_access="None",
                opts=child,
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.containers["raw"]]),
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
