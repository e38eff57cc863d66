"""Ingestion: the Function app (Linux, Python 3.11) that lands market data in RAW.

The app runs with a system-assigned identity and no secrets of its own: its storage connection
is identity-based (`AzureWebJobsStorage__accountName`), and the market API key is a Key Vault
reference resolved by the platform. Its code is deployed by the delivery workflow (`make package`,
then `Azure/functions-action` signed in with OIDC: no publishing credentials).

The host's access keys live in a Key Vault of their own (``AzureWebJobsSecretStorageType=keyvault``)
and are created here, before the host ever starts: the master key and the host key
:data:`FUNCTION_KEY_NAME` that Data Factory sends, both generated values. Nothing reads a key back
from the running host, so a fresh app whose host is not up yet cannot fail the deployment, and
Data Factory reads the same secret from that vault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import applicationinsights, keyvault, storage, web

from infra import roles
from infra.key_vault import vault_properties

FUNCTION_KEY_NAME = "datafactory"
# The Functions host's Key Vault secret repository names host keys `host--functionKey--<name>` and
# the master key `host--masterKey--master`; it treats a vault without a master key as empty and
# then replaces every `host--` secret, so both are created together.
FUNCTION_KEY_SECRET = f"host--functionKey--{FUNCTION_KEY_NAME}"
MASTER_KEY_SECRET = "host--masterKey--master"  # noqa: S105 (a name, not a secret)


def key_vault_reference(secret_uri: str) -> str:
    """An app-setting value that App Service resolves from Key Vault with the app's identity."""
    return f"@Microsoft.KeyVault(SecretUri={secret_uri})"


@dataclass
class IngestionArgs:
    resource_group_name: pulumi.Input[str]
    location: str
    app_name: str
    storage_account_name: str
    tags: Mapping[str, str]
    log_workspace_id: pulumi.Input[str]
    environment: str
    lake_account_name: pulumi.Input[str]
    raw_container_id: pulumi.Input[str]
    event_hub_namespace_fqdn: pulumi.Input[str]
    event_hub_name: pulumi.Input[str]
    event_hub_id: pulumi.Input[str]
    vault_id: pulumi.Input[str]
    market_api_key_uri: pulumi.Input[str]
    market_provider: str
    symbols: Sequence[str]
    ingest_daily_schedule: str
    poll_quotes_schedule: str
    keys_vault_name: str
    tenant_id: pulumi.Input[str]
    purge_protection: bool = True
    soft_delete_days: int = 7
    plan_sku: str = "B1"


