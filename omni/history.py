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
from datetime import date

from pyspark.sql import DataFrame, SparkSession

from omni import lakehouse, tables
from omni.config import Settings
from omni.transforms import gold
from omni.transforms import identity as links


def _reader(spark: SparkSession, settings: Settings, versions: dict | None):
    """Read a table at its version in ``versions`` (at its latest when absent)."""
    return lambda t: lakehouse.read_table(spark, settings, t, (versions or {}).get(t.name))


def read_transactions(
    spark: SparkSession,
    settings: Settings,
    identity: DataFrame | None = None,
    versions: dict | None = None,
    with_node: bool = False,
) -> DataFrame:
    """Every purchase and return line of both channels, resolved through ``identity`` (read
    from ``silver.customer_identity`` when not given); with ``with_node``, each with the
    identity node its key came from."""
    read = _reader(spark, settings, versions)
    return gold.customer_transactions(
        read(tables.SILVER_ORDER_LINES),
        read(tables.SILVER_POS),
        read(tables.SILVER_IDENTITY) if identity is None else identity,
        read(tables.SILVER_PRODUCTS),
        with_node,
    )


def load_inputs(spark: SparkSession, settings: Settings, versions: dict | None = None) -> dict:
    """Silver inputs (``tables.HISTORY_INPUTS``), resolved to customer keys: identity,
    population, transactions, activity (cached; the last two with the node each key came
    from, so ``models.features.known_on`` can key them as on a cut-off), customers and events
    (read lazily)."""
    read = _reader(spark, settings, versions)
    identity = lakehouse.materialize(read(tables.SILVER_IDENTITY))
    customers = read(tables.SILVER_CUSTOMERS)
    events = read(tables.SILVER_EVENTS)
    return {
        "identity": identity,
        "customers": customers,
        "population": lakehouse.materialize(gold.customer_population(identity, customers)),
        "transactions": lakehouse.materialize(
            read_transactions(spark, settings, identity, versions, with_node=True)
        ),
        "activity": lakehouse.materialize(gold.customer_activity(events, identity, True)),
        "events": events,
    }


def keys_as_of(
    spark: SparkSession,
    settings: Settings,
    identity: DataFrame,
    cutoffs: list[date],
    today: date,
    versions: dict | None = None,
) -> DataFrame:
    """``identity.keys_as_of``: the identifiers whose customer on a cut-off was another than
    today's, from the links ``silver.crm_links`` and ``silver.device_logins`` had seen by then
    (tables read at their ``versions``)."""
    read = _reader(spark, settings, versions)
    customers, logins = read(tables.SILVER_CUSTOMERS), read(tables.SILVER_DEVICE_LOGINS)
    _, edges = links.identity_links(
        customers,
        logins.select("anonymous_id", "customer_id"),
        read(tables.SILVER_POS).select("loyalty_card_id"),
        settings.max_customers_per_device,
    )
    dated = links.link_dates(edges, customers, read(tables.SILVER_CRM_LINKS), logins, today)
    return links.keys_as_of(identity, dated, cutoffs)


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
