"""The ADF JSON in adf/ is deployable and consistent.

Every file is read into the azure-mgmt-datafactory models (what Pulumi deploys) and every key
must be a property the model knows: a misspelt or misplaced property would otherwise be
dropped silently by the service. References between files (pipelines, notebooks, functions,
linked services, parameters) are checked against their targets.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import azure.mgmt.datafactory.models as models
import pytest
from azure.mgmt.datafactory._utils.model_base import Model

from local.adf.factory import ADF_ROOT, Factory, local_deployment_values, walk_activities
from local.dotnet_runtime import ensure_dotnet
from local.notebook_runner import NOTEBOOKS_DIR, notebook_file

REPO = ADF_ROOT.parent
FILES = sorted(ADF_ROOT.glob("*/*.json"))
RESOURCE = {"pipeline": models.PipelineResource, "trigger": models.TriggerResource,
            "linkedService": models.LinkedServiceResource}  # fmt: skip
PREFIX = {"pipeline": "pl_", "trigger": "tr_", "linkedService": "ls_", "dataset": "ds_"}


def _concrete(cls: type, data: Any) -> type:
    """The most specific model for `data`, following the `type` discriminator through the
    intermediate mappings (Activity -> ExecutionActivity -> DatabricksNotebookActivity)."""
    if not isinstance(data, dict) or not hasattr(cls, "__mapping__"):
        return cls
    wanted = data.get("type")
    queue = [cls]
    while queue:
        current = queue.pop(0)
        mapping = getattr(current, "__mapping__", {})
        if wanted in mapping:
            return _concrete(mapping[wanted], data) if mapping[wanted] is not current else current
        queue.extend(m for m in mapping.values() if m is not current)
    return cls


def unknown_properties(cls: type, data: Any, path: str) -> list[str]:
    """Keys of `data` that model `cls` (resolved polymorphically) does not declare, recursively."""
    cls = _concrete(cls, data)
    obj = cls(data)
    fields = {rf._rest_name: attr for attr, rf in cls._attr_to_rest_field.items()}
    problems = []
    for key, raw in data.items():
        if key not in fields:
            problems.append(f"{path}.{key} (not a property of {cls.__name__})")
            continue
        value = getattr(obj, fields[key])
        where = f"{path}.{key}"
        if isinstance(value, Model):
            problems += unknown_properties(type(value), raw, where)
        elif isinstance(value, list):
            for i, (item, raw_item) in enumerate(zip(value, raw, strict=True)):
                if isinstance(item, Model):
                    problems += unknown_properties(type(item), raw_item, f"{where}[{i}]")
        elif isinstance(value, dict) and isinstance(raw, dict):
            for k, item in value.items():
                if isinstance(item, Model):
                    problems += unknown_properties(type(item), raw[k], f"{where}.{k}")
    return problems


@pytest.fixture(scope="module")
def factory() -> Factory:
    return Factory.load(ADF_ROOT)


def test_the_factory_has_the_pipelines_triggers_and_linked_services_of_the_design(factory):
    assert sorted(factory.pipelines) == [
        "pl_backfill", "pl_bronze_to_silver", "pl_gold_to_postgres", "pl_ingest_market_data",
        "pl_lakehouse_daily", "pl_maintenance", "pl_raw_to_bronze", "pl_silver_to_gold",
    ]  # fmt: skip
    assert sorted(factory.triggers) == ["tr_daily", "tr_maintenance_weekly", "tr_reprocess_window"]
    assert sorted(factory.linked_services) == ["ls_databricks", "ls_function", "ls_keyvault"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_file_deserializes_into_the_sdk_models_with_no_property_dropped(path):
    kind = path.parent.name
    data = json.loads(path.read_text())
    assert path.stem.startswith(PREFIX[kind]), f"{path.name}: {kind} names start with {PREFIX[kind]}"
    resource = RESOURCE[kind](data)
    assert resource.name == path.stem
    assert unknown_properties(RESOURCE[kind], data, path.stem) == []


def test_the_strict_check_catches_a_misspelt_property():
    """Guards the guard: a typo must be reported, not silently kept by the dict-backed model."""
    data = json.loads((ADF_ROOT / "pipeline" / "pl_raw_to_bronze.json").read_text())
    data["properties"]["activities"][0]["typeProperties"]["notebookPth"] = "/x"
    data["properties"]["activities"][0]["polcy"] = {}
    backfill = json.loads((ADF_ROOT / "pipeline" / "pl_backfill.json").read_text())
    loop = next(a for a in backfill["properties"]["activities"] if a["type"] == "ForEach")
    loop["typeProperties"]["activities"][0]["typeProperties"]["waitOnCompletio"] = True
    problems = unknown_properties(models.PipelineResource, data, "pl_raw_to_bronze")
    problems += unknown_properties(models.PipelineResource, backfill, "pl_backfill")
    assert len(problems) == 3
    assert any("notebookPth" in p and "DatabricksNotebookActivityTypeProperties" in p for p in problems)
    assert any("waitOnCompletio" in p and "ExecutePipelineActivityTypeProperties" in p for p in problems)


def test_every_pipeline_loads_in_data_factory_testing_framework():
    ensure_dotnet()
    from data_factory_testing_framework import TestFramework, TestFrameworkType

    framework = TestFramework(TestFrameworkType.DataFactory, root_folder_path=str(ADF_ROOT))
    for path in sorted((ADF_ROOT / "pipeline").glob("*.json")):
        pipeline = framework.get_pipeline_by_name(path.stem)
        assert [a.name for a in pipeline.activities] == [
            a["name"] for a in json.loads(path.read_text())["properties"]["activities"]
        ]


def test_microsofts_evaluator_and_the_runner_agree_on_a_layer_pipelines_notebook_parameters():
    """The framework's own pipeline evaluation gives the same baseParameters the runner passes."""
    ensure_dotnet()
    from data_factory_testing_framework import TestFramework, TestFrameworkType
    from data_factory_testing_framework.state import RunParameter, RunParameterType

    from local.adf.context import RunContext
    from local.adf.runner import run_pipeline

    framework = TestFramework(TestFrameworkType.DataFactory, root_folder_path=str(ADF_ROOT))
    params = {"startDate": "2024-03-01", "endDate": "2024-03-05", "runId": "run-42", "fullRefresh": True}
    activity = next(
        iter(
            framework.evaluate_pipeline(
                framework.get_pipeline_by_name("pl_raw_to_bronze"),
                [RunParameter(RunParameterType.Pipeline, k, v) for k, v in params.items()],
            )
        )
    )
    theirs = {k: v.result for k, v in activity.type_properties["baseParameters"].items()}
    seen = []
    run_pipeline("pl_raw_to_bronze", params, RunContext(notebook_executor=lambda c: seen.append(c) or "{}"))
    assert (
        seen[0].base_parameters
        == theirs
        == {
            "start_date": "2024-03-01",
            "end_date": "2024-03-05",
            "run_id": "run-42",
            "full_refresh": "true",
        }
    )


