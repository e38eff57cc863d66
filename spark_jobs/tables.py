"""The only module that reads and writes Delta tables.

Every write goes through a table's contract (column names, types, order) first. Upserts are SQL
``MERGE INTO delta.`path```, the statement that runs unchanged on Sail and on Databricks, except
the updates of a table laid out by date ranges: those rewrite the ranges they touch with
``replaceWhere`` (:meth:`Tables.merge`).
Sail 0.7.2 does not check that rows written with ``replaceWhere`` satisfy the predicate (Databricks
does), so :meth:`Tables.replace_where` checks it itself before writing.

A contract's ``file_range`` (see :class:`spark_jobs.contracts.FileRange`) is the one place a table's
file layout is declared: every write here spreads the rows over files by those date ranges, and
:meth:`Tables.optimize` keeps the order when it compacts.

A local lake is also read without Spark (``lakehouse status`` reads gold and quarantine with the
`deltalake` package): :func:`is_table`, :func:`read_arrow` and :func:`local_tables` are that path,
and they agree with :meth:`Tables.exists` on what a table is.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import failpoints
from lakehouse.lake import Container, Lake
from spark_jobs import contracts
from spark_jobs.contracts import Contract, FileRange


def is_table(location: str | Path) -> bool:
    """Whether a local directory holds a Delta table: its ``_delta_log`` has a commit.

    A first write killed before its commit leaves a ``_delta_log`` with no commit file: that is no
    table yet (reading it fails; writing to it creates version 0 and ignores the orphans).
    """
    log = Path(str(location).removeprefix("file://")) / "_delta_log"
    if not log.is_dir():
        return False
    return any(f.name[:1].isdigit() and (f.name.endswith(".json") or ".checkpoint" in f.name) for f in log.iterdir())


def local_tables(lake: Lake, container: Container) -> list[str]:
    """Names of the Delta tables in a container of a local lake, sorted; [] for a remote lake."""
    if not lake.is_local:
        return []
    base = lake.local_path(container)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if is_table(p))


def read_arrow(location: str | Path, columns: Sequence[str] | None = None) -> pa.Table | None:
    """A local Delta table's rows as Arrow (only `columns` if given), or None when it is no table."""
    if not is_table(location):
        return None
    from deltalake import DeltaTable

    dataset = DeltaTable(str(location).removeprefix("file://")).to_pyarrow_dataset()
    return dataset.to_table(columns=list(columns) if columns is not None else None)


def arrow_schema(location: str | Path) -> pa.Schema | None:
    """A local Delta table's schema as Arrow, or None when it is no table."""
    if not is_table(location):
        return None
    from deltalake import DeltaTable

    return DeltaTable(str(location).removeprefix("file://")).to_pyarrow_dataset().schema


# Hash partitions a ranged write is spread over. A range's rows are one partition (one file); two
# ranges share a file only when their hashes collide: 64 partitions left two pairs of the 21 ranges
# of 5 years x 91 days together, 256 none. Empty partitions write no file, and a daily append (one
# range) is one file. Fewer partitions buy nothing: appending the 5-year silver.daily_bars and
# gold.fct_daily_prices (627,500 rows each, fresh Sail per write) peaked at 446-454 / 484-602 MB with
# 256 against 416-446 / 556-602 MB with 64 or 32, CPU alike, while 64 and 32 mixed two ranges in 2
# and 4 files. Sail 0.7.2 ignores spark.sql.shuffle.partitions for a repartition without a count
# (one file). The backfill's Sail peak is elsewhere: bronze_to_silver's staging of flagged rows.
_RANGE_PARTITIONS = 256

# How engines say a path holds no Delta table (Sail, Databricks, Spark), lower case.
_MISSING_TABLE = ("not a delta table", "not found", "no commit files", "does not exist", "path_not_found")


class TableWriteError(RuntimeError):
    """A write that would break a table's window or contract."""


