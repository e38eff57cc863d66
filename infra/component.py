"""What every component of the program shares: where its resources go, and how it registers.

Each component places its top-level resources in the stack's resource group and region with the
stack's tags, and registers its children with ``parent=self``; saying that once here leaves each
component module with only what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

TYPE_PREFIX = "lakehouse:index:"


@dataclass
class ComponentArgs:
    """The placement every component's args start with (a component's own args come after)."""

    resource_group_name: pulumi.Input[str]
    location: str
    tags: Mapping[str, str]

    @property
    def placement(self) -> dict[str, Any]:
        """Resource group, region and tags of a top-level resource, to spread into its inputs."""
        return {"resource_group_name": self.resource_group_name, "location": self.location, "tags": dict(self.tags)}


class Component(pulumi.ComponentResource):
    """A component registered as ``lakehouse:index:<class name>``.

    The type token is part of every child's URN, so renaming a component class would make Pulumi
    replace all of its resources; the class names are therefore as fixed as the resource names.
    """

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE_PREFIX + type(self).__name__, name, None, opts)
        self.child = pulumi.ResourceOptions(parent=self)

    def child_with(self, **options: Any) -> pulumi.ResourceOptions:
        """Options of a child that also needs dependencies or a provider of its own."""
        return pulumi.ResourceOptions(parent=self, **options)
