"""Two writers on one Delta table (the PostgreSQL profile runs jobs side by side, and OPTIMIZE
may run beside a nightly): a commit that lost the race runs again on the newer version, or
fails naming the table; it never overwrites the other writer's commit unseen.

Real concurrent commits in one Spark session: writer A's rows come from a UDF that takes a
few seconds, so writer B, started after A read the table, commits first.
"""

from __future__ import annotations

import threading
import time

from delta.tables import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from omni import lakehouse
from omni.tables import Column, Table
from tests.conftest import settings_under

SLICE = Table(
    name="gold.concurrency_probe",
    description="rows of two writers",
    columns=(
        Column("day", "date", "the slice"),
        Column("writer", "string", "who wrote the row"),
        Column("n", "int", "a value"),
    ),
    keys=("day", "n"),
    partition_by=("day",),
)
PREDICATE = "day = DATE'2026-03-01'"


def _rows(spark, writer: str, slow: float = 0.0):
    def wait(n):
        time.sleep(slow)
        return n

    later = F.udf(wait, T.IntegerType())
    return (
        spark.range(5)
        .select(
            F.lit("2026-03-01").cast("date").alias("day"),
            F.lit(writer).alias("writer"),
            later(F.col("id").cast("int")).alias("n"),
        )
        .coalesce(1)
    )


def _race(spark, settings):
    """A (slow) and B (fast) replace the same slice; B starts once A has begun."""
    outcome: dict[str, object] = {}

    def slow_writer():
        try:
            outcome["A"] = lakehouse.replace_where(
                spark, settings, SLICE, _rows(spark, "A", slow=1.0), PREDICATE
            )
        except Exception as error:  # the test reads it
            outcome["A"] = error

    lakehouse.replace_where(spark, settings, SLICE, _rows(spark, "seed"), PREDICATE)
    thread = threading.Thread(target=slow_writer)
    thread.start()
    time.sleep(2.0)  # A has read the table and is computing its rows
    outcome["B"] = lakehouse.replace_where(spark, settings, SLICE, _rows(spark, "B"), PREDICATE)
    thread.join(timeout=120)
    path = lakehouse.table_path(settings, SLICE)
    history = DeltaTable.forPath(spark, path).history().orderBy("version").collect()
    final = sorted(
        tuple(r) for r in spark.read.format("delta").load(path).select("writer", "n").collect()
    )
    return outcome, [h["operation"] for h in history], final


def test_a_write_that_lost_the_race_runs_again_after_the_winner(spark, settings, tmp_path):
    lake = settings_under(settings, tmp_path)
    outcome, operations, final = _race(spark, lake)
    assert outcome == {"B": 5, "A": 5}
    # create, seed, B's commit, then A's: A ran again on B's version and replaced the slice.
    assert operations == ["CREATE TABLE", "WRITE", "WRITE", "WRITE"]
    assert final == [("A", n) for n in range(5)]


def test_a_write_that_keeps_losing_fails_naming_the_table(spark, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(lakehouse, "CONFLICT_RETRIES", 0)  # lost once is lost for good
    lake = settings_under(settings, tmp_path)
    outcome, operations, final = _race(spark, lake)
    error = outcome["A"]
    assert isinstance(error, lakehouse.ConcurrentWriteError), error
    assert str(error).startswith("gold.concurrency_probe: another job committed conflicting")
    assert "nothing of this write was committed" in str(error)
    # B's commit stands, whole; nothing of A's is in the table.
    assert operations == ["CREATE TABLE", "WRITE", "WRITE"]
    assert final == [("B", n) for n in range(5)]
