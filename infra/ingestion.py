"""Ingestion: the Function app (Linux, Python 3.11) that lands market data in RAW.

The app runs with a system-assigned identity and no secrets of its own: its storage connection
is identity-based (`AzureWebJobsStorage__accountName`), and the market API key is a Key Vault
reference resolved by the platform. Its code is deployed by the delivery workflow (`functions/`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, keyvault, storage, web

from infra import roles

FUNCTION_KEY_SECRET = "ingest-function-key"  # noqa: S105 (a name, not a secret)


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
    vault_name: pulumi.Input[str]
    market_api_key_uri: pulumi.Input[str]
    market_provider: str
    symbols: Sequence[str]
    ingest_daily_schedule: str
    poll_quotes_schedule: str
    plan_sku: str = "B1"


class Ingestion(pulumi.ComponentResource):
    """Function app + its plan, storage and workspace-based Application Insights, with role grants.

    Grants: Storage Blob Data Contributor on the raw container only, Azure Event Hubs Data Sender
    on the quotes hub, Key Vault Secrets User on the vault; plus the data roles the Functions host
    needs on its own storage account.
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
        lake_root = pulumi.Output.concat("abfss://{container}@", args.lake_account_name, ".dfs.core.windows.net")
        settings = {
            "FUNCTIONS_EXTENSION_VERSION": "~4",
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "SCM_DO_BUILD_DURING_DEPLOYMENT": "true",
            "AzureWebJobsStorage__accountName": self.storage.name,
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
            opts=child,
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
        ]  # fmt: skip
        self.grants += [
            roles.grant(f"{name}-host-{suffix}", role=role, principal_id=principal, scope=self.storage.id, parent=self)
            for suffix, role in (
                ("blob", roles.STORAGE_BLOB_DATA_OWNER),
                ("queue", roles.STORAGE_QUEUE_DATA_CONTRIBUTOR),
                ("table", roles.STORAGE_TABLE_DATA_CONTRIBUTOR),
            )
        ]
        # The Data Factory's Azure Function linked service reads the function key from Key Vault.
        host_keys = web.list_web_app_host_keys_output(
            name=self.app.name,
            resource_group_name=args.resource_group_name,
            opts=pulumi.InvokeOutputOptions(depends_on=[self.app]),
        )
        self.function_key_secret = keyvault.Secret(
            f"{name}-{FUNCTION_KEY_SECRET}",
            secret_name=FUNCTION_KEY_SECRET,
            vault_name=args.vault_name,
            resource_group_name=args.resource_group_name,
            properties={"value": pulumi.Output.secret(host_keys.apply(lambda k: (k.function_keys or {})["default"]))},
            tags=tags,
            opts=child,
        )

        self.app_id = self.app.id
        self.app_name = self.app.name
        self.app_url = self.app.default_host_name.apply(lambda h: f"https://{h}")
        self.insights_id = self.insights.id
        self.storage_id = self.storage.id
        self.register_outputs(
            {"app_id": self.app_id, "app_url": self.app_url, "insights_id": self.insights_id}
        )
