"""Validate a Data Factory folder the way Data Factory validates on publish.

The local runner executes the same JSON Azure deploys, so it must refuse what Azure refuses: a
runner more lenient than the cloud hides exactly the defects it exists to catch. The rules and
the sources they come from:

- ``undeclared-variable``: every variable a Set/Append Variable activity writes and every
  ``variables('x')`` read is declared in the pipeline's ``variables``
  (https://learn.microsoft.com/azure/data-factory/control-flow-set-variable-activity: "set the
  value of an existing variable").
- ``system-variable``: the pipeline return value is the system variable ``pipelineReturnValue``,
  set only with ``"setSystemVariable": true`` (REST model ``SetVariableActivity.setSystemVariable``:
  "If set to true, it sets the pipeline run return value";
  https://learn.microsoft.com/azure/data-factory/tutorial-pipeline-return-value). Without the flag
  Azure treats it as an undeclared user variable.
- ``undeclared-parameter`` / ``parameter-type``: ``pipeline().parameters.x`` and
  ``linkedService().x`` name declared parameters; defaults, literal values passed by Execute
  Pipeline activities and triggers, and parameters used where a function's argument type is
  documented, match the declared type (``ParameterType``: String, Int, Float, Bool, Array,
  Object, SecureString).
- ``dependency-scope`` / ``dependency-condition``: ``dependsOn`` names a sibling activity (the
  pipeline, or the same If/ForEach/Until/Switch branch), with one or more of Succeeded, Failed,
  Skipped, Completed (REST ``DependencyCondition``), without cycles; activity names are unique.
- ``missing-reference``: referenced pipelines, linked services and datasets exist, and triggers
  and Execute Pipeline activities pass only declared parameters and every required one.
- ``unknown-function`` / ``function-arity``: expression functions exist with the documented
  number of arguments ("Expressions and functions in Azure Data Factory and Azure Synapse
  Analytics", https://learn.microsoft.com/azure/data-factory/control-flow-expression-language-functions,
  and the system-variable accessors of control-flow-system-variables).
- ``activity-not-upstream``: ``activity('x')`` names an activity that has run before: an ancestor
  through ``dependsOn`` in the same scope or an enclosing one (the authoring UI offers only
  those, and publish refuses others).
- ``model``: activity, trigger and linked-service types, required properties and primitive
  property types match the Data Factory REST models (``azure-mgmt-datafactory``), and no property
  is unknown to them (the service drops unknown ones silently).
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import azure.mgmt.datafactory.models as models
from azure.mgmt.datafactory._utils.model_base import Model

from local.adf.records import AdfDefinitionError

Rule = Literal[
    "invalid-json",
    "undeclared-variable",
    "system-variable",
    "undeclared-parameter",
    "parameter-type",
    "dependency-scope",
    "dependency-condition",
    "missing-reference",
    "unknown-function",
    "function-arity",
    "activity-not-upstream",
    "model",
]
RULES: tuple[str, ...] = get_args(Rule)
CONDITIONS = tuple(c.value for c in models.DependencyCondition)
RETURN_VALUE = "pipelineReturnValue"
FOLDERS = {"pipeline": "pipelines", "trigger": "triggers", "linkedService": "linked_services", "dataset": "datasets"}
RESOURCES = {
    "pipeline": models.PipelineResource,
    "trigger": models.TriggerResource,
    "linkedService": models.LinkedServiceResource,
    "dataset": models.DatasetResource,
}
BRANCHES = ("activities", "ifTrueActivities", "ifFalseActivities", "defaultActivities")


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (file, activity) and what."""

    file: str
    activity: str | None
    rule: Rule
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f", activity '{self.activity}'" if self.activity else "")
        return f"{where}: [{self.rule}] {self.message}"


class FactoryValidationError(AdfDefinitionError):
    """The factory breaks rules Data Factory applies on publish; lists every violation."""

    def __init__(self, root: Path, violations: list[Violation]) -> None:
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(f"{root}: {len(violations)} Data Factory validation error(s):\n{lines}")


def check_factory(root: Path) -> None:
    """Raise :class:`FactoryValidationError` naming every violation when ``root`` is invalid."""
    violations = validate_factory(root)
    if violations:
        raise FactoryValidationError(root, violations)


