"""The serving component: PostgreSQL 16, Entra ID auth, TLS required, a firewall of named ranges."""

from __future__ import annotations

import pulumi
import pytest

from infra.serving import DATABASE, EntraPrincipal, Serving, ServingArgs, dsn
from infra.stack_config import FirewallRule, StackConfigError, check_firewall_rule


def _serving(run_component, common, **overrides):
    args = ServingArgs(common.rg, common.location, common.tags, "test-pg", "tenant-1", **overrides)
    return run_component(lambda: Serving("serving", args))


def test_server_is_postgres_16_with_entra_authentication(run_component, common):
    (server,) = _serving(run_component, common).of_type("azure-native:dbforpostgresql:Server")
    assert server.inputs["version"] == "16"
    assert server.inputs["authConfig"] == {
        "activeDirectoryAuth": "Enabled", "passwordAuth": "Disabled", "tenantId": "tenant-1",
    }  # fmt: skip
    assert "administratorLoginPassword" not in server.inputs


def test_password_authentication_is_a_switch_that_needs_a_password(run_component, common):
    run = _serving(run_component, common, password_auth=True, admin_password=pulumi.Output.secret("pw"))
    (server,) = run.of_type("azure-native:dbforpostgresql:Server")
    assert server.inputs["authConfig"]["passwordAuth"] == "Enabled"
    assert server.inputs["administratorLoginPassword"] == "pw"
    assert "administratorLoginPassword" in server.secret_inputs
    with pytest.raises(ValueError, match="admin_password"):
        _serving(run_component, common, password_auth=True)


def test_secure_transport_is_required(run_component, common):
    (conf,) = _serving(run_component, common).of_type("azure-native:dbforpostgresql:Configuration")
    assert (conf.inputs["configurationName"], conf.inputs["value"]) == ("require_secure_transport", "on")


def test_database_lakehouse_exists(run_component, common):
    (db,) = _serving(run_component, common).of_type("azure-native:dbforpostgresql:Database")
    assert db.inputs["databaseName"] == DATABASE == "lakehouse"


def test_firewall_opens_named_ranges_and_the_azure_services_rule_only(run_component, common):
    office = FirewallRule("office", "203.0.113.0", "203.0.113.255")
    run = _serving(run_component, common, firewall_rules=[office], allow_azure_services=True)
    firewall = run.of_type("azure-native:dbforpostgresql:FirewallRule")
    rules = {(r.inputs["startIpAddress"], r.inputs["endIpAddress"]) for r in firewall}
    assert rules == {("203.0.113.0", "203.0.113.255"), ("0.0.0.0", "0.0.0.0")}
    closed = _serving(run_component, common, allow_azure_services=False)
    assert closed.of_type("azure-native:dbforpostgresql:FirewallRule") == []


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        ("0.0.0.0", "255.255.255.255", "wider than a /16"),
        ("10.0.0.0", "10.255.255.255", "wider than a /16"),
        ("10.0.0.9", "10.0.0.1", "before startIp"),
        ("10.0.0.300", "10.0.0.1", "Octet 300"),
        ("0.0.0.0", "0.0.0.0", "postgresAllowAzureServices"),
    ],
)
def test_firewall_rejects_open_wide_or_malformed_ranges(start, end, why):
    with pytest.raises(StackConfigError, match=why):
        check_firewall_rule(FirewallRule("bad", start, end))


def test_entra_administrators_are_added_one_after_another(run_component, common):
    admins = [EntraPrincipal("factory", "adf", "oid-1"), EntraPrincipal("databricks", "dbw", "oid-2")]
    run = _serving(run_component, common, entra_admins=admins)
    first, second = run.of_type("azure-native:dbforpostgresql:AdministratorsMicrosoftEntra")
    assert (first.inputs["objectId"], second.inputs["objectId"]) == ("oid-1", "oid-2")
    assert {first.inputs["principalType"], second.inputs["principalType"]} == {"ServicePrincipal"}
    assert first.urn in second.dependencies


def test_dsn_requires_tls_and_escapes_the_password(run_component):
    seen = {}

    def program():
        dsn("pg1", "lakehouse_admin", "p@ss/word").apply(lambda v: seen.setdefault("password", v))
        dsn("pg1", "connector").apply(lambda v: seen.setdefault("entra", v))

    run_component(program)
    assert seen["password"] == (
        "postgresql://lakehouse_admin:p%40ss%2Fword@pg1.postgres.database.azure.com:5432/lakehouse?sslmode=require"
    )
    assert seen["entra"] == "postgresql://connector@pg1.postgres.database.azure.com:5432/lakehouse?sslmode=require"
