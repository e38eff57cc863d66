"""The expression adapter over data-factory-testing-framework, and the upstream gaps it bridges.

Tests named ``test_upstream_*`` pin a behaviour of the installed framework that the adapter
works around: when an upgrade changes it, the test fails and the workaround can go.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from local.adf import expressions
from local.adf.expressions import ExpressionError, evaluate_expression, new_state, pipeline_state, set_result
from local.dotnet_runtime import ensure_dotnet


@pytest.fixture(scope="module")
def framework():
    ensure_dotnet()
    import data_factory_testing_framework.exceptions as exceptions
    import data_factory_testing_framework.models as models
    import data_factory_testing_framework.state as state

    return models, state, exceptions


def _state():
    state = pipeline_state(
        {"runDate": "2024-01-05", "symbols": ["AAPL", "MSFT"], "days": 3},
        {"env": "dev"},
        {"RunId": "run-1", "Pipeline": "pl_x"},
        {"chunks": [1, 2], "label": "x"},
    )
    set_result(state, "Load", "Succeeded", {"runOutput": {"rows": 7}}, None)
    return expressions.scope_state(state, {"start": "2024-01-01", "n": 2})


EXPRESSIONS = [
    "@pipeline().parameters.runDate",
    "@pipeline().globalParameters.env",
    "@pipeline().RunId",
    "@concat(pipeline().Pipeline, '-', string(pipeline().parameters.days))",
    "@{pipeline().parameters.runDate}/@{item().start}",
    "@length(variables('chunks'))",
    "@activity('Load').output.runOutput.rows",
    "@add(item().n, 1)",
    "@formatDateTime(addDays(pipeline().parameters.runDate, 2), 'yyyy-MM-dd')",
    "@if(greater(length(pipeline().parameters.symbols), 1), 'many', 'one')",
    "plain text",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_parsed_engine_gives_what_the_public_entry_point_gives(framework, expression):
    models, _, _ = framework
    state = _state()
    expected = models.DataFactoryElement(expression).evaluate(state)
    assert expressions.ParsedEngine().evaluate(expression, state) == expected
    assert evaluate_expression(expression, state) == expected


def test_upstream_the_parse_of_an_expression_depends_on_its_text_only(framework):
    """What lets the adapter parse each text once: the same text gives the same form in any state."""
    from data_factory_testing_framework._expression_runtime.expression_runtime import ExpressionRuntime

    transformer = ExpressionRuntime().dftf_expressions_transformer
    other = new_state(item="other")
    for expression in EXPRESSIONS:
        assert transformer.transform_to_dftf_evaluator_expression(
            expression, _state()
        ) == transformer.transform_to_dftf_evaluator_expression(expression, other)


def test_upstream_a_falsy_item_is_dropped_by_the_public_entry_point(framework):
    models, state, exceptions = framework
    with pytest.raises(exceptions.StateIterationItemNotSetError):
        models.DataFactoryElement("@item()").evaluate(state.PipelineRunState(iteration_item=0))


@pytest.mark.parametrize("item", [0, 0.0, "", [], {}])
def test_a_falsy_item_reaches_expressions_as_it_is(item):
    state = new_state(item=item)
    assert evaluate_expression("@item()", state) == item
    if isinstance(item, int | float):
        assert evaluate_expression("@add(item(), 1)", state) == 1
    else:
        assert evaluate_expression("@empty(item())", state) is True
    assert evaluate_expression("@item()", expressions.scope_state(state)) == item


def test_upstream_add_activity_result_takes_no_error(framework):
    _, state, _ = framework
    assert "error" not in inspect.signature(state.PipelineRunState.add_activity_result).parameters


def test_an_activity_error_is_visible_to_later_expressions():
    state = new_state()
    set_result(state, "Step", "Failed", None, {"errorCode": "E1", "message": "it broke"})
    inner = expressions.scope_state(state)
    assert evaluate_expression("@activity('Step').error.message", inner) == "it broke"
    assert evaluate_expression("@activity('Step').status", inner) == "Failed"


def test_a_failing_expression_raises_the_frameworks_error_naming_the_expression():
    with pytest.raises(ExpressionError, match=r"pipeline\(\)\.parameters\.missing.*missing"):
        evaluate_expression("@pipeline().parameters.missing", _state())


def test_a_trigger_expression_needs_no_state():
    assert evaluate_expression("@concat('a', 'b')") == "ab"


# -- parsed forms kept across processes (expressions.ParseStore) ------------------------------


def test_a_parsed_form_is_kept_for_the_next_process(tmp_path):
    store = expressions.ParseStore(tmp_path / "parses.json")
    state = _state()
    first = expressions.ParsedEngine(store)
    values = [first.evaluate(expression, state) for expression in EXPRESSIONS]

    later = expressions.ParsedEngine(store)  # what the next process builds

    def no_parse(expression, state):
        raise AssertionError(f"parsed {expression!r} again")

    later._parse = no_parse
    assert [later.evaluate(expression, state) for expression in EXPRESSIONS] == values


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "{\"@concat('a', 'b')\": 7}"])
def test_a_damaged_store_is_ignored_and_written_again(tmp_path, content):
    path = tmp_path / "parses.json"
    path.write_text(content)
    engine = expressions.ParsedEngine(expressions.ParseStore(path))
    assert engine.evaluate("@concat('a', 'b')", new_state()) == "ab"
    assert set(expressions.ParseStore(path).read()) == {"@concat('a', 'b')"}


def test_the_store_keeps_the_latest_parses_only(tmp_path, monkeypatch):
    monkeypatch.setattr(expressions, "MAX_STORED_PARSES", 3)
    store = expressions.ParseStore(tmp_path / "parses.json")
    engine = expressions.ParsedEngine(store)
    for n in range(5):
        assert engine.evaluate(f"@add({n}, 1)", new_state()) == n + 1
    assert list(store.read()) == ["@add(2, 1)", "@add(3, 1)", "@add(4, 1)"]


def test_the_default_store_is_named_after_the_framework_and_its_parser(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fingerprint = expressions.parser_fingerprint()
    assert expressions.ParseStore.default().path == tmp_path / "lakehouse" / f"adf-expressions-{fingerprint}.json"
    assert len(fingerprint) == 16 and fingerprint == expressions.parser_fingerprint()


# -- loading in a fresh process ----------------------------------------------------------------

_WARM_UP_PROBE = """
import sys
from local.adf import expressions
expressions.warm_up()
expressions._warm_up.join()
print(expressions._loaded_engine is not None, flush=True)
"""


def _run_probe(code: str, *args: str) -> str:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_warm_up_thread_loads_the_engine_in_a_fresh_process():
    """It did not: the parse store's name imported the framework before .NET was configured, the
    thread's error was swallowed, and every run loaded .NET on its first expression instead."""
    assert _run_probe(_WARM_UP_PROBE).strip() == "True"


