"""Azure built-in roles the platform grants, and the one way a component grants them.

Every grant is to a managed identity (a service principal) and scoped to the narrowest resource
that works: a container rather than the account, a hub rather than the namespace.
"""

from __future__ import annotations

from collections.abc import Iterable

import pulumi
from pulumi_azure_native import authorization

# Built-in role definition GUIDs (the same in every tenant).
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
EVENT_HUBS_DATA_SENDER = "2b629674-e913-4c01-ae53-ef4638d8f975"
EVENT_HUBS_DATA_RECEIVER = "a638d3c7-ab3a-418d-83e6-5f17a39d4fde"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"

ROLE_NAMES = {
    STORAGE_BLOB_DATA_CONTRIBUTOR: "Storage Blob Data Contributor",
    STORAGE_BLOB_DATA_OWNER: "Storage Blob Data Owner",
    STORAGE_QUEUE_DATA_CONTRIBUTOR: "Storage Queue Data Contributor",
    STORAGE_TABLE_DATA_CONTRIBUTOR: "Storage Table Data Contributor",
    EVENT_HUBS_DATA_SENDER: "Azure Event Hubs Data Sender",
    EVENT_HUBS_DATA_RECEIVER: "Azure Event Hubs Data Receiver",
    KEY_VAULT_SECRETS_USER: "Key Vault Secrets User",
    KEY_VAULT_SECRETS_OFFICER: "Key Vault Secrets Officer",
    CONTRIBUTOR: "Contributor",
}


def role_definition_id(role: str) -> pulumi.Output[str]:
    """The full role definition id of a built-in role in the deploying subscription."""
    client = authorization.get_client_config_output()
    return client.subscription_id.apply(
        lambda sub: f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )


def grant(
    name: str,
    *,
    role: str,
    principal_id: pulumi.Input[str],
    scope: pulumi.Input[str],
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource] | None = None,
) -> authorization.RoleAssignment:
    """Give a managed identity a built-in role on one scope."""
    if role not in ROLE_NAMES:
        raise ValueError(f"role {role!r} is not one of the roles this platform grants")
    return authorization.RoleAssignment(
        name,
        principal_id=principal_id,
        principal_type="ServicePrincipal",
        role_definition_id=role_definition_id(role),
        scope=scope,
        description=f"{ROLE_NAMES[role]} for {name}",
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on or []),
    )


def grant_each(
    stem: str,
    principal_id: pulumi.Input[str],
    grants: Iterable[tuple[str, str, pulumi.Input[str]]],
    parent: pulumi.Resource,
) -> list[authorization.RoleAssignment]:
    """All of one identity's grants, from ``(name suffix, role, scope)`` rows, named ``<stem>-<suffix>``."""
    return [
        grant(f"{stem}-{suffix}", role=role, principal_id=principal_id, scope=scope, parent=parent)
        for suffix, role, scope in grants
    ]


def principal_of(resource: pulumi.CustomResource) -> pulumi.Output[str]:
    """The principal id of a resource's system-assigned identity, the one its grants go to."""
    return resource.identity.apply(lambda i: i.principal_id)
