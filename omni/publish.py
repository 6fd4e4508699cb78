"""Write, audit, publish: a layer's batches are judged by their suites before any table shows
them.

A job stages every write of its layer in a ``Staging``: the rows, checkpointed once, and how
they land (append, replace a slice, overwrite, merge). ``Staging.view(table)`` is the table as
it will be once published, so a later step of the same job (silver's events checked against
tonight's products, the identity graph built on tonight's logins) reads tonight's rows before
any table holds them.

``Staging.audit_and_publish`` runs every suite of the layer on its table-to-be, scoped as
``jobs/validate.py`` scopes a published table, in the job's own Spark session (no JVM, session
and GX import of its own). The results go to ``quality.validation_results`` and the Data Docs
either way. Then all or nothing: with no blocking failure every staged write is committed, in
the order staged; with one, none is, every table keeps its Delta version, and the rows go to
``quarantine.held_batches`` (one row per record, as JSON, with the table it was for), where the
engineer can query them. The DAG's gate task reads the verdict from the recorded results
(``omni.gates.layer_gate``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, quality, suites, tables
from omni.config import Settings
from omni.tables import Table

log = logging.getLogger("omni.publish")


@dataclass(frozen=True)
class _Write:
    kind: str  # append, replace, overwrite or merge
    rows: DataFrame
    predicate: str | None = None
    keys: tuple[str, ...] = ()
    update: bool = True
    newer_by: str | None = None
    target_dates: tuple[str, Iterable[object]] | None = None


@dataclass
class Verdict:
    """What the audit found and what became of the batches."""

    validations: list[quality.TableValidation]
    published: bool
    written: dict[str, int] = field(default_factory=dict)  # rows per table written or held
    seconds: dict[str, float] = field(default_factory=dict)  # audit (results and docs too), publish

    @property
    def blocking(self) -> list[tuple[str, dict[str, Any]]]:
        return [(v.table, r) for v in self.validations for r in v.blocking_failures]

    @property
    def warnings(self) -> list[tuple[str, dict[str, Any]]]:
        return [(v.table, r) for v in self.validations for r in v.warnings]

    def summary(self) -> dict[str, Any]:
        return {
            "published": self.published,
            ("rows_written" if self.published else "rows_held"): self.written,
            "tables": {v.table: v.summary() for v in self.validations},
            "blocking_failures": len(self.blocking),
            "warnings": len(self.warnings),
            "seconds": {step: round(value, 2) for step, value in self.seconds.items()},
        }


class Staging:
    """The writes of one job's layer(s), staged until their audit passes."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        run_id: str,
        business_date: date,
        start_date: date | None = None,
    ) -> None:
        self.spark, self.settings = spark, settings
        self.run_id, self.business_date, self.start_date = run_id, business_date, start_date
        self._writes: list[tuple[Table, _Write]] = []

    # -- staging -------------------------------------------------------------------------

    def _stage(self, table: Table, write: _Write) -> DataFrame:
        # Checkpointed, not cached: a write to a table this frame was computed from must not
        # send it back to its sources (a cache is dropped then, and refilled from the new
        # version: tonight's rows would be judged duplicates of themselves).
        rows = lakehouse.conform(write.rows, table).localCheckpoint(eager=True)
        self._writes.append((table, replace(write, rows=rows)))
        return rows

    def append(self, table: Table, rows: DataFrame) -> DataFrame:
        return self._stage(table, _Write("append", rows))

    def replace_where(self, table: Table, rows: DataFrame, predicate: str) -> DataFrame:
        return self._stage(table, _Write("replace", rows, predicate=predicate))

    def overwrite(self, table: Table, rows: DataFrame) -> DataFrame:
        return self._stage(table, _Write("overwrite", rows))

    def merge(
        self,
        table: Table,
        rows: DataFrame,
        *,
        keys: Iterable[str] | None = None,
        update: bool = True,
        newer_by: str | None = None,
        target_dates: tuple[str, Iterable[object]] | None = None,
    ) -> DataFrame:
        """Stage a MERGE on ``keys``: new keys inserted; matched rows updated (``update``),
        only by a row at least as new in ``newer_by`` when given."""
        write = _Write(
            "merge",
            rows,
            keys=tuple(keys or table.keys),
            update=update,
            newer_by=newer_by,
            target_dates=target_dates,
        )
        return self._stage(table, write)

    @property
    def staged(self) -> list[str]:
        return [table.name for table, _ in self._writes]

    def staged_rows(self, table: Table) -> list[DataFrame]:
        """The rows staged so far for ``table``, one frame per write (checkpointed)."""
        return [write.rows for staged, write in self._writes if staged.name == table.name]

    # -- the table to be -------------------------------------------------------------------

    def view(self, table: Table) -> DataFrame:
        """``table`` as it will be once every write staged for it is published."""
        stored = lakehouse.read_table(self.spark, self.settings, table)
        # A table of before may keep columns the registry dropped, and lack ones it added
        # since (null in its older rows once written: ``lakehouse.replace_where``).
        frame = stored.select(
            *(
                F.col(c.name)
                if c.name in stored.columns
                else F.lit(None).cast(c.type).alias(c.name)
                for c in table.columns
            )
        )
        for staged, write in self._writes:
            if staged.name == table.name:
                frame = _apply(frame, write)
        return frame

    # -- audit, then publish or hold ----------------------------------------------------------

    def audit_and_publish(self, layers: list[str], table_names: list[str] | None = None) -> Verdict:
        """Validate the layers' suites on their tables-to-be; publish every staged write if no
        blocking expectation failed, else hold them all (see the module's docstring)."""
        views: dict[str, DataFrame] = {}  # each table-to-be planned once

        def view(table: Table) -> DataFrame:
            if table.name not in views:
                views[table.name] = self.view(table)
            return views[table.name]

        frames = {}
        for table in suites.suite_tables(layers, table_names):
            spec = suites.load_suite(table.name)
            frame = view(table)
            condition = suites.scope_filter(
                spec.scope, self.run_id, self.business_date, frame.columns, self.start_date
            )
            frames[table.name] = frame.where(condition) if condition else frame
        # A suite's SQL that names a staged table (events checked against silver.products)
        # reads the table as it will be, not as it was.
        read_as = {}
        for table in {table.name: table for table, _ in self._writes}.values():
            read_as[table.name] = f"staged__{table.name.replace('.', '__')}"
            view(table).createOrReplaceTempView(read_as[table.name])
        started = time.perf_counter()
        try:
            validations = quality.validate_tables(
                self.spark, self.settings, frames, self.run_id, self.business_date, read_as
            )
        finally:
            for view in read_as.values():
                self.spark.catalog.dropTempView(view)
        verdict = Verdict(validations, published=not any(v.blocking_failures for v in validations))
        verdict.seconds["audit"] = time.perf_counter() - started
        started = time.perf_counter()
        if verdict.published:
            for table, write in self._writes:
                written = _publish(self.spark, self.settings, table, write)
                verdict.written[table.name] = verdict.written.get(table.name, 0) + written
        else:
            verdict.written = self._hold()
            log.error(
                "DATA-QUALITY GATE FAILED: nothing of this run published; %d batch(es) held in "
                "%s (run_id %s):\n%s",
                len(self._writes),
                tables.HELD_BATCHES.name,
                self.run_id,
                quality.describe(verdict.blocking),
            )
        verdict.seconds["publish" if verdict.published else "hold"] = time.perf_counter() - started
        for _, write in self._writes:
            release(write.rows)
        return verdict

    def _hold(self) -> dict[str, int]:
        """Every staged batch into ``quarantine.held_batches``; a rerun replaces its own."""
        held: dict[str, int] = {}
        frames = []
        for table, write in self._writes:
            frames.append(
                write.rows.select(
                    F.lit(self.run_id).alias("run_id"),
                    F.lit(self.business_date).cast("date").alias("business_date"),
                    F.lit(table.name).alias("table_name"),
                    F.lit(write.kind).alias("write"),
                    F.to_json(F.struct(*table.column_names)).alias("record"),
                    F.current_timestamp().alias("held_at"),
                )
            )
            held[table.name] = held.get(table.name, 0) + write.rows.count()
        if frames:
            batch = frames[0]
            for frame in frames[1:]:
                batch = batch.unionByName(frame)
            lakehouse.replace_where(
                self.spark,
                self.settings,
                tables.HELD_BATCHES,
                batch,
                lakehouse.sql_in("run_id", [self.run_id]),
            )
        return held


