"""`infra/__main__.py` as Pulumi's Python host loads it: the program directory first on sys.path."""

from __future__ import annotations

import subprocess
import sys

from infra.preview import REPO_ROOT

HOST = """
import runpy, sys
sys.path.insert(0, "infra")          # what the language host does for `main: infra/`
runpy.run_path("infra/__main__.py", run_name="loaded-not-run")
import secrets, infra.secrets, lakehouse.alert_rules
print(secrets.__file__)
print(infra.secrets.__file__)
"""


def test_program_directory_does_not_shadow_the_standard_library_and_finds_the_repo_packages():
    out = subprocess.run([sys.executable, "-c", HOST], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True).stdout.splitlines()  # fmt: skip
    stdlib_secrets, component = out
    assert "/infra/" not in stdlib_secrets, "infra/secrets.py shadowed the stdlib module"
    assert component.endswith("infra/secrets.py")
