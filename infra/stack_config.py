"""The stack's configuration, read once from `Pulumi.<stack>.yaml` and checked.

`__main__.py` calls :func:`load` and hands the typed values to the components; nothing else in
the program reads Pulumi config. Every key is described in docs/infrastructure.md.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi

from infra.naming import ResourceNameError, ResourceNames, default_suffix
from lakehouse import inputs

NAME_PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9]{2,11}$")
ENVIRONMENT_PATTERN = re.compile(r"^[a-z][a-z0-9]{1,7}$")


class StackConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


@dataclass(frozen=True)
class FirewallRule:
    name: str
    start_ip: str
    end_ip: str


@dataclass(frozen=True)
class StackConfig:
    environment: str
    name_prefix: str
    name_suffix: str
    owner: str
    location: str
    storage_sku: str
    raw_cool_after_days: int
    soft_delete_days: int
    key_vault_purge_protection: bool
    event_hubs_capacity: int
    quotes_partitions: int
    quotes_retention_days: int
    capture_interval_seconds: int
    function_plan_sku: str
    market_provider: str
    symbols: tuple[str, ...]
    ingest_daily_schedule: str
    poll_quotes_schedule: str
    databricks_public_network_access: str
    postgres_sku_name: str
    postgres_sku_tier: str
    postgres_storage_gb: int
    postgres_backup_retention_days: int
    postgres_high_availability: bool
    postgres_allow_azure_services: bool
    postgres_password_auth: bool
    postgres_firewall_rules: tuple[FirewallRule, ...]
    start_triggers: tuple[str, ...]
    log_retention_days: int
    alert_emails: tuple[str, ...]
    market_api_key: pulumi.Output[str]
    postgres_admin_password: pulumi.Output[str] | None

    @property
    def tags(self) -> dict[str, str]:
        """Tags every resource carries."""
        return {"environment": self.environment, "system": "market-lakehouse", "owner": self.owner}

    @property
    def base_name(self) -> str:
        """`{prefix}-{environment}`: the stem of every resource name."""
        return f"{self.name_prefix}-{self.environment}"

    @property
    def names(self) -> ResourceNames:
        """The stack's globally unique resource names (they end in :attr:`name_suffix`)."""
        return ResourceNames(self.name_prefix, self.environment, self.name_suffix)


def check_firewall_rule(rule: FirewallRule) -> FirewallRule:
    """Reject malformed ranges and any range that opens the server to the whole internet."""
    try:
        start, end = ipaddress.IPv4Address(rule.start_ip), ipaddress.IPv4Address(rule.end_ip)
    except ValueError as exc:
        raise StackConfigError(f"lakehouse:postgresFirewallRules[{rule.name}]: {exc}") from None
    if end < start:
        raise StackConfigError(f"lakehouse:postgresFirewallRules[{rule.name}]: endIp is before startIp")
    if int(end) - int(start) + 1 > 2**16:
        raise StackConfigError(
            f"lakehouse:postgresFirewallRules[{rule.name}]: {start}-{end} is wider than a /16; "
            "open the server to named ranges only (never 0.0.0.0-255.255.255.255)"
        )
    if int(start) == 0 and int(end) == 0:
        raise StackConfigError(
            f"lakehouse:postgresFirewallRules[{rule.name}]: use lakehouse:postgresAllowAzureServices "
            "for the 0.0.0.0 Azure-services rule"
        )
    return rule


