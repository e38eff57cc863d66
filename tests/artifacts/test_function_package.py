"""The Function app package, as Azure loads it: unpacked alone, with only its own requirements.

Cost: the first run builds a Python 3.11 venv from functions/requirements.txt (about a minute,
network); later runs reuse it (cache keyed by the requirement lines) and take a few seconds:
build the package, index it in a subprocess.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile

import pytest

from infra.artifacts import REPO_ROOT, build_functions
from tests.artifacts.venvs import cached_venv, find_python, python_of

APP_PYTHON = "3.11"  # infra/ingestion.py: linuxFxVersion Python|3.11
# What the Python worker does at load (azure-functions-python-worker, loader.index_function_app):
# import function_app.py, find its one FunctionRegister, ask it for its functions and their JSON.
INDEX = """
import json, sys
sys.path.insert(0, ".")
import azure.functions as func
import function_app
apps = [v for v in vars(function_app).values() if isinstance(v, func.FunctionRegister)]
assert len(apps) == 1, f"expected one FunctionRegister in function_app.py, found {len(apps)}"
functions = apps[0].get_functions()
print(json.dumps({f.get_function_name(): json.loads(f.get_function_json()) for f in functions}))
"""


@pytest.fixture(scope="module")
def app_venv():
    python = find_python(APP_PYTHON)
    if python is None:
        pytest.skip(f"no Python {APP_PYTHON} interpreter: the Function app runs on {APP_PYTHON}")
    lines = [ln for ln in (REPO_ROOT / "functions" / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]  # fmt: skip
    return cached_venv(python, lines, "function-app")


def index(venv, app_dir) -> subprocess.CompletedProcess:
    return subprocess.run([python_of(venv), "-I", "-c", INDEX], cwd=app_dir, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def unpacked(tmp_path):
    _, archive = build_functions(tmp_path / "build")
    app = tmp_path / "wwwroot"
    zipfile.ZipFile(archive).extractall(app)
    return app


def test_the_function_package_alone_registers_every_function(app_venv, tmp_path):
    from local.function_host import functions  # the development tree's app, indexed once per process

    app = unpacked(tmp_path)
    assert not (app / "local.settings.json").exists() and (app / "lakehouse" / "settings.py").is_file()
    result = index(app_venv, app)
    assert result.returncode == 0, result.stderr[-3000:]
    indexed = json.loads(result.stdout.strip().splitlines()[-1])
    expected = set(functions())  # get_functions() may be called only once per app
    called_by_adf = {a["typeProperties"]["functionName"]
                     for a in json.loads((REPO_ROOT / "adf" / "pipeline" / "pl_ingest_market_data.json").read_text())
                     ["properties"]["activities"] if a.get("type") == "AzureFunctionActivity"}  # fmt: skip
    assert set(indexed) == expected and called_by_adf <= set(indexed)
    assert {b["type"] for spec in indexed.values() for b in spec["bindings"]} >= {"httpTrigger", "timerTrigger"}


def test_a_package_missing_a_module_the_app_imports_fails_to_index(app_venv, tmp_path):
    app = unpacked(tmp_path)
    shutil.rmtree(app / "lakehouse")
    result = index(app_venv, app)
    assert result.returncode != 0 and "No module named 'lakehouse'" in result.stderr
