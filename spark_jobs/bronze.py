"""RAW -> BRONZE: one row per record per source file, values as received, with lineage.

Parsing happens on the driver, one whole file at a time (see :mod:`spark_jobs.raw`), and records
become DataFrames through Arrow in batches of whole files. A file that holds no records (an
error body, an empty overview, broken JSON) goes to ``bronze.rejected_files`` with the reason, so
every RAW file of a window is accounted for exactly once and a rerun skips it. So does a payload
whose bytes are not those its manifest recorded (size and sha256): RAW is never modified, so such
a file was truncated or tampered with after landing, and none of its records are loaded.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from lakehouse.contracts.manifest import Fingerprint
from lakehouse.raw_store import RawIntegrityError, RawStore, read_verified
from spark_jobs import raw
from spark_jobs.contracts import Contract

DATASET_PARSERS = {
    "daily_bars": raw.parse_daily_bars,
    "security_master": raw.parse_overview,
    **{dataset: raw.parse_corporate_actions(dataset) for dataset in ("splits", "dividends")},
}
# Whole files per DataFrame: bounds driver memory and the Spark Connect message size.
BATCH_ROWS = 150_000


def to_frame(spark: SparkSession, rows: list[dict], contract: Contract) -> DataFrame:
    """A DataFrame with exactly the contract's columns and types from a list of row dicts."""
    names = contract.arrow_schema().names
    return columns_frame(spark, {name: [r.get(name) for r in rows] for name in names}, contract)


def columns_frame(spark: SparkSession, columns: dict[str, list], contract: Contract) -> DataFrame:
    """A DataFrame with exactly the contract's columns and types from equally long value lists."""
    schema = contract.arrow_schema()
    table = pa.table({n: pa.array(columns[n], type=schema.field(n).type) for n in schema.names}, schema=schema)
    if table.num_rows == 0:
        return spark.createDataFrame([], contract.ddl())
    return spark.createDataFrame(table)


def _repeated(runs: list[tuple[object, int]], type_: pa.DataType) -> pa.Array:
    """One value per file repeated over the file's rows, built in Arrow: converting the same
    Python object once per row was a sixth of RAW -> BRONZE's driver time."""
    return pa.concat_arrays([pa.repeat(pa.scalar(value, type=type_), n) for value, n in runs])


@dataclass
class Batch:
    """Rows of whole files (as row dicts, or as columns), plus the files that held none."""

    rows: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    records_per_file: dict[str, int] = field(default_factory=dict)
    columns: dict[str, list] = field(default_factory=dict)
    column_rows: int = 0
    constants: dict[str, list[tuple[object, int]]] = field(default_factory=dict)  # name -> (value, rows) per file

    def extend(self, parsed: raw.Parsed, constants: dict) -> None:
        """Add one file's records, with `constants` (lineage) repeated on each of them."""
        n = parsed.count
        for name, values in parsed.columns.items():
            self.columns.setdefault(name, []).extend(values)
        for name, value in constants.items():
            self.constants.setdefault(name, []).append((value, n))
        self.column_rows += n

    def arrow_table(self, contract: Contract) -> pa.Table:
        """The column rows as an Arrow table with exactly the contract's schema."""
        schema = contract.arrow_schema()
        arrays = [
            _repeated(self.constants[f.name], f.type)
            if f.name in self.constants
            else pa.array(self.columns[f.name], f.type)
            for f in schema
        ]
        return pa.Table.from_arrays(arrays, schema=schema)

    @property
    def size(self) -> int:
        return len(self.rows) + self.column_rows


def _lineage(f: raw.IngestedFile, load_id: str, version: str) -> dict:
    return {
        "source_file": f.file.path,
        "ingest_date": f.ingest_date,
        "ingest_run_id": f.run_id,
        "ingested_at": f.file.modified,
        "provider": f.provider,
        "load_id": load_id,
        "schema_version": version,
    }


def ingested_batches(
    store: RawStore,
    files: list[raw.IngestedFile],
    dataset: str,
    load_id: str,
    contract: Contract,
    rejected_contract: Contract,
    batch_rows: int = BATCH_ROWS,
    fingerprints: Mapping[str, Collection[Fingerprint]] | None = None,
) -> Iterator[Batch]:
    """Parse `files` of `dataset` into batches of bronze rows, whole files per batch.

    `fingerprints`: what the run manifests recorded per path; a file matching none is rejected.
    """
    parse = DATASET_PARSERS[dataset]
    fingerprints = fingerprints or {}
    batch = Batch()
    for f in files:
        try:
            parsed = parse(read_verified(store, f.file.path, fingerprints.get(f.file.path, ())), f.file.path)
        except RawIntegrityError as exc:
            parsed = raw.Parsed(rejected=f"{exc}; not loaded")
        lineage = _lineage(f, load_id, contract.version)
        if parsed.rejected is not None:
            batch.rejected.append(
                {"dataset": dataset, "reason": parsed.rejected, **lineage,
                 "schema_version": rejected_contract.version}
            )  # fmt: skip
        else:
            batch.extend(parsed, {"path_symbol": f.symbol, **lineage})
        batch.records_per_file[f.file.path] = parsed.count
        if batch.size >= batch_rows:
            yield batch
            batch = Batch()
    if batch.rows or batch.rejected or batch.records_per_file:
        yield batch


def capture_batches(
    store: RawStore,
    files: list[raw.CaptureFile],
    load_id: str,
    contract: Contract,
    rejected_contract: Contract,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[Batch]:
    """Parse Event Hubs Capture files into bronze quote rows, whole files per batch."""
    batch = Batch()
    for capture in files:
        f = capture.file
        lineage = {
            "source_file": f.path,
            "ingest_date": capture.location.day,
            "ingested_at": f.modified,
            "provider": "eventhubs",
            "load_id": load_id,
            "schema_version": contract.version,
        }
        try:
            records = raw.parse_capture(store.read(f.path), f.path)
        except raw.RawFormatError as exc:
            batch.rejected.append({"dataset": "quotes", "reason": str(exc), **lineage, "ingest_run_id": None,
                                   "schema_version": rejected_contract.version})  # fmt: skip
            batch.records_per_file[f.path] = 0
            continue
        for rec in records:
            batch.rows.append({**rec, "partition_id": capture.location.partition, **lineage})
        batch.records_per_file[f.path] = len(records)
        if batch.size >= batch_rows:
            yield batch
            batch = Batch()
    if batch.rows or batch.rejected or batch.records_per_file:
        yield batch
