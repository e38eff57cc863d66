"""ADF expressions, evaluated by Microsoft's engine behind this one adapter.

The engine is ``data-factory-testing-framework`` (a .NET assembly behind pythonnet). Its public
entry point, ``models.DataFactoryElement(expression).evaluate(state)`` over a
``state.PipelineRunState``, is the reference; the rest of the runner sees plain values and
opaque states made here. Gaps of that API are bridged here, each pinned by a test in
``tests/local/adf/test_expressions.py`` that fails when an upgrade changes it:

- the public entry point compiles the grammar and re-parses the expression on every call
  (~60 ms, most of a backfill's run time); the parse depends on the text only, so the adapter
  keeps one of the framework's runtimes, parses each text once and evaluates the parsed form.
  The parsed form is text too, so it is also kept on disk (:class:`ParseStore`) for the next
  process, under a key made of the framework's version and parser sources: a daily run parses
  ~30 texts, 0.6 s of every run before. Nothing of the framework is replaced; an expression that
  fails this way is evaluated again through the public entry point, so errors are the framework's own;
- the engine drops a falsy ``item()`` (it serialises the item only ``if state.iteration_item``),
  so an item 0, '', [] or {} is handed over as a truthy subclass that serialises the same;
- ``PipelineRunState.add_activity_result`` takes no error, so ``activity('x').error`` is set on
  the state's ``ActivityResult`` records after they are added.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.adf.factory import cache_dir
from local.dotnet_runtime import load_dotnet

log = logging.getLogger(__name__)
FRAMEWORK_DISTRIBUTION = "data-factory-testing-framework"
FRAMEWORK_PACKAGE = "data_factory_testing_framework"
# The framework modules whose code decides the parsed form: a change to any of them is a new store.
PARSER_MODULES = (
    "data_factory_testing_framework._expression_runtime.data_factory_expression.expression_transformer",
    "data_factory_testing_framework._expression_runtime.data_factory_expression.data_factory_to_expression_transformer",
    "data_factory_testing_framework._expression_runtime.functions_repository",
)
# Trigger expressions carry the firing time as a literal, so each firing adds a text: the store
# keeps the latest ones and stays small.
MAX_STORED_PARSES = 2000


class ExpressionError(ValueError):
    """An expression that Microsoft's engine could not evaluate; names the expression."""


_setup_lock = threading.RLock()
_loaded_framework: tuple[Any, Any] | None = None
_loaded_engine: ParsedEngine | None = None


def _framework() -> Any:
    """The framework's public modules; importing them loads .NET, which must be configured first."""
    global _loaded_framework
    with _setup_lock:
        if _loaded_framework is None:
            load_dotnet()
            import data_factory_testing_framework.models as models
            import data_factory_testing_framework.state as state

            _loaded_framework = models, state
        return _loaded_framework