class Ingestion(pulumi.ComponentResource):
    """Function app + its plan, storage and workspace-based Application Insights, with role grants.

    Grants: Storage Blob Data Contributor on the raw container only, Azure Event Hubs Data Sender
    on the quotes hub, Key Vault Secrets User on the vault, Key Vault Secrets Officer on the
    vault of its own access keys; plus the data roles the Functions host needs on its own storage
    account.
    """

    def __init__(self, name: str, args: IngestionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lakehouse:index:Ingestion", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        self.storage = storage.StorageAccount(
            f"{name}-storage",
            account_name=args.storage_account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="StorageV2",
            sku={"name": "Standard_LRS"},
            is_hns_enabled=False,
            minimum_tls_version="TLS1_2",
            enable_https_traffic_only=True,
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            tags=tags,
            opts=child,
        )
        self.blob_service = storage.BlobServiceProperties(
            f"{name}-storage-blob-service",
            account_name=self.storage.name,
            resource_group_name=args.resource_group_name,
            blob_services_name="default",
            delete_retention_policy={"enabled": True, "days": 7},
            container_delete_retention_policy={"enabled": True, "days": 7},
            is_versioning_enabled=True,
            opts=child,
        )
        self.insights = applicationinsights.Component(
            f"{name}-insights",
            resource_name_=f"{args.app_name}-ai",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="web",
            application_type="web",
            workspace_resource_id=args.log_workspace_id,
            ingestion_mode="LogAnalytics",
            tags=tags,
            opts=child,
        )
        self.plan = web.AppServicePlan(
            f"{name}-plan",
            name=f"{args.app_name}-plan",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="linux",
            reserved=True,
            sku={"name": args.plan_sku},
            tags=tags,
            opts=child,
        )
        self.keys_vault = keyvault.Vault(
            f"{name}-keys-vault",
            vault_name=args.keys_vault_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            properties=vault_properties(args.tenant_id, args.soft_delete_days, args.purge_protection),
            tags=tags,
            opts=child,
        )
        self.host_keys = {
            secret: keyvault.Secret(
                f"{name}-{secret}",
                secret_name=secret,
                vault_name=self.keys_vault.name,
                resource_group_name=args.resource_group_name,
                properties={"value": pulumi.Output.secret(random.RandomPassword(
                    f"{name}-{secret}-value", length=56, special=False, opts=child
                ).result)},
                tags=tags,
                opts=child,
            )
            for secret in (MASTER_KEY_SECRET, FUNCTION_KEY_SECRET)
        }  # fmt: skip
        keys_vault_uri = self.keys_vault.properties.apply(lambda p: p.vault_uri)
        lake_root = pulumi.Output.concat("abfss://{container}@", args.lake_account_name, ".dfs.core.windows.net")
        settings = {
            "FUNCTIONS_EXTENSION_VERSION": "~4",
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "SCM_DO_BUILD_DURING_DEPLOYMENT": "true",
            "AzureWebJobsStorage__accountName": self.storage.name,
            "AzureWebJobsSecretStorageType": "keyvault",
            "AzureWebJobsSecretStorageKeyVaultUri": keys_vault_uri,
            "APPLICATIONINSIGHTS_CONNECTION_STRING": self.insights.connection_string,
            "LAKEHOUSE_ENVIRONMENT": args.environment,
            "LAKEHOUSE_LAKE_ROOT": lake_root,
            "LAKEHOUSE_PROVIDER": args.market_provider,
            "LAKEHOUSE_SYMBOLS": ",".join(args.symbols),
            "ALPHAVANTAGE_API_KEY": pulumi.Output.from_input(args.market_api_key_uri).apply(key_vault_reference),
            "LAKEHOUSE_EVENTHUB_NAMESPACE": args.event_hub_namespace_fqdn,
            "LAKEHOUSE_EVENTHUB_NAME": args.event_hub_name,
            "LAKEHOUSE_INGEST_DAILY_SCHEDULE": args.ingest_daily_schedule,
            "LAKEHOUSE_POLL_QUOTES_SCHEDULE": args.poll_quotes_schedule,
        }
        self.app = web.WebApp(
            f"{name}-app",
            name=args.app_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="functionapp,linux",
            server_farm_id=self.plan.id,
            https_only=True,
            identity={"type": "SystemAssigned"},
            key_vault_reference_identity="SystemAssigned",
            site_config={
                "linuxFxVersion": "Python|3.11",
                "ftpsState": "Disabled",
                "minTlsVersion": "1.2",
                "scmMinTlsVersion": "1.2",
                "http20Enabled": True,
                "alwaysOn": True,
                "appSettings": [{"name": k, "value": v} for k, v in settings.items()],
            },
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.host_keys.values())),
        )
        # Basic-auth publishing (FTP and SCM user/password) off: deployments use Entra ID.
        self.ftp_basic_auth = web.WebAppFtpAllowed(
            f"{name}-ftp-basic-auth", name=self.app.name, resource_group_name=args.resource_group_name,
            allow=False, opts=child,
        )  # fmt: skip
        self.scm_basic_auth = web.WebAppScmAllowed(
            f"{name}-scm-basic-auth", name=self.app.name, resource_group_name=args.resource_group_name,
            allow=False, opts=child,
        )  # fmt: skip

        principal = self.app.identity.apply(lambda i: i.principal_id)
        self.grants = [
            roles.grant(f"{name}-raw-writer", role=roles.STORAGE_BLOB_DATA_CONTRIBUTOR,
                        principal_id=principal, scope=args.raw_container_id, parent=self),
            roles.grant(f"{name}-quotes-sender", role=roles.EVENT_HUBS_DATA_SENDER,
                        principal_id=principal, scope=args.event_hub_id, parent=self),
            roles.grant(f"{name}-secrets-user", role=roles.KEY_VAULT_SECRETS_USER,
                        principal_id=principal, scope=args.vault_id, parent=self),
            roles.grant(f"{name}-host-keys-officer", role=roles.KEY_VAULT_SECRETS_OFFICER,
                        principal_id=principal, scope=self.keys_vault.id, parent=self),
        ]  # fmt: skip
        self.grants += [
            roles.grant(f"{name}-host-{suffix}", role=role, principal_id=principal, scope=self.storage.id, parent=self)
            for suffix, role in (
                ("blob", roles.STORAGE_BLOB_DATA_OWNER),
                ("queue", roles.STORAGE_QUEUE_DATA_CONTRIBUTOR),
                ("table", roles.STORAGE_TABLE_DATA_CONTRIBUTOR),
            )
        ]
        self.app_id = self.app.id
        self.app_name = self.app.name
        self.app_url = self.app.default_host_name.apply(lambda h: f"https://{h}")
        self.insights_id = self.insights.id
        self.storage_id = self.storage.id
        self.keys_vault_id = self.keys_vault.id
        self.keys_vault_uri = keys_vault_uri
        self.register_outputs(
            {"app_id": self.app_id, "app_url": self.app_url, "insights_id": self.insights_id}
        )
