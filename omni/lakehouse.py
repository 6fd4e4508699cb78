"""The shared read, write and merge helpers: every Delta write in the pipeline goes through here.

Tables are created from the registry (schema, comments, partitioning) and registered in the
Spark catalog as ``<layer>.<table>`` the first time they are written.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import date
from typing import TypeVar

from delta import exceptions as delta_errors
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from omni.config import Settings
from omni.costs import spent
from omni.tables import Table

log = logging.getLogger("omni.lakehouse")
T = TypeVar("T")
# How often a write that lost a race for a table's next commit is tried again (Delta's
# optimistic concurrency control: two jobs, or a job and OPTIMIZE, committing to one table).
CONFLICT_RETRIES = 3
# Delta's commit conflicts (siblings in delta-spark's Python API, not one class and its kinds).
CONFLICTS = (
    delta_errors.DeltaConcurrentModificationException,
    delta_errors.ConcurrentWriteException,
    delta_errors.MetadataChangedException,
    delta_errors.ProtocolChangedException,
    delta_errors.ConcurrentAppendException,
    delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentDeleteDeleteException,
    delta_errors.ConcurrentTransactionException,
)


class ConcurrentWriteError(RuntimeError):
    """Another writer kept committing conflicting changes to the table: nothing was written."""


def committed(table: Table, write: Callable[[], T]) -> T:
    """Run ``write`` (one Delta commit); when Delta refuses the commit because another one
    changed what it read, run it again on the new version, then give up with a clear error.

    Every write of the pipeline is one commit that replaces a keyed slice (``replace_where``,
    ``merge``), so running it again on the newer version gives what running it after the
    other writer would have: never a silent overwrite, and nothing half-written.
    """
    retries = CONFLICT_RETRIES  # read at each call: a test may set it
    for attempt in range(retries + 1):
        try:
            return write()
        except CONFLICTS as error:
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            if attempt == retries:
                raise ConcurrentWriteError(
                    f"{table.name}: another job committed conflicting changes to the table "
                    f"while this one wrote it ({retries + 1} tries); nothing of this write was "
                    f"committed. Last conflict: {reason}"
                ) from None
            log.warning(
                "%s: commit conflict, try %d of %d: %s",
                table.name,
                attempt + 1,
                retries + 1,
                reason,
            )
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def table_path(settings: Settings, table: Table) -> str:
    """The table's location: a local path, or a URI when the lakehouse is on object storage."""
    return table.location(settings.lakehouse_location)


def same_location(a: str, b: str) -> bool:
    """Whether two locations name one folder (``file:/x``, ``file:///x`` and ``/x`` do)."""
    return _local_form(a) == _local_form(b)


def _local_form(location: str) -> str:
    return re.sub(r"^file:/*", "/", location).rstrip("/")


# (session, table name) -> the path this session last registered the name at.
_ENSURED: dict[tuple[int, str], str] = {}
_DATABASES: set[tuple[int, str]] = set()

# Table features every Delta reader handles, delta-rs (Polars, pandas, DuckDB) included:
# protocol 1/2, no reader features. No deletion vectors: a DELETE (erasure) rewrites the files,
# so the rows leave them at once. No column mapping: columns are added, never renamed
# (serving-tables.md). Classic checkpoints, not v2.
TABLE_PROPERTIES = {
    "delta.enableDeletionVectors": "false",
    "delta.columnMapping.mode": "none",
    "delta.checkpointPolicy": "classic",
}


def ensure_table(spark: SparkSession, settings: Settings, table: Table) -> None:
    """Create the Delta table at its registry path and register it by name, if not yet there.

    A name registered at another location (another lakehouse), or at one that holds no Delta
    table any more, is re-pointed at this one. The check asks the metastore directly, without
    loading the Delta log, and runs once per session and table, again when the session last
    pointed the name at another lakehouse.
    """
    path = table_path(settings, table)
    marker = (id(spark), table.name)
    if _ENSURED.get(marker) == path:
        return
    with spent("catalog"):
        _ensure_table(spark, settings, table, path)
    _ENSURED[marker] = path


def forget_registration(spark: SparkSession, table: Table) -> None:
    """Have the next ``ensure_table`` ask the metastore again (the name was pointed elsewhere
    by other means than ``ensure_table``)."""
    _ENSURED.pop((id(spark), table.name), None)


