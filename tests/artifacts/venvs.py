"""Virtual environments for the artifact tests: fresh ones, cached by what they hold.

A venv is keyed by its interpreter's version and the exact requirement lines, so repeated runs
reuse it and any change to a pin builds a new one. Only the listed requirements are ever
installed into a cached venv; the artifact under test goes into a throwaway copy of the
environment's site (see :func:`overlay`) or is put on ``sys.path`` of one process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE_ROOT = Path(os.environ.get("LAKEHOUSE_ARTIFACT_CACHE", Path.home() / ".cache" / "market-lakehouse" / "venvs"))


def find_python(version: str) -> str | None:
    """A working interpreter of ``version`` (e.g. ``3.12``): this one, one on PATH, or a pyenv install."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python{version}"), *sorted(pyenv.glob(f"{version}.*/bin/python{version}"))[::-1]]
    for candidate in filter(None, candidates):
        probe = subprocess.run([str(candidate), "-c", "import sys; print(sys.executable)"], capture_output=True,
                               text=True)  # fmt: skip
        if probe.returncode == 0:  # a pyenv shim for a version that is not selected fails here
            return probe.stdout.strip()
    return None


def cached_venv(python: str, requirements: list[str], label: str) -> Path:
    """A venv with exactly ``requirements`` installed by pip, built once per (interpreter, lines)."""
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                             check=True).stdout.strip()  # fmt: skip
    key = hashlib.sha256("\n".join([version, *requirements]).encode()).hexdigest()[:16]
    root = CACHE_ROOT / f"{label}-{key}"
    if (root / ".complete").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(root)], check=True)
    reqs = root / "requirements.txt"
    reqs.write_text("\n".join(requirements) + "\n")
    pip(root, "install", "--quiet", "--disable-pip-version-check", "-r", str(reqs))
    (root / ".complete").write_text(key)
    return root


def python_of(venv: Path) -> str:
    return str(venv / "bin" / "python")


def pip(venv: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([python_of(venv), "-m", "pip", *args], capture_output=True, text=True, check=check)


def frozen(venv: Path) -> dict[str, str]:
    """Installed distributions of a venv, by normalized name."""
    out = pip(venv, "list", "--format=freeze", "--disable-pip-version-check").stdout
    pairs = (line.split("==", 1) for line in out.splitlines() if "==" in line)
    return {name.lower().replace("_", "-"): version for name, version in pairs}
