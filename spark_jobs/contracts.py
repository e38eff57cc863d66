"""Versioned table schemas, kept as data files inside the package so they ship with it.

Each table of the lake has one JSON file under ``spark_jobs/contracts/{layer}/{table}.json`` with
its semantic version, business key, columns and (for tables merged by key) the columns whose change
makes a stored row change. A column's type is a Spark type name; :data:`TYPES` gives its Arrow and
PostgreSQL types, so the lake, the Arrow frames and the marts agree by construction. Writers check
a DataFrame against the contract before writing and fail naming the columns that differ.
Versioning rule: adding a nullable column is a minor change; removing, retyping, renaming a column
or making it non-nullable is major.

A contract may also declare its table's file layout (``file_range``): how rows are grouped into
data files. It is no part of the schema (readers see the same rows whatever the layout), so it
changes no version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

import pyarrow as pa

Change = Literal["none", "minor", "major"]


@dataclass(frozen=True)
class ColumnType:
    """One column type in each runtime's terms."""

    spark: str  # DataType.simpleString(), as the contracts spell it
    arrow: pa.DataType
    postgres: str  # as information_schema.columns.data_type spells it


TYPES: dict[str, ColumnType] = {
    t.spark: t
    for t in (
        ColumnType("string", pa.string(), "text"),
        ColumnType("date", pa.date32(), "date"),
        ColumnType("timestamp", pa.timestamp("us", tz="UTC"), "timestamp with time zone"),
        ColumnType("timestamp_ntz", pa.timestamp("us"), "timestamp without time zone"),
        ColumnType("double", pa.float64(), "double precision"),
        ColumnType("float", pa.float32(), "real"),
        ColumnType("bigint", pa.int64(), "bigint"),
        ColumnType("int", pa.int32(), "integer"),
        ColumnType("smallint", pa.int16(), "smallint"),
        ColumnType("boolean", pa.bool_(), "boolean"),
    )
}
FLOATING = frozenset({"double", "float"})


def postgres_type(spark_type: str) -> str | None:
    """The PostgreSQL type of a Spark type name, or None when it has none."""
    known = TYPES.get(spark_type)
    return known.postgres if known else None


def schema_differences(
    actual: dict[str, str], expected: dict[str, str], *, only_actual: str, only_expected: str, type_problem
) -> list[str]:
    """The one schema comparison: columns only on one side, then columns whose types differ.

    Args:
        actual: column name -> type of what is there.
        expected: column name -> type of what it must match.
        only_actual: label of the columns missing from `expected`.
        only_expected: label of the columns missing from `actual`.
        type_problem: ``(name, actual type, expected type) -> message`` or None when they agree.
    """
    problems = []
    missing = [n for n in expected if n not in actual]
    extra = [n for n in actual if n not in expected]
    if missing:
        problems.append(f"{only_expected} {missing}")
    if extra:
        problems.append(f"{only_actual} {extra}")
    for name, typ in expected.items():
        if name in actual:
            problem = type_problem(name, actual[name], typ)
            if problem:
                problems.append(problem)
    return problems


class ContractError(ValueError):
    """A DataFrame (or a contract file) does not match the table's contract."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool


@dataclass(frozen=True)
class FileRange:
    """Each data file written holds one range of `days` consecutive days of the date `column`.

    A MERGE rewrites every file holding a matched row, and a read filtered on the column skips the
    files whose min/max statistics fall outside the filter: with files that each cover one range,
    a daily run's revisions of recent dates rewrite the few recent files, not the whole history.
    """

    column: str
    days: int


@dataclass(frozen=True)
class Contract:
    """The schema of one table at one version."""

    layer: str
    table: str
    version: str
    keys: tuple[str, ...]
    columns: tuple[Column, ...]
    compared: tuple[str, ...] = ()  # a stored row changes when one of these differs
    file_range: FileRange | None = None  # the files' layout (tables.Tables writes it); None: as the engine writes

    @property
    def qualified_name(self) -> str:
        return f"{self.layer}.{self.table}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def stats_columns(self) -> tuple[str, ...]:
        """The columns whose min and max a local lake's Delta files record: all but the floating-point
        ones, which no read prunes on (see :data:`spark_jobs.tables.STATS_COLUMNS`)."""
        return tuple(c.name for c in self.columns if c.type not in FLOATING)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def ddl(self) -> str:
        """Spark DDL schema string, e.g. ``symbol string, trade_date date``; columns all nullable."""
        return ", ".join(f"`{c.name}` {c.type}" for c in self.columns)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, TYPES[c.type].arrow) for c in self.columns])

    def mismatches(self, schema) -> list[str]:
        """Human-readable differences between a Spark StructType and this contract."""
        return schema_differences(
            {f.name: f.dataType.simpleString() for f in schema.fields},
            {c.name: c.type for c in self.columns},
            only_actual="unexpected columns",
            only_expected="missing columns",
            type_problem=lambda name, got, want: (
                None if got == want else f"column {name!r} is {got}, contract says {want}"
            ),
        )

    def check(self, df):
        """Return `df` with the contract's column order, or raise ContractError naming the columns."""
        problems = self.mismatches(df.schema)
        if problems:
            raise ContractError(
                f"{self.qualified_name} v{self.version}: DataFrame does not match the contract: " + "; ".join(problems)
            )
        return df.select(*self.column_names)


