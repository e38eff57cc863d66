"""The Key Vault, with RBAC authorization, holding the platform's secrets.

Secret values arrive as Pulumi secrets (from `pulumi config set --secret`) or are generated
here with `pulumi_random`; they never appear in the repository or in plain stack config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import keyvault

MARKET_API_KEY_SECRET = "alphavantage-api-key"  # noqa: S105 (a name, not a secret)
POSTGRES_PASSWORD_SECRET = "postgres-admin-password"  # noqa: S105 (a name, not a secret)



def vault_properties(tenant_id: pulumi.Input[str], soft_delete_days: int, purge_protection: bool) -> dict:
    """The properties every vault of the platform has: RBAC, soft delete, purge protection per stack."""
    return {
        "tenantId": tenant_id,
        "sku": {"family": "A", "name": "standard"},
        "enableRbacAuthorization": True,
        "enableSoftDelete": True,
        "softDeleteRetentionInDays": max(7, min(90, soft_delete_days)),
        # Azure rejects enablePurgeProtection=false: it is either on (irreversibly) or absent.
        "enablePurgeProtection": True if purge_protection else None,
        "publicNetworkAccess": "Enabled",
        "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow"},
    }

@dataclass
class SecretsArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    vault_name: str
    tenant_id: pulumi.Input[str]
    tags: Mapping[str, str]
    market_api_key: pulumi.Input[str]
    purge_protection: bool
    soft_delete_days: int = 7
    store_postgres_password: bool = True
    postgres_admin_password: pulumi.Input[str] | None = None


class Secrets(pulumi.ComponentResource):
    """Key Vault (RBAC, soft delete, purge protection per stack) and its secrets."""

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:index:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=args.vault_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            properties=vault_properties(args.tenant_id, args.soft_delete_days, args.purge_protection),
            tags=dict(args.tags),
            opts=child,
        )
        self.market_api_key = self._secret(name, MARKET_API_KEY_SECRET, args.market_api_key, args)
        self.postgres_admin_password: pulumi.Output[str] | None = None
        self.postgres_password_secret = None
        if args.store_postgres_password:
            password = args.postgres_admin_password
            if password is None:
                self.generated_password = random.RandomPassword(
                    f"{name}-postgres-password", length=32, special=True, override_special="-_.~", opts=child
                )
                password = self.generated_password.result
            self.postgres_admin_password = pulumi.Output.secret(password)
            self.postgres_password_secret = self._secret(name, POSTGRES_PASSWORD_SECRET, password, args)

        self.vault_id = self.vault.id
        self.vault_name = self.vault.name
        self.vault_uri = self.vault.properties.apply(lambda p: p.vault_uri)
        self.market_api_key_uri = self.market_api_key.properties.apply(lambda p: p.secret_uri)
        self.register_outputs(
            {"vault_id": self.vault_id, "vault_uri": self.vault_uri, "market_api_key_uri": self.market_api_key_uri}
        )

    def _secret(self, name: str, secret_name: str, value: pulumi.Input[str], args: SecretsArgs) -> keyvault.Secret:
        return keyvault.Secret(
            f"{name}-{secret_name}",
            secret_name=secret_name,
            vault_name=self.vault.name,
            resource_group_name=args.resource_group_name,
            properties={"value": pulumi.Output.secret(value)},
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
