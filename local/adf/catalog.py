"""What the factory in adf/ offers an operator: its pipelines with their parameters, and its triggers
with the pipeline each starts and how. What `lakehouse adf list` prints."""

from __future__ import annotations

from typing import Any

from local.adf.factory import Factory


def pipelines(factory: Factory) -> list[dict[str, Any]]:
    """One entry per pipeline: name, description, parameters (name, type, default, required)."""
    out = []
    for name in sorted(factory.pipelines):
        props = factory.pipelines[name].get("properties", {})
        params = [
            {
                "name": p,
                "type": spec.get("type", "String"),
                "default": spec.get("defaultValue"),
                "required": "defaultValue" not in spec,
            }
            for p, spec in props.get("parameters", {}).items()
        ]
        out.append({"name": name, "description": props.get("description", ""), "parameters": params})
    return out


def triggers(factory: Factory) -> list[dict[str, Any]]:
    """One entry per trigger: name, type, state, the pipeline(s) it starts with their parameters."""
    out = []
    for name in sorted(factory.triggers):
        props = factory.triggers[name].get("properties", {})
        refs = props.get("pipelines") or ([props["pipeline"]] if "pipeline" in props else [])
        out.append({
            "name": name,
            "type": props.get("type", ""),
            "runtime_state": props.get("runtimeState", ""),
            "pipelines": [r["pipelineReference"]["referenceName"] for r in refs],
            "parameters": {k: v for r in refs for k, v in r.get("parameters", {}).items()},
            "description": props.get("description", ""),
        })  # fmt: skip
    return out


def signature(entry: dict[str, Any]) -> str:
    """A pipeline's call as typed on the command line: ``-p startDate=<String> [-p chunkDays=92]``."""
    parts = []
    for p in entry["parameters"]:
        if p["required"]:
            parts.append(f"-p {p['name']}=<{p['type']}>")
        else:
            default = p["default"]
            default = "" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
            parts.append(f"[-p {p['name']}={default or '<' + p['type'] + '>'}]")
    return " ".join(parts)
