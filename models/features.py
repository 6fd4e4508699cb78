"""Model inputs: which feature columns each model uses, and point-in-time training sets.

Training as of T with horizon H uses features as of T-H, computed from data up to T-H only,
and the label "no purchase in any channel in (T-H, T]". Scoring uses the features as of T.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame

from omni.tables import FEATURE_COLUMNS
from omni.transforms import gold

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


def training_cutoff(as_of: date, horizon_days: int) -> date:
    if horizon_days < 1:
        raise ValueError(f"horizon_days={horizon_days}: expected 1 or more")
    return as_of - timedelta(days=horizon_days)


def churn_training_set(
    inputs: dict[str, DataFrame], as_of: date, horizon_days: int, window_days: int = 365
) -> DataFrame:
    """Features as of T-H for customers who had bought by then, with their churn label."""
    cutoff = training_cutoff(as_of, horizon_days)
    features = gold.build_customer_features(
        inputs["population"], inputs["transactions"], inputs["activity"], cutoff, window_days
    ).where("has_purchase")
    labels = gold.churn_labels(inputs["transactions"], cutoff, horizon_days)
    return features.join(labels, "customer_key", "inner")
