"""The Pulumi program: read the stack's configuration once and compose the components.

Pulumi runs this directory as the program (the directory first on ``sys.path``); the components
are imported as the ``infra`` package of the project's installation (``make venv``), like
``lakehouse``. No module here is named like a standard-library one, so the program directory on
``sys.path`` shadows nothing.
"""

import pulumi
from pulumi_azure_native import authorization, resources

from infra import stack_config
from infra.compute import NOTEBOOK_ROOT, Compute, ComputeArgs, wheel_uri
from infra.databricks_runtime import SPARK_VERSION_KEY
from infra.eventing import Eventing, EventingArgs
from infra.ingestion import Ingestion, IngestionArgs
from infra.key_vault import Secrets, SecretsArgs, VaultPolicy
from infra.lake import Lake, LakeArgs
from infra.monitoring import DiagnosticTarget, LogWorkspace, LogWorkspaceArgs, Monitoring, MonitoringArgs
from infra.orchestration import Orchestration, OrchestrationArgs
from infra.serving import ADMIN_LOGIN, DATABASE, EntraPrincipal, Serving, ServingArgs, dsn, fqdn_of


def main() -> None:
    cfg = stack_config.load()
    base, names, tags, loc = cfg.base_name, cfg.names, cfg.tags, cfg.location
    tenant_id = authorization.get_client_config_output().tenant_id

    group = resources.ResourceGroup(base, resource_group_name=f"{base}-rg", location=loc, tags=tags)
    rg = group.name
    vault_policy = VaultPolicy(tenant_id, cfg.soft_delete_days, cfg.key_vault_purge_protection)

    logs = LogWorkspace(f"{base}-logs", LogWorkspaceArgs(rg, loc, tags, f"{base}-logs", cfg.log_retention_days))
    lake = Lake(
        f"{base}-lake",
        LakeArgs(rg, loc, tags, names.lake_account, cfg.storage_sku, cfg.raw_cool_after_days, cfg.soft_delete_days),
    )
    secrets = Secrets(
        f"{base}-secrets",
        SecretsArgs(
            rg, loc, tags, names.key_vault, vault_policy,
            market_api_key=cfg.market_api_key,
            store_postgres_password=cfg.postgres_password_auth,
            postgres_admin_password=cfg.postgres_admin_password,
        ),
    )  # fmt: skip
    eventing = Eventing(
        f"{base}-events",
        EventingArgs(
            rg, loc, tags, names.event_hubs_namespace,
            lake_account_id=lake.account_id,
            raw_container_name="raw",
            raw_container_id=lake.containers["raw"].id,
            partitions=cfg.quotes_partitions,
            retention_days=cfg.quotes_retention_days,
            capacity=cfg.event_hubs_capacity,
            capture_interval_seconds=cfg.capture_interval_seconds,
        ),
    )  # fmt: skip
    ingestion = Ingestion(
        f"{base}-ingest",
        IngestionArgs(
            rg, loc, tags, names.function_app, names.function_storage_account,
            log_workspace_id=logs.workspace_id,
            environment=cfg.environment,
            lake_account_name=lake.account_name,
            raw_container_id=lake.containers["raw"].id,
            event_hub_namespace_fqdn=eventing.fully_qualified_namespace,
            event_hub_name=eventing.hub_name,
            event_hub_id=eventing.hub_id,
            vault_id=secrets.vault_id,
            market_api_key_uri=secrets.market_api_key_uri,
            market_provider=cfg.market_provider,
            symbols=cfg.symbols,
            ingest_daily_schedule=cfg.ingest_daily_schedule,
            poll_quotes_schedule=cfg.poll_quotes_schedule,
            keys_vault_name=names.function_keys_vault,
            vault_policy=vault_policy,
            plan_sku=cfg.function_plan_sku,
        ),
    )  # fmt: skip
    serving_name = names.postgres_server
    # The access connector's name is its Microsoft Entra principal name on PostgreSQL.
    connector_name = f"{names.databricks_workspace}-connector"
    compute = Compute(
        f"{base}-compute",
        ComputeArgs(
            rg, loc, tags, names.databricks_workspace, lake.account_id,
            pg_dsn=dsn(serving_name, ADMIN_LOGIN, secrets.postgres_admin_password)
            if cfg.postgres_password_auth else dsn(serving_name, connector_name),
            lake_account_name=lake.account_name,
            catalog_name=names.catalog,
            insights_connection_string=ingestion.insights.connection_string,
            public_network_access=cfg.databricks_public_network_access,
        ),
    )  # fmt: skip
    # Values `adf/` receives at deploy time (linked-service parameter defaults, `${name}`
    # placeholders and factory global parameters): see infra/orchestration.py.
    deployment_values = {
        "environment": cfg.environment,
        "resourceGroupName": rg,
        "storageAccountName": lake.account_name,
        "accountUrl": lake.dfs_endpoint,
        "lakeRoot": lake.account_name.apply(lambda a: f"abfss://{{container}}@{a}.dfs.core.windows.net"),
        "vaultUrl": secrets.vault_uri,
        "functionAppUrl": ingestion.app_url,
        "functionKeysVaultUrl": ingestion.keys_vault_uri,
        "workspaceUrl": compute.workspace_url,
        "workspaceResourceId": compute.workspace_id,
        "sparkVersion": SPARK_VERSION_KEY,
        "rawVolume": compute.raw_volume_path,
        "pgAuth": "dsn" if cfg.postgres_password_auth else "entra",
        "pgServiceCredential": compute.service_credential_name,
        "notebookRoot": NOTEBOOK_ROOT,
        "wheelUri": wheel_uri(),
        "eventHubNamespace": eventing.fully_qualified_namespace,
        "eventHubName": eventing.hub_name,
        "postgresHost": fqdn_of(serving_name),
        "postgresDatabase": DATABASE,
        "symbols": ",".join(cfg.symbols),
    }
    orchestration = Orchestration(
        f"{base}-adf",
        OrchestrationArgs(
            rg, loc, tags, names.factory,
            deployment_values=deployment_values,
            jobs_identity_id=compute.jobs_identity_id,
            vault_id=secrets.vault_id,
            function_keys_vault_id=ingestion.keys_vault_id,
            start_triggers=cfg.start_triggers,
        ),
    )  # fmt: skip
    serving = Serving(
        f"{base}-serving",
        ServingArgs(
            rg, loc, tags, serving_name, tenant_id,
            sku_name=cfg.postgres_sku_name,
            sku_tier=cfg.postgres_sku_tier,
            storage_gb=cfg.postgres_storage_gb,
            backup_retention_days=cfg.postgres_backup_retention_days,
            high_availability=cfg.postgres_high_availability,
            password_auth=cfg.postgres_password_auth,
            admin_password=secrets.postgres_admin_password,
            allow_azure_services=cfg.postgres_allow_azure_services,
            firewall_rules=cfg.postgres_firewall_rules,
            # Only the jobs connect (through the connector's service credential); nothing else is admin.
            entra_admins=(EntraPrincipal("databricks", connector_name, compute.access_connector_principal_id),),
        ),
    )  # fmt: skip
    Monitoring(
        f"{base}-monitoring",
        MonitoringArgs(
            rg, loc, tags, base,
            workspace_id=logs.workspace_id,
            alert_emails=cfg.alert_emails,
            diagnostic_targets=(
                DiagnosticTarget("factory", "data_factory", orchestration.factory_id),
                DiagnosticTarget("function-app", "function_app", ingestion.app_id),
                DiagnosticTarget("lake", "storage_account", lake.account_id),
                DiagnosticTarget("lake-blob", "storage_blob", lake.blob_service_id),
                DiagnosticTarget("event-hubs", "event_hubs", eventing.namespace_id),
                DiagnosticTarget("key-vault", "key_vault", secrets.vault_id),
                DiagnosticTarget("function-keys", "key_vault", ingestion.keys_vault_id),
                DiagnosticTarget("postgres", "postgres", serving.server_id),
                DiagnosticTarget("databricks", "databricks", compute.workspace_id),
            ),
            metric_scopes={
                "data_factory": orchestration.factory_id,
                "function_app": ingestion.app_id,
                "app_insights": ingestion.insights_id,
                "event_hubs": eventing.namespace_id,
                "postgres": serving.server_id,
            },
        ),
    )  # fmt: skip

    pulumi.export("resource_group_name", rg)
    pulumi.export("lake_account_name", lake.account_name)
    pulumi.export("key_vault_uri", secrets.vault_uri)
    pulumi.export("function_app_name", ingestion.app_name)
    pulumi.export("factory_name", orchestration.factory_name)
    pulumi.export("triggers_to_start", orchestration.triggers_to_start)
    pulumi.export("databricks_workspace_url", compute.workspace_url)
    pulumi.export("postgres_fqdn", serving.fqdn)
    pulumi.export("postgres_database", DATABASE)


if __name__ == "__main__":
    main()
