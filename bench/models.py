"""Model benchmark: how training and scoring grow with the number of customers.

For each size, synthetic purchase histories are built in Spark (customers buy at their own
pace in one or both channels until they drop out), then timed with the pipeline's own code:

* ``training set``: ``churn_training_set`` (point-in-time features and labels of the holdout
  and training snapshots) collected to pandas;
* ``churn fit``: ``train_churn`` (calibrated gradient boosting, BG/NBD baseline, permutation
  importance);
* ``segmentation fit``: ``train_segmentation`` on the as-of features (k from 3 to 6);
* ``scoring``: both models through ``mlflow.pyfunc.spark_udf`` over the as-of features (as
  ``models/score.py`` does), written to a Delta table.

After an unreported warm-up at 500 customers, it prints the seconds per step and per size,
and the ratio of each step between the largest and the smallest size next to the ratio of
the sizes:

    python -m bench.models --customers 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import mlflow
from mlflow.models import infer_signature
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from models.baseline import RFM_COLUMNS
from models.churn import MODEL_INPUTS, TRUSTED_TYPES, train_churn
from models.features import SEGMENT_FEATURES, churn_training_set, purchase_history
from models.segmentation import train_segmentation
from models.train import pip_requirements
from omni.config import load_settings
from omni.spark import get_spark
from omni.transforms import gold

AS_OF = date(2026, 6, 30)
DAYS = 150
HORIZON = 30


def synthetic_inputs(spark: SparkSession, customers: int, seed: int = 7) -> dict:
    """Population, transactions and activity shaped as ``omni.history.load_inputs`` returns them."""
    start = AS_OF - timedelta(days=DAYS)
    people = (
        spark.range(customers)
        .select(
            F.format_string("K%07d", "id").alias("customer_key"),
            (3 + F.rand(seed) * 25).alias("gap"),
            (F.rand(seed + 1) * 40).cast("int").alias("first"),
            (20 + F.rand(seed + 2) * (DAYS + 60)).cast("int").alias("dies"),
            F.when(F.rand(seed + 3) < 0.35, "online")
            .when(F.rand(seed + 3) < 0.7, "store")
            .otherwise("both")
            .alias("mix"),
        )
        .cache()
    )
    days = people.select(
        "*", F.explode(F.sequence(F.lit(0), F.lit(DAYS // 3))).alias("n")
    ).withColumn("offset", (F.col("first") + F.col("n") * F.col("gap")).cast("int"))
    bought = days.where(F.col("offset") <= F.least(F.lit(DAYS), "dies")).withColumn(
        "date", F.date_add(F.lit(start), F.col("offset"))
    )
    online = (F.col("mix") == "online") | ((F.col("mix") == "both") & (F.rand(seed + 4) < 0.5))
    transactions = bought.select(
        "customer_key",
        F.when(online, "online").otherwise("store").alias("channel"),
        F.when(online, F.lit(None)).otherwise("S01").alias("store_id"),
        F.concat_ws("-", "customer_key", F.col("n").cast("string")).alias("transaction_id"),
        "date",
        F.format_string("SKU%03d", (F.rand(seed + 5) * 200).cast("int")).alias("sku"),
        F.lit(1).alias("quantity"),
        (F.rand(seed + 6) * 80 + 5).cast("decimal(14,2)").alias("net_amount"),
        (F.rand(seed + 6) * 80 + 8).cast("decimal(14,2)").alias("gross_amount"),
        F.lit(3).cast("decimal(12,2)").alias("discount_amount"),
        F.format_string("cat%d", (F.rand(seed + 7) * 8).cast("int")).alias("category"),
    ).cache()
    activity = (
        transactions.where(F.col("channel") == "online")
        .select(
            "customer_key",
            F.col("date").alias("event_date"),
            F.col("date").cast("timestamp").alias("event_ts"),
            F.lit("search").alias("event_type"),
            "transaction_id",
            F.lit("query").alias("search_query"),
            F.lit(None).cast("string").alias("sku"),
        )
        .withColumnRenamed("transaction_id", "session_id")
    )
    population = people.select(
        "customer_key",
        F.col("customer_key").alias("customer_id"),
        F.lit(True).alias("email_opt_in"),
        F.lit(False).alias("push_opt_in"),
        F.lit(start).cast("date").alias("signup_date"),
    ).cache()
    return {"population": population, "transactions": transactions, "activity": activity}


def _timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return round(time.perf_counter() - started, 1), result


def run_size(spark: SparkSession, customers: int, folder: Path) -> dict:
    inputs = synthetic_inputs(spark, customers)
    rows = inputs["transactions"].count()
    set_s, training = _timed(lambda: churn_training_set(inputs, AS_OF, HORIZON).toPandas())
    churn_s, churn = _timed(train_churn, training, HORIZON)
    # What scoring reads: the features, and the buyers' purchase summary (models/score.py).
    features = (
        gold.build_customer_features(
            inputs["population"], inputs["transactions"], inputs["activity"], AS_OF
        )
        .join(
            purchase_history(inputs["transactions"], AS_OF).select("customer_key", *RFM_COLUMNS),
            "customer_key",
            "left",
        )
        .cache()
    )
    frame = features.select(*SEGMENT_FEATURES).toPandas()
    segmentation_s, segmentation = _timed(train_segmentation, frame)
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    X = churn.holdout[list(MODEL_INPUTS)].head(200)
    with mlflow.start_run():
        churn_uri = mlflow.sklearn.log_model(
            churn.pipeline,
            name="churn",
            signature=infer_signature(X, churn.pipeline.predict_proba(X)),
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=list(TRUSTED_TYPES),
            pip_requirements=pip_requirements(),
        ).model_uri
        segment_uri = mlflow.sklearn.log_model(
            segmentation.pipeline,
            name="segments",
            signature=infer_signature(
                frame.head(200), segmentation.pipeline.predict(frame.head(200))
            ),
            pip_requirements=pip_requirements(),
        ).model_uri

    def score() -> int:
        churn_udf = mlflow.pyfunc.spark_udf(
            spark, churn_uri, result_type="array<double>", env_manager="local"
        )
        segment_udf = mlflow.pyfunc.spark_udf(
            spark, segment_uri, result_type="int", env_manager="local"
        )
        scored = features.select(
            "customer_key",
            churn_udf(*MODEL_INPUTS).getItem(1).alias("churn_probability"),
            segment_udf(*SEGMENT_FEATURES).alias("segment_id"),
        )
        path = str(folder / f"scores_{customers}")
        scored.write.format("delta").mode("overwrite").save(path)
        return spark.read.format("delta").load(path).count()

    score_s, scored = _timed(score)
    features.unpersist()
    for frame_ in inputs.values():
        frame_.unpersist()
    return {
        "customers": customers,
        "transaction_lines": rows,
        "training_rows": len(training),
        "scored": scored,
        "roc_auc": round(churn.metrics["roc_auc"], 4),
        "baseline_roc_auc": round(churn.baseline_metrics["roc_auc"], 4),
        "seconds": {
            "training set": set_s,
            "churn fit": churn_s,
            "segmentation fit": segmentation_s,
            "scoring": score_s,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args(argv)
    # The scoring UDFs run in Python workers: this interpreter, with the project's packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if any(n < 500 for n in args.customers):
        raise SystemExit(f"--customers {args.customers}: expected sizes of at least 500")
    with tempfile.TemporaryDirectory(prefix="bench-models-") as folder:
        settings = load_settings().with_local_lakehouse(Path(folder) / "lakehouse")
        spark = get_spark(settings, app_name="bench.models")
        spark.sparkContext.setLogLevel("ERROR")
        try:
            # A small warm-up first: JIT, Python workers and MLflow's first imports are paid
            # there, not by the smallest measured size.
            run_size(spark, 500, Path(folder))
            sizes = [run_size(spark, n, Path(folder)) for n in sorted(args.customers)]
        finally:
            spark.stop()
    small, large = sizes[0], sizes[-1]
    report = {
        "sizes": sizes,
        "size_ratio": round(large["customers"] / small["customers"], 1),
        "time_ratio": {
            step: round(large["seconds"][step] / max(small["seconds"][step], 0.1), 1)
            for step in small["seconds"]
        },
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
