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

import numpy as np
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
# Whole files per append: bounds driver memory and the Spark Connect message size. Sending a batch
# holds about six copies of its Arrow table on the driver (IPC stream, bytes, request, gRPC), so
# the driver's peak grows with it: 500 symbols x 5 years measured +288 MB over the idle client at
# 150,000 rows, +96 MB at 50,000 (Sail's peak 319-336 MB against 209-215), for 13 commits instead
# of 5 at about 10 ms each. A daily run of 500 compact payloads (50,000 bars) stays one append.
# With lineage sent once per file (Batch.take_arrow_parts) a batch is half the bytes: +68 MB.
BATCH_ROWS = 50_000
# The column joining a batch's rows to its files' lineage (:meth:`Batch.take_arrow_parts`); not written.
FILE_INDEX = "_file_index"


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


@dataclass
class Batch:
    """Rows of whole files, plus the files that held none.

    A parsed file's columns become Arrow arrays of the contract's types as soon as it is added:
    kept as Python lists until the batch was full, 150,000 bars took about 110 MB of driver memory
    beside the 45 MB table built from them. What is the same on every row of a file (its lineage)
    is kept once per file, and sent once per file (:meth:`take_arrow_parts`).
    Capture files still arrive as row dicts (:attr:`rows`).
    """

    rows: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    records_per_file: dict[str, int] = field(default_factory=dict)
    chunks: dict[str, list[pa.Array]] = field(default_factory=dict)  # name -> one array per file
    constants: dict[str, list] = field(default_factory=dict)  # name -> one value per file with rows
    file_rows: list[int] = field(default_factory=list)  # rows of each file in `chunks`, in order
    column_rows: int = 0

    def extend(self, parsed: raw.Parsed, constants: dict, schema: pa.Schema, origin: str) -> None:
        """Add the records of file `origin` as Arrow arrays of `schema`'s types, with `constants`
        (lineage) and the parser's per-file facts standing for every one of its rows. A file without
        records adds nothing here."""
        n = parsed.count
        if not n:
            return
        constants = {**constants, **parsed.facts}
        for f in schema:
            if f.name in constants:
                continue
            values = parsed.columns.get(f.name)
            if values is None:
                raise raw.RawFormatError(f"{origin}: parsed records have no column {f.name!r}")
            try:
                if isinstance(values, pa.Array):
                    array = values if values.type == f.type else values.cast(f.type)
                else:
                    array = pa.array(values, f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, UnicodeEncodeError) as exc:
                raise raw.RawFormatError(f"{origin}: column {f.name!r} is not {f.type}: {exc}") from None
            self.chunks.setdefault(f.name, []).append(array)
        for name, value in constants.items():
            self.constants.setdefault(name, []).append(value)
        self.file_rows.append(n)
        self.column_rows += n

    def take_arrow_parts(self, contract: Contract) -> tuple[pa.Table, pa.Table]:
        """The column rows as two Arrow tables: the rows with the contract's per-row columns and
        :data:`FILE_INDEX` (the row's file in this batch), and the files, one row each, with
        :data:`FILE_INDEX` and the lineage; joined on it they hold exactly the contract's schema
        (:meth:`~spark_jobs.tables.Tables.append_arrow` with ``per_file``). The lineage is sent
        once per file: repeated on every row it was half of a batch's bytes (50,000 bars: 16.4 MB
        against 8.8 MB). The batch gives up its per-file arrays column by column while they are
        joined, so the two copies of the rows never both live whole."""
        schema = contract.arrow_schema()
        files = len(self.file_rows)
        index = np.arange(files, dtype=np.int32)
        rows, rows_schema = [], []
        lineage, lineage_schema = [pa.array(index)], [pa.field(FILE_INDEX, pa.int32(), nullable=False)]
        for f in schema:
            if f.name in self.constants:
                lineage.append(pa.array(self.constants[f.name], f.type))
                lineage_schema.append(f)
            else:
                rows.append(pa.concat_arrays(self.chunks.pop(f.name)) if files else pa.array([], f.type))
                rows_schema.append(f)
        rows.append(pa.array(np.repeat(index, self.file_rows)))
        rows_schema.append(pa.field(FILE_INDEX, pa.int32(), nullable=False))
        self.chunks.clear()
        self.constants.clear()
        self.file_rows.clear()
        self.column_rows = 0
        return (pa.Table.from_arrays(rows, schema=pa.schema(rows_schema)),
                pa.Table.from_arrays(lineage, schema=pa.schema(lineage_schema)))  # fmt: skip

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
    schema = contract.arrow_schema()
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
            batch.extend(parsed, {"path_symbol": f.symbol, **lineage}, schema, f.file.path)
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
