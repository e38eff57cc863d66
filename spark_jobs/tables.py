"""The only module that reads and writes Delta tables.

Every write goes through a table's contract (column names, types, order) first. Upserts are SQL
``MERGE INTO delta.`path```, the statement that runs unchanged on Sail and on Databricks.
Sail 0.7.2 does not check that rows written with ``replaceWhere`` satisfy the predicate (Databricks
does), so :meth:`Tables.replace_where` checks it itself before writing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import failpoints
from lakehouse.lake import Lake
from spark_jobs import contracts
from spark_jobs.contracts import Contract


class TableWriteError(RuntimeError):
    """A write that would break a table's window or contract."""


@dataclass(frozen=True)
class Tables:
    """Delta tables of one lake, reached through one Spark session."""

    spark: SparkSession
    lake: Lake

    def path(self, contract: Contract) -> str:
        return self.lake.table(contract.layer, contract.table)  # type: ignore[arg-type]

    def exists(self, contract: Contract) -> bool:
        path = self.path(contract)
        if self.lake.is_local:
            # A first write killed before its commit leaves a `_delta_log` with no commit file: no
            # table yet (reading it fails; writing to it creates version 0 and ignores the orphans).
            log = Path(path.removeprefix("file://")) / "_delta_log"
            return log.is_dir() and any(
                f.name.endswith(".json") or ".checkpoint" in f.name for f in log.iterdir() if f.name[:1].isdigit()
            )
        try:
            self.spark.read.format("delta").load(path).schema  # noqa: B018 - forces resolution
        except Exception:
            return False
        return True

    def empty(self, contract: Contract) -> DataFrame:
        return self.spark.createDataFrame([], contract.ddl())

    def read(self, contract: Contract) -> DataFrame:
        """The table's rows, or an empty DataFrame with the contract's schema if it does not exist."""
        if not self.exists(contract):
            return self.empty(contract)
        return self.spark.read.format("delta").load(self.path(contract))

    def append(self, df: DataFrame, contract: Contract) -> None:
        with self._committing(contract):
            self._writer(contract.check(df), "append").save(self.path(contract))

    def overwrite(self, df: DataFrame, contract: Contract) -> None:
        with self._committing(contract):
            self._writer(contract.check(df), "overwrite").save(self.path(contract))

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
            self._writer(checked, "overwrite").option("replaceWhere", predicate).save(self.path(contract))

    def stage(self, df: DataFrame, name: str) -> DataFrame:
        """Materialize `df` as a scratch Delta table under ``ops/_staging`` and return it read back.

        Used where a computed DataFrame is both counted and merged: the computation runs once.
        """
        path = self.lake.uri("ops", "_staging", name)
        df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        return self.spark.read.format("delta").load(path)

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
    ) -> int:
        """Upsert `source` into the table on `keys` (default: the contract's keys) with SQL MERGE.

        Args:
            source: rows with exactly the contract's columns.
            contract: the target table.
            keys: the business key to match on.
            matched_condition: extra condition (over aliases ``t`` target, ``s`` source) for updates;
                matched rows failing it are left unchanged.
            update_set: column -> SQL expression for updates; default every column from the source.
            update: False inserts new keys only and never touches existing rows.

        Returns:
            The row count the engine reports for the MERGE (Databricks: rows affected; Sail 0.7.2:
            rows in the files it rewrote), or the rows of a first write. Informational only.
        """
        checked = contract.check(source)
        if not self.exists(contract):
            self.append(checked, contract)
            return self.read(contract).count()
        keys = keys or contract.keys
        view = f"merge_src_{uuid.uuid4().hex}"
        checked.createOrReplaceTempView(view)
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        matched = ""
        if update:
            when = f"WHEN MATCHED AND ({matched_condition})" if matched_condition else "WHEN MATCHED"
            sets = {c: f"s.`{c}`" for c in contract.column_names} | (update_set or {})
            matched = f"{when} THEN UPDATE SET " + ", ".join(f"`{c}` = {e}" for c, e in sets.items()) + " "
        try:
            with self._committing(contract):
                result = self.spark.sql(
                    f"MERGE INTO delta.`{self.path(contract)}` AS t USING {view} AS s ON {on} "
                    f"{matched}WHEN NOT MATCHED THEN INSERT *"
                ).first()
        finally:
            self.spark.catalog.dropTempView(view)
        return _affected_rows(result)

    def upsert(
        self, source: DataFrame, contract: Contract, *, matched_condition: str | None = None,
        update_set: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        """:meth:`merge` for the rows of `source` whose keys the table holds; append the others.

        Sail 0.7.2's MERGE costs a join with the whole target and a rewrite of the files it
        touches even when every source row is new; a daily run's new bars appended instead cost the
        same on five years of history as on one month. `source` is read more than once, so pass a
        materialized frame (:meth:`stage`). Not for concurrent writers of the same new keys.
        """
        checked = contract.check(source)
        if not self.exists(contract):
            self.append(checked, contract)
            return
        keys = list(contract.keys)
        existing = self.read(contract).select(*keys)
        known = checked.join(existing, keys, "left_semi")
        new = checked.join(existing, keys, "left_anti")
        if known.limit(1).count():
            self.merge(known, contract, matched_condition=matched_condition, update_set=update_set)
        if new.limit(1).count():
            self.append(new, contract)

    def history(self, contract: Contract) -> list[dict]:
        """Commit history, newest first, from the `deltalake` package (Sail has no DESCRIBE HISTORY)."""
        from deltalake import DeltaTable

        return DeltaTable(self.path(contract)).history()

    def version(self, contract: Contract) -> int | None:
        """Current Delta version of the table, or None when it does not exist."""
        if not self.exists(contract):
            return None
        from deltalake import DeltaTable

        return DeltaTable(self.path(contract)).version()

    def _committing(self, contract: Contract):
        """Failpoint ``delta_commit:<layer>.<table>`` around a write (a test hook, see lakehouse.failpoints)."""
        started = failpoints.DeltaWriteStarted(self.path(contract)) if self.lake.is_local else None
        return failpoints.during(f"delta_commit:{contract.qualified_name}", started)

    @staticmethod
    def _writer(df: DataFrame, mode: str):
        return df.write.format("delta").mode(mode)


def _affected_rows(result) -> int:
    """The count a MERGE reports: Databricks ``num_affected_rows``, Sail 0.7.2 a single ``count``."""
    if result is None:
        return 0
    values = result.asDict()
    for name in ("num_affected_rows", "count"):
        if name in values and values[name] is not None:
            return int(values[name])
    return int(next(iter(values.values())) or 0)


def contract(layer: str, table: str) -> Contract:
    """Shorthand used by the layer modules."""
    return contracts.load(layer, table)
