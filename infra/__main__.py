"""The Pulumi program: read the stack's configuration once and compose the components.

Pulumi runs this directory as the program, with the directory itself first on ``sys.path``. The
components are imported as the ``infra`` package from the repository root instead (which also
makes ``lakehouse.alert_rules`` importable), so ``infra/secrets.py`` never shadows the standard
library's ``secrets``.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import pulumi  # noqa: E402
from pulumi_azure_native import authorization, resources  # noqa: E402

from infra import stack_config  # noqa: E402
from infra.compute import NOTEBOOK_ROOT, Compute, ComputeArgs, wheel_dbfs_uri  # noqa: E402
from infra.eventing import Eventing, EventingArgs  # noqa: E402
from infra.ingestion import FUNCTION_KEY_SECRET, Ingestion, IngestionArgs  # noqa: E402
from infra.lake import Lake, LakeArgs  # noqa: E402
from infra.monitoring import DiagnosticTarget, LogWorkspace, LogWorkspaceArgs, Monitoring, MonitoringArgs  # noqa: E402
from infra.orchestration import Orchestration, OrchestrationArgs  # noqa: E402
from infra.secrets import Secrets, SecretsArgs  # noqa: E402
from infra.serving import ADMIN_LOGIN, DATABASE, EntraPrincipal, Serving, ServingArgs, dsn, fqdn_of  # noqa: E402


def main() -> None:
    cfg = stack_config.load()
    base, compact, tags, loc = cfg.base_name, f"{cfg.name_prefix}{cfg.environment}", cfg.tags, cfg.location
    tenant_id = authorization.get_client_config_output().tenant_id

    group = resources.ResourceGroup(base, resource_group_name=f"{base}-rg", location=loc, tags=tags)
    rg = group.name

    logs = LogWorkspace(f"{base}-logs", LogWorkspaceArgs(rg, loc, f"{base}-logs", tags, cfg.log_retention_days))
    lake = Lake(
        f"{base}-lake",
        LakeArgs(rg, loc, f"{compact}lake", tags, cfg.storage_sku, cfg.raw_cool_after_days, cfg.soft_delete_days),
    )
    secrets = Secrets(
        f"{base}-secrets",
        SecretsArgs(
            rg, loc, f"{base}-kv", tenant_id, tags,
            market_api_key=cfg.market_api_key,
            purge_protection=cfg.key_vault_purge_protection,
            soft_delete_days=cfg.soft_delete_days,
            store_postgres_password=cfg.postgres_password_auth,
            postgres_admin_password=cfg.postgres_admin_password,
        ),
    )  # fmt: skip
    eventing = Eventing(
        f"{base}-events",
        EventingArgs(
            rg, loc, f"{base}-events", tags,
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
            rg, loc, f"{base}-ingest", f"{compact}func", tags,
            log_workspace_id=logs.workspace_id,
            environment=cfg.environment,
            lake_account_name=lake.account_name,
            raw_container_id=lake.containers["raw"].id,
            event_hub_namespace_fqdn=eventing.fully_qualified_namespace,
            event_hub_name=eventing.hub_name,
            event_hub_id=eventing.hub_id,
            vault_id=secrets.vault_id,
            vault_name=secrets.vault_name,
            market_api_key_uri=secrets.market_api_key_uri,
            market_provider=cfg.market_provider,
            symbols=cfg.symbols,
            ingest_daily_schedule=cfg.ingest_daily_schedule,
            poll_quotes_schedule=cfg.poll_quotes_schedule,
            plan_sku=cfg.function_plan_sku,
        ),
    )  # fmt: skip
    serving_name, connector_name = f"{base}-pg", f"{base}-dbw-connector"
    compute = Compute(
        f"{base}-compute",
        ComputeArgs(
            rg, loc, f"{base}-dbw", tags, lake.account_id,
            pg_dsn=dsn(serving_name, ADMIN_LOGIN, secrets.postgres_admin_password)
            if cfg.postgres_password_auth else dsn(serving_name, connector_name),
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
        "functionKeySecretName": FUNCTION_KEY_SECRET,
        "workspaceUrl": compute.workspace_url,
        "workspaceResourceId": compute.workspace_id,
        "notebookRoot": NOTEBOOK_ROOT,
        "wheelUri": wheel_dbfs_uri(),
        "eventHubNamespace": eventing.fully_qualified_namespace,
        "eventHubName": eventing.hub_name,
        "postgresHost": fqdn_of(serving_name),
        "postgresDatabase": DATABASE,
        "symbols": ",".join(cfg.symbols),
    }
    orchestration = Orchestration(
        f"{base}-adf",
        OrchestrationArgs(
            rg, loc, f"{base}-adf", tags,
            deployment_values=deployment_values,
            databricks_workspace_id=compute.workspace_id,
            vault_id=secrets.vault_id,
            lake_account_id=lake.account_id,
            start_triggers=cfg.start_triggers,
        ),
    )  # fmt: skip
    serving = Serving(
        f"{base}-serving",
        ServingArgs(
            rg, loc, serving_name, tenant_id, tags,
            sku_name=cfg.postgres_sku_name,
            sku_tier=cfg.postgres_sku_tier,
            storage_gb=cfg.postgres_storage_gb,
            backup_retention_days=cfg.postgres_backup_retention_days,
            high_availability=cfg.postgres_high_availability,
            password_auth=cfg.postgres_password_auth,
            admin_password=secrets.postgres_admin_password,
            allow_azure_services=cfg.postgres_allow_azure_services,
            firewall_rules=cfg.postgres_firewall_rules,
            entra_admins=(
                EntraPrincipal("factory", orchestration.factory_name, orchestration.principal_id),
                EntraPrincipal("databricks", connector_name, compute.access_connector_principal_id),
            ),
        ),
    )  # fmt: skip
    Monitoring(
        f"{base}-monitoring",
        MonitoringArgs(
            rg, loc, base, tags,
            workspace_id=logs.workspace_id,
            alert_emails=cfg.alert_emails,
            diagnostic_targets=(
                DiagnosticTarget("factory", "data_factory", orchestration.factory_id),
                DiagnosticTarget("function-app", "function_app", ingestion.app_id),
                DiagnosticTarget("lake", "storage_account", lake.account_id),
                DiagnosticTarget("lake-blob", "storage_blob", lake.blob_service_id),
                DiagnosticTarget("event-hubs", "event_hubs", eventing.namespace_id),
                DiagnosticTarget("key-vault", "key_vault", secrets.vault_id),
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
