"""`infra/__main__.py` as Pulumi's Python host loads it: the program directory first on sys.path, the
repository root not on it (`python -P`: the host runs the program from its own script, not from `-c`)."""

from __future__ import annotations

import subprocess
import sys

from infra.preview import REPO_ROOT

HOST = """
import runpy, sys
sys.path.insert(0, "infra")          # what the language host does for `main: infra/`
runpy.run_path("infra/__main__.py", run_name="loaded-not-run")
import secrets, infra.key_vault, lakehouse.alert_rules
print(secrets.__file__)
print(infra.key_vault.__file__)
print(sys.path[0])
"""


def test_program_directory_does_not_shadow_the_standard_library_and_finds_the_installed_packages():
    out = subprocess.run([sys.executable, "-P", "-c", HOST], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout.splitlines()  # fmt: skip
    stdlib_secrets, component, first_on_path = out
    assert "/infra/" not in stdlib_secrets, "a module of infra/ shadowed the stdlib's secrets"
    assert component.endswith("infra/key_vault.py")
    assert first_on_path == "infra"  # the host's layout, left as it is by the program


def test_no_infra_module_is_named_like_a_standard_library_module():
    names = {p.stem for p in (REPO_ROOT / "infra").glob("*.py")}
    assert names & set(sys.stdlib_module_names) == set()
