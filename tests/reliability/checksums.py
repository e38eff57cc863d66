"""Content checksums of the lake's Delta tables and of the marts, to prove two runs left the same data.

A lake table's checksum is order-independent: every row's business columns are rendered to one
canonical text, the texts are sorted, and the sha256 of the sorted list is the checksum. So it
does not depend on file layout, partitioning or the order Delta returns rows in, but a missing,
extra, duplicated or changed row changes it. Tables are read with the ``deltalake`` package (not
through Sail), so the engine under test does not also judge itself.

Columns left out, because they record *which run, when*, not *what*, and so differ between any
two runs of the same window by design (ARCHITECTURE.md: every row carries its ``load_id``):

- ``load_id``, ``ingest_run_id``: the ADF run ids that wrote the row / landed the payload;
- ``source_file``: the RAW path, which ends in the ingesting run's id;
- ``ingested_at``, ``updated_at``, ``quarantined_at``, ``processed_at``: wall-clock times of the writing run;
- ``ingest_date``: the UTC day a payload was landed (two runs either side of midnight differ);
- ``watermark`` of ``ops.job_state``: the latest ``updated_at`` of silver, a wall-clock time.

Everything else is compared, including ``revision`` (a crash must not turn a re-delivery into a
revision) and ``record_index``. Floats are rendered with ``repr`` (exact). Scratch tables under
``ops/_staging`` are not compared: they are rewritten by every run and read by none. Nor is
``ops.gold_changes``: a log of which gold run recomputed which range and which load served it, so a
run killed and resumed rightly holds other rows than one that went through.

Marts use :func:`spark_jobs.serving.mart_checksum` (exact: the binary COPY bytes in key order),
without the same run columns (the marts carry ``load_id``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg

from lakehouse.lake import Lake
from spark_jobs import contracts

RUN_COLUMNS = frozenset({
    "load_id", "ingest_run_id", "source_file", "ingested_at", "updated_at", "quarantined_at", "processed_at",
    "ingest_date", "watermark",
})  # fmt: skip


# Tables that record runs rather than data (see the module docstring).
RUN_LOGS = frozenset({"ops.gold_changes"})


@dataclass(frozen=True)
class TableSum:
    """Rows, duplicate business keys and content checksum of one table."""

    rows: int
    duplicate_keys: int
    checksum: str


def _canonical(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, default=str, sort_keys=True)


def delta_table_sum(path: str, contract: contracts.Contract, distinct: bool = False) -> TableSum | None:
    """The checksum of one Delta table (None when it does not exist).

    `distinct` sums each distinct business row once: for bronze after two runs that each landed
    the same payload (one row per record *per file*, so both copies are rightly there)."""
    from deltalake import DeltaTable

    local = path.removeprefix("file://")
    if not (Path(local) / "_delta_log").is_dir():
        return None
    data = DeltaTable(local).to_pyarrow_table()
    compared = [c for c in contract.column_names if c not in RUN_COLUMNS]
    texts = ["\x1f".join(_canonical(row[c]) for c in compared) for row in data.select(compared).to_pylist()]
    texts = sorted(set(texts) if distinct else texts)
    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()
    keys = Counter(tuple(row[k] for k in contract.keys) for row in data.select(list(contract.keys)).to_pylist())
    return TableSum(len(texts), sum(n - 1 for n in keys.values() if n > 1), digest)


def _per_landed_file(contract: contracts.Contract) -> bool:
    """Tables with a row per landed RAW file: bronze, and silver's record of the files it merged."""
    return contract.layer == "bronze" or (contract.layer, contract.table) == ("ops", "processed_files")


def lake_sums(lake: Lake, distinct_bronze: bool = False) -> dict[str, TableSum | None]:
    """Every contract table of the lake, keyed ``layer.table``; with `distinct_bronze`, the tables
    holding a row per landed file (two runs may each land the same payload) by distinct rows."""
    return {name: delta_table_sum(lake.table(c.layer, c.table), c, distinct_bronze and _per_landed_file(c))
            for name, c in contracts.all_contracts().items() if name not in RUN_LOGS}  # fmt: skip


def mart_sums(dsn: str) -> dict[str, tuple[int, str]]:
    """(rows, checksum) of every mart table, whole, without the run columns."""
    from spark_jobs import serving

    with psycopg.connect(dsn) as conn:
        return {t.name: serving.mart_checksum(conn, t, None, exclude=RUN_COLUMNS) for t in serving.MART_TABLES.values()}


def mart_duplicate_keys(dsn: str) -> int:
    """Rows beyond the first per business key, over every mart table (primary keys should make it 0)."""
    from psycopg import sql

    from spark_jobs import serving

    total = 0
    with psycopg.connect(dsn) as conn:
        for table in serving.MART_TABLES.values():
            keys = sql.SQL(", ").join(map(sql.Identifier, table.keys))
            query = sql.SQL("SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {}.{} GROUP BY {}) g")
            total += conn.execute(
                query.format(sql.Identifier(serving.MART_SCHEMA), sql.Identifier(table.name), keys)
            ).fetchone()[0]
    return int(total)


def differences(expected: dict, actual: dict) -> dict[str, tuple]:
    """Tables whose sums differ: name -> (expected, actual)."""
    return {k: (expected.get(k), actual.get(k)) for k in sorted(set(expected) | set(actual))
            if expected.get(k) != actual.get(k)}  # fmt: skip
