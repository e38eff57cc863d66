"""Eventing: the Event Hubs namespace and the `market-quotes` hub captured into RAW."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import eventhub

from infra import roles
from infra.component import Component, ComponentArgs

QUOTES_HUB = "market-quotes"
DATABRICKS_CONSUMER_GROUP = "databricks"
# Capture's default archive name format under the `eventhubs/` folder of the raw container, so
# files land at raw/eventhubs/{namespace}/{hub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro.
CAPTURE_FOLDER = "eventhubs"
DEFAULT_ARCHIVE_NAME_FORMAT = "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}"


@dataclass
class EventingArgs(ComponentArgs):
    namespace_name: str
    lake_account_id: pulumi.Input[str]
    raw_container_name: str
    raw_container_id: pulumi.Input[str]
    partitions: int = 2
    retention_days: int = 1
    capacity: int = 1
    capture_interval_seconds: int = 300
    capture_size_limit_bytes: int = 314_572_800


class Eventing(Component):
    """Event Hubs (Standard, local auth off, TLS 1.2) with Capture to RAW in Avro.

    Capture writes with the namespace's managed identity, which holds Storage Blob Data
    Contributor on the raw container only (the lake has shared keys disabled).
    """

    def __init__(self, name: str, args: EventingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        self.namespace = eventhub.Namespace(
            f"{name}-namespace",
            namespace_name=args.namespace_name,
            sku={"name": "Standard", "tier": "Standard", "capacity": args.capacity},
            disable_local_auth=True,
            minimum_tls_version="1.2",
            public_network_access="Enabled",
            identity={"type": "SystemAssigned"},
            **args.placement,
            opts=self.child,
        )
        self.capture_grant = roles.grant(
            f"{name}-capture-raw",
            role=roles.STORAGE_BLOB_DATA_CONTRIBUTOR,
            principal_id=roles.principal_of(self.namespace),
            scope=args.raw_container_id,
            parent=self,
        )
        self.hub = eventhub.EventHub(
            f"{name}-{QUOTES_HUB}",
            event_hub_name=QUOTES_HUB,
            namespace_name=self.namespace.name,
            resource_group_name=args.resource_group_name,
            partition_count=args.partitions,
            message_retention_in_days=args.retention_days,
            capture_description={
                "enabled": True,
                "encoding": "Avro",
                "intervalInSeconds": args.capture_interval_seconds,
                "sizeLimitInBytes": args.capture_size_limit_bytes,
                "skipEmptyArchives": True,
                "destination": {
                    "name": "EventHubArchive.AzureBlockBlob",
                    "storageAccountResourceId": args.lake_account_id,
                    "blobContainer": args.raw_container_name,
                    "archiveNameFormat": f"{CAPTURE_FOLDER}/{DEFAULT_ARCHIVE_NAME_FORMAT}",
                    "identity": {"type": "SystemAssigned"},
                },
            },
            opts=self.child_with(depends_on=[self.capture_grant]),
        )
        self.consumer_group = eventhub.ConsumerGroup(
            f"{name}-{DATABRICKS_CONSUMER_GROUP}",
            consumer_group_name=DATABRICKS_CONSUMER_GROUP,
            event_hub_name=self.hub.name,
            namespace_name=self.namespace.name,
            resource_group_name=args.resource_group_name,
            user_metadata="Databricks readers of market quotes",
            opts=self.child,
        )
        self.namespace_id = self.namespace.id
        self.hub_id = self.hub.id
        self.hub_name = self.hub.name
        self.fully_qualified_namespace = self.namespace.name.apply(lambda n: f"{n}.servicebus.windows.net")
        self.register_outputs(
            {
                "namespace_id": self.namespace_id,
                "hub_id": self.hub_id,
                "fully_qualified_namespace": self.fully_qualified_namespace,
            }
        )