class ParseStore:
    """Parsed forms kept in a JSON file, for the processes that come after this one.

    A parsed form is the text the framework's transformer makes of an expression, for its .NET
    evaluator; it depends on the expression and on the transformer's code only, so the file is
    named after the framework's version and the sources of its parser modules (an upgrade, or an
    edited install, starts a new file). Only text is kept or read back; an unreadable or malformed
    file is ignored and written again. Writes replace the file atomically, merged with what other
    processes wrote meanwhile.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def default(cls) -> ParseStore:
        """The store of this installation of the framework, in the user's cache directory."""
        return cls(cache_dir() / f"adf-expressions-{parser_fingerprint()}.json")

    def read(self) -> dict[str, str]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict):
            return {}
        return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)}

    def write(self, parsed: Mapping[str, str]) -> None:
        """Add `parsed` to the file (a cache: a failure to write is logged, never raised)."""
        merged = {**self.read(), **parsed}
        kept = dict(list(merged.items())[-MAX_STORED_PARSES:])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        except OSError as exc:
            log.debug("could not keep parsed expressions in %s: %s", self.path, exc)
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(kept, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("could not keep parsed expressions in %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def parser_fingerprint() -> str:
    """What the parsed form depends on besides the text: the framework's version and parser code.

    The parser modules are read as files, found from the package's location: importing any module
    of the framework runs its package ``__init__``, which starts .NET, and .NET must be configured
    first (``local.dotnet_runtime``). A ``find_spec`` of a submodule imports its parents: the
    warm-up thread, which computes this before loading .NET, failed on it in every process.
    """
    digest = hashlib.sha256(importlib.metadata.version(FRAMEWORK_DISTRIBUTION).encode())
    package = importlib.util.find_spec(FRAMEWORK_PACKAGE)  # a top-level package: found, not imported
    root = Path(package.origin).parent if package is not None and package.origin else None
    for module in PARSER_MODULES:
        path = root.joinpath(*module.split(".")[1:]).with_suffix(".py") if root is not None else None
        source = path.read_bytes() if path is not None and path.is_file() else b"missing"
        digest.update(module.encode() + b"\0" + source)
    return digest.hexdigest()[:16]


class ParsedEngine:
    """The framework's runtime, kept for the process, with every expression text parsed once.

    Uses the two stages the framework's ``ExpressionRuntime.evaluate`` runs: the transformer
    (text -> the evaluator's form; pure in the text) and the .NET evaluator (form, state -> value).
    The transformer is built on the first text not parsed yet: building it compiles its grammar
    (0.14 s of CPU), and a daily run finds every text in the store.

    Args:
        store: where parsed forms are kept across processes (None: this process only).
    """

    def __init__(self, store: ParseStore | None = None) -> None:
        _framework()
        from data_factory_testing_framework._pythonnet.data_factory_testing_framework_expressions_evaluator import (
            DataFactoryTestingFrameworkExpressionsEvaluator,
        )

        self._evaluate = DataFactoryTestingFrameworkExpressionsEvaluator().evaluate
        self._transformer: Any = None
        self._store = store
        self._parsed: dict[str, Any] = store.read() if store is not None else {}
        self._lock = threading.Lock()  # the framework's parser is not thread-safe

    def _parse(self, expression: str, state: Any) -> Any:
        """The framework's transformer's form of `expression` (called under the lock)."""
        if self._transformer is None:
            from data_factory_testing_framework._expression_runtime.data_factory_expression.expression_transformer import (  # noqa: E501
                ExpressionTransformer,
            )

            self._transformer = ExpressionTransformer()
        return self._transformer.transform_to_dftf_evaluator_expression(expression, state)

    def evaluate(self, expression: str, state: Any) -> Any:
        with self._lock:
            parsed = self._parsed.get(expression)
            if parsed is None:
                parsed = self._parsed[expression] = self._parse(expression, state)
                if self._store is not None and isinstance(parsed, str):
                    self._store.write({expression: parsed})
        return self._evaluate(parsed, state)


def _engine() -> ParsedEngine:
    global _loaded_engine
    with _setup_lock:
        if _loaded_engine is None:
            _loaded_engine = ParsedEngine(ParseStore.default())
        return _loaded_engine


_warm_up: threading.Thread | None = None
_warm_up_lock = threading.Lock()  # not the setup lock, which the warm-up holds while .NET loads


def warm_up() -> None:
    """Load .NET and the engine on a thread of their own, once, while the caller does other work.

    Loading costs 0.4-0.7 s of CPU, mostly .NET's own start (``local.dotnet_runtime``); a run's
    first expression then finds the engine ready (or waits for the rest of the load). .NET holds
    the GIL while it loads, so what this hides is the caller's waits (services, PostgreSQL, Spark
    Connect), not its Python work. A failure is not reported here: the first evaluation raises it.
    Not a daemon thread, so a process never exits half-way through loading .NET.
    """
    global _warm_up
    with _warm_up_lock:  # a second call returns at once (it waited for the whole load before)
        if _warm_up is None and _loaded_engine is None:
            _warm_up = threading.Thread(target=_try_engine, name="adf-expressions-warm-up")
            _warm_up.start()


def _try_engine() -> None:
    try:
        _engine()
    except Exception as exc:  # the first evaluation raises it again, where it is reported
        log.debug("the expression engine did not load in the background: %s", exc)


def is_expression(value: Any) -> bool:
    """True for ``{"type": "Expression", "value": "@..."}``, the JSON form of an expression."""
    return (
        isinstance(value, dict)
        and value.get("type") == "Expression"
        and set(value) == {"type", "value"}
        and isinstance(value["value"], str)
    )


def evaluate_expression(expression: str, state: Any = None) -> Any:
    """The value of one expression over `state` (default: a state with nothing in it).

    Raises:
        ExpressionError: the framework's own error for this expression, with the expression.
    """
    state = state if state is not None else new_state()
    # a failure is evaluated again below, through the public entry point, for the framework's own error
    with contextlib.suppress(Exception):
        return _engine().evaluate(expression, state)
    models, _ = _framework()
    try:
        return models.DataFactoryElement(expression).evaluate(state)
    except Exception as exc:
        cause = exc.__cause__ if exc.__cause__ is not None and exc.__cause__ is not exc else exc
        raise ExpressionError(f"cannot evaluate {expression!r}: {cause}") from None


def evaluate(value: Any, state: Any, skip_keys: frozenset[str] = frozenset()) -> Any:
    """A copy of `value` with every ``{"type": "Expression", "value": ...}`` evaluated."""
    if is_expression(value):
        return evaluate_expression(value["value"], state)
    if isinstance(value, dict):
        return {k: (v if k in skip_keys else evaluate(v, state)) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, state) for v in value]
    return value


def _truthy_type(base: type) -> type:
    return type(f"Truthy{base.__name__.capitalize()}", (base,), {"__bool__": lambda self: True, "__slots__": ()})


_TRUTHY_TYPES = {base: _truthy_type(base) for base in (int, float, str, list, dict)}


def _kept_item(item: Any) -> Any:
    """`item` as the engine will see it: a falsy item (not False) becomes a truthy equal copy."""
    if item is None or item or isinstance(item, bool):
        return item
    for base, truthy in _TRUTHY_TYPES.items():
        if isinstance(item, base):
            return truthy(item)
    return item


def new_state(
    parameters: list[Any] | None = None,
    variables: list[Any] | None = None,
    results: list[Any] | None = None,
    item: Any = None,
) -> Any:
    _, state = _framework()
    return state.PipelineRunState(list(parameters or []), variables or [], list(results or []), _kept_item(item))


def pipeline_state(
    parameters: Mapping[str, Any],
    global_parameters: Mapping[str, Any],
    system: Mapping[str, Any],
    variables: Mapping[str, Any],
) -> Any:
    """The state of a pipeline run at its start: its parameters, ``pipeline()`` values, variables."""
    _, state = _framework()
    kind = state.RunParameterType
    params = [state.RunParameter(kind.Pipeline, k, v) for k, v in parameters.items()]
    params += [state.RunParameter(kind.Global, k, v) for k, v in global_parameters.items()]
    params += [state.RunParameter(kind.System, k, v) for k, v in system.items()]
    return new_state(params, [state.PipelineRunVariable(k, v) for k, v in variables.items()])


def scope_state(parent: Any, item: Any = None) -> Any:
    """Inner scope: sees the parent's results and variables; its own results stay inside it."""
    return new_state(
        parent.parameters,
        parent.variables,
        parent.activity_results,
        item if item is not None else parent.iteration_item,
    )


def set_result(state: Any, name: str, status: str, output: Any, error: dict[str, Any] | None) -> None:
    """Record an activity's outcome so that ``activity(name)`` sees its output, status and error."""
    state.add_activity_result(name, status, output)
    for collection in (state.activity_results, state.scoped_activity_results):
        for result in collection:
            if result.activity_name == name:
                result.error = error


def set_variable(state: Any, name: str, value: Any) -> None:
    state.set_variable(name, value)


def append_variable(state: Any, name: str, value: Any) -> None:
    state.append_variable(name, value)


def variable_values(state: Any) -> dict[str, Any]:
    """The variables' current values, copied."""
    return {v.name: copy.deepcopy(v.value) for v in state.variables}
