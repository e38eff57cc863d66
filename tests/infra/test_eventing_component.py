"""The eventing component: Event Hubs with Capture into RAW, written with a managed identity."""

from __future__ import annotations

from infra import roles
from infra.eventing import DATABRICKS_CONSUMER_GROUP, QUOTES_HUB, Eventing, EventingArgs

LAKE_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/lake"
RAW_ID = f"{LAKE_ID}/blobServices/default/containers/raw"


def _eventing(run_component, common, **overrides):
    args = EventingArgs(common.rg, common.location, common.tags, "test-events", LAKE_ID, "raw", RAW_ID, **overrides)
    return run_component(lambda: Eventing("events", args))


def test_namespace_disables_local_auth_and_requires_tls12(run_component, common):
    (ns,) = _eventing(run_component, common).of_type("azure-native:eventhub:Namespace")
    assert ns.inputs["disableLocalAuth"] is True
    assert ns.inputs["minimumTlsVersion"] == "1.2"
    assert ns.inputs["identity"]["type"] == "SystemAssigned"
    assert ns.inputs["sku"]["name"] == "Standard"  # Capture needs Standard or above


def test_quotes_hub_has_the_configured_partitions(run_component, common):
    (hub,) = _eventing(run_component, common, partitions=6).of_type("azure-native:eventhub:EventHub")
    assert hub.inputs["eventHubName"] == QUOTES_HUB
    assert hub.inputs["partitionCount"] == 6


def test_capture_writes_avro_into_raw_eventhubs_with_the_default_name_format(run_component, common):
    """The path contract: raw/eventhubs/{namespace}/{hub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro."""
    (hub,) = _eventing(run_component, common, capture_interval_seconds=120).of_type("azure-native:eventhub:EventHub")
    capture = hub.inputs["captureDescription"]
    assert capture["enabled"] is True
    assert capture["encoding"] == "Avro"
    assert capture["intervalInSeconds"] == 120
    destination = capture["destination"]
    assert destination["name"] == "EventHubArchive.AzureBlockBlob"
    assert destination["storageAccountResourceId"] == LAKE_ID
    assert destination["blobContainer"] == "raw"
    assert destination["archiveNameFormat"] == (
        "eventhubs/{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}"
    )
    assert destination["identity"] == {"type": "SystemAssigned"}


def test_capture_identity_may_write_the_raw_container_only(run_component, common):
    run = _eventing(run_component, common)
    (ns,) = run.of_type("azure-native:eventhub:Namespace")
    (grant,) = run.of_type("azure-native:authorization:RoleAssignment")
    assert grant.inputs["scope"] == RAW_ID
    assert grant.inputs["principalId"] == ns.outputs["identity"]["principalId"]
    assert grant.inputs["roleDefinitionId"].endswith(roles.STORAGE_BLOB_DATA_CONTRIBUTOR)
    (hub,) = run.of_type("azure-native:eventhub:EventHub")
    assert grant.urn in hub.dependencies, "Capture must not start before its identity may write"


def test_databricks_has_its_own_consumer_group(run_component, common):
    (group,) = _eventing(run_component, common).of_type("azure-native:eventhub:ConsumerGroup")
    assert group.inputs["consumerGroupName"] == DATABRICKS_CONSUMER_GROUP
    assert group.inputs["eventHubName"] == QUOTES_HUB