def validate_factory(root: Path) -> list[Violation]:
    """Every violation of the rules in this module's docstring, in file order."""
    found: list[Violation] = []
    docs: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {kind: {} for kind in FOLDERS}
    for kind in FOLDERS:
        for path in sorted((root / kind).glob("*.json")):
            rel = f"{kind}/{path.name}"
            try:
                doc = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                found.append(Violation(rel, None, "invalid-json", f"not valid JSON: {exc}"))
                continue
            if not isinstance(doc, dict) or doc.get("name") != path.stem:
                found.append(Violation(rel, None, "model", f"'name' must be the file name {path.stem!r}"))
                continue
            docs[kind][path.stem] = (rel, doc)
    factory = _Factory(docs)
    for kind, named in docs.items():
        for rel, doc in named.values():
            found += _check_model(rel, RESOURCES[kind], doc)
    for rel, doc in docs["pipeline"].values():
        found += _PipelineCheck(factory, rel, doc).run()
    for rel, doc in docs["trigger"].values():
        found += _check_trigger(factory, rel, doc)
    for rel, doc in docs["linkedService"].values():
        found += _check_linked_service(factory, rel, doc)
    return found


@dataclass
class _Factory:
    docs: dict[str, dict[str, tuple[str, dict[str, Any]]]]

    def props(self, kind: str, name: str) -> dict[str, Any] | None:
        entry = self.docs[kind].get(name)
        return None if entry is None else entry[1].get("properties", {})


# --------------------------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------------------------

