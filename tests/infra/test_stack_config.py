"""Reading the stack configuration: typed values, and clear errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from infra import preview, stack_config
from infra.stack_config import StackConfigError


def load(config: dict) -> stack_config.StackConfig:
    seen = {}
    preview.run_program(lambda: seen.setdefault("cfg", stack_config.load()), config)
    return seen["cfg"]


@pytest.fixture(scope="module")
def dev_config() -> dict:
    return preview.stack_config("dev")


def test_dev_stack_file_reads_into_typed_values(dev_config):
    raw = yaml.safe_load((preview.REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    cfg = load(dev_config)
    assert cfg.environment == "dev" and cfg.location == raw["azure-native:location"]
    assert cfg.symbols == tuple(raw["lakehouse:symbols"])
    assert cfg.quotes_partitions == raw["lakehouse:quotesPartitions"]
    assert cfg.key_vault_purge_protection is raw["lakehouse:keyVaultPurgeProtection"]
    assert cfg.tags == {"environment": "dev", "system": "market-lakehouse", "owner": raw["lakehouse:owner"]}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lakehouse:namePrefix", "Bad_Prefix", "lakehouse:namePrefix"),
        ("lakehouse:symbols", ["AAPL", "../etc"], "lakehouse:symbols"),
        ("lakehouse:alertEmails", [], "lakehouse:alertEmails"),
        ("lakehouse:quotesPartitions", 0, "lakehouse:quotesPartitions"),
        ("lakehouse:postgresFirewallRules", [{"name": "all", "startIp": "0.0.0.0", "endIp": "255.255.255.255"}],
         "never 0.0.0.0-255.255.255.255"),
        ("lakehouse:postgresFirewallRules", [{"name": "x"}], "need name, startIp and endIp"),
        ("lakehouse:databricksPublicNetworkAccess", "Maybe", "databricksPublicNetworkAccess"),
    ],
)  # fmt: skip
def test_invalid_values_fail_naming_the_key(dev_config, key, value, message):
    with pytest.raises(StackConfigError, match=message):
        load({**dev_config, key: value})


def test_missing_required_keys_fail_naming_the_key(dev_config):
    config = {k: v for k, v in dev_config.items() if k != "lakehouse:owner"}
    with pytest.raises(StackConfigError, match="lakehouse:owner is required"):
        load(config)
    config = {k: v for k, v in dev_config.items() if k != "azure-native:location"}
    with pytest.raises(StackConfigError, match="azure-native:location"):
        load(config)


def test_market_api_key_is_required_and_stays_secret(dev_config):
    config = {k: v for k, v in dev_config.items() if k != "lakehouse:marketApiKey"}
    with pytest.raises(Exception, match="marketApiKey"):
        load(config)
