"""Score every customer as of ``--date`` with the champion models, into gold.customer_scores.

Scoring runs in Spark through ``mlflow.pyfunc.spark_udf``, so it scales with the cluster.
Customers who never bought are not scored by the models (neither learned from them): they
get the segment ``no purchase yet``, no churn probability and the band ``no_purchase_yet``.
A rerun replaces all of the date's scores, rows of keys that no longer exist included. The
scores are audited by their suite before they are published (``omni.publish``): a failed
blocking expectation publishes nothing and holds the batch; the DAG's gate step says so.
"""

from __future__ import annotations

import json
from datetime import date

import mlflow
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from models import registry
from models.features import CHURN_FEATURES, SEGMENT_FEATURES
from models.segmentation import NO_PURCHASE_SEGMENT, NO_PURCHASE_SEGMENT_ID
from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.publish import Staging

NO_PURCHASE_BAND = "no_purchase_yet"


def risk_band(probability: Column, medium: float, high: float) -> Column:
    if not 0 < medium < high < 1:
        raise ValueError(f"churn band thresholds {medium}, {high}: expected 0 < medium < high < 1")
    return (
        F.when(probability >= high, "high").when(probability >= medium, "medium").otherwise("low")
    )


def _champion(client, model: str):
    version = registry.champion_version(client, model)
    if version is None:
        raise LookupError(
            f"registered model {model!r} has no '{registry.CHAMPION}' alias: "
            "train the models first (models/train.py)"
        )
    return version


def _int_map(values: dict[str, object]) -> Column:
    return F.create_map(*(item for k, v in values.items() for item in (F.lit(int(k)), F.lit(v))))


def score_customers(spark: SparkSession, settings: Settings, as_of: date, run_id: str) -> dict:
    client = registry.configure_tracking(settings)
    segmentation = _champion(client, registry.SEGMENTATION_MODEL)
    churn = _champion(client, registry.CHURN_MODEL)
    names = json.loads(segmentation.tags.get("segment_names", "{}"))
    # The model predicts k-means labels; the version's tag maps them to stable segment ids.
    ids = json.loads(segmentation.tags.get("segment_ids", "{}"))
    segment_udf = mlflow.pyfunc.spark_udf(
        spark,
        f"models:/{registry.SEGMENTATION_MODEL}/{segmentation.version}",
        result_type="int",
        env_manager="local",
    )
    churn_udf = mlflow.pyfunc.spark_udf(
        spark,
        f"models:/{registry.CHURN_MODEL}/{churn.version}",
        result_type="array<double>",
        env_manager="local",
    )
    features = lakehouse.read_table(spark, settings, tables.GOLD_FEATURES).where(
        F.col("as_of_date") == F.lit(str(as_of)).cast("date")
    )
    name_map = _int_map(names)
    id_map = _int_map(ids)
    label = F.col("_segment_label")  # the model runs once per row, then the map is applied
    never_bought = features.where(~F.col("has_purchase")).select(
        "*",
        F.lit(NO_PURCHASE_SEGMENT_ID).alias("segment_id"),
        F.lit(None).cast("double").alias("churn_probability"),
        F.lit(NO_PURCHASE_SEGMENT).alias("segment_name"),
        F.lit(NO_PURCHASE_BAND).alias("churn_risk_band"),
    )
    scored = (
        features.where(F.col("has_purchase"))
        .withColumn("_segment_label", segment_udf(*SEGMENT_FEATURES))
        .withColumn("segment_id", F.coalesce(id_map[label], label) if ids else label)
        .drop("_segment_label")
        .withColumn("churn_probability", churn_udf(*CHURN_FEATURES).getItem(1))
        .withColumn(
            "segment_name",
            F.coalesce(
                name_map[F.col("segment_id")], F.concat(F.lit("segment "), F.col("segment_id"))
            ),
        )
        .withColumn(
            "churn_risk_band",
            risk_band(
                F.col("churn_probability"),
                settings.churn_medium_threshold,
                settings.churn_high_threshold,
            ),
        )
        .unionByName(never_bought)
        .withColumn(
            "segmentation_model", F.lit(f"{registry.SEGMENTATION_MODEL}/{segmentation.version}")
        )
        .withColumn("churn_model", F.lit(f"{registry.CHURN_MODEL}/{churn.version}"))
        .withColumn("scored_at", F.current_timestamp())
    )
    # Write, audit, publish: the scores become visible only when their suite passes.
    staging = Staging(spark, settings, run_id, as_of)
    batch = staging.replace_where(
        tables.GOLD_SCORES, scored, lakehouse.sql_in("as_of_date", [as_of])
    )
    bands = {
        row["churn_risk_band"]: row["n"]
        for row in batch.groupBy("churn_risk_band").agg(F.count("*").alias("n")).collect()
    }
    verdict = staging.audit_and_publish(["gold"], [tables.GOLD_SCORES.name])
    return {
        "scored": verdict.written.get(tables.GOLD_SCORES.name, 0) if verdict.published else 0,
        "bands": bands,
        "segmentation_version": segmentation.version,
        "churn_version": churn.version,
        "audit": verdict.summary(),
    }


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return score_customers(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("score_customers", _body, job_parser(__doc__.splitlines()[0]), argv, session)


if __name__ == "__main__":
    main()
