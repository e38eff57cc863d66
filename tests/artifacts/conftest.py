"""The Databricks runtime stand-in: the runtime's Python, its preinstalled libraries and Spark version."""

from __future__ import annotations

import subprocess
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest

from infra import databricks_runtime as runtime
from infra.artifacts import build_wheel
from tests.artifacts.venvs import cached_venv, find_python, pip


@dataclass(frozen=True)
class RuntimeEnv:
    """A cached venv holding the runtime's libraries and the wheel's dependencies, and the wheel
    installed (``--no-deps``) into a directory of its own for this test session."""

    venv: Path
    wheel: Path
    site: Path

    def run(self, *args: str, cwd: Path, extra_path: tuple[Path, ...] = (), timeout: int = 600):
        env = {"PYTHONPATH": ":".join(str(p) for p in (self.site, *extra_path)), "PATH": "/usr/bin:/bin",
               "HOME": str(cwd)}  # fmt: skip
        import os

        env.update({k: v for k, v in os.environ.items() if k in ("JAVA_HOME", "LANG")})
        return subprocess.run([str(self.venv / "bin" / "python"), *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip


def requires_dist(wheel: Path) -> list[str]:
    """The wheel's own dependency lines (Requires-Dist), as pip requirement strings."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(name).decode())
    return sorted(meta.get_all("Requires-Dist") or [])


@pytest.fixture(scope="session")
def databricks_wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def runtime_env(databricks_wheel: Path, tmp_path_factory) -> RuntimeEnv:
    python = find_python(runtime.PYTHON_VERSION)
    if python is None:
        pytest.skip(f"no Python {runtime.PYTHON_VERSION} interpreter (Databricks Runtime {runtime.SPARK_VERSION_KEY})")
    lines = [*runtime.constraints(), f"pyspark=={runtime.SPARK_VERSION}", *requires_dist(databricks_wheel)]
    try:
        venv = cached_venv(python, lines, "databricks-runtime")
    except subprocess.CalledProcessError as exc:
        errors = [ln for ln in (exc.stderr or "").splitlines() if ln.startswith("ERROR")]
        pytest.fail(f"the wheel's dependencies do not install next to the runtime's libraries: {errors or exc}")
    site = tmp_path_factory.mktemp("wheel-site")
    result = pip(venv, "install", "--quiet", "--no-deps", "--target", str(site), str(databricks_wheel), check=False)
    assert result.returncode == 0, f"the wheel does not install on Python {runtime.PYTHON_VERSION}: {result.stderr}"
    return RuntimeEnv(venv, databricks_wheel, site)
