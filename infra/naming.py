"""Physical names of the resources whose names must be unique across Azure (or a metastore).

Key vaults with purge protection keep their name for the whole retention period after a
destroy, and storage accounts, servers, namespaces and factories are DNS names anyone may take.
Every such name therefore ends in the stack's *name suffix*: by default derived from the
project and stack (stable across runs), and rotatable with `lakehouse:nameSuffix` when a stack
is re-created while its old names are still held (docs/infrastructure.md).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

NAME_SUFFIX_PATTERN = re.compile(r"^[a-z0-9]{3,6}$")
DEFAULT_SUFFIX_LENGTH = 6
# Azure's length limits of the globally unique names (all lower-case letters, digits, hyphens).
MAX_LENGTH = {
    "key vault": 24,
    "storage account": 24,
    "function app": 60,
    "PostgreSQL server": 63,
    "Event Hubs namespace": 50,
    "data factory": 63,
    "Databricks workspace": 64,
}


class ResourceNameError(ValueError):
    """A name that Azure would reject; the message names the resource and the limit."""


def default_suffix(project: str, stack: str) -> str:
    """The suffix a stack gets when `lakehouse:nameSuffix` is unset: a hash of project and stack."""
    return hashlib.sha256(f"{project}/{stack}".encode()).hexdigest()[:DEFAULT_SUFFIX_LENGTH]


@dataclass(frozen=True)
class ResourceNames:
    """The stack's globally unique names, built from prefix, environment and suffix."""

    prefix: str
    environment: str
    suffix: str

    @property
    def base(self) -> str:
        return f"{self.prefix}-{self.environment}"

    @property
    def compact(self) -> str:
        return f"{self.prefix}{self.environment}"

    @property
    def key_vault(self) -> str:
        return f"{self.base}-kv-{self.suffix}"

    @property
    def function_keys_vault(self) -> str:
        return f"{self.compact}keys{self.suffix}"

    @property
    def lake_account(self) -> str:
        return f"{self.compact}lake{self.suffix}"

    @property
    def function_storage_account(self) -> str:
        return f"{self.compact}func{self.suffix}"

    @property
    def function_app(self) -> str:
        return f"{self.base}-ingest-{self.suffix}"

    @property
    def postgres_server(self) -> str:
        return f"{self.base}-pg-{self.suffix}"

    @property
    def event_hubs_namespace(self) -> str:
        return f"{self.base}-events-{self.suffix}"

    @property
    def factory(self) -> str:
        return f"{self.base}-adf-{self.suffix}"

    @property
    def databricks_workspace(self) -> str:
        """Also the stem of its access connector, jobs identity, managed group and UC objects."""
        return f"{self.base}-dbw-{self.suffix}"

    @property
    def catalog(self) -> str:
        """The workspace's default Unity Catalog catalog: metastore-wide, and kept after a destroy."""
        return f"{self.prefix}_{self.environment}_{self.suffix}"

    def by_kind(self) -> dict[str, list[str]]:
        """Every globally unique name, by the kind of resource whose length limit applies."""
        return {
            "key vault": [self.key_vault, self.function_keys_vault],
            "storage account": [self.lake_account, self.function_storage_account],
            "function app": [self.function_app],
            "PostgreSQL server": [self.postgres_server],
            "Event Hubs namespace": [self.event_hubs_namespace],
            "data factory": [self.factory],
            "Databricks workspace": [self.databricks_workspace],
        }

    def check(self) -> ResourceNames:
        """Raise :class:`ResourceNameError` for a suffix or a name Azure would reject."""
        if not NAME_SUFFIX_PATTERN.match(self.suffix):
            raise ResourceNameError(f"name suffix {self.suffix!r} must be 3-6 lower-case letters/digits")
        for kind, names in self.by_kind().items():
            for name in names:
                if len(name) > MAX_LENGTH[kind]:
                    raise ResourceNameError(
                        f"{kind} name {name!r} is {len(name)} characters, over Azure's {MAX_LENGTH[kind]}; "
                        "shorten namePrefix, environment or nameSuffix"
                    )
        return self