# name -> (min args, max args or None for variadic, argument types by position; the last one
# repeats). Types: s string, n number (Int or Float), i integer, b boolean, * anything. From the
# function reference of "Expressions and functions in Azure Data Factory and Azure Synapse".
_TIMESTAMP_FORMAT = ("s", "i", "s")
FUNCTIONS: dict[str, tuple[int, int | None, tuple[str, ...]]] = {
    # string
    "concat": (2, None, ("s",)),
    "endsWith": (2, 2, ("s", "s")),
    "guid": (0, 1, ("s",)),
    "indexOf": (2, 2, ("s", "s")),
    "lastIndexOf": (2, 2, ("s", "s")),
    "replace": (3, 3, ("s", "s", "s")),
    "split": (2, 2, ("s", "s")),
    "startsWith": (2, 2, ("s", "s")),
    "substring": (3, 3, ("s", "i", "i")),
    "toLower": (1, 1, ("s",)),
    "toUpper": (1, 1, ("s",)),
    "trim": (1, 1, ("s",)),
    # collection
    "contains": (2, 2, ("*",)),
    "empty": (1, 1, ("*",)),
    "first": (1, 1, ("*",)),
    "intersection": (2, None, ("*",)),
    "join": (2, 2, ("*", "s")),
    "last": (1, 1, ("*",)),
    "length": (1, 1, ("*",)),
    "skip": (2, 2, ("*", "i")),
    "take": (2, 2, ("*", "i")),
    "union": (2, None, ("*",)),
    # logical
    "and": (2, 2, ("b",)),
    "equals": (2, 2, ("*",)),
    "greater": (2, 2, ("*",)),
    "greaterOrEquals": (2, 2, ("*",)),
    "if": (3, 3, ("b", "*", "*")),
    "less": (2, 2, ("*",)),
    "lessOrEquals": (2, 2, ("*",)),
    "not": (1, 1, ("b",)),
    "or": (2, 2, ("b",)),
    # conversion
    "array": (1, 1, ("*",)),
    "base64": (1, 1, ("s",)),
    "base64ToBinary": (1, 1, ("s",)),
    "base64ToString": (1, 1, ("s",)),
    "binary": (1, 1, ("s",)),
    "bool": (1, 1, ("*",)),
    "coalesce": (1, None, ("*",)),
    "createArray": (2, None, ("*",)),
    "dataUri": (1, 1, ("s",)),
    "dataUriToBinary": (1, 1, ("s",)),
    "dataUriToString": (1, 1, ("s",)),
    "decodeBase64": (1, 1, ("s",)),
    "decodeDataUri": (1, 1, ("s",)),
    "decodeUriComponent": (1, 1, ("s",)),
    "encodeUriComponent": (1, 1, ("s",)),
    "float": (1, 1, ("*",)),
    "int": (1, 1, ("*",)),
    "json": (1, 1, ("*",)),
    "string": (1, 1, ("*",)),
    "uriComponent": (1, 1, ("s",)),
    "uriComponentToBinary": (1, 1, ("s",)),
    "uriComponentToString": (1, 1, ("s",)),
    "xml": (1, 1, ("*",)),
    "xpath": (2, 2, ("*",)),
    # math
    "add": (2, 2, ("n",)),
    "div": (2, 2, ("n",)),
    "max": (1, None, ("*",)),
    "min": (1, None, ("*",)),
    "mod": (2, 2, ("n",)),
    "mul": (2, 2, ("n",)),
    "rand": (2, 2, ("i",)),
    "range": (2, 2, ("i",)),
    "sub": (2, 2, ("n",)),
    # date
    "addDays": (2, 3, _TIMESTAMP_FORMAT),
    "addHours": (2, 3, _TIMESTAMP_FORMAT),
    "addMinutes": (2, 3, _TIMESTAMP_FORMAT),
    "addSeconds": (2, 3, _TIMESTAMP_FORMAT),
    "addToTime": (3, 4, ("s", "i", "s", "s")),
    "convertFromUtc": (2, 3, ("s",)),
    "convertTimeZone": (3, 4, ("s",)),
    "convertToUtc": (2, 3, ("s",)),
    "dayOfMonth": (1, 1, ("s",)),
    "dayOfWeek": (1, 1, ("s",)),
    "dayOfYear": (1, 1, ("s",)),
    "formatDateTime": (1, 2, ("s",)),
    "getFutureTime": (2, 3, ("i", "s", "s")),
    "getPastTime": (2, 3, ("i", "s", "s")),
    "startOfDay": (1, 2, ("s",)),
    "startOfHour": (1, 2, ("s",)),
    "startOfMonth": (1, 2, ("s",)),
    "subtractFromTime": (3, 4, ("s", "i", "s", "s")),
    "ticks": (1, 1, ("s",)),
    "utcNow": (0, 1, ("s",)),
    # system-variable accessors
    "pipeline": (0, 0, ()),
    "activity": (1, 1, ("s",)),
    "variables": (1, 1, ("s",)),
    "item": (0, 0, ()),
    "trigger": (0, 0, ()),
    "dataset": (0, 0, ()),
    "linkedService": (0, 0, ()),
}
_FUNCTIONS_CI = {name.lower(): name for name in FUNCTIONS}  # the language is case-insensitive
_PARAMETER_KIND = {
    "String": "s",
    "SecureString": "s",
    "Int": "i",
    "Float": "f",
    "Bool": "b",
    "Array": "a",
    "Object": "o",
}
_VARIABLE_KIND = {"String": "s", "Bool": "b", "Array": "a"}
_ACCEPTS = {"s": {"s"}, "n": {"i", "f"}, "i": {"i"}, "b": {"b"}}
_KIND_NAME = {"s": "a string", "n": "a number", "i": "an integer", "b": "a boolean"}


class ExpressionSyntaxError(ValueError):
    pass


@dataclass
class Call:
    name: str
    args: list[Any] = field(default_factory=list)


@dataclass
class Member:
    target: Any
    name: str