def release(rows: DataFrame) -> None:
    """Free a local checkpoint's blocks now: ``unpersist`` drops caches, not these, and a
    session that runs night after night (the benchmark, the tests) would keep every batch."""
    plan = rows._jdf.queryExecution().analyzed()
    if plan.nodeName() == "LogicalRDD":
        plan.rdd().unpersist(False)


def _apply(frame: DataFrame, write: _Write) -> DataFrame:
    """``frame`` (a table's rows) after ``write``, computed without writing."""
    if write.kind == "append":
        return frame.unionByName(write.rows)
    if write.kind == "overwrite":
        return write.rows
    if write.kind == "replace":
        # Delta replaces the rows the predicate holds for; a null keeps the row.
        kept = frame.where(f"NOT coalesce(({write.predicate}), false)")
        return kept.unionByName(write.rows)
    return _merged(frame, write)


def _merged(frame: DataFrame, write: _Write) -> DataFrame:
    """``frame`` after a MERGE of ``write.rows`` as Delta runs it: keys matched null-safe, a
    new key inserted, a matched row replaced when ``update`` (and, with ``newer_by``, when
    ``source.newer_by >= target.newer_by`` holds: not when either is null)."""
    columns = frame.columns
    target = frame.select(*(F.col(c).alias(f"_t_{c}") for c in columns), F.lit(True).alias("_t"))
    source = write.rows.select(
        *(F.col(c).alias(f"_s_{c}") for c in columns), F.lit(True).alias("_s")
    )
    condition = None
    for key in write.keys:
        match = target[f"_t_{key}"].eqNullSafe(source[f"_s_{key}"])
        condition = match if condition is None else condition & match
    matched = F.col("_t").isNotNull() & F.col("_s").isNotNull()
    if not write.update:
        replaces = F.lit(False)
    elif write.newer_by is None:
        replaces = F.lit(True)
    else:
        newer = F.col(f"_s_{write.newer_by}") >= F.col(f"_t_{write.newer_by}")
        replaces = F.coalesce(newer, F.lit(False))
    take_source = F.col("_t").isNull() | (matched & replaces)
    return target.join(source, condition, "full_outer").select(
        *(
            F.when(take_source, F.col(f"_s_{c}")).otherwise(F.col(f"_t_{c}")).alias(c)
            for c in columns
        )
    )


def _publish(spark: SparkSession, settings: Settings, table: Table, write: _Write) -> int:
    if write.kind == "append":
        return lakehouse.append(spark, settings, table, write.rows)
    if write.kind == "overwrite":
        return lakehouse.overwrite(spark, settings, table, write.rows)
    if write.kind == "replace":
        return lakehouse.replace_where(spark, settings, table, write.rows, write.predicate)
    newer = f"source.`{write.newer_by}` >= target.`{write.newer_by}`" if write.newer_by else None
    return lakehouse.merge(
        spark,
        settings,
        table,
        write.rows,
        keys=write.keys,
        update_when=newer,
        update=write.update,
        target_dates=write.target_dates,
    )
