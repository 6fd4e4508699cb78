"""The feed's recommendations evaluated offline at training time, logged to MLflow.

Each training holds out the last ``OMNI_RECOMMENDATION_HOLDOUT_DAYS`` days: the recommender
and its two popularity baselines recommend as of the cut-off before them, from the data
before it, and are scored on what the customers then bought, in any channel
(``models.recommend.holdout_evaluation``). Customers are as the identity links seen by the
cut-off made them (``models.features.known_on``), and segmented at the cut-off by the
segmentation champion on their features as of then. One run per training date and pipeline
run, in the experiment ``recommendations``: recall@k and hit rate of each method, overall
and per channel mix, the recommender's lift over popularity, the rows as a table and a plot;
the tag ``beats_popularity`` says whether the feed's recommender recalls more than popularity
(a warning in the log when it does not).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import date, timedelta

import mlflow
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from models import plots, registry
from models.features import SEGMENT_FEATURES, known_on
from models.recommend import ALL, METHODS, holdout_evaluation
from models.segmentation import NO_PURCHASE_SEGMENT_ID
from omni.config import Settings
from omni.transforms import gold

log = logging.getLogger("omni.recommend_evaluation")
EXPERIMENT = "recommendations"
RECOMMENDER, POPULARITY = "recommender", "popularity"


def holdout_cutoff(settings: Settings, as_of: date) -> date | None:
    """The cut-off the evaluation recommends from: ``OMNI_RECOMMENDATION_HOLDOUT_DAYS`` before
    ``as_of``; None when they are 0 (no evaluation)."""
    holdout = settings.recommendation_holdout_days
    return as_of - timedelta(days=holdout) if holdout else None


def segments_at(spark: SparkSession, client, inputs: dict, cutoff: date, window_days: int):
    """(segments, by): (customer_key, segment_id) of every customer known at
    ``cutoff``, segmented by the segmentation champion on their features as of then, and
    which version that was. Without a champion everyone is one segment (the segment
    baseline is then popularity itself)."""
    features = gold.build_customer_features(
        inputs["population"], inputs["transactions"], inputs["activity"], cutoff, window_days
    )
    version = registry.champion_version(client, registry.SEGMENTATION_MODEL)
    if version is None:
        return features.select("customer_key", F.lit(1).alias("segment_id")), "none"
    model = mlflow.sklearn.load_model(f"models:/{registry.SEGMENTATION_MODEL}/{version.version}")
    ids = {int(k): int(v) for k, v in json.loads(version.tags.get("segment_ids", "{}")).items()}
    buyers = features.where(F.col("has_purchase")).select("customer_key", *SEGMENT_FEATURES)
    buyers = buyers.toPandas()
    labels = model.predict(buyers[list(SEGMENT_FEATURES)].astype(float)) if len(buyers) else []
    segmented = spark.createDataFrame(
        pd.DataFrame(
            {
                "customer_key": buyers["customer_key"],
                "segment_id": [ids.get(int(label), int(label)) for label in labels],
            }
        ),
        "customer_key string, segment_id int",
    )
    never = features.where(~F.col("has_purchase")).select(
        "customer_key", F.lit(NO_PURCHASE_SEGMENT_ID).alias("segment_id")
    )
    return segmented.unionByName(never), f"{registry.SEGMENTATION_MODEL}/{version.version}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def summary(rows: list[dict], top: int) -> dict:
    """The figures of ``holdout_evaluation``'s rows: every method's recall@top and hit rate
    over all customers (``<method>_recall_at_<top>``, ``<method>_hit_rate``) and per channel
    mix (suffixed ``.<mix>``), the customers evaluated, and the recommender's recall over
    popularity's (``recall_lift_over_popularity``; absent when popularity recalls nothing)."""
    figures: dict[str, float] = {}
    for row in rows:
        suffix = "" if row["channel_mix"] == ALL else f".{_slug(row['channel_mix'])}"
        figures[f"{row['method']}_recall_at_{top}{suffix}"] = row["recall"]
        figures[f"{row['method']}_hit_rate{suffix}"] = row["hit_rate"]
        if row["method"] == RECOMMENDER:
            figures[f"customers{suffix}"] = row["customers"]
    popularity = figures.get(f"{POPULARITY}_recall_at_{top}")
    if popularity:
        figures["recall_lift_over_popularity"] = figures[f"{RECOMMENDER}_recall_at_{top}"] / (
            popularity
        )
    return figures