def _activities(factory: Factory):
    for name, doc in factory.pipelines.items():
        for activity, _ in walk_activities(doc["properties"]["activities"]):
            yield name, activity


def test_every_notebook_an_activity_names_exists_in_spark_jobs_notebooks(factory):
    paths = {a["typeProperties"]["notebookPath"] for _, a in _activities(factory) if a["type"] == "DatabricksNotebook"}
    assert {p.rsplit("/", 1)[-1] for p in paths} == {
        "raw_to_bronze",
        "bronze_to_silver",
        "silver_to_gold",
        "gold_to_postgres",
        "maintenance",
    }
    missing = []
    for p in sorted(paths):
        try:
            notebook_file(p, NOTEBOOKS_DIR)
        except Exception as exc:
            missing.append(str(exc))
    assert missing == []


def test_every_function_an_activity_calls_exists_in_the_function_app(factory):
    from local import function_host

    app_functions = set(function_host.functions())
    assert {"ingest", "ingest_daily", "poll_quotes"} <= app_functions
    called = {
        a["typeProperties"]["functionName"] for _, a in _activities(factory) if a["type"] == "AzureFunctionActivity"
    }
    assert called == {"ingest"}
    assert called <= app_functions


def test_execute_pipeline_parameters_match_the_child_declaration(factory):
    problems = []
    for parent, activity in _activities(factory):
        if activity["type"] != "ExecutePipeline":
            continue
        child = activity["typeProperties"]["pipeline"]["referenceName"]
        declared = factory.pipeline(child)["properties"].get("parameters", {})
        passed = set(activity["typeProperties"].get("parameters", {}))
        required = {n for n, spec in declared.items() if "defaultValue" not in spec}
        if passed - set(declared):
            problems.append(f"{parent}/{activity['name']}: {sorted(passed - set(declared))} not declared by {child}")
        if required - passed:
            problems.append(f"{parent}/{activity['name']}: {child} requires {sorted(required - passed)}")
        if activity["typeProperties"].get("waitOnCompletion") is not True:
            problems.append(f"{parent}/{activity['name']}: must wait on completion")
    assert problems == []