# Sail 0.7.2 reads a floating-point column whose values in one file are all equal (min == max in
# the file's statistics) from the statistics in the Delta log, parsed one unit in the last place
# off (0.9875013865649279 written and in the Parquet file, 0.987501386564928 read: pinned in
# tests/spark_jobs/test_sail_gaps.py). A daily run writes one-row files, so gold's factors read back
# differed from what was computed. A local lake's tables therefore record statistics only on the
# columns that are not floating point (no read prunes on those), set when a table is created and
# kept by every later write; the scratch tables record none. Databricks reads the values, so its
# tables are created as before.
STATS_COLUMNS = "delta.dataSkippingStatsColumns"
NO_STATS = {"delta.dataSkippingNumIndexedCols": "0"}


class UnreadableTable(RuntimeError):
    """A table exists but its log or files cannot be read (a damaged commit, say); names the table."""


@dataclass(frozen=True)
class Tables:
    """Delta tables of one lake, reached through one Spark session."""

    spark: SparkSession
    lake: Lake

    def path(self, contract: Contract) -> str:
        return self.lake.table(contract.layer, contract.table)  # type: ignore[arg-type]

    def exists(self, contract: Contract) -> bool:
        return self.existing(contract) is not None

    def existing(self, contract: Contract) -> DataFrame | None:
        """The table as stored (its own schema, not checked against the contract), or None when it
        does not exist. Errors other than a missing table are raised (:class:`UnreadableTable`)."""
        return self._read_existing(self.path(contract), contract.qualified_name)

    def _read_existing(self, path: str, what: str) -> DataFrame | None:
        """The Delta table at `path`, resolved, or None when there is none; any other failure is an
        :class:`UnreadableTable` naming `what`. A local lake answers "none" from its files (no engine
        round trip); an engine says it in its own words (:data:`_MISSING_TABLE`)."""
        if self.lake.is_local and not is_table(path):
            return None
        try:
            df = self.spark.read.format("delta").load(path)
            df.schema  # noqa: B018 - resolves the table now, so a missing or damaged one fails here
        except Exception as exc:  # Spark Connect raises AnalysisException or a gRPC error by engine
            if not self.lake.is_local and any(words in str(exc).lower() for words in _MISSING_TABLE):
                return None
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UnreadableTable(f"{what} at {path} cannot be read: {first_line}") from exc
        return df

    def empty(self, contract: Contract) -> DataFrame:
        return self.spark.createDataFrame([], contract.ddl())

    def read(self, contract: Contract) -> DataFrame:
        """The table's rows, or an empty DataFrame with the contract's schema if it does not exist."""
        df = self.existing(contract)
        return self.empty(contract) if df is None else df

    def append(self, df: DataFrame, contract: Contract) -> None:
        with self._committing(contract):
            self._writer(contract.check(df), "append", contract).save(self.path(contract))

    def append_arrow(self, table: pa.Table, contract: Contract, per_file: pa.Table | None = None) -> None:
        """Append rows built on the driver, checked against the contract's Arrow schema here.

        :meth:`append` asks the engine for the frame's schema first; for rows sent from the driver
        that round trip serializes and ships the whole batch once more (2 of RAW -> BRONZE's 8 s at
        500 symbols x 5 years), while the Arrow schema already says what the engine would answer.

        `per_file`: columns that hold one value per source file (bronze's lineage), one row per file,
        joined by the engine to `table` on the one column the two share (not written). A bronze
        batch's lineage repeated on every row was half the bytes the client serialized and sent.
        """
        expected = contract.arrow_schema()
        schema = table.schema
        if per_file is not None:
            key = _join_key(table.schema, per_file.schema)
            schema = _joined_schema(table.schema, per_file.schema, key, expected)
        if not schema.equals(expected):
            got = {f.name: str(f.type) for f in schema}
            problems = [f"{f.name}: {got.get(f.name, 'missing')} (contract: {f.type})" for f in expected
                        if got.get(f.name) != str(f.type)]  # fmt: skip
            problems += [f"unexpected column {n}" for n in got if n not in expected.names]
            raise contracts.ContractError(
                f"{contract.qualified_name} v{contract.version}: Arrow rows do not match the contract "
                f"(column order included): {'; '.join(problems) or 'columns out of order'}"
            )
        if table.num_rows == 0:
            return
        df = self.spark.createDataFrame(table)
        if per_file is not None:
            files = F.broadcast(self.spark.createDataFrame(per_file))
            # One file per append, as without the join (Sail spreads a join's output over its cores).
            df = df.join(files, key).select(*expected.names).coalesce(1)
        with self._committing(contract):
            # mergeSchema: a table written under an older minor version gains the new nullable
            # columns (rows checked against the contract above; its older rows read NULL there).
            self._writer(df, "append", contract).option("mergeSchema", "true").save(self.path(contract))

    def overwrite(self, df: DataFrame, contract: Contract) -> None:
        with self._committing(contract):
            self._writer(contract.check(df), "overwrite", contract).save(self.path(contract))

    def replace_where(self, df: DataFrame, contract: Contract, predicate: str) -> None:
        """Replace the rows matching `predicate` by `df`, after checking every row of `df` matches it."""
        checked = contract.check(df)
        outside = checked.filter(~F.coalesce(F.expr(predicate), F.lit(False))).count()
        if outside:
            raise TableWriteError(
                f"{contract.qualified_name}: {outside} rows fall outside the replaced window ({predicate})"
            )
        if not self.exists(contract):
            self.append(checked, contract)
            return
        with self._committing(contract):
            self._writer(checked, "overwrite", contract).option("replaceWhere", predicate).save(self.path(contract))

    def stage(self, df: DataFrame, name: str) -> DataFrame:
        """Materialize `df` as a scratch Delta table under ``ops/_staging`` and return it read back.

        Used where a computed DataFrame is both counted and merged: the computation runs once.
        Each overwrite leaves the previous run's files in place until a vacuum (the maintenance
        job's, over the names the jobs declare). One writer per name at a time: the frame returned
        reads the path, so a second copy of the same job staging meanwhile would change what this one
        reads. The layer pipelines run one at a time (ADF ``concurrency: 1``, docs/orchestration.md);
        a notebook started by hand beside them is outside that guarantee.
        """
        path = self.staging_path(name)
        writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        writer.options(**(NO_STATS if self.lake.is_local else {})).save(path)
        return self.spark.read.format("delta").load(path)

    def staging_path(self, name: str) -> str:
        return self.lake.uri("ops", "_staging", name)

    def staged(self, name: str) -> bool:
        """Whether the scratch table `name` exists (a stage may not have run yet).

        A damaged one on a remote lake raises :class:`UnreadableTable` (naming ``ops._staging.<name>``),
        as :meth:`existing` does. On a local lake its commit files answer alone, without resolving
        the table in the engine (no round trip): a damaged one fails where it is used (the vacuum).
        """
        path = self.staging_path(name)
        if self.lake.is_local:
            return is_table(path)
        return self._read_existing(path, f"ops._staging.{name}") is not None

    def delete(self, contract: Contract, predicate: str) -> None:
        if self.exists(contract):
            self.spark.sql(f"DELETE FROM delta.`{self.path(contract)}` WHERE {predicate}")

    def merge(
        self,
        source: DataFrame,
        contract: Contract,
        *,
        keys: tuple[str, ...] | None = None,
        matched_condition: str | None = None,
        update_set: dict[str, str] | None = None,
        update: bool = True,
    ) -> None:
        """Upsert `source` into the table on `keys` (default: the contract's keys), as SQL MERGE does.

        An update of a table with a ``file_range`` whose keys hold its column is no MERGE: the
        ranges the source's rows fall in are rewritten (:meth:`_merge_ranges`). Sail 0.7.2's MERGE
        joins the source with the whole target: a daily run's ~200 revised bars cost 1.1-1.4 Sail
        CPU s on five years of history against 0.1 on one month, rewritten by range 0.24 (the same
        3 recent files); a split re-adjusting every bar of the table 5.4 s and 1.5 GB against 1.4 s
        and 0.9 GB, so no source is too wide for the ranges.

        Args:
            source: rows with exactly the contract's columns, at most one per key.
            contract: the target table.
            keys: the business key to match on.
            matched_condition: extra condition (over aliases ``t`` target, ``s`` source) for updates;
                matched rows failing it are left unchanged.
            update_set: column -> SQL expression for updates; default every column from the source.
            update: False inserts new keys only and never touches existing rows.
        """
        checked = contract.check(source)
        if not self.exists(contract):
            self.append(checked, contract)
            return
        keys = keys or contract.keys
        sets = {c: f"s.`{c}`" for c in contract.column_names} | (update_set or {})
        ranged = contract.file_range
        if update and ranged is not None and ranged.column in keys:
            spans = _spans(checked, ranged)
            if spans is not None:
                if spans:
                    self._merge_ranges(checked, contract, keys, spans, matched_condition or "TRUE", sets)
                return
        view = f"merge_src_{uuid.uuid4().hex}"
        checked.createOrReplaceTempView(view)
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        matched = ""
        if update:
            when = f"WHEN MATCHED AND ({matched_condition})" if matched_condition else "WHEN MATCHED"
            matched = f"{when} THEN UPDATE SET " + ", ".join(f"`{c}` = {e}" for c, e in sets.items()) + " "
        try:
            with self._committing(contract):
                self.spark.sql(
                    f"MERGE INTO delta.`{self.path(contract)}` AS t USING {view} AS s ON {on} "
                    f"{matched}WHEN NOT MATCHED THEN INSERT *"
                ).collect()
        finally:
            self.spark.catalog.dropTempView(view)

    def in_ranges_of(self, stored: DataFrame, rows: DataFrame, contract: Contract) -> DataFrame:
        """The rows of `stored` (the table) in the ``file_range`` ranges that `rows` fall in, bounded
        by a literal so the other files are skipped: the only rows a key of `rows` can match when
        the keys hold the range's column. All of `stored` otherwise."""
        ranged = contract.file_range
        spans = _spans(rows, ranged) if ranged is not None and ranged.column in contract.keys else None
        if spans is None:
            return stored
        return stored.filter(F.expr(_span_predicate(ranged.column, spans)) if spans else F.lit(False))

    def _merge_ranges(
        self,
        source: DataFrame,
        contract: Contract,
        keys: tuple[str, ...],
        spans: list[tuple[dt.date, dt.date]],
        condition: str,
        sets: dict[str, str],
    ) -> None:
        """What MERGE leaves in the table, written by rewriting the file ranges `spans` only.

        The stored rows of those ranges (a literal bound: the other files are skipped) are joined
        with the source on the keys; a matched row meeting `condition` takes `sets`, the others stay
        as stored, a new key is inserted, and the whole is written back with ``replaceWhere`` on the
        same ranges: one Delta commit that removes the ranges' rows and adds the merged ones, so no
        row of a range is lost, and a failed write leaves the table as it was. Every row written
        satisfies the predicate, which Databricks checks ("Arbitrary selective overwrite with
        replaceWhere", https://docs.databricks.com/delta/selective-overwrite.html, on by default:
        ``spark.databricks.delta.replaceWhere.constraintCheck.enabled``); Sail 0.7.2 checks nothing
        and deletes by the predicate row by row, so a file mixing ranges keeps its other rows. The
        stored rows are read before the commit: like the read-then-append writes of the jobs, this
        relies on the layer pipelines running one at a time (ADF ``concurrency: 1``); two such
        writes at once commit one and fail the other, as two MERGEs do
        (tests/reliability/test_concurrency.py).
        """
        predicate = _span_predicate(contract.file_range.column, spans)
        target, changes = f"merge_tgt_{uuid.uuid4().hex}", f"merge_src_{uuid.uuid4().hex}"
        self.read(contract).filter(F.expr(predicate)).withColumn("_t", F.lit(True)).createOrReplaceTempView(target)
        source.withColumn("_s", F.lit(True)).createOrReplaceTempView(changes)
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        columns = ", ".join(
            f"CASE WHEN s._s IS NULL THEN t.`{c}` WHEN t._t IS NULL THEN s.`{c}` WHEN ({condition}) THEN {sets[c]} "
            f"ELSE t.`{c}` END AS `{c}`"
            for c in contract.column_names
        )
        try:
            merged = self.spark.sql(f"SELECT {columns} FROM {target} AS t FULL OUTER JOIN {changes} AS s ON {on}")
            with self._committing(contract):
                self._writer(merged, "overwrite", contract).option("replaceWhere", predicate).save(self.path(contract))
        finally:
            self.spark.catalog.dropTempView(target)
            self.spark.catalog.dropTempView(changes)

    def optimize(self, contract: Contract) -> dict[str, int]:
        """Compact the table's small files; the files added and removed where the engine says.

        Databricks runs SQL ``OPTIMIZE``; Sail 0.7.2 has none, so on a local lake the `deltalake`
        package compacts the table directory. A table with a ``file_range`` is compacted in the
        order of its range column (``ZORDER BY`` one column sorts by it), into files of about one
        range each: plain compaction would bin-pack a daily run's one-day files with any others
        and undo the layout its MERGE and reads rely on.
        """
        path = self.path(contract)
        ranged = contract.file_range
        if not self.lake.is_local:
            # Databricks: OPTIMIZE ... ZORDER BY colocates rows by the column, which its data
            # skipping uses (https://docs.databricks.com/en/delta/data-skipping.html).
            order = f" ZORDER BY (`{ranged.column}`)" if ranged else ""
            self.spark.sql(f"OPTIMIZE delta.`{path}`{order}")
            return {}
        from deltalake import DeltaTable

        table = DeltaTable(path.removeprefix("file://"))
        if ranged is None:
            metrics = table.optimize.compact()
        else:
            metrics = table.optimize.z_order([ranged.column], target_size=_range_bytes(table, contract))
        return {"files_added": metrics.get("numFilesAdded", 0), "files_removed": metrics.get("numFilesRemoved", 0)}

    def vacuum(self, contract: Contract, retention_hours: int) -> dict[str, int]:
        """Delete files no version within `retention_hours` needs; on a local lake the files removed
        and the table's version after it (SQL ``VACUUM`` on Databricks, `deltalake` locally)."""
        return self.vacuum_path(self.path(contract), retention_hours)

    def vacuum_path(self, path: str, retention_hours: int) -> dict[str, int]:
        """:meth:`vacuum` of the Delta table at `path` (a scratch table has no contract)."""
        if not self.lake.is_local:
            self.spark.sql(f"VACUUM delta.`{path}` RETAIN {retention_hours} HOURS")
            return {}
        from deltalake import DeltaTable

        table = DeltaTable(path.removeprefix("file://"))
        removed = table.vacuum(retention_hours=retention_hours, enforce_retention_duration=False, dry_run=False)
        return {"vacuumed": len(removed), "version": table.version()}

    def _committing(self, contract: Contract):
        """Failpoint ``delta_commit:<layer>.<table>`` around a write (a test hook, see lakehouse.failpoints)."""
        started = failpoints.DeltaWriteStarted(self.path(contract)) if self.lake.is_local else None
        return failpoints.during(f"delta_commit:{contract.qualified_name}", started)

    def _writer(self, df: DataFrame, mode: str, contract: Contract):
        """A Delta writer of `df`, its rows grouped into files by the contract's ``file_range``.

        Hash partitioning on the range number is what holds on Sail 0.7.2: it drops a sort before
        a write (``orderBy``, ``sortWithinPartitions``) and its ``repartitionByRange`` does not
        split by ranges, while each hash partition is written as its own files. Databricks writes
        the same partitions (adaptive execution may coalesce a few; ``OPTIMIZE`` re-sorts them).
        """
        ranged = contract.file_range
        if ranged is not None:
            epoch_days = F.datediff(F.col(ranged.column), F.lit(_EPOCH))
            df = df.repartition(_RANGE_PARTITIONS, F.floor(epoch_days / F.lit(ranged.days)))
        writer = df.write.format("delta").mode(mode)
        if self.lake.is_local:  # see STATS_COLUMNS
            stats = contract.stats_columns
            writer = writer.options(**({STATS_COLUMNS: ",".join(stats)} if stats else NO_STATS))
        return writer


