"""The Databricks wheel, as a job cluster installs it: on the runtime's Python, next to the
runtime's preinstalled libraries (infra/databricks_runtime.py), then every notebook's imports.

Cost: the first run builds a Python 3.12 venv with the runtime's libraries, pyspark at the
runtime's Spark version and the wheel's dependencies (about two minutes, network); later runs
reuse it and take a few seconds (build the wheel, install it --no-deps, import).
"""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

from infra import databricks_runtime as runtime
from infra.artifacts import REPO_ROOT
from tests.artifacts.conftest import requires_dist
from tests.artifacts.venvs import frozen

NOTEBOOKS = sorted((REPO_ROOT / "spark_jobs" / "notebooks").glob("*.py"))


def notebook_imports(path: Path) -> dict[str, list[str]]:
    """Module -> names a notebook imports from it (empty list for a plain ``import``)."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name, [])
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.setdefault(node.module, []).extend(a.name for a in node.names)
    return found


CHECK = """
import importlib, json, sys
wanted = json.loads(sys.argv[1])
missing = []
for module, names in wanted.items():
    try:
        m = importlib.import_module(module)
    except Exception as exc:
        missing.append(f"{module}: {exc!r}"); continue
    if module.split(".")[0] in ("lakehouse", "spark_jobs") and not m.__file__.startswith(sys.argv[2]):
        missing.append(f"{module} was imported from {m.__file__}, not from the wheel")
    missing += [f"{module}.{n}" for n in names if not hasattr(m, n)]
print(json.dumps(missing))
"""


def test_the_wheel_ships_lakehouse_and_spark_jobs_and_not_local(databricks_wheel):
    names = zipfile.ZipFile(databricks_wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"lakehouse", "spark_jobs"}
    assert {f"spark_jobs/notebooks/{p.name}" for p in NOTEBOOKS} <= set(names)
    assert any(n.startswith("spark_jobs/contracts/") and n.endswith(".json") for n in names)
    entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert entry_points == [], "the wheel must not install the local `lakehouse` CLI"


def test_the_wheel_installs_without_changing_a_preinstalled_library(runtime_env):
    installed = frozen(runtime_env.venv)
    changed = {name: (version, installed.get(name)) for name, version in runtime.PREINSTALLED.items()
               if installed.get(name) != version}  # fmt: skip
    assert changed == {}, f"runtime library versions changed by the wheel's dependencies: {changed}"
    assert installed["pyspark"] == runtime.SPARK_VERSION
    assert requires_dist(runtime_env.wheel), "the wheel declares its dependencies"


def test_every_notebook_imports_what_the_wheel_and_runtime_provide(runtime_env, tmp_path):
    wanted: dict[str, list[str]] = {}
    for path in NOTEBOOKS:
        for module, names in notebook_imports(path).items():
            wanted.setdefault(module, []).extend(names)
    assert {"spark_jobs.job_params", "lakehouse.settings"} <= set(wanted)
    result = runtime_env.run("-c", CHECK, json.dumps(wanted), str(runtime_env.site), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_an_import_the_wheel_does_not_ship_is_reported(runtime_env, tmp_path):
    wanted = {"spark_jobs.jobs": ["run_raw_to_bronze", "no_such_job"], "local.cli": []}
    result = runtime_env.run("-c", CHECK, json.dumps(wanted), str(runtime_env.site), cwd=tmp_path)
    missing = json.loads(result.stdout.strip().splitlines()[-1])
    assert "spark_jobs.jobs.no_such_job" in missing and any(m.startswith("local.cli:") for m in missing)
