"""The import graph of the source tree: nothing deployed imports the one-machine runtime, and no
module imports itself through others.

`local/` (CLI, ADF runner, synthetic API, embedded services) must stay out of what runs in Azure:
an import of it from `spark_jobs/`, `functions/`, `lakehouse/` or `infra/` drags it into the
Databricks wheel or the Function package. Every import counts, including ones inside functions
and under ``if TYPE_CHECKING:``, because each is a dependency someone has to ship or untangle.
The graph is read statically (``ast``), so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Source root -> the directory its modules are importable from. The Function app's package is
# imported as `market_ingest` (its folder is the app root), everything else from the repository root.
SOURCE_ROOTS: dict[str, Path] = {
    "lakehouse": ROOT,
    "spark_jobs": ROOT,
    "functions": ROOT / "functions",
    "infra": ROOT,
    "local": ROOT,
    "bench": ROOT,
}
DEPLOYED = ("lakehouse", "spark_jobs", "functions", "infra")
RUNTIME_ONLY = "local"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def modules_under(folder: Path, import_root: Path) -> dict[str, Module]:
    """Every ``.py`` file below `folder`, by the dotted name it is imported as from `import_root`."""
    found: dict[str, Module] = {}
    for path in sorted(folder.rglob("*.py")):
        if any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(folder).parts):
            continue
        parts = list(path.relative_to(import_root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = Module(".".join(parts), path, is_package)
    return found


def _resolve_relative(module: Module, level: int, target: str | None) -> str:
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([target] if target else [])])


def imports_of(module: Module) -> list[Import]:
    """Every module name `module` imports, wherever the statement is (top level, function, TYPE_CHECKING)."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(module.name, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(module, node.level, node.module) if node.level else (node.module or "")
            found.append(Import(module.name, base, node.lineno))
            # `from package import name` imports the submodule `package.name` when there is one.
            found.extend(Import(module.name, f"{base}.{alias.name}", node.lineno) for alias in node.names)
    return found


def import_graph(modules: Mapping[str, Module]) -> dict[str, list[Import]]:
    """Importer -> its imports of modules in `modules` (third-party and stdlib imports dropped)."""
    return {
        name: [i for i in imports_of(module) if i.imported in modules and i.imported != name]
        for name, module in modules.items()
    }


def back_edges(
    graph: Mapping[str, Iterable[Import]], modules: Mapping[str, Module], deployed: Iterable[Path], forbidden: str
) -> list[str]:
    """``path:line imports name`` for each import of the `forbidden` package by a file under `deployed`."""
    roots = [d.resolve() for d in deployed]
    found = set()
    for name, edges in graph.items():
        path = modules[name].path.resolve()
        root = next((r for r in roots if path.is_relative_to(r)), None)
        if root is None:
            continue
        for edge in edges:
            if edge.imported == forbidden or edge.imported.startswith(forbidden + "."):
                found.add(f"{path.relative_to(root.parent)}:{edge.line} imports {edge.imported}")
    return sorted(found)


def cycles(graph: Mapping[str, Iterable[Import]]) -> list[list[str]]:
    """One concrete cycle (``a -> b -> ... -> a``) per strongly connected group of modules."""
    targets = {name: sorted({e.imported for e in edges}) for name, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(start: str) -> None:  # Tarjan, iterative: deep module chains must not hit the recursion limit
        work = [(start, iter(targets[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(targets[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for name in sorted(targets):
        if name not in index:
            connect(name)
    return [_one_cycle(group, targets) for group in sorted(groups)]


def _one_cycle(group: list[str], targets: Mapping[str, list[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    members, start = set(group), group[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in targets[node]:
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")  # a strongly connected group always has one


def source_modules(root: Path, source_roots: Mapping[str, Path]) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for folder, import_root in source_roots.items():
        modules.update(modules_under(root / folder, import_root))
    return modules


# --- the repository --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repository() -> tuple[dict[str, Module], dict[str, list[Import]]]:
    modules = source_modules(ROOT, SOURCE_ROOTS)
    return modules, import_graph(modules)


def test_the_graph_sees_every_source_package(repository):
    modules, graph = repository
    assert {name.split(".")[0] for name in modules} >= {
        "lakehouse", "spark_jobs", "market_ingest", "function_app", "infra", "local", "bench",
    }  # fmt: skip
    assert any(e.imported == "lakehouse.settings" for e in graph["spark_jobs.pg"])


def test_nothing_deployed_imports_the_local_runtime(repository):
    modules, graph = repository
    found = back_edges(graph, modules, [ROOT / d for d in DEPLOYED], RUNTIME_ONLY)
    assert found == [], "the one-machine runtime is imported by deployed code:\n" + "\n".join(found)


def test_no_module_imports_itself_through_others(repository):
    _, graph = repository
    found = cycles(graph)
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


# --- the checker itself, on a package made for it -------------------------------------------


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _synthetic(tmp_path: Path, files: Mapping[str, str]):
    _write(tmp_path, {"core/__init__.py": "", "local/__init__.py": "", **files})
    modules = source_modules(tmp_path, {"core": tmp_path, "local": tmp_path})
    return modules, import_graph(modules)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import local.tool\n", ["1 imports local.tool"]),
        ("from local import tool\n", ["1 imports local", "1 imports local.tool"]),
        ("from local.tool import helper\n", ["1 imports local.tool"]),
        ("def f():\n    from local import tool\n", ["2 imports local", "2 imports local.tool"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import local\n", ["3 imports local"]),
        ("from ...local import tool\n", ["1 imports local", "1 imports local.tool"]),
    ],
    ids=["import", "from-package", "from-module", "function-local", "type-checking", "relative"],
)
def test_the_checker_finds_a_back_edge_however_it_is_written(tmp_path, source, expected):
    modules, graph = _synthetic(
        tmp_path, {"core/sub/__init__.py": "", "core/sub/job.py": source, "local/tool.py": "def helper(): ...\n"}
    )
    found = back_edges(graph, modules, [tmp_path / "core"], "local")
    assert found == [f"core/sub/job.py:{e}" for e in expected]


def test_the_checker_allows_the_runtime_to_import_deployed_code(tmp_path):
    modules, graph = _synthetic(tmp_path, {"core/jobs.py": "X = 1\n", "local/cli.py": "from core.jobs import X\n"})
    assert back_edges(graph, modules, [tmp_path / "core"], "local") == []
    assert cycles(graph) == []


def test_the_checker_reports_a_cycle_hidden_in_functions_and_type_checking(tmp_path):
    _, graph = _synthetic(
        tmp_path,
        {
            "core/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from core.b import B\n",
            "core/b.py": "def load():\n    from core import c\n",
            "core/c.py": "from .a import *\n",
            "core/d.py": "import core.a\n",  # imports into the cycle, is not part of it
        },
    )
    assert cycles(graph) == [["core.a", "core.b", "core.c", "core.a"]]


def test_the_checker_reports_each_cycle_once(tmp_path):
    _, graph = _synthetic(
        tmp_path,
        {
            "core/a.py": "import core.b\n",
            "core/b.py": "import core.a\n",
            "local/x.py": "from local import y\n",
            "local/y.py": "from local.x import *\n",
        },
    )
    assert cycles(graph) == [["core.a", "core.b", "core.a"], ["local.x", "local.y", "local.x"]]
