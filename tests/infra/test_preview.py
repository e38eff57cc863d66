"""`lakehouse infra preview`: what `pulumi up` would create, shown without a subscription."""

from __future__ import annotations

import json

import pytest

from infra import preview


@pytest.fixture(scope="module")
def dev_tree(dev_run):
    return preview.tree(dev_run, preview.project_name())


def _nodes(nodes):
    for node in nodes:
        yield node
        yield from _nodes(node["children"])


def test_tree_is_json_and_lists_every_registered_resource(dev_run, dev_tree):
    assert json.loads(json.dumps(dev_tree)) == dev_tree
    assert len(list(_nodes(dev_tree["resources"]))) == len(dev_run.resources)
    assert dev_tree["resource_count"] == sum(1 for r in dev_run.resources if r.custom)
    assert dev_tree["counts_by_type"]["azure-native:datafactory:Pipeline"] == len(
        dev_run.of_type("azure-native:datafactory:Pipeline")
    )


def test_resources_sit_under_their_component_with_key_properties_and_dependencies(dev_tree):
    components = {n["type"]: n for n in dev_tree["resources"]}
    lake = components["lakehouse:index:Lake"]
    account = next(c for c in lake["children"] if c["type"] == "azure-native:storage:StorageAccount")
    assert account["properties"]["isHnsEnabled"] is True
    assert account["properties"]["sku"] == {"name": "Standard_LRS"}
    hub = next(n for n in _nodes(dev_tree["resources"]) if n["type"] == "azure-native:eventhub:EventHub")
    assert "azure-native:authorization:RoleAssignment::mktlh-dev-events-capture-raw" in hub["depends_on"]


def test_secrets_and_file_contents_are_not_printed(dev_tree):
    text = json.dumps(dev_tree)
    assert "mock-function-key" not in text
    notebook = next(n for n in _nodes(dev_tree["resources"]) if n["type"] == "databricks:index/notebook:Notebook")
    assert notebook["properties"]["contentBase64"].endswith("base64 chars>")
    secret = next(n for n in _nodes(dev_tree["resources"]) if n["type"] == "azure-native:keyvault:Secret")
    assert secret["properties"]["properties"] == preview.SECRET_PLACEHOLDER


def test_text_rendering_names_the_stack_and_each_resource(dev_run, dev_tree):
    text = preview.render_text(dev_tree)
    assert text.splitlines()[0].startswith(f"stack dev of lakehouse: {dev_tree['resource_count']} resources")
    for reg in dev_run.resources:
        assert reg.name in text


def test_unknown_stack_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match=r"Pulumi\.qa\.yaml.*\['dev', 'prod'\]"):
        preview.stack_config("qa")


def test_encrypted_config_values_are_replaced_by_a_placeholder(tmp_path):
    (tmp_path / "Pulumi.x.yaml").write_text(
        "config:\n  lakehouse:marketApiKey:\n    secure: AAABAJx\n  lakehouse:environment: x\n"
    )
    assert preview.stack_config("x", tmp_path) == {
        "lakehouse:marketApiKey": preview.SECRET_PLACEHOLDER,
        "lakehouse:environment": "x",
    }