@dataclass
class Literal_:
    value: Any


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[()\[\],.?]))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionSyntaxError(f"unexpected {text[pos : pos + 10]!r} at {pos}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ExpressionSyntaxError(f"expected {value or 'a value'}, got {tok[1] if tok else 'the end'}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        node = self.expr()
        if self.peek() is not None:
            raise ExpressionSyntaxError(f"unexpected {self.peek()[1]!r} after the expression")
        return node

    def expr(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            node: Any = Literal_(value[1:-1].replace("''", "'"))
        elif kind == "num":
            node = Literal_(float(value) if "." in value else int(value))
        elif kind == "ident" and self.peek() == ("op", "("):
            self.take("(")
            node = Call(value)
            if self.peek() != ("op", ")"):
                node.args.append(self.expr())
                while self.peek() == ("op", ","):
                    self.take(",")
                    node.args.append(self.expr())
            self.take(")")
        elif kind == "ident":
            node = Literal_({"true": True, "false": False, "null": None}.get(value.lower(), value))
        else:
            raise ExpressionSyntaxError(f"unexpected {value!r}")
        while self.peek() in (("op", "."), ("op", "?"), ("op", "[")):
            op = self.take()[1]
            if op == "?":
                op = self.take()[1]
            if op == ".":
                node = Member(node, self.take()[1])
            else:
                index = self.expr()
                self.take("]")
                node = Member(node, index.value if isinstance(index, Literal_) else "*")
        return node


def expressions(value: Any) -> Iterator[str]:
    """The expression bodies in a JSON value: ``@expr`` strings and ``@{expr}`` interpolations."""
    if isinstance(value, dict):
        for item in value.values():
            yield from expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from expressions(item)
    elif isinstance(value, str):
        if value.startswith("@") and not value.startswith("@@") and not value.startswith("@{"):
            yield value[1:]
        else:
            yield from _interpolations(value)


def _interpolations(text: str) -> Iterator[str]:
    i = 0
    while (start := text.find("@{", i)) >= 0:
        if start > 0 and text[start - 1] == "@":
            i = start + 2
            continue
        depth, j, quoted = 1, start + 2, False
        while j < len(text) and depth:
            ch = text[j]
            if ch == "'":
                quoted = not quoted
            elif not quoted and ch == "{":
                depth += 1
            elif not quoted and ch == "}":
                depth -= 1
            j += 1
        yield text[start + 2 : j - 1]
        i = j


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from _walk(arg)
    elif isinstance(node, Member):
        yield from _walk(node.target)


def _accessor(node: Any, accessor: str, member: str | None) -> str | None:
    """``X`` of ``accessor().member.X`` (or ``accessor().X`` when member is None)."""
    if not isinstance(node, Member):
        return None
    target = node.target
    if member is not None:
        if not (isinstance(target, Member) and target.name == member):
            return None
        target = target.target
    if isinstance(target, Call) and target.name.lower() == accessor.lower() and not target.args:
        return str(node.name)
    return None


def _literal_arg(call: Call) -> str | None:
    return call.args[0].value if call.args and isinstance(call.args[0], Literal_) else None


# --------------------------------------------------------------------------------------------
# Pipelines
# --------------------------------------------------------------------------------------------


def _scopes(activities: list[dict[str, Any]], container: dict[str, Any] | None = None):
    """Every scope (sibling list) with the activity that contains it (None: the pipeline)."""
    yield activities, container
    for activity in activities:
        props = activity.get("typeProperties") or {}
        for key in BRANCHES:
            if isinstance(props.get(key), list):
                yield from _scopes(props[key], activity)
        for case in props.get("cases") or []:
            yield from _scopes(case.get("activities") or [], activity)


class _PipelineCheck:
    def __init__(self, factory: _Factory, rel: str, doc: dict[str, Any]) -> None:
        self.factory = factory
        self.rel = rel
        self.props = doc.get("properties") or {}
        self.parameters = self.props.get("parameters") or {}
        self.variables = self.props.get("variables") or {}
        self.found: list[Violation] = []
        self.parent: dict[int, dict[str, Any] | None] = {}  # id(activity) -> container
        self.scope_of: dict[int, list[dict[str, Any]]] = {}
        self.by_name: dict[str, dict[str, Any]] = {}

    def add(self, activity: dict[str, Any] | None, rule: Rule, message: str) -> None:
        self.found.append(Violation(self.rel, activity.get("name") if activity else None, rule, message))

    def run(self) -> list[Violation]:
        activities = self.props.get("activities") or []
        for scope, container in _scopes(activities):
            for activity in scope:
                self.parent[id(activity)] = container
                self.scope_of[id(activity)] = scope
                if activity.get("name") in self.by_name:
                    self.add(activity, "dependency-scope", "activity names must be unique in a pipeline")
                self.by_name.setdefault(activity.get("name"), activity)
            self.check_dependencies(scope)
        self.check_declarations()
        for activity in self.by_name.values():
            self.check_activity(activity)
        return self.found

    def check_declarations(self) -> None:
        for name, spec in self.parameters.items():
            kind = spec.get("type")
            if kind not in _PARAMETER_KIND:
                self.add(
                    None,
                    "parameter-type",
                    f"parameter {name!r} has type {kind!r}; expected one of {sorted(_PARAMETER_KIND)}",
                )
            elif "defaultValue" in spec and not _matches(kind, spec["defaultValue"]):
                self.add(
                    None, "parameter-type", f"parameter {name!r} is {kind} but its default is {spec['defaultValue']!r}"
                )
        for name, spec in self.variables.items():
            if name == RETURN_VALUE:
                self.add(None, "system-variable", f"{RETURN_VALUE} is a system variable; it cannot be declared")
            if spec.get("type") not in _VARIABLE_KIND:
                self.add(
                    None,
                    "undeclared-variable",
                    f"variable {name!r} has type {spec.get('type')!r}; expected one of {sorted(_VARIABLE_KIND)}",
                )

    def check_dependencies(self, scope: list[dict[str, Any]]) -> None:
        names = {a.get("name") for a in scope}
        for activity in scope:
            for dep in activity.get("dependsOn") or []:
                target = dep.get("activity")
                if target not in names:
                    where = (
                        "the pipeline" if target not in self.by_name and not self._anywhere(target) else "another scope"
                    )
                    self.add(
                        activity,
                        "dependency-scope",
                        f"depends on {target!r}, which is not a sibling activity ({where})",
                    )
                conditions = dep.get("dependencyConditions") or []
                bad = [c for c in conditions if c not in CONDITIONS]
                if bad or not conditions:
                    self.add(
                        activity,
                        "dependency-condition",
                        f"dependency on {target!r} has conditions {conditions}; "
                        f"expected one or more of {list(CONDITIONS)}",
                    )
        remaining = {a.get("name"): {d.get("activity") for d in a.get("dependsOn") or []} & names for a in scope}
        while remaining:
            ready = [n for n, deps in remaining.items() if not deps & remaining.keys()]
            if not ready:
                for name in sorted(remaining):
                    self.add({"name": name}, "dependency-scope", f"circular dependency among {sorted(remaining)}")
                return
            for n in ready:
                del remaining[n]

    def _anywhere(self, name: str) -> bool:
        return any(a.get("name") == name for a in self.by_name.values())

    def upstream(self, activity: dict[str, Any]) -> set[str]:
        """Activities that have run before ``activity`` starts: ancestors in its scope and in every
        enclosing scope (the containers' ancestors)."""
        seen: set[str] = set()
        current: dict[str, Any] | None = activity
        while current is not None:
            scope = {a.get("name"): a for a in self.scope_of.get(id(current), [])}
            stack = [d.get("activity") for d in current.get("dependsOn") or []]
            while stack:
                name = stack.pop()
                if name in seen or name not in scope:
                    continue
                seen.add(name)
                stack += [d.get("activity") for d in scope[name].get("dependsOn") or []]
            current = self.parent.get(id(current))
        return seen

    def check_activity(self, activity: dict[str, Any]) -> None:
        kind = activity.get("type")
        props = activity.get("typeProperties") or {}
        if kind in ("SetVariable", "AppendVariable"):
            self.check_variable_target(activity, kind, props)
        if kind == "ExecutePipeline":
            ref = (props.get("pipeline") or {}).get("referenceName")
            child = self.factory.props("pipeline", ref)
            if child is None:
                self.add(activity, "missing-reference", f"executes pipeline {ref!r}, which does not exist")
            else:
                self.found += [
                    Violation(self.rel, activity.get("name"), rule, msg)
                    for rule, msg in _passed_parameters(f"pipeline {ref!r}", child, props.get("parameters") or {})
                ]
        ls = activity.get("linkedServiceName")
        if isinstance(ls, dict) and self.factory.props("linkedService", ls.get("referenceName")) is None:
            self.add(
                activity, "missing-reference", f"uses linked service {ls.get('referenceName')!r}, which does not exist"
            )
        for ref in _references(activity, "DatasetReference"):
            if self.factory.props("dataset", ref) is None:
                self.add(activity, "missing-reference", f"uses dataset {ref!r}, which does not exist")
        own = {k: v for k, v in activity.items() if k != "typeProperties"}
        nested = {k: v for k, v in props.items() if k not in BRANCHES and k != "cases"}
        for text in expressions([own, nested]):
            self.check_expression(activity, text)

    def check_variable_target(self, activity: dict[str, Any], kind: str, props: dict[str, Any]) -> None:
        name = props.get("variableName")
        system = props.get("setSystemVariable") is True
        if name == RETURN_VALUE:
            if kind == "AppendVariable":
                self.add(activity, "system-variable", f"{RETURN_VALUE} can only be set by Set Variable")
            elif not system:
                self.add(
                    activity,
                    "system-variable",
                    f'sets {RETURN_VALUE} without "setSystemVariable": true, so Data Factory treats it as '
                    "an undeclared user variable",
                )
            elif not isinstance(props.get("value"), list) or not all(
                isinstance(e, dict) and "key" in e and "value" in e for e in props["value"]
            ):
                self.add(activity, "system-variable", f"{RETURN_VALUE} is a list of {{key, value}} entries")
        elif system:
            self.add(activity, "system-variable", f"setSystemVariable is only for {RETURN_VALUE}, not {name!r}")
        elif name not in self.variables:
            self.add(activity, "undeclared-variable", f"sets variable {name!r}, which the pipeline does not declare")

    def check_expression(self, activity: dict[str, Any], text: str) -> None:
        try:
            tree = _Parser(text).parse()
        except ExpressionSyntaxError as exc:
            self.add(activity, "unknown-function", f"cannot parse expression @{text}: {exc}")
            return
        upstream: set[str] | None = None
        for node in _walk(tree):
            param = _accessor(node, "pipeline", "parameters")
            if param is not None and param not in self.parameters:
                self.add(
                    activity, "undeclared-parameter", f"reads pipeline().parameters.{param}, which is not declared"
                )
            if not isinstance(node, Call):
                continue
            canonical = _FUNCTIONS_CI.get(node.name.lower())
            if canonical is None:
                self.add(
                    activity,
                    "unknown-function",
                    f"calls {node.name}(), which is not a Data Factory expression function",
                )
                continue
            low, high, kinds = FUNCTIONS[canonical]
            if len(node.args) < low or (high is not None and len(node.args) > high):
                expected = f"{low}" if low == high else f"{low} or more" if high is None else f"{low} to {high}"
                self.add(
                    activity, "function-arity", f"{canonical}() takes {expected} argument(s), got {len(node.args)}"
                )
            self.check_argument_types(activity, canonical, node, kinds)
            if canonical == "variables":
                name = _literal_arg(node)
                if name is not None and name not in self.variables:
                    self.add(activity, "undeclared-variable", f"reads variables('{name}'), which is not declared")
            if canonical == "activity":
                name = _literal_arg(node)
                if upstream is None:
                    upstream = self.upstream(activity)
                if name is not None and name not in upstream:
                    what = "does not exist" if name not in self.by_name else "is not upstream of it (no dependsOn path)"
                    self.add(activity, "activity-not-upstream", f"reads activity('{name}'), which {what}")

    def check_argument_types(self, activity: dict[str, Any], function: str, call: Call, kinds: tuple[str, ...]) -> None:
        for position, arg in enumerate(call.args):
            if not kinds:
                return
            wanted = kinds[min(position, len(kinds) - 1)]
            if wanted not in _ACCEPTS:
                continue
            name = _accessor(arg, "pipeline", "parameters")
            if name is not None and name in self.parameters:
                declared = self.parameters[name].get("type")
                what = f"pipeline().parameters.{name}"
                got = _PARAMETER_KIND.get(declared)
            elif isinstance(arg, Call) and arg.name.lower() == "variables" and _literal_arg(arg) in self.variables:
                declared = self.variables[_literal_arg(arg)].get("type")
                what = f"variables('{_literal_arg(arg)}')"
                got = _VARIABLE_KIND.get(declared)
            else:
                continue
            if got is not None and got not in _ACCEPTS[wanted]:
                self.add(
                    activity,
                    "parameter-type",
                    f"{function}() argument {position + 1} must be {_KIND_NAME[wanted]}, but {what} is {declared}",
                )


def _references(value: Any, kind: str) -> Iterator[str]:
    if isinstance(value, dict):
        if value.get("type") == kind and "referenceName" in value:
            yield value["referenceName"]
        for item in value.values():
            yield from _references(item, kind)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item, kind)


def _matches(declared: str, value: Any) -> bool:
    """Whether a literal (non-expression) value fits a declared parameter type."""
    if isinstance(value, str) and value.startswith("@") and not value.startswith("@@"):
        return True
    if isinstance(value, dict) and value.get("type") == "Expression":
        return True
    return {
        "String": lambda v: isinstance(v, str),
        "SecureString": lambda v: isinstance(v, str),
        "Int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "Bool": lambda v: isinstance(v, bool),
        "Array": lambda v: isinstance(v, list),
        "Object": lambda v: isinstance(v, dict),
    }.get(declared, lambda v: True)(value)


def _passed_parameters(target: str, props: dict[str, Any], passed: dict[str, Any]) -> list[tuple[Rule, str]]:
    """Parameters passed to a pipeline: declared, required ones present, literals of the right type."""
    declared = props.get("parameters") or {}
    problems: list[tuple[Rule, str]] = []
    for name in sorted(set(passed) - set(declared)):
        problems.append(("missing-reference", f"passes parameter {name!r}, which {target} does not declare"))
    for name in sorted(n for n, spec in declared.items() if "defaultValue" not in spec and n not in passed):
        problems.append(("missing-reference", f"does not pass {name!r}, which {target} requires"))
    for name, value in passed.items():
        kind = (declared.get(name) or {}).get("type")
        if kind and not _matches(kind, value):
            problems.append(("parameter-type", f"passes {value!r} as {name!r}, which {target} declares {kind}"))
    return problems


# --------------------------------------------------------------------------------------------
# Triggers and linked services
# --------------------------------------------------------------------------------------------


def _check_trigger(factory: _Factory, rel: str, doc: dict[str, Any]) -> list[Violation]:
    props = doc.get("properties") or {}
    references = props.get("pipelines") or ([props["pipeline"]] if "pipeline" in props else [])
    found = []
    for ref in references:
        name = (ref.get("pipelineReference") or {}).get("referenceName")
        target = factory.props("pipeline", name)
        if target is None:
            found.append(Violation(rel, None, "missing-reference", f"starts pipeline {name!r}, which does not exist"))
            continue
        for rule, msg in _passed_parameters(f"pipeline {name!r}", target, ref.get("parameters") or {}):
            found.append(Violation(rel, None, rule, msg))
        for text in expressions(ref.get("parameters") or {}):
            found += _check_standalone(rel, text, "trigger")
    return found


def _check_linked_service(factory: _Factory, rel: str, doc: dict[str, Any]) -> list[Violation]:
    props = doc.get("properties") or {}
    declared = props.get("parameters") or {}
    found = []
    for ref in _references(props, "LinkedServiceReference"):
        if factory.props("linkedService", ref) is None:
            found.append(
                Violation(rel, None, "missing-reference", f"references linked service {ref!r}, which does not exist")
            )
    for text in expressions(props.get("typeProperties") or {}):
        found += _check_standalone(rel, text, "linkedService")
        try:
            tree = _Parser(text).parse()
        except ExpressionSyntaxError:
            continue
        for node in _walk(tree):
            name = _accessor(node, "linkedService", None)
            if name is not None and name not in declared:
                found.append(
                    Violation(rel, None, "undeclared-parameter", f"reads linkedService().{name}, which is not declared")
                )
    return found


def _check_standalone(rel: str, text: str, context: str) -> list[Violation]:
    """Function names and arities of an expression outside a pipeline (trigger, linked service)."""
    try:
        tree = _Parser(text).parse()
    except ExpressionSyntaxError as exc:
        return [Violation(rel, None, "unknown-function", f"cannot parse expression @{text}: {exc}")]
    found = []
    for node in _walk(tree):
        if not isinstance(node, Call):
            continue
        canonical = _FUNCTIONS_CI.get(node.name.lower())
        if canonical is None or canonical in ("pipeline", "activity", "variables", "item"):
            found.append(Violation(rel, None, "unknown-function", f"calls {node.name}(), which a {context} cannot use"))
            continue
        low, high, _ = FUNCTIONS[canonical]
        if len(node.args) < low or (high is not None and len(node.args) > high):
            found.append(
                Violation(
                    rel,
                    None,
                    "function-arity",
                    f"{canonical}() takes {low}..{high or 'n'} argument(s), got {len(node.args)}",
                )
            )
    return found


# --------------------------------------------------------------------------------------------
# REST models
# --------------------------------------------------------------------------------------------


def _concrete(cls: type, data: Any) -> type:
    """The most specific model for ``data``, following the ``type`` discriminator."""
    if not isinstance(data, dict) or not hasattr(cls, "__mapping__"):
        return cls
    wanted = data.get("type")
    queue, seen = [cls], {cls}
    while queue:
        current = queue.pop(0)
        mapping = getattr(current, "__mapping__", {})
        if wanted in mapping:
            return _concrete(mapping[wanted], data) if mapping[wanted] is not current else current
        fresh = [m for m in mapping.values() if m not in seen]
        seen.update(fresh)
        queue.extend(fresh)
    return cls


def _annotation(cls: type, attr: str) -> Any:
    for klass in cls.__mro__:
        if attr in getattr(klass, "__annotations__", {}):
            return klass.__annotations__[attr]
    return None


_PRIMITIVES = {str: str, bool: bool, int: int, float: (int, float)}


def _primitive(annotation: Any) -> Any:
    """The JSON primitive a field must hold (None when it may hold anything, e.g. an expression)."""
    if annotation in _PRIMITIVES:
        return _PRIMITIVES[annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and args[0] in _PRIMITIVES:
            return _PRIMITIVES[args[0]]
    return None


def _check_model(rel: str, cls: type, data: Any, path: str = "", activity: str | None = None) -> list[Violation]:
    cls = _concrete(cls, data)
    if not isinstance(data, dict):
        return [Violation(rel, activity, "model", f"{path or 'the file'} must be an object")]
    if issubclass(cls, models.Activity):
        activity = data.get("name", activity)
        if cls in (models.Activity, models.ExecutionActivity, models.ControlActivity):
            return [Violation(rel, activity, "model", f"unknown activity type {data.get('type')!r}")]
    elif (
        hasattr(cls, "__mapping__")
        and data.get("type") is not None
        and cls.__mapping__
        and data.get("type") not in _all_discriminators(cls)
    ):
        return [
            Violation(rel, activity, "model", f"{path or 'the file'}: unknown {cls.__name__} type {data.get('type')!r}")
        ]
    try:
        obj = cls(data)
    except Exception as exc:  # the SDK refuses data it cannot map
        return [Violation(rel, activity, "model", f"{path or 'the file'} does not fit {cls.__name__}: {exc}")]
    fields = {rf._rest_name: (attr, rf) for attr, rf in cls._attr_to_rest_field.items()}
    found = []
    for key, (_, rf) in fields.items():
        if not rf._is_optional and key not in data and not rf._is_discriminator:
            found.append(Violation(rel, activity, "model", f"{path}{key} is required by {cls.__name__}"))
    for key, raw in data.items():
        where = f"{path}{key}"
        if key not in fields:
            found.append(Violation(rel, activity, "model", f"{where} is not a property of {cls.__name__}"))
            continue
        attr, rf = fields[key]
        primitive = _primitive(_annotation(cls, attr))
        if (
            primitive is not None
            and raw is not None
            and (not isinstance(raw, primitive) or (primitive is not bool and isinstance(raw, bool)))
        ):
            found.append(Violation(rel, activity, "model", f"{where} must be {_type_name(primitive)}, got {raw!r}"))
            continue
        value = getattr(obj, attr)
        if isinstance(value, Model):
            found += _check_model(rel, type(value), raw, f"{where}.", activity)
        elif isinstance(value, list) and isinstance(raw, list):
            for i, (item, raw_item) in enumerate(zip(value, raw, strict=False)):
                if isinstance(item, Model):
                    found += _check_model(rel, type(item), raw_item, f"{where}[{i}].", activity)
        elif isinstance(value, dict) and isinstance(raw, dict):
            for k, item in value.items():
                if isinstance(item, Model):
                    found += _check_model(rel, type(item), raw[k], f"{where}.{k}.", activity)
    return found


def _all_discriminators(cls: type) -> set[str]:
    seen, queue = set(), [cls]
    while queue:
        current = queue.pop()
        for key, sub in getattr(current, "__mapping__", {}).items():
            if key not in seen:
                seen.add(key)
                queue.append(sub)
    return seen


def _type_name(primitive: Any) -> str:
    return (
        "a number"
        if isinstance(primitive, tuple)
        else {str: "a string", bool: "true or false", int: "an integer"}[primitive]
    )


def rules_broken(violations: Iterable[Violation]) -> set[str]:
    """The rule names among ``violations``."""
    return {v.rule for v in violations}
