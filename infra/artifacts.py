"""The deployables, built once: the Function app package, the Databricks wheel and the notebooks.

`make package` runs this module and the delivery workflow deploys what it writes; the artifact
tests (tests/artifacts) build through the same functions, so what is tested is what ships.

* ``functions/`` and ``functions.zip``: the Function app root with the shared ``lakehouse``
  package vendored in (the app imports it at load; without it no function is registered).
* ``dist/<wheel>``: ``lakehouse`` and ``spark_jobs`` only. ``local`` (the one-machine runtime and
  the ``lakehouse`` CLI) is not shipped to clusters: the wheel is built from a staging copy whose
  ``pyproject.toml`` is the repository's with the package list narrowed and the scripts removed.
* ``notebooks/``: the Databricks source-format notebooks uploaded to the workspace.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO_ROOT / "build"
WHEEL_PACKAGES = ("lakehouse", "spark_jobs")
FUNCTION_EXCLUDES = ("local.settings.json", "local.settings.json.example")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


@dataclass(frozen=True)
class Artifacts:
    """Where one build put each deployable."""

    functions_dir: Path
    functions_zip: Path
    wheel: Path
    notebooks_dir: Path


def project(repo_root: Path = REPO_ROOT) -> dict:
    """The ``[project]`` table of the repository's pyproject.toml."""
    return tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def wheel_name(repo_root: Path = REPO_ROOT) -> str:
    """File name of the Databricks wheel, from pyproject.toml."""
    meta = project(repo_root)
    return f"{meta['name'].replace('-', '_')}-{meta['version']}-py3-none-any.whl"


def toml_value(value: object) -> str:
    """A TOML literal for the strings, lists and tables of pyproject metadata."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def wheel_pyproject(repo_root: Path = REPO_ROOT) -> str:
    """pyproject.toml of the wheel's staging copy: the repository's metadata, only the cluster packages."""
    full = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))
    meta = {k: v for k, v in full["project"].items() if k not in ("scripts", "gui-scripts", "entry-points")}
    lines = ["[build-system]", 'requires = ["setuptools>=61"]', 'build-backend = "setuptools.build_meta"']
    lines += ["", "[project]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in meta.items()]
    include = toml_value([f"{p}*" for p in WHEEL_PACKAGES])
    lines += ["", "[tool.setuptools.packages.find]", f"include = {include}"]
    package_data = full.get("tool", {}).get("setuptools", {}).get("package-data", {})
    kept = {k: v for k, v in package_data.items() if k in WHEEL_PACKAGES}
    if kept:
        lines += ["", "[tool.setuptools.package-data]"] + [f"{k} = {toml_value(v)}" for k, v in kept.items()]
    return "\n".join(lines) + "\n"


def build_functions(out: Path, repo_root: Path = REPO_ROOT) -> tuple[Path, Path]:
    """The Function app root with ``lakehouse`` vendored, as a directory and as the zip that is deployed."""
    app = out / "functions"
    shutil.rmtree(app, ignore_errors=True)
    skip = shutil.ignore_patterns(*FUNCTION_EXCLUDES, "__pycache__", "*.pyc")
    shutil.copytree(repo_root / "functions", app, ignore=skip)
    shutil.copytree(repo_root / "lakehouse", app / "lakehouse", ignore=_IGNORE)
    archive = out / "functions.zip"
    archive.unlink(missing_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in app.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(app).as_posix())
    return app, archive


def build_wheel(out: Path, repo_root: Path = REPO_ROOT) -> Path:
    """The Databricks wheel (``lakehouse`` and ``spark_jobs``, never ``local``) in ``out/dist``."""
    dist = out / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    target = dist / wheel_name(repo_root)
    target.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheel-staging-") as tmp:
        staging = Path(tmp)
        for package in WHEEL_PACKAGES:
            shutil.copytree(repo_root / package, staging / package, ignore=_IGNORE)
        (staging / "pyproject.toml").write_text(wheel_pyproject(repo_root), encoding="utf-8")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "--wheel-dir", str(dist), str(staging)],
            check=True,
        )  # fmt: skip
    if not target.is_file():
        raise FileNotFoundError(f"the wheel build did not produce {target}")
    return target


def build_notebooks(out: Path, repo_root: Path = REPO_ROOT) -> Path:
    """The notebooks the workspace receives."""
    target = out / "notebooks"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in sorted((repo_root / "spark_jobs" / "notebooks").glob("*.py")):
        shutil.copy2(path, target / path.name)
    return target


def build_all(out: Path = BUILD_ROOT, repo_root: Path = REPO_ROOT) -> Artifacts:
    """Every deployable into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    app, archive = build_functions(out, repo_root)
    return Artifacts(app, archive, build_wheel(out, repo_root), build_notebooks(out, repo_root))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUILD_ROOT, help="output directory (default: build/)")
    built = build_all(parser.parse_args(argv).out)
    for name, path in vars(built).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