def _ensure_table(spark: SparkSession, settings: Settings, table: Table, path: str) -> None:
    location = registered_location(spark, table)
    if location is not None:
        if same_location(location, path) and DeltaTable.isDeltaTable(spark, path):
            return
        spark.sql(f"DROP TABLE {table.name}")  # external: the files stay
    ensure_database(spark, table.layer)
    partitioned = (
        f" PARTITIONED BY ({', '.join(f'`{c}`' for c in table.partition_by)})"
        if table.partition_by
        else ""
    )
    description = table.description.replace("'", "\\'")
    # A table already at the path keeps its properties (Delta refuses ones that differ).
    properties = (
        ""
        if DeltaTable.isDeltaTable(spark, path)
        else " TBLPROPERTIES ("
        + ", ".join(f"'{key}' = '{value}'" for key, value in TABLE_PROPERTIES.items())
        + ")"
    )
    try:
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS `{table.layer}`.`{table.short_name}` ({table.ddl()}) "
            f"USING DELTA{partitioned} LOCATION '{path}' COMMENT '{description}'{properties}"
        )
    except Exception:
        # A shared catalog: another job may have registered it between the look and here.
        location = registered_location(spark, table)
        if location is None or not same_location(location, path):
            raise


def ensure_database(spark: SparkSession, layer: str) -> None:
    """Create the layer's database in the catalog unless it is there (asked once per session
    and layer, like ``ensure_table``)."""
    marker = (id(spark), layer)
    if marker in _DATABASES:
        return
    if not spark.catalog.databaseExists(layer):  # the Hive client logs an error if it does
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{layer}`")
    _DATABASES.add(marker)


def registered_location(spark: SparkSession, table: Table) -> str | None:
    """Where the metastore says ``table`` lives, or None."""
    catalog = spark._jsparkSession.sessionState().catalog().externalCatalog()
    if not (
        catalog.databaseExists(table.layer) and catalog.tableExists(table.layer, table.short_name)
    ):
        return None
    return str(catalog.getTable(table.layer, table.short_name).location())


def materialize(df: DataFrame) -> DataFrame:
    """Cache ``df`` and fill the cache now, for a frame that several steps read.

    The frame is computed once, here, and every later read comes from memory. A write to a
    table drops the cached data of every frame that reads that table (it is refilled, at full
    cost, on its next use), so such a frame must be read before that write, not after.
    Release it with ``unpersist``.
    """
    df = df.cache()
    df.count()
    return df


def read_table(
    spark: SparkSession, settings: Settings, table: Table, version: int | None = None
) -> DataFrame:
    """Read a table by registry entry, at its latest Delta ``version`` unless one is given; an
    empty frame of its schema when it was never written."""
    ensure_table(spark, settings, table)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(table_path(settings, table))


def table_version(spark: SparkSession, settings: Settings, table: Table) -> int:
    """The table's latest Delta version (0 for a table created and never written)."""
    ensure_table(spark, settings, table)
    return int(_last_commit(spark, table_path(settings, table))["version"])


def _last_commit(spark: SparkSession, path: str):
    """The Delta table's newest history row (version, userMetadata, operationMetrics...)."""
    return DeltaTable.forPath(spark, path).history(1).first()


def conform(df: DataFrame, table: Table) -> DataFrame:
    """Select the registry's columns in order, cast to the registry's types."""
    missing = [name for name in table.column_names if name not in df.columns]
    if missing:
        raise ValueError(f"{table.name}: the frame lacks columns {missing}; has {df.columns}")
    return df.select([F.col(c.name).cast(c.type).alias(c.name) for c in table.columns])


def _written_rows(spark: SparkSession, path: str, token: str) -> int:
    """Rows written by the commit tagged ``token``, from Delta's operation metrics.

    Counting from the commit, not from the frame, spares caching and evaluating the frame
    twice. A write of no rows commits nothing: then the last commit is not ours, and it is 0.
    """
    last = _last_commit(spark, path)
    if last is None or last["userMetadata"] != token:
        return 0
    return int((last["operationMetrics"] or {}).get("numOutputRows", 0))


def append(spark: SparkSession, settings: Settings, table: Table, df: DataFrame) -> int:
    """Append ``df`` and return the number of rows written."""
    return replace_where(spark, settings, table, df, None)


def replace_where(
    spark: SparkSession, settings: Settings, table: Table, df: DataFrame, predicate: str | None
) -> int:
    """Atomically replace the rows matching ``predicate`` with ``df`` (idempotent reruns).

    ``predicate`` None appends. Returns the number of rows written.
    """
    ensure_table(spark, settings, table)
    path = table_path(settings, table)
    token = f"omni-write-{uuid.uuid4()}"
    # Registry columns added since the table was created are added to it (older rows: null).
    writer = (
        conform(df, table)
        .write.format("delta")
        .option("userMetadata", token)
        .option("mergeSchema", "true")
    )
    if predicate is None:
        writer = writer.mode("append")
    else:
        writer = writer.mode("overwrite").option("replaceWhere", predicate)
    committed(table, lambda: writer.save(path))
    return _written_rows(spark, path, token)


def overwrite(spark: SparkSession, settings: Settings, table: Table, df: DataFrame) -> int:
    """Replace the whole table (for tables recomputed in full, like the identity map)."""
    return replace_where(spark, settings, table, df, "true")


def merge(
    spark: SparkSession,
    settings: Settings,
    table: Table,
    df: DataFrame,
    *,
    keys: Iterable[str] | None = None,
    update_when: str | None = None,
    update: bool = True,
    target_dates: tuple[str, Iterable[object]] | None = None,
) -> int:
    """MERGE ``df`` into the table on its keys: insert new rows, update matched ones.

    ``update_when`` limits updates (e.g. ``source.updated_at > target.updated_at``);
    ``update=False`` only inserts rows whose key is new. ``target_dates`` = (column, dates)
    limits the target to those partitions (the caller knows matches can only be there).
    Returns the rows in ``df``.
    """
    ensure_table(spark, settings, table)
    keys = tuple(keys or table.keys)
    if not keys:
        raise ValueError(f"{table.name}: merge needs key columns and the registry lists none")
    rows = conform(df, table).cache()
    count = rows.count()
    if count:
        condition = " AND ".join(f"target.`{k}` <=> source.`{k}`" for k in keys)
        if target_dates is not None:
            column, dates = target_dates
            condition += f" AND {sql_in(column, dates, alias='target')}"

        def execute() -> None:
            builder = (
                DeltaTable.forPath(spark, table_path(settings, table))
                .alias("target")
                .merge(rows.alias("source"), condition)
                .withSchemaEvolution()  # columns added to the registry since the table was made
            )
            if update:
                builder = builder.whenMatchedUpdateAll(condition=update_when)
            builder.whenNotMatchedInsertAll().execute()

        committed(table, execute)
    rows.unpersist()
    return count


def sql_in(column: str, values: Iterable[object], alias: str | None = None) -> str:
    """SQL ``column IN (...)`` of date or string literals; ``false`` when there are no values.

    ``alias`` qualifies the column (``target`` in a MERGE condition).
    """
    literals = [
        f"DATE'{value.isoformat()}'"
        if isinstance(value, date)
        else "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
        for value in values
    ]
    name = f"{alias}.`{column}`" if alias else f"`{column}`"
    return f"{name} IN ({', '.join(literals)})" if literals else "false"


def date_literal(column: str, values: Iterable[object]) -> Column:
    """``column IN (dates...)`` as a Column."""
    return F.col(column).isin([str(v) for v in values])


def purge(spark: SparkSession, settings: Settings, table: Table) -> None:
    """Rewrite files with deletion vectors, then delete every file no longer current: rows
    deleted (an erasure, a suppressed record) leave every version of the table.

    ``VACUUM ... LITE`` finds the files from the transaction log instead of listing the whole
    table, which is what makes an erasure take seconds per table rather than minutes.
    """
    path = table_path(settings, table)
    spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
    vacuum(spark, settings, table, retention_hours=0, lite=True)


def vacuum(
    spark: SparkSession, settings: Settings, table: Table, retention_hours: int, lite: bool = False
) -> None:
    """VACUUM with the given retention; below Delta's 7-day safety check only on purpose.

    ``lite`` takes the files to delete from the transaction log rather than a full listing.
    """
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    previous = spark.conf.get(check, "true")
    if retention_hours < 168:
        spark.conf.set(check, "false")
    try:
        mode = "LITE " if lite else ""
        spark.sql(
            f"VACUUM delta.`{table_path(settings, table)}` {mode}RETAIN {retention_hours} HOURS"
        )
    finally:
        spark.conf.set(check, previous)