def test_a_second_warm_up_returns_while_the_first_is_loading(monkeypatch):
    """`local_context` calls it again when the run starts: it waited there for the whole load."""
    import threading

    release = threading.Event()

    def slow_engine():
        with expressions._setup_lock:  # as the real load holds it
            release.wait(10)

    monkeypatch.setattr(expressions, "_engine", slow_engine)
    monkeypatch.setattr(expressions, "_warm_up", None)
    monkeypatch.setattr(expressions, "_loaded_engine", None)
    expressions.warm_up()
    loading = expressions._warm_up
    try:
        second = threading.Thread(target=expressions.warm_up)
        second.start()
        second.join(2)
        assert not second.is_alive()
    finally:
        release.set()
        loading.join()


def test_the_parse_store_is_named_without_importing_the_framework():
    probe = "import sys; from local.adf import expressions; expressions.parser_fingerprint(); "
    probe += "print(sorted(m for m in sys.modules if m.startswith('data_factory_testing_framework')))"
    assert _run_probe(probe).strip() == "[]"


_SAME_VALUES_PROBE = """
import json, sys
from local.adf import expressions
if sys.argv[1] == "framework":  # the framework's own loader: every assembly of its bin folder
    from local.dotnet_runtime import ensure_dotnet
    ensure_dotnet()
    import data_factory_testing_framework  # noqa: F401
state = expressions.pipeline_state({"runDate": "2024-01-05", "days": 3}, {}, {"RunId": "r"}, {"x": [1, 2]})
expressions.set_result(state, "Step", "Failed", None, {"errorCode": "E1", "message": "it broke"})
out = []
for text in json.loads(sys.argv[2]):
    try:
        out.append(["value", expressions.evaluate_expression(text, state)])
    except expressions.ExpressionError as exc:
        out.append(["error", str(exc)])
print(json.dumps(out, default=str))
"""
ENGINE_EXPRESSIONS = [
    "@formatDateTime(addDays(pipeline().parameters.runDate, 2), 'yyyy-MM-dd')",
    "@convertTimeZone('2024-01-01T00:00:00Z', 'UTC', 'Eastern Standard Time')",
    "@xpath(xml('<a><b>1</b></a>'), 'string(/a/b)')",
    "@base64ToString(base64('abc'))",
    "@uriComponent('a b')",
    "@json('{\"a\": [1, 2.5, null]}')",
    "@activity('Step').error.message",
    "@ticks(startOfMonth(pipeline().parameters.runDate))",
    "@div(1, 0)",
    "@int('x')",
    "@variables('missing')",
]


