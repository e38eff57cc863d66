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

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import applicationinsights, web

from infra import roles
from infra.component import Component, ComponentArgs
from infra.key_vault import VaultPolicy, vault, vault_secret
from infra.lake import storage_account

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
class IngestionArgs(ComponentArgs):
    app_name: str
    storage_account_name: str
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
    vault_policy: VaultPolicy
    plan_sku: str = "B1"


class Ingestion(Component):
    """Function app + its plan, storage and workspace-based Application Insights, with role grants.

    Grants: Storage Blob Data Contributor on the raw container only, Azure Event Hubs Data Sender
    on the quotes hub, Key Vault Secrets User on the vault, Key Vault Secrets Officer on the
    vault of its own access keys; plus the data roles the Functions host needs on its own storage
    account.
    """

    def __init__(self, name: str, args: IngestionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        self.storage, self.blob_service = storage_account(
            f"{name}-storage", f"{name}-storage-blob-service", args.storage_account_name, args,
            sku="Standard_LRS", hierarchical_namespace=False, soft_delete_days=7, parent=self,
        )  # fmt: skip
        self.insights = applicationinsights.Component(
            f"{name}-insights",
            resource_name_=f"{args.app_name}-ai",
            kind="web",
            application_type="web",
            workspace_resource_id=args.log_workspace_id,
            ingestion_mode="LogAnalytics",
            **args.placement,
            opts=self.child,
        )
        self.plan = web.AppServicePlan(
            f"{name}-plan",
            name=f"{args.app_name}-plan",
            kind="linux",
            reserved=True,
            sku={"name": args.plan_sku},
            **args.placement,
            opts=self.child,
        )
        self.keys_vault = vault(f"{name}-keys-vault", args.keys_vault_name, args.vault_policy, args, self)
        self.host_keys = {}
        for secret in (MASTER_KEY_SECRET, FUNCTION_KEY_SECRET):
            value = random.RandomPassword(f"{name}-{secret}-value", length=56, special=False, opts=self.child)
            self.host_keys[secret] = vault_secret(name, secret, value.result, self.keys_vault, args, self)
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
            **args.placement,
            opts=self.child_with(depends_on=list(self.host_keys.values())),
        )
        # Basic-auth publishing (FTP and SCM user/password) off: deployments use Entra ID.
        self.ftp_basic_auth = web.WebAppFtpAllowed(
            f"{name}-ftp-basic-auth", name=self.app.name, resource_group_name=args.resource_group_name,
            allow=False, opts=self.child,
        )  # fmt: skip
        self.scm_basic_auth = web.WebAppScmAllowed(
            f"{name}-scm-basic-auth", name=self.app.name, resource_group_name=args.resource_group_name,
            allow=False, opts=self.child,
        )  # fmt: skip

        self.grants = roles.grant_each(name, roles.principal_of(self.app), (
            ("raw-writer", roles.STORAGE_BLOB_DATA_CONTRIBUTOR, args.raw_container_id),
            ("quotes-sender", roles.EVENT_HUBS_DATA_SENDER, args.event_hub_id),
            ("secrets-user", roles.KEY_VAULT_SECRETS_USER, args.vault_id),
            ("host-keys-officer", roles.KEY_VAULT_SECRETS_OFFICER, self.keys_vault.id),
            # The data roles the Functions host needs on its own storage account.
            ("host-blob", roles.STORAGE_BLOB_DATA_OWNER, self.storage.id),
            ("host-queue", roles.STORAGE_QUEUE_DATA_CONTRIBUTOR, self.storage.id),
            ("host-table", roles.STORAGE_TABLE_DATA_CONTRIBUTOR, self.storage.id),
        ), parent=self)  # fmt: skip
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