def _parse(doc: dict, origin: str) -> Contract:
    try:
        columns = tuple(Column(c["name"], c["type"], bool(c["nullable"])) for c in doc["columns"])
        ranged = doc.get("file_range")
        file_range = None if ranged is None else FileRange(ranged["column"], ranged["days"])
        contract = Contract(
            doc["layer"], doc["table"], str(doc["version"]), tuple(doc["keys"]), columns,
            tuple(doc.get("compared", ())), file_range,
        )  # fmt: skip
    except (KeyError, TypeError) as exc:
        raise ContractError(f"contract {origin}: missing field {exc}") from None
    parts = contract.version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ContractError(f"contract {origin}: version {contract.version!r} is not MAJOR.MINOR.PATCH")
    unknown = [c.name for c in columns if c.type not in TYPES]
    if unknown:
        raise ContractError(f"contract {origin}: columns {unknown} have unsupported types")
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ContractError(f"contract {origin}: duplicate column names")
    for role, listed in (("keys", contract.keys), ("compared columns", contract.compared)):
        missing = [k for k in listed if k not in names]
        if missing:
            raise ContractError(f"contract {origin}: {role} {missing} are not columns")
    if file_range is not None:
        types = {c.name: c.type for c in columns}
        if types.get(file_range.column) != "date":
            raise ContractError(f"contract {origin}: file_range column {file_range.column!r} is not a date column")
        if not isinstance(file_range.days, int) or isinstance(file_range.days, bool) or file_range.days < 1:
            raise ContractError(f"contract {origin}: file_range days {file_range.days!r} is not a positive integer")
    return contract


@lru_cache(maxsize=64)
def load(layer: str, table: str) -> Contract:
    """The contract of `layer.table` from the package data."""
    ref = resources.files("spark_jobs") / "contracts" / layer / f"{table}.json"
    if not ref.is_file():
        raise ContractError(f"no contract for {layer}.{table} (expected contracts/{layer}/{table}.json)")
    return _parse(json.loads(ref.read_text()), f"{layer}/{table}.json")


def all_contracts() -> dict[str, Contract]:
    """Every contract shipped in the package, keyed by ``layer.table``."""
    root = resources.files("spark_jobs") / "contracts"
    found = {}
    for layer_dir in sorted(root.iterdir(), key=lambda p: p.name):
        if not layer_dir.is_dir():
            continue
        for entry in sorted(layer_dir.iterdir(), key=lambda p: p.name):
            if entry.name.endswith(".json"):
                contract = load(layer_dir.name, entry.name.removesuffix(".json"))
                found[contract.qualified_name] = contract
    return found


def from_dict(doc: dict) -> Contract:
    return _parse(doc, doc.get("table", "<dict>"))


def classify_change(old: Contract, new: Contract) -> Change:
    """How `new` differs from `old`: none, minor (nullable columns added) or major (anything else)."""
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    if any(name not in new_cols for name in old_cols):
        return "major"
    for name, col in old_cols.items():
        other = new_cols[name]
        if other.type != col.type or (col.nullable and not other.nullable):
            return "major"
        if other.nullable and not col.nullable:
            continue  # relaxing a constraint is compatible for readers and writers
    if tuple(old.keys) != tuple(new.keys):
        return "major"
    added = [c for name, c in new_cols.items() if name not in old_cols]
    if any(not c.nullable for c in added):
        return "major"
    if added:
        return "minor"
    return "none"


def version_problem(old: Contract, new: Contract) -> str | None:
    """Why `new`'s version does not fit its change from `old`, or None when it does."""
    change = classify_change(old, new)
    o = tuple(int(p) for p in old.version.split("."))
    n = tuple(int(p) for p in new.version.split("."))
    if change == "major" and n[0] <= o[0]:
        return f"{new.qualified_name}: incompatible change needs a major version above {old.version} (is {new.version})"
    if change == "minor" and n <= o:
        return f"{new.qualified_name}: added nullable columns need at least a minor bump above {old.version}"
    if n < o:
        return f"{new.qualified_name}: version went backwards ({old.version} -> {new.version})"
    return None