def test_triggers_start_existing_pipelines_with_declared_parameters(factory):
    for name, doc in factory.triggers.items():
        props = doc["properties"]
        references = props.get("pipelines") or [props["pipeline"]]
        for ref in references:
            declared = factory.pipeline(ref["pipelineReference"]["referenceName"])["properties"]["parameters"]
            assert set(ref.get("parameters", {})) <= set(declared), name


def test_the_daily_trigger_runs_on_weekdays_after_the_us_close_in_utc(factory):
    recurrence = factory.trigger("tr_daily")["properties"]["typeProperties"]["recurrence"]
    assert recurrence["timeZone"] == "UTC"
    schedule = recurrence["schedule"]
    assert schedule["weekDays"] == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    # 16:00 America/New_York is 21:00 UTC in winter (EST) and 20:00 UTC in summer (EDT)
    assert all(h * 60 + m > 21 * 60 for h in schedule["hours"] for m in schedule["minutes"])


def test_the_reprocessing_trigger_is_a_stopped_daily_tumbling_window_with_retries(factory):
    props = factory.trigger("tr_reprocess_window")["properties"]
    assert props["type"] == "TumblingWindowTrigger"
    assert props["runtimeState"] == "Stopped"
    tp = props["typeProperties"]
    assert (tp["frequency"], tp["interval"], tp["maxConcurrency"]) == ("Hour", 24, 1)
    assert tp["retryPolicy"]["count"] >= 1


def test_linked_services_use_managed_identity_and_key_vault_and_no_environment_values(factory):
    text = "\n".join(p.read_text() for p in FILES)
    assert not re.search(r"(windows\.net|azure\.net|azuredatabricks\.net|vault\.azure|https?://)", text)
    assert not re.search(r"(?i)(accountKey|connectionString|password|\"accessToken\")", text)
    for name, doc in factory.linked_services.items():
        for pname, spec in doc["properties"].get("parameters", {}).items():
            assert "defaultValue" not in spec, f"{name}.{pname}: the value is set per environment at deploy time"
    databricks = factory.linked_services["ls_databricks"]["properties"]["typeProperties"]
    assert databricks["authentication"] == "MSI"
    assert databricks["newClusterSparkEnvVars"]["LAKEHOUSE_PG_DSN"] == "{{secrets/lakehouse/pg-dsn}}"
    key = factory.linked_services["ls_function"]["properties"]["typeProperties"]["functionKey"]
    assert (key["type"], key["store"]["referenceName"]) == ("AzureKeyVaultSecret", "ls_keyvault")


def test_every_referenced_linked_service_exists(factory):
    referenced = {a["linkedServiceName"]["referenceName"] for _, a in _activities(factory) if "linkedServiceName" in a}
    assert referenced == {"ls_databricks", "ls_function"}
    assert referenced <= set(factory.linked_services)


def _raw_notebook_activities():
    for path in sorted((ADF_ROOT / "pipeline").glob("*.json")):
        for activity, _ in walk_activities(json.loads(path.read_text())["properties"]["activities"]):
            if activity["type"] == "DatabricksNotebook":
                yield path.stem, activity


def test_notebook_and_wheel_paths_are_the_deployments_values_never_literals():
    """The deployment sets where notebooks and the wheel are; a literal path in adf/ would drift."""
    activities = list(_raw_notebook_activities())
    assert activities
    for pipeline, activity in activities:
        props = activity["typeProperties"]
        assert props["notebookPath"].startswith("${notebookRoot}/"), pipeline
        assert props["libraries"] == [{"whl": "${wheelUri}"}], pipeline
    text = "\n".join(p.read_text() for p in FILES)
    assert "dbfs:" not in text.lower(), "libraries in DBFS root are disabled from Databricks Runtime 15"