def load(
    config: pulumi.Config | None = None,
    location: str | None = None,
    project: str | None = None,
    stack: str | None = None,
) -> StackConfig:
    """Read and check the `lakehouse:*` keys of the current stack.

    Args:
        config: the `lakehouse` config namespace (default: the project's).
        location: the Azure region (default: `azure-native:location`).
        project: the Pulumi project (default: the running one); seeds the default name suffix.
        stack: the Pulumi stack (default: the running one); seeds the default name suffix.

    Returns:
        The typed configuration.

    Raises:
        StackConfigError: a value is missing or invalid; the message names the key.
    """
    cfg = config or pulumi.Config()
    location = location or pulumi.Config("azure-native").get("location")
    if not location:
        raise StackConfigError("azure-native:location is not set (pulumi config set azure-native:location ...)")

    def require(key: str) -> str:
        value = cfg.get(key)
        if value in (None, ""):
            raise StackConfigError(f"lakehouse:{key} is required (see docs/infrastructure.md)")
        return value

    def positive(key: str, default: int) -> int:
        value = cfg.get_int(key)
        value = default if value is None else value
        if value <= 0:
            raise StackConfigError(f"lakehouse:{key} must be a positive integer, got {value}")
        return value

    def flag(key: str, default: bool) -> bool:
        value = cfg.get_bool(key)
        return default if value is None else value

    environment = require("environment")
    if not ENVIRONMENT_PATTERN.match(environment):
        raise StackConfigError(f"lakehouse:environment {environment!r} must be 2-8 lower-case letters/digits")
    name_prefix = require("namePrefix")
    if not NAME_PREFIX_PATTERN.match(name_prefix):
        raise StackConfigError(
            f"lakehouse:namePrefix {name_prefix!r} must be 3-12 lower-case letters/digits starting with a "
            "letter (it becomes part of globally unique storage and vault names)"
        )
    name_suffix = cfg.get("nameSuffix") or default_suffix(project or pulumi.get_project(), stack or pulumi.get_stack())
    try:
        ResourceNames(name_prefix, environment, name_suffix).check()
    except ResourceNameError as exc:
        raise StackConfigError(f"lakehouse:nameSuffix / namePrefix / environment: {exc}") from None
    symbols = tuple(cfg.get_object("symbols") or ())
    bad = [s for s in symbols if not inputs.is_symbol(s)]
    if not symbols or bad:
        raise StackConfigError(f"lakehouse:symbols must be a non-empty list of tickers; invalid: {bad}")
    rules = []
    for raw in cfg.get_object("postgresFirewallRules") or []:
        try:
            rules.append(check_firewall_rule(FirewallRule(raw["name"], raw["startIp"], raw["endIp"])))
        except (KeyError, TypeError):
            raise StackConfigError(
                f"lakehouse:postgresFirewallRules entries need name, startIp and endIp; got {raw!r}"
            ) from None
    emails = tuple(cfg.get_object("alertEmails") or ())
    if not emails or any("@" not in e for e in emails):
        raise StackConfigError(f"lakehouse:alertEmails must list at least one e-mail address, got {emails}")
    network_access = cfg.get("databricksPublicNetworkAccess") or "Enabled"
    if network_access not in ("Enabled", "Disabled"):
        raise StackConfigError("lakehouse:databricksPublicNetworkAccess must be Enabled or Disabled")
    password_auth = flag("postgresPasswordAuth", False)
    admin_password = cfg.get_secret("postgresAdminPassword") if password_auth else None

    return StackConfig(
        environment=environment,
        name_prefix=name_prefix,
        name_suffix=name_suffix,
        owner=require("owner"),
        location=location,
        storage_sku=cfg.get("storageSku") or "Standard_LRS",
        raw_cool_after_days=positive("rawCoolAfterDays", 30),
        soft_delete_days=positive("softDeleteDays", 7),
        key_vault_purge_protection=flag("keyVaultPurgeProtection", True),
        event_hubs_capacity=positive("eventHubsCapacity", 1),
        quotes_partitions=positive("quotesPartitions", 2),
        quotes_retention_days=positive("quotesRetentionDays", 1),
        capture_interval_seconds=positive("captureIntervalSeconds", 300),
        function_plan_sku=cfg.get("functionPlanSku") or "B1",
        market_provider=cfg.get("marketProvider") or "alpha_vantage",
        symbols=symbols,
        ingest_daily_schedule=require("ingestDailySchedule"),
        poll_quotes_schedule=require("pollQuotesSchedule"),
        databricks_public_network_access=network_access,
        postgres_sku_name=cfg.get("postgresSkuName") or "Standard_B1ms",
        postgres_sku_tier=cfg.get("postgresSkuTier") or "Burstable",
        postgres_storage_gb=positive("postgresStorageGb", 32),
        postgres_backup_retention_days=positive("postgresBackupRetentionDays", 7),
        postgres_high_availability=flag("postgresHighAvailability", False),
        postgres_allow_azure_services=flag("postgresAllowAzureServices", False),
        postgres_password_auth=password_auth,
        postgres_firewall_rules=tuple(rules),
        start_triggers=tuple(cfg.get_object("startTriggers") or ()),
        log_retention_days=positive("logRetentionDays", 30),
        alert_emails=emails,
        market_api_key=cfg.require_secret("marketApiKey"),
        postgres_admin_password=admin_password,
    )