def _join_key(rows: pa.Schema, per_file: pa.Schema) -> str:
    """The one column `rows` and `per_file` share; any other number of shared columns is an error."""
    shared = set(rows.names) & set(per_file.names)
    if len(shared) != 1:
        raise contracts.ContractError(f"rows and per-file columns must share exactly one column, not {sorted(shared)}")
    return shared.pop()


def _joined_schema(rows: pa.Schema, per_file: pa.Schema, key: str, expected: pa.Schema) -> pa.Schema:
    """The schema of `rows` joined with `per_file` on `key`, in `expected`'s order (the join selects
    it), other columns after."""
    fields = {f.name: f for f in [*rows, *per_file] if f.name != key}
    return pa.schema([fields.pop(n) for n in expected.names if n in fields] + list(fields.values()))


_EPOCH = "1970-01-01"  # ranges are counted from it: the same dates fall in the same range in every write


def _spans(rows: DataFrame, ranged: FileRange) -> list[tuple[dt.date, dt.date]] | None:
    """The ``file_range`` ranges holding `rows`, adjacent ones joined, as [first day, day after the
    last) spans; None when a row has no date (no range holds it). One action over `rows`."""
    number = F.floor(F.datediff(F.col(ranged.column), F.lit(_EPOCH)) / F.lit(ranged.days)).alias("n")
    numbers = [r.n for r in rows.select(number).distinct().collect()]
    if None in numbers:
        return None
    numbers.sort()
    spans: list[list[int]] = []
    for n in numbers:
        if spans and spans[-1][1] == n:
            spans[-1][1] = n + 1
        else:
            spans.append([n, n + 1])
    epoch = dt.date.fromisoformat(_EPOCH)
    return [
        (epoch + dt.timedelta(days=lo * ranged.days), epoch + dt.timedelta(days=hi * ranged.days)) for lo, hi in spans
    ]


def _span_predicate(column: str, spans: list[tuple[dt.date, dt.date]]) -> str:
    return " OR ".join(f"(`{column}` >= DATE'{lo}' AND `{column}` < DATE'{hi}')" for lo, hi in spans)


def _range_bytes(table, contract: Contract) -> int:
    """The bytes a file holding one ``file_range`` of the table holds, on average."""
    ranged = contract.file_range
    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    if not actions.get("size_bytes"):
        return 1
    lows = [d for d in actions.get(f"min.{ranged.column}", []) if d is not None]
    highs = [d for d in actions.get(f"max.{ranged.column}", []) if d is not None]
    spanned = (max(highs) - min(lows)).days + 1 if lows and highs else ranged.days
    ranges = max(1, -(-spanned // ranged.days))
    return max(1, sum(actions["size_bytes"]) // ranges)


def contract(layer: str, table: str) -> Contract:
    """Shorthand used by the layer modules."""
    return contracts.load(layer, table)
