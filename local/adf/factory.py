"""The factory: pipelines, triggers and linked services read from ``adf/`` in ADF's git layout.

Loading checks what Data Factory refuses at publish time (names, dependencies within a scope,
conditions, cycles), and binding checks a run's parameters against the pipeline's declaration,
so a bad definition fails before anything runs.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.adf.records import AdfDefinitionError, PipelineParameterError

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
ADF_ROOT = REPO_ROOT / "adf"
CONDITIONS = ("Succeeded", "Failed", "Skipped", "Completed")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def local_deployment_values(repo_root: Path = REPO_ROOT) -> dict[str, str]:
    """The ``${name}`` values the deployment gives a pipeline, as they are on this machine.

    Notebook paths are the workspace paths the deployment uploads to (the notebook runner maps a
    workspace path to the repository's file of that name); the wheel is what ``make package`` writes.
    """
    project = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wheel = f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"
    return {
        "notebookRoot": "/Shared/lakehouse",
        "wheelUri": str(repo_root / "build" / "dist" / wheel),
    }


def substitute_deployment_values(doc: Any, values: Mapping[str, str], where: str) -> Any:
    """``doc`` with every ``${name}`` replaced; an unknown name fails, as it does on deployment."""
    if isinstance(doc, str):
        unknown = sorted(set(PLACEHOLDER.findall(doc)) - set(values))
        if unknown:
            raise AdfDefinitionError(f"{where}: unknown deployment values {unknown}; known: {sorted(values)}")
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], doc)
    if isinstance(doc, dict):
        return {k: substitute_deployment_values(v, values, where) for k, v in doc.items()}
    if isinstance(doc, list):
        return [substitute_deployment_values(v, values, where) for v in doc]
    return doc


def _load_folder(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise AdfDefinitionError(f"{path}: not valid JSON ({exc})") from None
        name = doc.get("name")
        if name != path.stem:
            raise AdfDefinitionError(f"{path}: 'name' is {name!r}, expected the file name {path.stem!r}")
        found[name] = doc
    return found


def walk_activities(activities: list[dict[str, Any]]) -> Iterable[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every activity with the scope (sibling list) it belongs to, nested containers included."""
    for activity in activities:
        yield activity, activities
        props = activity.get("typeProperties", {})
        for key in ("activities", "ifTrueActivities", "ifFalseActivities", "defaultActivities"):
            if isinstance(props.get(key), list):
                yield from walk_activities(props[key])
        for case in props.get("cases", []) or []:
            yield from walk_activities(case.get("activities", []))


def _check_scope(pipeline: str, activities: list[dict[str, Any]]) -> None:
    names = [a.get("name") for a in activities]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise AdfDefinitionError(f"pipeline {pipeline}: duplicate activity names {sorted(dupes)}")
    for activity in activities:
        for dep in activity.get("dependsOn", []):
            if dep.get("activity") not in names:
                raise AdfDefinitionError(
                    f"pipeline {pipeline}: activity {activity['name']!r} depends on {dep.get('activity')!r}, "
                    "which is not in the same scope"
                )
            bad = [c for c in dep.get("dependencyConditions", []) if c not in CONDITIONS]
            if bad or not dep.get("dependencyConditions"):
                raise AdfDefinitionError(
                    f"pipeline {pipeline}: activity {activity['name']!r} has dependency conditions "
                    f"{dep.get('dependencyConditions')} on {dep['activity']!r}; expected some of {CONDITIONS}"
                )
    # cycle check (Kahn)
    remaining = {a["name"]: {d["activity"] for d in a.get("dependsOn", [])} for a in activities}
    while remaining:
        ready = [n for n, deps in remaining.items() if not deps & remaining.keys()]
        if not ready:
            raise AdfDefinitionError(f"pipeline {pipeline}: circular dependency among {sorted(remaining)}")
        for n in ready:
            del remaining[n]


def _check_as_published(root: Path) -> None:
    """Refuse a factory Data Factory would refuse on publish (see :mod:`local.adf.validation`).

    Checked once per state of the folder's files, so repeated loads in one process cost a stat
    each; and once per content of those files and of the validator, so a process whose factory an
    earlier one found publishable skips the check (importing the REST models and checking cost
    0.2-1 s of every `lakehouse` command): a marker named after that content is kept in the
    user's cache directory. Only a passed check leaves a marker, so an invalid factory is checked,
    and refused, every time.
    """
    files = sorted(root.glob("*/*.json"))
    state = (str(root), tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    if state in _PUBLISHABLE:
        return
    marker = _publishable_marker(root, files)
    if not marker.exists():
        from local.adf.validation import check_factory  # imports the REST models: only when a factory loads

        check_factory(root)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError as exc:  # a cache: the check ran, the next process runs it again
            log.debug("could not keep the validation marker %s: %s", marker, exc)
    _PUBLISHABLE.add(state)


_PUBLISHABLE: set[tuple] = set()
VALIDATOR_DISTRIBUTION = "azure-mgmt-datafactory"


def _publishable_marker(root: Path, files: list[Path]) -> Path:
    """Where a passed check of this content (the factory's files, the validator's code and the
    REST models' version) is recorded."""
    digest = hashlib.sha256(importlib.metadata.version(VALIDATOR_DISTRIBUTION).encode())
    for path in (Path(__file__).with_name("validation.py"), *files):
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path.name).encode())
        digest.update(b"\0" + path.read_bytes() + b"\0")
    return cache_dir() / "adf-publishable" / digest.hexdigest()