def test_locally_the_activities_install_the_wheel_of_this_version_of_the_package(factory):
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    wheels = {lib["whl"] for _, a in _activities(factory) if a["type"] == "DatabricksNotebook"
              for lib in a["typeProperties"]["libraries"]}  # fmt: skip
    assert wheels == {str(REPO / "build" / "dist" / f"market_lakehouse-{version}-py3-none-any.whl")}
    assert local_deployment_values()["wheelUri"] in wheels


def test_an_unknown_deployment_value_in_a_pipeline_fails_the_local_load(tmp_path):
    from local.adf.records import AdfDefinitionError

    (tmp_path / "pipeline").mkdir()
    doc = {"name": "pl_x", "properties": {"activities": [
        {"name": "Run", "type": "DatabricksNotebook", "typeProperties": {"notebookPath": "${notebookRot}/x"}},
    ]}}  # fmt: skip
    (tmp_path / "pipeline" / "pl_x.json").write_text(json.dumps(doc))
    with pytest.raises(AdfDefinitionError, match="notebookRot"):
        Factory.load(tmp_path)


def test_job_clusters_run_the_chosen_runtime_in_a_unity_catalog_access_mode():
    ls = json.loads((ADF_ROOT / "linkedService" / "ls_databricks.json").read_text())["properties"]
    tp = ls["typeProperties"]
    assert tp["dataSecurityMode"] == "SINGLE_USER"
    assert tp["newClusterVersion"] == "@{linkedService().sparkVersion}" and "sparkVersion" in ls["parameters"]
    assert tp["newClusterSparkConf"]["spark.sql.ansi.enabled"] == "true"
    assert not any(k.startswith("fs.azure.account") for k in tp["newClusterSparkConf"]), "Unity Catalog, not keys"


def test_job_clusters_get_every_setting_the_jobs_need_under_the_names_the_code_reads():
    from lakehouse.settings import Settings

    env = json.loads((ADF_ROOT / "linkedService" / "ls_databricks.json").read_text())["properties"][
        "typeProperties"]["newClusterSparkEnvVars"]  # fmt: skip
    known = {f"LAKEHOUSE_{name.upper()}" for name in Settings.model_fields}
    lakehouse = {k for k in env if k.startswith("LAKEHOUSE_")}
    assert lakehouse <= known, sorted(lakehouse - known)
    assert {
        "LAKEHOUSE_ENVIRONMENT", "LAKEHOUSE_LAKE_ROOT", "LAKEHOUSE_RAW_VOLUME", "LAKEHOUSE_PG_DSN",
        "LAKEHOUSE_PG_AUTH", "LAKEHOUSE_PG_SERVICE_CREDENTIAL",
    } <= lakehouse  # fmt: skip
    assert env["LAKEHOUSE_RAW_VOLUME"] == "@{linkedService().rawVolume}"
    assert env["LAKEHOUSE_PG_AUTH"] == "@{linkedService().pgAuth}"
    assert env["LAKEHOUSE_PG_SERVICE_CREDENTIAL"] == "@{linkedService().pgServiceCredential}"


def test_execution_activities_have_timeouts_and_retries(factory):
    for pipeline, activity in _activities(factory):
        if activity["type"] in ("DatabricksNotebook", "AzureFunctionActivity"):
            policy = activity["policy"]
            assert policy["retry"] >= 1, f"{pipeline}/{activity['name']}"
            assert policy["timeout"] != "0.12:00:00", f"{pipeline}/{activity['name']}: set an explicit timeout"


def test_activity_references_in_expressions_name_activities_of_the_pipeline(factory):
    problems = []
    for name, doc in factory.pipelines.items():
        names = {a["name"] for a, _ in walk_activities(doc["properties"]["activities"])}
        for ref in re.findall(r"activity\('([^']+)'\)", json.dumps(doc)):
            if ref not in names:
                problems.append(f"{name}: activity('{ref}')")
    assert problems == []


def test_adf_folder_has_only_the_git_integration_layout():
    assert {p.name for p in ADF_ROOT.iterdir()} <= {"pipeline", "trigger", "linkedService", "dataset"}
    assert not list(Path(ADF_ROOT).glob("*.json"))
