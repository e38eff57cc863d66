"""Run history as operators read it: a run, the pipelines it started and their activities, as a tree.

A backfill reads top-down: the ``pl_backfill`` run, its ForEach, one Execute Pipeline per chunk,
the chunk's ``pl_lakehouse_daily`` run, its steps and their notebooks. Activities recorded inside a
container (ForEach, If, Switch, Until) are nested under it by time (the container's run spans
theirs); a child pipeline run is nested under the Execute Pipeline activity that started it.

The text fits the terminal: each line is cut at `width`, errors are wrapped under their run. The
JSON (``runs --json``) is :func:`as_json`: one shape for a list and for one run, durations in
seconds, the trigger as ``trigger``.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CONTAINER_TYPES = {"ForEach", "IfCondition", "Switch", "Until"}
ERROR_LINES = 3
HIDDEN_PARAMETERS = {"startDate", "endDate", "runDate", "runId"}  # the window is shown on its own


@dataclass
class Node:
    """One line of the tree and what is under it: a pipeline run or an activity run."""

    kind: str  # "pipeline" or "activity"
    row: Mapping[str, Any]
    children: list[Node] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.kind == "activity" and self.row.get("reused_from"):
            return "Reused"
        return str(self.row["status"])

    @property
    def failed(self) -> bool:
        return self.row["status"] in ("Failed", "Cancelled")


def seconds(row: Mapping[str, Any]) -> float | None:
    """Duration in seconds of a recorded run (None while it is in progress)."""
    ms = row.get("duration_ms")
    return None if ms is None else round(ms / 1000, 3)


def window(parameters: Mapping[str, Any] | None) -> str:
    """The run's window as ``first..last`` (``runDate``, or ``startDate``/``endDate``), or ''."""
    p = parameters or {}
    first, last = p.get("startDate") or p.get("runDate"), p.get("endDate") or p.get("runDate")
    if not first and not last:
        return ""
    return f"{first or '?'}..{last or '?'}"


def build(runs: Iterable[Mapping[str, Any]], activities: Iterable[Mapping[str, Any]]) -> list[Node]:
    """Trees of pipeline runs (rows of ``ops_store.run_tree``) and their activity runs; the roots
    are the runs whose parent is not among `runs`, newest first."""
    runs = list(runs)
    by_run: dict[str, list[Mapping[str, Any]]] = {}
    for act in activities:
        by_run.setdefault(act["pipeline_run_id"], []).append(act)
    nodes = {r["run_id"]: Node("pipeline", r) for r in runs}
    roots = []
    for run in runs:
        node = nodes[run["run_id"]]
        node.children = _activity_tree(by_run.get(run["run_id"], []))
        parent = nodes.get(run.get("parent_run_id") or "")
        if parent is None:
            roots.append(node)
    for run in runs:  # a child run goes under the Execute Pipeline activity that started it
        parent = nodes.get(run.get("parent_run_id") or "")
        if parent is not None:
            _attach_child(parent, nodes[run["run_id"]])
    roots.sort(key=lambda n: n.row["started_at"], reverse=True)
    return roots


def _activity_tree(rows: list[Mapping[str, Any]]) -> list[Node]:
    nodes = [Node("activity", r) for r in sorted(rows, key=lambda r: (r["started_at"], r.get("attempt", 1)))]
    top: list[Node] = []
    for i, node in enumerate(nodes):
        container = None
        for other in nodes[:i]:  # the innermost container started before it whose run spans it
            if other.row["activity_type"] in CONTAINER_TYPES and _spans(other.row, node.row):
                container = other
        (container.children if container else top).append(node)
    return top


def _spans(outer: Mapping[str, Any], inner: Mapping[str, Any]) -> bool:
    end = outer.get("ended_at")
    inner_end = inner.get("ended_at") or inner["started_at"]
    return outer["started_at"] <= inner["started_at"] and (end is None or inner_end <= end)


def _attach_child(parent: Node, child: Node) -> None:
    def find(nodes: list[Node]) -> Node | None:
        for node in nodes:
            output = node.row.get("output") or {}
            if isinstance(output, dict) and output.get("pipelineRunId") == child.row["run_id"]:
                return node
            found = find(node.children)
            if found is not None:
                return found
        return None

    starter = find(parent.children)
    (starter.children if starter else parent.children).append(child)


def failed_first(nodes: list[Node]) -> list[Node]:
    """The same trees with, at every level, the failed branches before the others (stable)."""
    ordered = sorted(nodes, key=lambda n: not n.failed)
    for node in ordered:
        node.children = failed_first(node.children)
    return ordered


def failed_path(root: Node) -> list[str]:
    """Names from `root` down the first failed branch to the deepest failure."""
    path = [_name(root)]
    node = root
    while True:
        nxt = next((c for c in node.children if c.failed), None)
        if nxt is None:
            return path
        path.append(_name(nxt))
        node = nxt


