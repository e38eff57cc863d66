"""Each publish-time rule refuses a broken copy of a real pipeline; the real adf/ passes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local.adf.validation import FactoryValidationError, Violation, check_factory, validate_factory

ADF = Path(__file__).resolve().parents[3] / "adf"


def _activity(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found = []

    def walk(activities):
        for a in activities:
            if a["name"] == name:
                found.append(a)
            props = a.get("typeProperties", {})
            for key in ("activities", "ifTrueActivities", "ifFalseActivities"):
                walk(props.get(key, []))

    walk(doc["properties"]["activities"])
    return found[0]


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    root = tmp_path / "adf"
    shutil.copytree(ADF, root)
    return root


def broken(root: Path, rel: str, change: Callable[[dict[str, Any]], None]) -> list[Violation]:
    path = root / rel
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=4))
    return validate_factory(root)


def only(violations: list[Violation], rule: str) -> Violation:
    assert [v.rule for v in violations] == [rule], [str(v) for v in violations]
    return violations[0]


def test_the_real_factory_passes_every_rule():
    assert validate_factory(ADF) == []
    check_factory(ADF)


def test_a_return_value_set_without_set_system_variable_is_refused(factory):
    def drop_flag(doc):
        del _activity(doc, "Return summary")["typeProperties"]["setSystemVariable"]

    v = only(broken(factory, "pipeline/pl_lakehouse_daily.json", drop_flag), "system-variable")
    assert (v.file, v.activity) == ("pipeline/pl_lakehouse_daily.json", "Return summary")
    assert "setSystemVariable" in v.message


def test_set_system_variable_on_a_user_variable_is_refused(factory):
    def flag_user_variable(doc):
        _activity(doc, "Resolve window start")["typeProperties"]["setSystemVariable"] = True

    v = only(broken(factory, "pipeline/pl_lakehouse_daily.json", flag_user_variable), "system-variable")
    assert v.activity == "Resolve window start"


def test_setting_an_undeclared_variable_is_refused(factory):
    def undeclare(doc):
        doc["properties"]["variables"].pop("chunks")

    violations = broken(factory, "pipeline/pl_backfill.json", undeclare)
    assert {(v.activity, v.rule) for v in violations} == {
        ("Plan chunks", "undeclared-variable"),  # the Set Variable
        ("Chunks in sequence", "undeclared-variable"),  # variables('chunks') reads
        ("Chunks in parallel", "undeclared-variable"),
    }
    assert all(v.file == "pipeline/pl_backfill.json" for v in violations)


def test_reading_an_undeclared_variable_is_refused(factory):
    def misspell(doc):
        check = _activity(doc, "Check window")["typeProperties"]["expression"]
        check["value"] = check["value"].replace("variables('windowEnd')", "variables('windowEnds')")

    v = only(broken(factory, "pipeline/pl_lakehouse_daily.json", misspell), "undeclared-variable")
    assert v.activity == "Check window" and "windowEnds" in v.message


def test_reading_an_undeclared_parameter_is_refused(factory):
    def misspell(doc):
        params = _activity(doc, "Run raw_to_bronze")["typeProperties"]["baseParameters"]
        params["run_id"]["value"] = "@pipeline().parameters.runID"

    v = only(broken(factory, "pipeline/pl_raw_to_bronze.json", misspell), "undeclared-parameter")
    assert (v.activity, "runID" in v.message) == ("Run raw_to_bronze", True)


def test_a_parameter_of_the_wrong_type_for_the_function_is_refused(factory):
    def stringly(doc):
        doc["properties"]["parameters"]["chunkDays"] = {"type": "String", "defaultValue": "92"}

    violations = broken(factory, "pipeline/pl_backfill.json", stringly)
    assert {v.rule for v in violations} == {"parameter-type"}
    assert {v.activity for v in violations} >= {"Plan chunks", "Run master for chunk"}
    assert any("range()" in v.message or "sub()" in v.message or "div()" in v.message for v in violations)


def test_a_default_of_the_wrong_type_is_refused(factory):
    def bad_default(doc):
        doc["properties"]["parameters"]["fullRefresh"]["defaultValue"] = "no"

    v = only(broken(factory, "pipeline/pl_backfill.json", bad_default), "parameter-type")
    assert v.activity is None and "fullRefresh" in v.message


def test_a_literal_parameter_value_of_the_wrong_type_is_refused(factory):
    def literal(doc):
        _activity(doc, "Load gold")["typeProperties"]["parameters"]["fullRefresh"] = "yes"

    v = only(broken(factory, "pipeline/pl_lakehouse_daily.json", literal), "parameter-type")
    assert v.activity == "Load gold" and "Bool" in v.message


def test_a_dependency_on_an_activity_outside_the_scope_is_refused(factory):
    def cross_scope(doc):
        inner = _activity(doc, "Run master for chunk")
        inner["dependsOn"] = [{"activity": "Plan chunks", "dependencyConditions": ["Succeeded"]}]

    v = only(broken(factory, "pipeline/pl_backfill.json", cross_scope), "dependency-scope")
    assert v.activity == "Run master for chunk" and "Plan chunks" in v.message


def test_a_dependency_on_a_missing_activity_is_refused(factory):
    def dangling(doc):
        _activity(doc, "Load silver")["dependsOn"][0]["activity"] = "Load brnze"

    violations = broken(factory, "pipeline/pl_lakehouse_daily.json", dangling)
    assert ("Load silver", "dependency-scope") in {(v.activity, v.rule) for v in violations}


def test_an_invalid_dependency_condition_is_refused(factory):
    def bad_condition(doc):
        _activity(doc, "Load silver")["dependsOn"][0]["dependencyConditions"] = ["Success"]

    v = only(broken(factory, "pipeline/pl_lakehouse_daily.json", bad_condition), "dependency-condition")
    assert v.activity == "Load silver" and "Success" in v.message


def test_a_dependency_cycle_is_refused(factory):
    def cycle(doc):
        _activity(doc, "Run raw_to_bronze")["dependsOn"] = [
            {"activity": "Return summary", "dependencyConditions": ["Succeeded"]}
        ]

    violations = broken(factory, "pipeline/pl_raw_to_bronze.json", cycle)
    assert {v.rule for v in violations} == {"dependency-scope"}
    assert "circular" in violations[0].message


def test_executing_a_missing_pipeline_is_refused(factory):
    def missing(doc):
        _activity(doc, "Load gold")["typeProperties"]["pipeline"]["referenceName"] = "pl_silver_to_goldd"

    violations = broken(factory, "pipeline/pl_lakehouse_daily.json", missing)
    assert ("Load gold", "missing-reference") in {(v.activity, v.rule) for v in violations}


def test_passing_an_undeclared_parameter_to_a_child_pipeline_is_refused(factory):
    def extra(doc):
        _activity(doc, "Load gold")["typeProperties"]["parameters"]["symbols"] = "AAPL"

    v = only(broken(factory, "pipeline/pl_lakehouse_daily.json", extra), "missing-reference")
    assert v.activity == "Load gold" and "symbols" in v.message


def test_a_missing_linked_service_is_refused(factory):
    def missing(doc):
        _activity(doc, "Run gold_to_postgres")["linkedServiceName"]["referenceName"] = "ls_databrick"

    v = only(broken(factory, "pipeline/pl_gold_to_postgres.json", missing), "missing-reference")
    assert v.activity == "Run gold_to_postgres" and "ls_databrick" in v.message


def test_a_missing_dataset_is_refused(factory):
    def lookup(doc):
        doc["properties"]["activities"].append(
            {
                "name": "Look up symbols",
                "type": "Lookup",
                "dependsOn": [],
                "typeProperties": {
                    "source": {"type": "AzureSqlSource"},
                    "dataset": {"referenceName": "ds_symbols", "type": "DatasetReference"},
                },
            }
        )

    v = only(broken(factory, "pipeline/pl_maintenance.json", lookup), "missing-reference")
    assert v.activity == "Look up symbols" and "ds_symbols" in v.message


def test_a_trigger_passing_an_undeclared_parameter_is_refused(factory):
    def extra(doc):
        doc["properties"]["pipelines"][0]["parameters"]["run_date"] = "2024-01-01"

    v = only(broken(factory, "trigger/tr_daily.json", extra), "missing-reference")
    assert (v.file, v.activity) == ("trigger/tr_daily.json", None) and "run_date" in v.message


def test_a_trigger_of_a_missing_pipeline_is_refused(factory):
    def missing(doc):
        doc["properties"]["pipeline"]["pipelineReference"]["referenceName"] = "pl_daily"

    v = only(broken(factory, "trigger/tr_reprocess_window.json", missing), "missing-reference")
    assert "pl_daily" in v.message


def test_a_linked_service_reading_an_undeclared_parameter_is_refused(factory):
    def misspell(doc):
        doc["properties"]["typeProperties"]["baseUrl"] = "@{linkedService().vaultURL}"

    v = only(broken(factory, "linkedService/ls_keyvault.json", misspell), "undeclared-parameter")
    assert v.file == "linkedService/ls_keyvault.json" and "vaultURL" in v.message


def test_an_unknown_expression_function_is_refused(factory):
    def unknown(doc):
        params = _activity(doc, "Run silver_to_gold")["typeProperties"]["baseParameters"]
        params["start_date"]["value"] = "@formatDate(pipeline().parameters.startDate, 'yyyy-MM-dd')"

    v = only(broken(factory, "pipeline/pl_silver_to_gold.json", unknown), "unknown-function")
    assert v.activity == "Run silver_to_gold" and "formatDate()" in v.message


def test_a_function_with_the_wrong_number_of_arguments_is_refused(factory):
    def arity(doc):
        check = _activity(doc, "Check range")["typeProperties"]["expression"]
        check["value"] = check["value"].replace(
            "less(pipeline().parameters.chunkDays, 1)", "less(pipeline().parameters.chunkDays)"
        )

    v = only(broken(factory, "pipeline/pl_backfill.json", arity), "function-arity")
    assert v.activity == "Check range" and "less() takes 2" in v.message


def test_a_trigger_expression_with_the_wrong_arity_is_refused(factory):
    def arity(doc):
        doc["properties"]["pipelines"][0]["parameters"]["runDate"] = "@formatDateTime()"

    v = only(broken(factory, "trigger/tr_daily.json", arity), "function-arity")
    assert v.file == "trigger/tr_daily.json"


def test_reading_the_output_of_an_activity_that_has_not_run_is_refused(factory):
    def not_upstream(doc):
        record = _activity(doc, "Record failure of Load gold")["typeProperties"]["value"]
        record["value"] = "@concat('Load gold: ', activity('Load postgres').error.message)"

    v = only(broken(factory, "pipeline/pl_lakehouse_daily.json", not_upstream), "activity-not-upstream")
    assert v.activity == "Record failure of Load gold" and "Load postgres" in v.message


def test_reading_an_activity_upstream_of_the_enclosing_container_is_allowed(factory):
    def from_inside(doc):
        inner = _activity(doc, "Run master for chunk")
        inner["typeProperties"]["parameters"]["symbols"]["value"] = "@string(activity('Plan chunks').output)"

    assert broken(factory, "pipeline/pl_backfill.json", from_inside) == []


def test_an_unknown_activity_type_is_refused(factory):
    def unknown(doc):
        _activity(doc, "Run maintenance")["type"] = "DatabricksNoteBook"

    violations = broken(factory, "pipeline/pl_maintenance.json", unknown)
    assert ("Run maintenance", "model") in {(v.activity, v.rule) for v in violations}
    assert any("DatabricksNoteBook" in v.message for v in violations)


def test_a_missing_required_property_is_refused(factory):
    def no_pipeline(doc):
        del _activity(doc, "Load gold")["typeProperties"]["pipeline"]

    violations = broken(factory, "pipeline/pl_lakehouse_daily.json", no_pipeline)
    assert any(
        v.rule == "model" and v.activity == "Load gold" and "pipeline is required" in v.message for v in violations
    )


def test_a_property_of_the_wrong_primitive_type_is_refused(factory):
    def stringly(doc):
        _activity(doc, "Chunks in parallel")["typeProperties"]["isSequential"] = "false"

    v = only(broken(factory, "pipeline/pl_backfill.json", stringly), "model")
    assert v.activity == "Chunks in parallel" and "isSequential" in v.message


def test_a_misspelt_property_is_refused(factory):
    def typo(doc):
        _activity(doc, "Run raw_to_bronze")["typeProperties"]["notebookPth"] = "/x"

    v = only(broken(factory, "pipeline/pl_raw_to_bronze.json", typo), "model")
    assert "notebookPth" in v.message


def test_check_factory_lists_every_violation_with_file_activity_and_rule(factory):
    def two_faults(doc):
        del _activity(doc, "Return summary")["typeProperties"]["setSystemVariable"]
        _activity(doc, "Load silver")["dependsOn"][0]["dependencyConditions"] = ["Done"]

    broken(factory, "pipeline/pl_lakehouse_daily.json", two_faults)
    with pytest.raises(FactoryValidationError) as caught:
        check_factory(factory)
    text = str(caught.value)
    assert "2 Data Factory validation error(s)" in text
    assert "pipeline/pl_lakehouse_daily.json, activity 'Return summary': [system-variable]" in text
    assert "pipeline/pl_lakehouse_daily.json, activity 'Load silver': [dependency-condition]" in text


# -- a passed check is remembered across processes (local.adf.factory._check_as_published) ----


@pytest.fixture
def fresh_process(monkeypatch, tmp_path):
    """The factory module as a new process finds it: nothing checked yet, its own cache directory."""
    from local.adf import factory as factory_module

    monkeypatch.setattr(factory_module, "_PUBLISHABLE", set())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return factory_module


def _checks_counted(monkeypatch) -> list[Path]:
    import local.adf.validation as validation

    checked: list[Path] = []
    real = validation.check_factory

    def counting(root):
        checked.append(root)
        real(root)

    monkeypatch.setattr(validation, "check_factory", counting)
    return checked


def test_a_factory_found_publishable_is_not_checked_again_by_the_next_process(factory, fresh_process, monkeypatch):
    checked = _checks_counted(monkeypatch)
    fresh_process.Factory.load(factory)
    monkeypatch.setattr(fresh_process, "_PUBLISHABLE", set())  # the next process
    fresh_process.Factory.load(factory)
    assert checked == [factory]


def test_an_edited_factory_is_checked_again(factory, fresh_process, monkeypatch):
    checked = _checks_counted(monkeypatch)
    fresh_process.Factory.load(factory)
    path = factory / "pipeline" / "pl_raw_to_bronze.json"
    doc = json.loads(path.read_text())
    doc["properties"]["description"] = "edited"
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(fresh_process, "_PUBLISHABLE", set())
    fresh_process.Factory.load(factory)
    assert checked == [factory, factory]


def test_an_invalid_factory_is_refused_every_time(factory, fresh_process, monkeypatch):
    path = factory / "pipeline" / "pl_raw_to_bronze.json"
    doc = json.loads(path.read_text())
    doc["properties"]["activities"][0]["type"] = "NoSuchActivity"
    path.write_text(json.dumps(doc))
    for _ in range(2):
        monkeypatch.setattr(fresh_process, "_PUBLISHABLE", set())
        with pytest.raises(FactoryValidationError):
            fresh_process.Factory.load(factory)