def test_the_engine_loaded_with_one_assembly_gives_what_the_frameworks_loader_gives():
    """``local.dotnet_runtime`` references the expression assembly alone (its dependencies load from
    the framework's folder as needed): values and errors are those of the framework's own loader."""
    import json

    texts = json.dumps(ENGINE_EXPRESSIONS)
    ours = json.loads(_run_probe(_SAME_VALUES_PROBE, "ours", texts))
    framework = json.loads(_run_probe(_SAME_VALUES_PROBE, "framework", texts))
    assert ours == framework
    assert [kind for kind, _ in ours].count("error") == 3


def test_upstream_the_frameworks_loader_references_every_assembly_of_its_folder():
    """What ``local.dotnet_runtime`` stands in for; when the framework changes its loader, look again."""
    import importlib.util

    origin = Path(importlib.util.find_spec("data_factory_testing_framework").origin)
    loader = (origin.parent / "_pythonnet" / "__init__.py").read_text()
    assert 'pythonnet.load("coreclr")' in loader
    assert '.glob("**/*.dll")' in loader and "clr.AddReference(" in loader
    assert (
        origin.parent / "_pythonnet" / "bin" / "Microsoft.Azure.DataFactoryTestingFramework.Expressions.dll"
    ).is_file()


# -- the process exit -------------------------------------------------------------------------

_EXIT_PROBE = """
import gc, sys, time
from local.adf.expressions import evaluate_expression
heap = [{"n": i, "s": [str(i)]} for i in range(400_000)]  # a process that ran a pipeline holds more
assert evaluate_expression("@concat('a', 'b')") == "ab"
started = time.perf_counter(); gc.collect(); one = time.perf_counter() - started
print(one, time.time(), flush=True)
"""


def test_exiting_after_loading_dotnet_costs_about_one_collection_of_the_heap():
    """pythonnet's shutdown at exit runs forty full collections: with the heap frozen for it, the
    exit costs about one (measured before: 43 collections' time, 7-14 s after a daily run)."""
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[3]
    child = subprocess.Popen([sys.executable, "-c", _EXIT_PROBE], cwd=repo, stdout=subprocess.PIPE, text=True)
    one_collection, last_line_at = map(float, child.stdout.readline().split())
    assert child.wait(timeout=300) == 0
    exit_s = time.time() - last_line_at
    assert exit_s < 10 * one_collection + 1.0, f"exit took {exit_s:.2f} s; one collection {one_collection:.2f} s"