def failed_path_lines(root: Node, width: int = 80) -> list[str]:
    """``failed path: a > b > ...`` wrapped at `width` (nothing when the run did not fail)."""
    if not root.failed:
        return []
    text = "failed path: " + " > ".join(failed_path(root))
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)


def _name(node: Node) -> str:
    return str(node.row["pipeline"] if node.kind == "pipeline" else node.row["activity"])


def _duration(row: Mapping[str, Any]) -> str:
    s = seconds(row)
    return "running" if s is None else f"{s:.1f} s"


def _parameters(parameters: Mapping[str, Any] | None) -> str:
    shown = [f"{k}={v}" for k, v in (parameters or {}).items() if k not in HIDDEN_PARAMETERS and v not in ("", None)]
    return " ".join(shown)


def _label(node: Node) -> str:
    row = node.row
    if node.kind == "pipeline":
        parts = [str(row["run_id"])[:8], str(row["pipeline"]), node.status, _duration(row)]
        parts.append(window(row.get("parameters")))
        if row.get("rerun_of"):
            parts.append(f"rerun of {str(row['rerun_of'])[:8]}")
        parts.append(_parameters(row.get("parameters")))
    else:
        parts = [str(row["activity"]), node.status, _duration(row)]
        if row.get("attempt", 1) > 1:
            parts.append(f"attempt {row['attempt']}")
    return "  ".join(p for p in parts if p)


def _error(node: Node) -> str | None:
    """The error where a failure started: a failed node none of whose children failed (the
    messages of the nodes above it repeat it, wrapped in "Operation on target ... failed")."""
    err = node.row.get("error") or {}
    if not (isinstance(err, dict) and node.failed) or any(c.failed for c in node.children):
        return None
    return err.get("message")


def _own_error(node: Node) -> str | None:
    err = node.row.get("error") or {}
    return err.get("message") if isinstance(err, dict) and node.failed else None


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def render(roots: list[Node], width: int = 80, max_level: int | None = None, verbose: bool = False) -> list[str]:
    """Lines of the trees, none longer than `width`.

    Args:
        roots: trees from :func:`build` (ordered as they should read).
        width: the terminal's columns.
        max_level: show this many levels under each root (None: all; 0: the roots only).
        verbose: also show skipped activities (bookkeeping: failure handlers that had nothing to do).
    """
    lines: list[str] = []

    def visit(node: Node, lead: str, branch: str, level: int) -> None:
        lines.append(cut(f"{lead}{branch}{_label(node)}", width))
        below = lead + ("" if not branch else ("   " if branch.startswith("└") else "│  "))
        cut_here = max_level is not None and level >= max_level
        message = _error(node) or (_own_error(node) if cut_here else None)
        if message:
            body = width - len(below) - 2
            wrapped = textwrap.wrap(message, max(body, 20))
            if len(wrapped) > ERROR_LINES:
                wrapped = [*wrapped[: ERROR_LINES - 1], cut(" ".join(wrapped[ERROR_LINES - 1 :]), max(body, 20))]
            lines.extend(cut(f"{below}! {w}", width) for w in wrapped)
        if cut_here:
            return
        shown = [c for c in node.children if verbose or c.row["status"] != "Skipped"]
        hidden = len(node.children) - len(shown)
        for i, child in enumerate(shown):
            last = i == len(shown) - 1 and not hidden
            visit(child, below, "└─ " if last else "├─ ", level + 1)
        if hidden:
            lines.append(cut(f"{below}└─ ({hidden} skipped; -v shows them)", width))

    for root in roots:
        visit(root, "", "", 0)
    return lines


def as_json(roots: list[Node]) -> list[dict[str, Any]]:
    """The documented JSON of runs (docs/orchestration.md, "Run history")."""
    return [_json_node(root) for root in roots]


def _json_node(node: Node) -> dict[str, Any]:
    row = node.row
    common = {
        "status": row["status"],
        "started_at": _iso(row["started_at"]),
        "ended_at": _iso(row.get("ended_at")),
        "seconds": seconds(row),
        "error": row.get("error"),
    }
    if node.kind == "pipeline":
        return {
            "run_id": row["run_id"],
            "pipeline": row["pipeline"],
            **common,
            "trigger": row.get("trigger_name"),
            "parameters": row.get("parameters") or {},
            "window": window(row.get("parameters")) or None,
            "parent_run_id": row.get("parent_run_id"),
            "rerun_of": row.get("rerun_of"),
            "activities": [_json_node(c) for c in node.children],
        }
    return {
        "activity_run_id": row["activity_run_id"],
        "activity": row["activity"],
        "type": row["activity_type"],
        **common,
        "attempt": row.get("attempt", 1),
        "reused_from": row.get("reused_from"),
        "children": [_json_node(c) for c in node.children],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else value
