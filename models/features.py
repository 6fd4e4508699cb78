"""Model inputs: which feature columns each model uses, and point-in-time churn training sets.

A churn example is a customer who had bought by a cut-off date ``c``: features as of ``c``,
computed from data up to ``c`` only, and the label "no purchase in any channel in
``(c, c + H]``". Training as of ``T`` with horizon ``H`` splits by time:

- the **holdout** is the latest labelled snapshot, ``c = T - H`` (labels up to ``T``);
- the **training** snapshots end where the holdout's labels start: ``c = T - 2H``, then
  ``step`` days earlier each, so no training label sees a day of the holdout's window.

Nothing after ``T`` is read. Scoring uses the features as of ``T``. Each example also carries
its BG/NBD purchase summary (``x``, ``t_x``, ``T`` in weeks), an input of the churn model and of
its baseline, and ``m_x``, the average net value of its repeat purchase days, for the
Gamma-Gamma spend model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from omni.tables import FEATURE_COLUMNS
from omni.transforms import gold
from omni.transforms.identity import node_of

CHURN_FEATURES: tuple[str, ...] = tuple(name for name, _ in FEATURE_COLUMNS)
SEGMENT_FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency_365d",
    "monetary_365d",
    "online_share_365d",
    "category_breadth_365d",
    "discount_share_365d",
    "searches_30d",
    "sessions_30d",
)
LABEL = "churned"
HOLDOUT, TRAIN = "holdout", "train"
HISTORY_COLUMNS = ("x", "t_x", "T", "m_x")
# The inputs' entry with the identifiers keyed otherwise on a cut-off (``known_on``).
KEYS_THEN = "keys_then"


def training_cutoff(as_of: date, horizon_days: int) -> date:
    if horizon_days < 1:
        raise ValueError(f"horizon_days={horizon_days}: expected 1 or more")
    return as_of - timedelta(days=horizon_days)


@dataclass(frozen=True)
class ChurnWindows:
    """Cut-off dates of the holdout snapshot and of the training snapshots (latest first)."""

    holdout: date
    training: tuple[date, ...]

    @property
    def cutoffs(self) -> list[date]:
        return [self.holdout, *self.training]

    @classmethod
    def for_date(
        cls, as_of: date, horizon_days: int, snapshots: int, step_days: int
    ) -> ChurnWindows:
        if snapshots < 1:
            raise ValueError(f"churn training snapshots={snapshots}: expected 1 or more")
        if step_days < 1:
            raise ValueError(f"churn snapshot step={step_days} days: expected 1 or more")
        holdout = training_cutoff(as_of, horizon_days)
        latest = training_cutoff(holdout, horizon_days)
        return cls(holdout, tuple(latest - timedelta(days=i * step_days) for i in range(snapshots)))


def purchase_history(transactions: DataFrame, cutoff: date) -> DataFrame:
    """BG/NBD and Gamma-Gamma summary per buyer up to ``cutoff``: repeat purchase days ``x``,
    ``t_x`` and ``T`` in weeks, and ``m_x``, the mean net value (after discounts) of the
    purchase lines of the repeat days, the first day left out as the papers do (null when
    ``x = 0``). A purchase day is a day with a line of positive quantity, in any channel."""
    end = F.lit(cutoff.isoformat()).cast("date")
    days = (
        transactions.where(
            F.col("customer_key").isNotNull() & (F.col("date") <= end) & (F.col("quantity") > 0)
        )
        .groupBy("customer_key", "date")
        .agg(F.sum("net_amount").cast("double").alias("value"))
        .groupBy("customer_key")
        .agg(
            F.count("*").alias("purchase_days"),
            F.min("date").alias("first"),
            F.max("date").alias("last"),
            (F.sum("value") - F.min_by("value", "date")).alias("repeat_value"),
        )
    )
    x = F.col("purchase_days") - 1
    return days.select(
        "customer_key",
        x.cast("double").alias("x"),
        (F.datediff("last", "first") / 7.0).alias("t_x"),
        (F.datediff(end, "first") / 7.0).alias("T"),
        F.when(x > 0, F.col("repeat_value") / x).alias("m_x"),
    )


def known_on(inputs: dict[str, DataFrame], cutoff: date) -> tuple[dict[str, DataFrame], DataFrame]:
    """``inputs`` with the customers as they were known on ``cutoff``, and the map from those
    keys to today's (``customer_key``, ``current_key``).

    ``inputs[KEYS_THEN]`` (``omni.history.keys_as_of``) lists the identifiers whose customer was
    another on the cut-off; their lines, events and identity rows take that customer's key, so a
    link found after the cut-off (a device logging in, a card added in CRM) moves nothing into
    the snapshot. Without it, ``inputs`` are taken as they are.
    """
    moved = inputs.get(KEYS_THEN)
    if moved is None:
        return inputs, inputs["population"].sparkSession.createDataFrame(
            [], "customer_key string, current_key string"
        )
    on = moved.where(F.col("snapshot_date") == F.lit(cutoff.isoformat()).cast("date"))
    then_key = F.col("customer_key").alias("_then")
    by_node = on.select(
        node_of(F.col("identifier_type"), F.col("identifier")).alias("key_node"), then_key
    )
    by_identifier = on.select("identifier_type", "identifier", then_key)

    def rekeyed(frame: DataFrame, lookup: DataFrame) -> DataFrame:
        keys = [c for c in lookup.columns if c != "_then"]
        return (
            frame.join(F.broadcast(lookup), keys, "left")
            .withColumn("customer_key", F.coalesce("_then", "customer_key"))
            .drop("_then")
        )

    identity = rekeyed(inputs["identity"], by_identifier)
    keyed = {
        **inputs,
        "identity": identity,
        "population": gold.customer_population(identity, inputs["customers"]),
        "transactions": rekeyed(inputs["transactions"], by_node),
        "activity": rekeyed(inputs["activity"], by_node),
    }
    return keyed, on.select("customer_key", "current_key").distinct()


def churn_snapshot(
    inputs: dict[str, DataFrame], cutoff: date, horizon_days: int, window_days: int = 365
) -> DataFrame:
    """Features as of ``cutoff`` for customers who had bought by then, labelled, with history.

    Features and history see the customers as known on the cut-off (``known_on``); the label
    (a purchase in the horizon, any channel) is of the same person as known today, so a card
    linked later still counts their purchases in the window. A customer whose only purchase
    lines up to the cut-off are returns has no purchase history and is left out (BG/NBD
    counts purchases).
    """
    then, current = known_on(inputs, cutoff)
    features = gold.build_customer_features(
        then["population"], then["transactions"], then["activity"], cutoff, window_days
    ).where("has_purchase")
    labels = gold.churn_labels(inputs["transactions"], cutoff, horizon_days).withColumnRenamed(
        "customer_key", "current_key"
    )
    history = purchase_history(then["transactions"], cutoff)
    return (
        features.join(F.broadcast(current), "customer_key", "left")
        .withColumn("current_key", F.coalesce("current_key", "customer_key"))
        .join(labels, "current_key", "inner")
        .join(history, "customer_key", "inner")
        .select(
            "customer_key",
            F.lit(cutoff.isoformat()).cast("date").alias("snapshot_date"),
            *CHURN_FEATURES,
            *HISTORY_COLUMNS,
            LABEL,
        )
    )


def collected(training: DataFrame) -> pd.DataFrame:
    """A churn training set in pandas, in a stable order (split, snapshot, customer), so a fit
    on it is the same each time."""
    return training.orderBy("split", "snapshot_date", "customer_key").toPandas()


def churn_training_set(
    inputs: dict[str, DataFrame],
    as_of: date,
    horizon_days: int,
    window_days: int = 365,
    snapshots: int = 6,
    step_days: int = 7,
) -> DataFrame:
    """Every snapshot of ``ChurnWindows.for_date``, with ``split`` = holdout or train."""
    windows = ChurnWindows.for_date(as_of, horizon_days, snapshots, step_days)
    parts = [
        churn_snapshot(inputs, cutoff, horizon_days, window_days).withColumn("split", F.lit(split))
        for split, cutoff in [(HOLDOUT, windows.holdout), *((TRAIN, c) for c in windows.training)]
    ]
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result