def cache_dir() -> Path:
    """Where the runner keeps what one process can hand the next (validation markers, parsed
    expressions): the user's cache directory, as it is for every user of this installation."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lakehouse"


@dataclass(frozen=True)
class Factory:
    """The pipelines, triggers and linked services of one ADF git folder."""

    root: Path
    pipelines: dict[str, dict[str, Any]]
    triggers: dict[str, dict[str, Any]]
    linked_services: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, root: Path = ADF_ROOT, deployment_values: Mapping[str, str] | None = None) -> Factory:
        """The factory in ``root``, with the deployment's ``${name}`` values filled in
        (default: :func:`local_deployment_values`)."""
        _check_as_published(root)
        values = local_deployment_values() if deployment_values is None else deployment_values
        pipelines = {
            name: substitute_deployment_values(doc, values, f"{root / 'pipeline' / name}.json")
            for name, doc in _load_folder(root / "pipeline").items()
        }
        factory = cls(
            root=root,
            pipelines=pipelines,
            triggers=_load_folder(root / "trigger"),
            linked_services=_load_folder(root / "linkedService"),
        )
        for name, doc in factory.pipelines.items():
            activities = doc.get("properties", {}).get("activities", [])
            scopes = {id(activities): activities}
            for _, scope in walk_activities(activities):
                scopes[id(scope)] = scope
            for scope in scopes.values():
                _check_scope(name, scope)
        return factory

    def pipeline(self, name: str) -> dict[str, Any]:
        return self._named("pipeline", self.pipelines, name)

    def trigger(self, name: str) -> dict[str, Any]:
        return self._named("trigger", self.triggers, name)

    def _named(self, folder: str, documents: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
        """A document by name; a mistyped name is told where it was looked for and what exists."""
        try:
            return documents[name]
        except KeyError:
            raise AdfDefinitionError(
                f"no {folder} {name!r} in {self.root / folder}; available: {', '.join(sorted(documents))}"
            ) from None


def _convert(pipeline: str, name: str, declared: str, value: Any) -> Any:
    kind = declared.lower()
    try:
        if kind in ("string", "securestring"):
            return value if isinstance(value, str) else json.dumps(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
        if kind in ("array", "object"):
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, list if kind == "array" else dict):
                raise ValueError
            return parsed
    except (ValueError, TypeError):
        raise PipelineParameterError(
            f"pipeline {pipeline}: parameter {name!r} must be {declared}, got {value!r}"
        ) from None
    raise AdfDefinitionError(f"pipeline {pipeline}: parameter {name!r} has unknown type {declared!r}")


def bind_parameters(pipeline_doc: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """Given parameters plus declared defaults, converted to the declared types.

    Raises:
        PipelineParameterError: an undeclared name, a missing required parameter, or a value
            that does not convert (e.g. ``fullRefresh=maybe``).
    """
    name = pipeline_doc["name"]
    declared: dict[str, Any] = pipeline_doc.get("properties", {}).get("parameters", {}) or {}
    given = dict(given or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise PipelineParameterError(
            f"pipeline {name}: unknown parameter(s) {unknown}; it declares {sorted(declared) or 'none'}"
        )
    bound: dict[str, Any] = {}
    for pname, spec in declared.items():
        if pname in given:
            bound[pname] = _convert(name, pname, spec.get("type", "String"), given[pname])
        elif "defaultValue" in spec:
            bound[pname] = copy.deepcopy(spec["defaultValue"])
        else:
            raise PipelineParameterError(f"pipeline {name}: required parameter {pname!r} was not given")
    return bound
