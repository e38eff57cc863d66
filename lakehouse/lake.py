"""Where things live in the lake: (container, path) -> URI, the same call in Azure and locally.

In Azure each layer is an ADLS Gen2 container: ``abfss://{container}@{account}.dfs.core.windows.net/...``.
Locally each container is a directory: ``$LAKEHOUSE_HOME/lake/{container}/...``. On a Databricks
cluster the raw container is also a Unity Catalog volume (``/Volumes/<catalog>/<schema>/<volume>``),
read with plain file I/O on the driver. Nothing else in the codebase builds lake paths by string
concatenation: container locations come from this module, paths inside RAW from
:mod:`lakehouse.contracts.raw_layout`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from lakehouse.settings import Settings

Container = Literal["raw", "bronze", "silver", "gold", "ops"]
CONTAINERS: tuple[str, ...] = get_args(Container)

_SEGMENT = re.compile(r"^[A-Za-z0-9_.=\-]+$")
_VOLUME = re.compile(r"^/Volumes(/[A-Za-z0-9_\-]+){3}(/[A-Za-z0-9_.=\-]+)*/?$")


class LakePathError(ValueError):
    """A container or path segment that could escape its place in the lake."""


def _check_segments(parts: tuple[str, ...]) -> list[str]:
    segments: list[str] = []
    for part in parts:
        for seg in str(part).split("/"):
            if not seg:
                continue
            if seg in {".", ".."} or not _SEGMENT.match(seg):
                raise LakePathError(f"unsafe lake path segment {seg!r} in {'/'.join(parts)!r}")
            segments.append(seg)
    return segments


@dataclass(frozen=True)
class Lake:
    """Maps lake locations to URIs for one deployment.

    Args:
        root: ``abfss://{container}@account.dfs.core.windows.net`` (the ``{container}`` placeholder
            is filled per layer), or any URI/directory under which one folder per container is used.
        raw_volume: the Unity Catalog volume holding the raw container, where Spark jobs run on a
            cluster (``/Volumes/<catalog>/<schema>/<volume>``); None elsewhere.
    """

    root: str
    raw_volume: str | None = None

    def __post_init__(self) -> None:
        volume = self.raw_volume
        if volume is not None and (not _VOLUME.match(volume) or {".", ".."} & set(volume.split("/"))):
            raise LakePathError(f"not a Unity Catalog volume path: {volume!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Lake:
        root = settings.lake_root or str(settings.home_dir / "lake")
        return cls(root=root, raw_volume=settings.raw_volume)

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    def uri(self, container: Container, *parts: str) -> str:
        """URI of a path inside a container, e.g. ``uri("silver", "daily_bars")``."""
        if container not in CONTAINERS:
            raise LakePathError(f"unknown lake container {container!r}; expected one of {CONTAINERS}")
        segments = _check_segments(parts)
        if "{container}" in self.root:
            base = self.root.format(container=container).rstrip("/")
        else:
            base = f"{self.root.rstrip('/')}/{container}"
        return "/".join([base, *segments])

    def table(self, container: Container, name: str) -> str:
        """URI of a Delta table, e.g. ``table("gold", "fct_daily_prices")``."""
        return self.uri(container, name)

    def local_path(self, container: Container, *parts: str) -> Path:
        """Filesystem path of a location; only for the local runtime."""
        if not self.is_local:
            raise LakePathError(f"{self.root} is not a local lake")
        uri = self.uri(container, *parts)
        return Path(uri.removeprefix("file://"))

    @property
    def raw_directory(self) -> Path | None:
        """The raw container as a POSIX directory: the local lake's, else RAW's volume (None: neither)."""
        if self.is_local:
            return self.local_path("raw")
        if self.raw_volume is not None:
            return Path(self.raw_volume.rstrip("/"))
        return None
