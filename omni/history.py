"""The customer history the models read: silver's lines and events resolved to customer keys.

Shared by ``models/train.py`` (the churn training set) and ``models/personalize.py``
(recommendations), so each reads the same thing the same way. ``jobs/gold.py`` reads the
customers' days instead (``silver.customer_daily``), and gives the same profiles and features.
The frames are cached; ``customer_history`` releases them when the block ends. Given
``versions`` (table name to Delta version, as a training run records them), every table is read
at its recorded version, so the run learns from exactly what it logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession

from omni import lakehouse, tables
from omni.config import Settings
from omni.transforms import gold


def _reader(spark: SparkSession, settings: Settings, versions: dict | None):
    """Read a table at its version in ``versions`` (at its latest when absent)."""
    return lambda t: lakehouse.read_table(spark, settings, t, (versions or {}).get(t.name))


def read_transactions(
    spark: SparkSession,
    settings: Settings,
    identity: DataFrame | None = None,
    versions: dict | None = None,
) -> DataFrame:
    """Every purchase and return line of both channels, resolved through ``identity`` (read
    from ``silver.customer_identity`` when not given)."""
    read = _reader(spark, settings, versions)
    return gold.customer_transactions(
        read(tables.SILVER_ORDER_LINES),
        read(tables.SILVER_POS),
        read(tables.SILVER_IDENTITY) if identity is None else identity,
        read(tables.SILVER_PRODUCTS),
    )


def load_inputs(spark: SparkSession, settings: Settings, versions: dict | None = None) -> dict:
    """Silver inputs (``tables.HISTORY_INPUTS``), resolved to customer keys: identity,
    population, transactions, activity (cached) and events (read lazily)."""
    read = _reader(spark, settings, versions)
    identity = lakehouse.materialize(read(tables.SILVER_IDENTITY))
    events = read(tables.SILVER_EVENTS)
    return {
        "identity": identity,
        "population": lakehouse.materialize(
            gold.customer_population(identity, read(tables.SILVER_CUSTOMERS))
        ),
        "transactions": lakehouse.materialize(
            read_transactions(spark, settings, identity, versions)
        ),
        "activity": lakehouse.materialize(gold.customer_activity(events, identity)),
        "events": events,
    }


@contextmanager
def customer_history(
    spark: SparkSession, settings: Settings, versions: dict | None = None
) -> Iterator[dict]:
    """``load_inputs`` for the block, its cached frames released after it."""
    inputs = load_inputs(spark, settings, versions)
    try:
        yield inputs
    finally:
        for frame in inputs.values():
            frame.unpersist()
