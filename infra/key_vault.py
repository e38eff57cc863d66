"""The Key Vault, with RBAC authorization, holding the platform's secrets.

Secret values arrive as Pulumi secrets (from `pulumi config set --secret`) or are generated
here with `pulumi_random`; they never appear in the repository or in plain stack config.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import keyvault

from infra.component import Component, ComponentArgs

MARKET_API_KEY_SECRET = "alphavantage-api-key"  # noqa: S105 (a name, not a secret)
POSTGRES_PASSWORD_SECRET = "postgres-admin-password"  # noqa: S105 (a name, not a secret)


@dataclass(frozen=True)
class VaultPolicy:
    """What every vault of a stack shares, the platform's and the Function host's alike."""

    tenant_id: pulumi.Input[str]
    soft_delete_days: int = 7
    purge_protection: bool = True

    def properties(self) -> dict:
        """The vault's properties: RBAC authorization, soft delete, purge protection per stack."""
        return {
            "tenantId": self.tenant_id,
            "sku": {"family": "A", "name": "standard"},
            "enableRbacAuthorization": True,
            "enableSoftDelete": True,
            "softDeleteRetentionInDays": max(7, min(90, self.soft_delete_days)),
            # Azure rejects enablePurgeProtection=false: it is either on (irreversibly) or absent.
            "enablePurgeProtection": True if self.purge_protection else None,
            "publicNetworkAccess": "Enabled",
            "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow"},
        }


def vault(
    resource_name: str, vault_name: str, policy: VaultPolicy, args: ComponentArgs, parent: Component
) -> keyvault.Vault:
    """A vault of the platform; both take their properties from the stack's one :class:`VaultPolicy`."""
    return keyvault.Vault(
        resource_name, vault_name=vault_name, properties=policy.properties(), **args.placement, opts=parent.child
    )


def vault_secret(
    stem: str, secret_name: str, value: pulumi.Input[str], vault: keyvault.Vault, args: ComponentArgs, parent: Component
) -> keyvault.Secret:
    """A secret of ``vault`` named ``<stem>-<secret name>``, its value kept secret in the state too."""
    return keyvault.Secret(
        f"{stem}-{secret_name}",
        secret_name=secret_name,
        vault_name=vault.name,
        resource_group_name=args.resource_group_name,
        properties={"value": pulumi.Output.secret(value)},
        tags=dict(args.tags),
        opts=parent.child,
    )


@dataclass
class SecretsArgs(ComponentArgs):
    vault_name: str
    vault_policy: VaultPolicy
    market_api_key: pulumi.Input[str]
    store_postgres_password: bool = True
    postgres_admin_password: pulumi.Input[str] | None = None


class Secrets(Component):
    """Key Vault (RBAC, soft delete, purge protection per stack) and its secrets."""

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        self.vault = vault(f"{name}-vault", args.vault_name, args.vault_policy, args, self)

        def secret(secret_name: str, value: pulumi.Input[str]) -> keyvault.Secret:
            return vault_secret(name, secret_name, value, self.vault, args, self)

        self.market_api_key = secret(MARKET_API_KEY_SECRET, args.market_api_key)
        self.postgres_admin_password: pulumi.Output[str] | None = None
        self.postgres_password_secret = None
        if args.store_postgres_password:
            password = args.postgres_admin_password
            if password is None:
                self.generated_password = random.RandomPassword(
                    f"{name}-postgres-password", length=32, special=True, override_special="-_.~", opts=self.child
                )
                password = self.generated_password.result
            self.postgres_admin_password = pulumi.Output.secret(password)
            self.postgres_password_secret = secret(POSTGRES_PASSWORD_SECRET, password)

        self.vault_id = self.vault.id
        self.vault_name = self.vault.name
        self.vault_uri = self.vault.properties.apply(lambda p: p.vault_uri)
        self.market_api_key_uri = self.market_api_key.properties.apply(lambda p: p.secret_uri)
        self.register_outputs(
            {"vault_id": self.vault_id, "vault_uri": self.vault_uri, "market_api_key_uri": self.market_api_key_uri}
        )