def _logged(as_of: date, run_id: str):
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    runs = mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.pipeline_run_id = '{run_id}' and tags.as_of_date = '{as_of}' "
        "and attributes.status = 'FINISHED'",
        output_format="list",
    )
    return runs[0] if runs else None


def evaluate_recommendations(
    spark: SparkSession,
    settings: Settings,
    client,
    history,
    as_of: date,
    run_id: str,
    tags: dict,
) -> dict:
    """Evaluate on ``history()`` (``omni.history.load_inputs``' frames, with the keys of
    ``omni.history.keys_as_of`` for the cut-off as ``KEYS_THEN``; without them, today's
    identity), log one MLflow run and return its figures; a retried training finds the run's
    evaluation logged already and returns it without reading the history."""
    holdout = settings.recommendation_holdout_days
    cutoff = holdout_cutoff(settings, as_of)
    if cutoff is None:
        return {"evaluated": False, "reason": "OMNI_RECOMMENDATION_HOLDOUT_DAYS=0"}
    top = settings.recommendation_count
    logged = _logged(as_of, run_id)
    if logged is not None:
        beats = logged.data.tags.get("beats_popularity") == "true"
        return {"evaluated": True, "reused": True, "beats_popularity": beats, **logged.data.metrics}
    # The customers as known on the cut-off: a link found later moves no purchase into the
    # history the methods recommend from (nor any out of what they are scored on).
    inputs, _ = known_on(history(), cutoff)
    segments, segmented_by = segments_at(
        spark, client, inputs, cutoff, settings.profile_window_days
    )
    rows = holdout_evaluation(
        inputs["transactions"],
        inputs["activity"],
        segments.withColumn("segment_name", F.concat(F.lit("segment "), "segment_id")),
        as_of,
        holdout,
        settings.profile_window_days,
        top,
    )
    if not rows:
        log.warning(
            "recommendations not evaluated: no customer bought a product new to them "
            "between %s and %s",
            cutoff,
            as_of,
        )
        return {"evaluated": False, "reason": f"no new purchases between {cutoff} and {as_of}"}
    figures = summary(rows, top)
    recall = figures[f"{RECOMMENDER}_recall_at_{top}"]
    popular = figures[f"{POPULARITY}_recall_at_{top}"]
    beats = recall > popular
    if not beats:
        log.warning(
            "the feed's recommender does not beat popularity on the %s days after %s: "
            "recall@%s %.3f against %.3f",
            holdout,
            cutoff,
            top,
            recall,
            popular,
        )
    registry.use_experiment(settings, EXPERIMENT)
    run_tags = {**tags, "beats_popularity": str(beats).lower()}
    with mlflow.start_run(run_name=f"recommendations {as_of}", tags=run_tags):
        mlflow.log_params(
            {
                "holdout_days": holdout,
                "cutoff": str(cutoff),
                "window_days": settings.profile_window_days,
                "top": top,
                "methods": ",".join(METHODS),
                "segmented_by": segmented_by,
                "relevant": "skus bought after the cut-off that the customer had not bought "
                "in the window before it, any channel",
            }
        )
        mlflow.log_metrics(figures)
        mlflow.log_table(pd.DataFrame(rows), "recommendation_evaluation.json")
        figure = plots.recommendation_recall(rows, top)
        mlflow.log_figure(figure, "plots/recommendation_recall.png")
        plots.plt.close(figure)
    lift = figures.get("recall_lift_over_popularity")
    log.info(
        "recommendations: recall@%s %.3f against popularity's %.3f (%s customers)",
        top,
        recall,
        popular,
        figures["customers"],
    )
    return {
        "evaluated": True,
        "beats_popularity": beats,
        "lift": None if lift is None else round(lift, 3),
        **figures,
    }
