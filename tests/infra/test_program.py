"""The whole program under the dev and the prod configuration (Azure mocked, everything else real)."""

from __future__ import annotations

import re

import yaml

from infra import preview, roles
from lakehouse.alert_rules import ALERT_RULES, MetricCondition

COMPONENTS = {
    "lakehouse:index:Lake", "lakehouse:index:Secrets", "lakehouse:index:Eventing", "lakehouse:index:Ingestion",
    "lakehouse:index:Compute", "lakehouse:index:Orchestration", "lakehouse:index:Serving",
    "lakehouse:index:LogWorkspace", "lakehouse:index:Monitoring",
}  # fmt: skip
# Resource kinds whose logs and metrics must reach Log Analytics (the list).
WATCHED = {
    "azure-native:datafactory:Factory", "azure-native:web:WebApp", "azure-native:storage:StorageAccount",
    "azure-native:eventhub:Namespace", "azure-native:keyvault:Vault", "azure-native:dbforpostgresql:Server",
    "azure-native:databricks:Workspace",
}  # fmt: skip
METRIC_TARGET_TYPES = {
    "data_factory": "azure-native:datafactory:Factory",
    "function_app": "azure-native:web:WebApp",
    "app_insights": "azure-native:applicationinsights:Component",
    "event_hubs": "azure-native:eventhub:Namespace",
    "postgres": "azure-native:dbforpostgresql:Server",
}


