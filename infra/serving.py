"""Serving: PostgreSQL Flexible Server 16 holding the `lakehouse` database (marts and ops)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import pulumi
from pulumi_azure_native import dbforpostgresql as pg

from infra.component import Component, ComponentArgs
from infra.stack_config import FirewallRule, check_firewall_rule

DATABASE = "lakehouse"
POSTGRES_VERSION = "16"
ADMIN_LOGIN = "lakehouse_admin"
# Azure's convention for "allow access from Azure services": the single address 0.0.0.0.
AZURE_SERVICES_RULE = FirewallRule(
    "AllowAllAzureServicesAndResourcesWithinAzureIps", "0.0.0.0", "0.0.0.0"  # noqa: S104
)


def fqdn_of(server_name: str) -> str:
    """The server's host name (known before the server exists, so earlier components can use it)."""
    return f"{server_name}.postgres.database.azure.com"


def dsn(server_name: str, user: str, password: pulumi.Input[str] | None = None) -> pulumi.Output[str]:
    """DSN of the `lakehouse` database with TLS required; without a password the client signs in
    with a Microsoft Entra token (the serving code's default in Azure)."""
    host = fqdn_of(server_name)
    if password is None:
        return pulumi.Output.from_input(f"postgresql://{quote(user)}@{host}:5432/{DATABASE}?sslmode=require")
    return pulumi.Output.secret(password).apply(
        lambda pw: f"postgresql://{quote(user)}:{quote(pw, safe='')}@{host}:5432/{DATABASE}?sslmode=require"
    )


@dataclass(frozen=True)
class EntraPrincipal:
    """A managed identity made a Microsoft Entra administrator of the server."""

    name: str
    principal_name: pulumi.Input[str]
    object_id: pulumi.Input[str]


@dataclass
class ServingArgs(ComponentArgs):
    server_name: str
    tenant_id: pulumi.Input[str]
    sku_name: str = "Standard_B1ms"
    sku_tier: str = "Burstable"
    storage_gb: int = 32
    backup_retention_days: int = 7
    high_availability: bool = False
    password_auth: bool = False
    admin_password: pulumi.Input[str] | None = None
    allow_azure_services: bool = False
    firewall_rules: Sequence[FirewallRule] = ()
    entra_admins: Sequence[EntraPrincipal] = field(default_factory=tuple)


class Serving(Component):
    """PostgreSQL 16 with Entra ID authentication, TLS required, and a firewall that only opens
    named ranges (never 0.0.0.0-255.255.255.255). Password authentication and Azure's
    "allow Azure services" rule (any Azure tenant's address) are stack switches, off by default.

    Entra administrators use the stable `AdministratorsMicrosoftEntra` API (2025-08-01), which
    aliases the preview `Administrator` type so an existing stack keeps its administrators."""

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        if args.password_auth and args.admin_password is None:
            raise ValueError("Serving: password_auth needs admin_password")
        rules = [check_firewall_rule(r) for r in args.firewall_rules]
        if args.allow_azure_services:
            rules.append(AZURE_SERVICES_RULE)
        if not rules:
            pulumi.log.warn(
                f"{args.server_name}: no firewall rule, so no client outside a private network reaches the "
                "server; list the Databricks workspace's outbound NAT addresses in lakehouse:postgresFirewallRules "
                "(docs/infrastructure.md)",
                resource=self,
            )

        self.server = pg.Server(
            f"{name}-server",
            server_name=args.server_name,
            version=POSTGRES_VERSION,
            sku={"name": args.sku_name, "tier": args.sku_tier},
            storage={"storageSizeGB": args.storage_gb, "autoGrow": "Enabled"},
            backup={
                "backupRetentionDays": args.backup_retention_days,
                "geoRedundantBackup": "Enabled" if args.high_availability else "Disabled",
            },
            high_availability={"mode": "ZoneRedundant" if args.high_availability else "Disabled"},
            auth_config={
                "activeDirectoryAuth": "Enabled",
                "passwordAuth": "Enabled" if args.password_auth else "Disabled",
                "tenantId": args.tenant_id,
            },
            administrator_login=ADMIN_LOGIN if args.password_auth else None,
            administrator_login_password=args.admin_password if args.password_auth else None,
            network={"publicNetworkAccess": "Enabled"},
            **args.placement,
            opts=self.child,
        )
        server = {"server_name": self.server.name, "resource_group_name": args.resource_group_name}
        self.secure_transport = pg.Configuration(
            f"{name}-require-secure-transport",
            configuration_name="require_secure_transport",
            value="on",
            source="user-override",
            **server,
            opts=self.child,
        )
        self.database = pg.Database(
            f"{name}-{DATABASE}", database_name=DATABASE, charset="UTF8", collation="en_US.utf8",
            **server, opts=self.child,
        )  # fmt: skip
        self.firewall_rules = [
            pg.FirewallRule(
                f"{name}-fw-{rule.name.lower()}", firewall_rule_name=rule.name,
                start_ip_address=rule.start_ip, end_ip_address=rule.end_ip, **server, opts=self.child,
            )
            for rule in rules
        ]  # fmt: skip
        # Entra administrators are added one after another: the service rejects concurrent changes.
        self.entra_admins = []
        previous: list[pulumi.Resource] = [self.secure_transport]
        for admin in args.entra_admins:
            resource = pg.AdministratorsMicrosoftEntra(
                f"{name}-entra-{admin.name}",
                object_id=admin.object_id,
                principal_name=admin.principal_name,
                principal_type="ServicePrincipal",
                tenant_id=args.tenant_id,
                **server,
                opts=self.child_with(depends_on=previous),
            )
            self.entra_admins.append(resource)
            previous = [resource]

        self.server_id = self.server.id
        self.fqdn = self.server.fully_qualified_domain_name
        self.register_outputs({"server_id": self.server_id, "fqdn": self.fqdn, "database": DATABASE})
