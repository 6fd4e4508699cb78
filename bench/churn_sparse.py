"""Churn on sparse real purchases: the churn model against its BG/NBD baseline on CDNOW.

CDNOW's master file (Fader, Hardie and Lee; the ``lifetimes`` wheel ships it): 23,570
customers who first bought in the first quarter of 1997, 78 weeks of their purchases, most
buying once or twice. Read as a store-only shop (no online events, no sign-up before the first
purchase), each setting below is run with the pipeline's own code: ``churn_training_set``
(point-in-time snapshots, a time-based holdout), then ``train_churn`` (the model and the BG/NBD
baseline on the same holdout customers). It prints, per setting, ROC-AUC, Brier score and
calibration error of both, and the model's ROC-AUC gain over the baseline:

- ``9 months, 90 days``: nine months of history and a 90-day horizon (the shape of a real
  store-only retailer's receipts: short history, long horizon);
- ``18 months, 90 days``: the whole file.

    python -m bench.churn_sparse
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from models.churn import train_churn
from models.features import LABEL, TRAIN, churn_training_set, collected
from omni.config import load_settings
from omni.spark import get_spark

CDNOW = "lifetimes/datasets/CDNOW_master.txt"
STORE = "S01"


@dataclass(frozen=True)
class Setting:
    name: str
    as_of: date
    horizon_days: int
    snapshots: int = 6
    step_days: int = 7


SETTINGS = (
    Setting("9 months, 90 days", date(1997, 9, 30), 90),
    Setting("18 months, 90 days", date(1998, 6, 30), 90),
)


def cdnow_lines() -> pd.DataFrame:
    """CDNOW's purchase lines: customer, date, number of CDs and dollar value."""
    path = importlib.metadata.distribution("lifetimes").locate_file(CDNOW)
    lines = pd.read_csv(
        path,
        sep=r"\s+",
        header=0,
        names=["customer", "date", "quantity", "value"],
        dtype={"customer": str, "date": str},
    )
    lines["date"] = pd.to_datetime(lines["date"], format="%Y%m%d").dt.date
    return lines


def cdnow_inputs(spark: SparkSession, lines: pd.DataFrame) -> dict[str, DataFrame]:
    """Population, transactions and activity as ``omni.history.load_inputs`` returns them: one
    store, one category, no online events; each customer known from their first purchase."""
    raw = spark.createDataFrame(lines).withColumn("line", F.monotonically_increasing_id())
    key = F.concat(F.lit("CDNOW"), F.col("customer"))
    value = F.col("value").cast("decimal(14,2)")
    transactions = raw.select(
        key.alias("customer_key"),
        F.lit("store").alias("channel"),
        F.lit(STORE).alias("store_id"),
        F.concat_ws("-", key, F.col("line").cast("string")).alias("transaction_id"),
        "date",
        F.lit("CD").alias("sku"),
        F.col("quantity").cast("int").alias("quantity"),
        value.alias("net_amount"),
        value.alias("gross_amount"),
        F.lit(0).cast("decimal(12,2)").alias("discount_amount"),
        F.lit("music").alias("category"),
    ).cache()
    population = (
        transactions.groupBy("customer_key")
        .agg(F.min("date").alias("signup_date"))
        .select(
            "customer_key",
            F.col("customer_key").alias("customer_id"),
            F.lit(False).alias("email_opt_in"),
            F.lit(False).alias("push_opt_in"),
            "signup_date",
        )
        .cache()
    )
    activity = spark.createDataFrame(
        [],
        "customer_key string, event_date date, event_ts timestamp, event_type string, "
        "session_id string, search_query string, sku string",
    )
    return {"population": population, "transactions": transactions, "activity": activity}


def run_setting(inputs: dict[str, DataFrame], setting: Setting) -> dict:
    training = collected(
        churn_training_set(
            inputs,
            setting.as_of,
            setting.horizon_days,
            snapshots=setting.snapshots,
            step_days=setting.step_days,
        )
    )
    result = train_churn(training, setting.horizon_days)
    train = training[training.split == TRAIN]
    return {
        "setting": setting.name,
        "as_of": str(setting.as_of),
        "train_rows": int(len(train)),
        "train_churn_rate": round(float(train[LABEL].mean()), 4),
        "holdout_rows": result.holdout_rows,
        "holdout_churn_rate": round(result.churn_rate, 4),
        "model": {k: round(v, 4) for k, v in result.metrics.items()},
        "baseline": {k: round(v, 4) for k, v in result.baseline_metrics.items()},
        "roc_auc_gain": round(result.metrics["roc_auc"] - result.baseline_metrics["roc_auc"], 4),
        "importance": result.importance.head(5).round(4).to_dict(),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    lines = cdnow_lines()
    with tempfile.TemporaryDirectory(prefix="bench-churn-sparse-") as folder:
        settings = load_settings().with_local_lakehouse(Path(folder) / "lakehouse")
        spark = get_spark(settings, app_name="bench.churn_sparse")
        spark.sparkContext.setLogLevel("ERROR")
        try:
            inputs = cdnow_inputs(spark, lines)
            reports = [run_setting(inputs, setting) for setting in SETTINGS]
        finally:
            spark.stop()
    print(json.dumps(reports, indent=2))
    return reports


if __name__ == "__main__":
    main()