def config(stack: str) -> dict:
    return yaml.safe_load((preview.REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def grants_of(run: preview.ProgramRun, principal: str) -> set[tuple[str, str]]:
    return {
        (roles.ROLE_NAMES[g.inputs["roleDefinitionId"].rsplit("/", 1)[1]], run.by_id(g.inputs["scope"]).name)
        for g in run.of_type("azure-native:authorization:RoleAssignment")
        if g.inputs["principalId"] == principal
    }


def the(run: preview.ProgramRun, type_: str, **inputs) -> preview.Registration:
    matches = [r for r in run.of_type(type_) if all(r.inputs.get(k) == v for k, v in inputs.items())]
    assert len(matches) == 1, f"{len(matches)} {type_} with {inputs}"
    return matches[0]


def test_every_concern_is_one_component_and_every_resource_belongs_to_one(stack_run):
    components = [r for r in stack_run.resources if not r.custom]
    assert sorted(c.type for c in components) == sorted(COMPONENTS)
    component_urns = {c.urn for c in components}
    loose = [r.name for r in stack_run.resources if r.custom and r.parent not in component_urns
             and r.type != "azure-native:resources:ResourceGroup"]  # fmt: skip
    assert loose == []


def test_lake_has_hns_and_tls12(stack_run):
    env = config(stack_run.stack)["lakehouse:environment"]
    lake = the(stack_run, "azure-native:storage:StorageAccount", isHnsEnabled=True)
    assert re.fullmatch(rf"mktlh{env}lake[0-9a-f]{{6}}", lake.inputs["accountName"])
    assert lake.inputs["minimumTlsVersion"] == "TLS1_2"
    assert lake.inputs["sku"]["name"] == config(stack_run.stack)["lakehouse:storageSku"]


def test_function_app_identity_has_exactly_its_grants(stack_run):
    app = stack_run.of_type("azure-native:web:WebApp")[0]
    own_storage = the(stack_run, "azure-native:storage:StorageAccount", isHnsEnabled=False).name
    env = stack_run.stack
    assert grants_of(stack_run, app.outputs["identity"]["principalId"]) == {
        ("Storage Blob Data Contributor", f"mktlh-{env}-lake-raw"),
        ("Azure Event Hubs Data Sender", f"mktlh-{env}-events-market-quotes"),
        ("Key Vault Secrets User", f"mktlh-{env}-secrets-vault"),
        ("Key Vault Secrets Officer", f"mktlh-{env}-ingest-keys-vault"),
        ("Storage Blob Data Owner", own_storage),
        ("Storage Queue Data Contributor", own_storage),
        ("Storage Table Data Contributor", own_storage),
    }


def test_factory_identity_has_exactly_its_grants(stack_run):
    factory = stack_run.of_type("azure-native:datafactory:Factory")[0]
    env = stack_run.stack
    assert grants_of(stack_run, factory.outputs["identity"]["principalId"]) == {
        ("Key Vault Secrets User", f"mktlh-{env}-secrets-vault"),
        ("Key Vault Secrets User", f"mktlh-{env}-ingest-keys-vault"),
    }


def test_the_jobs_identity_only_drives_the_databricks_workspace(stack_run):
    env = stack_run.stack
    (jobs,) = stack_run.of_type("azure-native:managedidentity:UserAssignedIdentity")
    assert grants_of(stack_run, jobs.outputs["principalId"]) == {("Contributor", f"mktlh-{env}-compute-workspace")}


def test_databricks_and_capture_identities_have_exactly_their_grants(stack_run):
    env = stack_run.stack
    connector = stack_run.of_type("azure-native:databricks:AccessConnector")[0]
    namespace = stack_run.of_type("azure-native:eventhub:Namespace")[0]
    assert grants_of(stack_run, connector.outputs["identity"]["principalId"]) == {
        ("Storage Blob Data Contributor", f"mktlh-{env}-lake-account")
    }
    assert grants_of(stack_run, namespace.outputs["identity"]["principalId"]) == {
        ("Storage Blob Data Contributor", f"mktlh-{env}-lake-raw")
    }


def test_every_role_assignment_belongs_to_a_managed_identity_of_this_stack(stack_run):
    identities = [r.outputs["identity"] for r in stack_run.resources if isinstance(r.outputs.get("identity"), dict)]
    principals = {i["principalId"] for i in identities if "principalId" in i}
    user_assigned = stack_run.of_type("azure-native:managedidentity:UserAssignedIdentity")
    principals |= {r.outputs["principalId"] for r in user_assigned}
    for grant in stack_run.of_type("azure-native:authorization:RoleAssignment"):
        assert grant.inputs["principalId"] in principals, grant.name


def test_capture_lands_in_raw_with_the_stack_partitions(stack_run):
    cfg = config(stack_run.stack)
    hub = stack_run.of_type("azure-native:eventhub:EventHub")[0]
    lake = the(stack_run, "azure-native:storage:StorageAccount", isHnsEnabled=True)
    assert hub.inputs["partitionCount"] == cfg["lakehouse:quotesPartitions"]
    destination = hub.inputs["captureDescription"]["destination"]
    assert destination["storageAccountResourceId"] == lake.id
    assert destination["blobContainer"] == "raw"
    assert destination["archiveNameFormat"].startswith("eventhubs/{Namespace}/{EventHub}/{PartitionId}/")


def test_every_watched_resource_sends_logs_and_metrics_to_the_workspace(stack_run):
    workspace = stack_run.of_type("azure-native:operationalinsights:Workspace")[0]
    settings = {d.inputs["resourceUri"]: d for d in stack_run.of_type("azure-native:monitor:DiagnosticSetting")}
    watched = [r for r in stack_run.resources if r.type in WATCHED]
    assert {r.type for r in watched} == WATCHED
    for resource in watched:
        if resource.type == "azure-native:storage:StorageAccount" and not resource.inputs["isHnsEnabled"]:
            continue  # the Function host's own storage: internal state, not platform data
        setting = settings.get(resource.id)
        assert setting is not None, f"no diagnostic setting for {resource.type} {resource.name}"
        assert setting.inputs["workspaceId"] == workspace.id
        assert setting.inputs["logs"] or setting.inputs["metrics"]
    lake = the(stack_run, "azure-native:storage:StorageAccount", isHnsEnabled=True)
    assert settings[f"{lake.id}/blobServices/default"].inputs["logs"] == [{"categoryGroup": "allLogs", "enabled": True}]


def test_every_alert_rule_is_deployed_once_on_the_right_resource(stack_run):
    base = f"mktlh-{stack_run.stack}"
    alerts = {a.inputs["ruleName"]: a for t in ("MetricAlert", "ScheduledQueryRule")
              for a in stack_run.of_type(f"azure-native:monitor:{t}")}  # fmt: skip
    assert set(alerts) == {f"{base}-{rule.name}" for rule in ALERT_RULES}
    for rule in ALERT_RULES:
        (scope,) = alerts[f"{base}-{rule.name}"].inputs["scopes"]
        expected = METRIC_TARGET_TYPES[rule.azure.target] if isinstance(rule.azure, MetricCondition) else (
            "azure-native:operationalinsights:Workspace")  # fmt: skip
        assert stack_run.by_id(scope).type == expected, rule.name
    group = stack_run.of_type("azure-native:monitor:ActionGroup")[0]
    emails = [r["emailAddress"] for r in group.inputs["emailReceivers"]]
    assert emails == config(stack_run.stack)["lakehouse:alertEmails"]


def test_every_taggable_resource_carries_the_stack_tags(stack_run):
    cfg = config(stack_run.stack)
    expected = {
        "environment": cfg["lakehouse:environment"], "system": "market-lakehouse", "owner": cfg["lakehouse:owner"],
    }  # fmt: skip
    tagged = [r for r in stack_run.resources if "tags" in r.inputs]
    assert len(tagged) >= 20
    for resource in tagged:
        assert resource.inputs["tags"] == expected, resource.name


def test_purge_protection_and_sizes_follow_the_stack_config(stack_run):
    cfg = config(stack_run.stack)
    vault = stack_run.of_type("azure-native:keyvault:Vault")[0]
    assert vault.inputs["properties"].get("enablePurgeProtection", False) == cfg["lakehouse:keyVaultPurgeProtection"]
    server = stack_run.of_type("azure-native:dbforpostgresql:Server")[0]
    assert server.inputs["sku"] == {"name": cfg["lakehouse:postgresSkuName"], "tier": cfg["lakehouse:postgresSkuTier"]}
    assert server.inputs["storage"]["storageSizeGB"] == cfg["lakehouse:postgresStorageGb"]
    password_auth = "Enabled" if cfg["lakehouse:postgresPasswordAuth"] else "Disabled"
    assert server.inputs["authConfig"]["passwordAuth"] == password_auth
    plan = stack_run.of_type("azure-native:web:AppServicePlan")[0]
    assert plan.inputs["sku"] == {"name": cfg["lakehouse:functionPlanSku"]}


def test_triggers_to_start_come_from_the_stack_config(stack_run):
    assert stack_run.outputs["triggers_to_start"] == sorted(config(stack_run.stack)["lakehouse:startTriggers"])


def test_stack_outputs_name_what_the_delivery_workflow_needs(stack_run):
    outputs = stack_run.outputs
    assert outputs["factory_name"] == stack_run.of_type("azure-native:datafactory:Factory")[0].inputs["factoryName"]
    assert outputs["resource_group_name"] == f"mktlh-{stack_run.stack}-rg"
    assert outputs["function_app_name"] == stack_run.of_type("azure-native:web:WebApp")[0].inputs["name"]


def _shape(run: preview.ProgramRun) -> set[tuple[str, str]]:
    return {(r.type, re.sub(rf"\b{run.stack}\b", "ENV", r.name)) for r in run.resources}


def test_dev_and_prod_differ_only_where_their_config_differs(dev_run, prod_run):
    """Same program, different config: the only structural differences are password auth (dev) vs
    Entra only, and dev's "allow Azure services" firewall rule."""
    only_dev = _shape(dev_run) - _shape(prod_run)
    only_prod = _shape(prod_run) - _shape(dev_run)
    assert config("dev")["lakehouse:postgresPasswordAuth"] and not config("prod")["lakehouse:postgresPasswordAuth"]
    assert config("dev")["lakehouse:postgresAllowAzureServices"]
    assert not config("prod")["lakehouse:postgresAllowAzureServices"]
    assert only_dev == {
        ("random:index/randomPassword:RandomPassword", "mktlh-ENV-secrets-postgres-password"),
        ("azure-native:keyvault:Secret", "mktlh-ENV-secrets-postgres-admin-password"),
        ("azure-native:dbforpostgresql:FirewallRule",
         "mktlh-ENV-serving-fw-allowallazureservicesandresourceswithinazureips"),
    }
    assert only_prod == set()
    dev_keys, prod_keys = set(config("dev")), set(config("prod"))
    assert dev_keys == prod_keys, "both stacks set the same keys, so every difference is visible in config"
