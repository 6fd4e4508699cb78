"""Score every customer as of ``--date`` with the champion models, into gold.customer_scores.

Scoring runs in Spark through ``mlflow.pyfunc.spark_udf``, so it scales with the cluster.
Customers who never bought are not scored by the models (neither learned from them): they
get the segment ``no purchase yet``, no churn probability and the band ``no_purchase_yet``.
Buyers' purchase history up to the date (``x``, ``t_x``, ``T``) is an input of the churn
model (the champion is called with the inputs its signature names). Buyers also get their
expected purchases and value over 365 days from the value model the churn champion carries
(``models.value``), computed from the same history, and their value at risk (expected value
times churn probability).
A rerun replaces all of the date's scores, rows of keys that no longer exist included. The
scores are audited by their suite before they are published (``omni.publish``): a failed
blocking expectation publishes nothing and holds the batch; the DAG's gate step says so.
"""

from __future__ import annotations

import json
from datetime import date

import mlflow
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from models import registry, value
from models.baseline import RFM_COLUMNS
from models.features import SEGMENT_FEATURES, purchase_history
from models.segmentation import (
    NO_PURCHASE_DESCRIPTION,
    NO_PURCHASE_SEGMENT,
    NO_PURCHASE_SEGMENT_ID,
)
from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.history import read_transactions
from omni.publish import Staging

# The value columns the value model computes; value at risk is theirs times churn probability.
PREDICTED_VALUE = value.VALUE_COLUMNS[:2]

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


def customer_values(history: DataFrame, model: value.ValueModel) -> DataFrame:
    """(customer_key, expected purchases, expected value) of every buyer in ``history`` (their
    ``purchase_history``)."""
    text = model.to_json()

    def predict(batches):
        fitted = value.ValueModel.from_json(text)
        for batch in batches:
            values = value.customer_value(fitted, batch)
            yield values[list(PREDICTED_VALUE)].assign(customer_key=batch["customer_key"])

    schema = ", ".join(["customer_key string", *(f"{name} double" for name in PREDICTED_VALUE)])
    return history.mapInPandas(predict, schema)


def score_customers(spark: SparkSession, settings: Settings, as_of: date, run_id: str) -> dict:
    client = registry.configure_tracking(settings)
    segmentation = _champion(client, registry.SEGMENTATION_MODEL)
    churn = _champion(client, registry.CHURN_MODEL)
    value_model, value_status = value.from_tag(churn.tags.get(value.VALUE_MODEL_TAG))
    names = json.loads(segmentation.tags.get("segment_names", "{}"))
    # Versions trained before descriptions carry none: their rows' description is null.
    descriptions = json.loads(segmentation.tags.get("segment_descriptions", "{}"))
    # The model predicts k-means labels; the version's tag maps them to stable segment ids.
    ids = json.loads(segmentation.tags.get("segment_ids", "{}"))
    segment_udf = mlflow.pyfunc.spark_udf(
        spark,
        f"models:/{registry.SEGMENTATION_MODEL}/{segmentation.version}",
        result_type="int",
        env_manager="local",
    )
    # The champion's own inputs: a version from before a change of inputs is still served.
    churn_inputs = registry.input_names(registry.CHURN_MODEL, churn.version)
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
    description_map = _int_map(descriptions)
    id_map = _int_map(ids)
    label = F.col("_segment_label")  # the model runs once per row, then the map is applied
    never_bought = features.where(~F.col("has_purchase")).select(
        "*",
        F.lit(NO_PURCHASE_SEGMENT_ID).alias("segment_id"),
        F.lit(None).cast("double").alias("churn_probability"),
        F.lit(NO_PURCHASE_SEGMENT).alias("segment_name"),
        F.lit(NO_PURCHASE_DESCRIPTION).alias("segment_description"),
        F.lit(NO_PURCHASE_BAND).alias("churn_risk_band"),
        *(F.lit(None).cast("double").alias(name) for name in value.VALUE_COLUMNS),
    )
    buyers = features.where(F.col("has_purchase"))
    # Buyers' purchase summaries up to the date, where the churn model or the value needs them.
    if value_model is not None or set(RFM_COLUMNS) & set(churn_inputs):
        history = purchase_history(read_transactions(spark, settings), as_of)
        buyers = buyers.join(history.select("customer_key", *RFM_COLUMNS), "customer_key", "left")
    if value_model is None:
        buyers = buyers.select("*", *(F.lit(None).cast("double").alias(n) for n in PREDICTED_VALUE))
    else:
        buyers = buyers.join(customer_values(history, value_model), "customer_key", "left")
    scored = (
        buyers.withColumn("_segment_label", segment_udf(*SEGMENT_FEATURES))
        .withColumn("segment_id", F.coalesce(id_map[label], label) if ids else label)
        .drop("_segment_label")
        .withColumn("churn_probability", churn_udf(*churn_inputs).getItem(1))
        .drop(*RFM_COLUMNS)
        .withColumn(
            "segment_name",
            F.coalesce(
                name_map[F.col("segment_id")], F.concat(F.lit("segment "), F.col("segment_id"))
            ),
        )
        .withColumn(
            "segment_description",
            description_map[F.col("segment_id")] if descriptions else F.lit(None).cast("string"),
        )
        .withColumn(
            "churn_risk_band",
            risk_band(
                F.col("churn_probability"),
                settings.churn_medium_threshold,
                settings.churn_high_threshold,
            ),
        )
        .withColumn("value_at_risk", F.col("expected_value_365d") * F.col("churn_probability"))
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
    per_band = (
        batch.groupBy("churn_risk_band")
        .agg(
            F.count("*").alias("n"),
            F.count("expected_value_365d").alias("valued"),
            F.sum("value_at_risk").alias("value_at_risk"),
        )
        .collect()
    )
    bands = {row["churn_risk_band"]: row["n"] for row in per_band}
    verdict = staging.audit_and_publish(["gold"], [tables.GOLD_SCORES.name])
    return {
        "scored": verdict.written.get(tables.GOLD_SCORES.name, 0) if verdict.published else 0,
        "bands": bands,
        "value": {
            "model": value_status,
            "valued": {row["churn_risk_band"]: row["valued"] for row in per_band},
            "value_at_risk": {
                row["churn_risk_band"]: round(row["value_at_risk"] or 0.0, 2) for row in per_band
            },
        },
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
