"""The lake component: an ADLS Gen2 account hardened by default, one private container per layer."""

from __future__ import annotations

from infra.lake import Lake, LakeArgs, supports_blob_versioning
from lakehouse.lake import CONTAINERS


def _lake(run_component, common, **overrides):
    args = LakeArgs(common.rg, common.location, common.tags, "testlake", **overrides)
    return run_component(lambda: Lake("lake", args))


def test_lake_account_is_adls_gen2_with_tls12_https_no_public_access_no_shared_keys(run_component, common):
    run = _lake(run_component, common)
    (account,) = run.of_type("azure-native:storage:StorageAccount")
    inputs = account.inputs
    assert inputs["isHnsEnabled"] is True
    assert inputs["minimumTlsVersion"] == "TLS1_2"
    assert inputs["enableHttpsTrafficOnly"] is True
    assert inputs["allowBlobPublicAccess"] is False
    assert inputs["allowSharedKeyAccess"] is False
    assert inputs["tags"] == common.tags


def test_lake_has_one_private_container_per_layer(run_component, common):
    run = _lake(run_component, common)
    containers = run.of_type("azure-native:storage:BlobContainer")
    assert sorted(c.inputs["containerName"] for c in containers) == sorted(CONTAINERS)
    assert {c.inputs["publicAccess"] for c in containers} == {"None"}
    assert all(c.parent == run.named("lake").urn for c in containers)


def test_raw_moves_to_cool_after_the_configured_days(run_component, common):
    run = _lake(run_component, common, raw_cool_after_days=45)
    (policy,) = run.of_type("azure-native:storage:ManagementPolicy")
    (rule,) = policy.inputs["policy"]["rules"]
    assert rule["definition"]["filters"]["prefixMatch"] == ["raw/"]
    assert rule["definition"]["actions"]["baseBlob"]["tierToCool"]["daysAfterModificationGreaterThan"] == 45


def test_soft_delete_is_on_and_versioning_off_because_hns_accounts_cannot_version(run_component, common):
    run = _lake(run_component, common, soft_delete_days=14)
    (service,) = run.of_type("azure-native:storage:BlobServiceProperties")
    assert service.inputs["deleteRetentionPolicy"] == {"enabled": True, "days": 14}
    assert service.inputs["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 14}
    assert service.inputs["isVersioningEnabled"] is False
    assert supports_blob_versioning(hierarchical_namespace=False) is True
