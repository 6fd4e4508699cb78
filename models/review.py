"""What the notebooks show, as functions: segments and profiles, runs, champion vs challenger.

The notebooks in ``notebooks/`` only call these, so the logic is tested like the rest and a
notebook cannot drift from the pipeline.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from models import monitor, registry
from omni import lakehouse, tables
from omni.config import Settings

MODELS = (registry.SEGMENTATION_MODEL, registry.CHURN_MODEL)
# The number each model is judged by, for the comparison tables.
KEY_METRIC = {registry.SEGMENTATION_MODEL: "silhouette", registry.CHURN_MODEL: "roc_auc"}


def _read(spark: SparkSession, settings: Settings, table) -> DataFrame:
    return lakehouse.read_table(spark, settings, table)


def latest_score_date(spark: SparkSession, settings: Settings) -> date:
    latest = _read(spark, settings, tables.GOLD_SCORES).agg(F.max("as_of_date")).first()[0]
    if latest is None:
        raise LookupError("gold.customer_scores is empty: run the nightly DAG first (make run)")
    return latest


def segment_summary(spark: SparkSession, settings: Settings, as_of: date | None = None):
    """One row per segment on the date: size, share, churn risk and the profile's means."""
    as_of = as_of or latest_score_date(spark, settings)
    scores = _read(spark, settings, tables.GOLD_SCORES).where(
        F.col("as_of_date") == F.lit(as_of.isoformat()).cast("date")
    )
    profile = _read(spark, settings, tables.GOLD_PROFILE).drop("as_of_date", "customer_id")
    joined = scores.join(profile, "customer_key", "left")
    summary = (
        joined.groupBy("segment_id", "segment_name")
        .agg(
            F.count("*").alias("customers"),
            F.avg("churn_probability").alias("mean_churn_probability"),
            F.avg(F.when(F.col("churn_risk_band") == "high", 1).otherwise(0)).alias(
                "high_risk_share"
            ),
            F.avg("recency_days").alias("mean_recency_days"),
            F.avg("frequency_365d").alias("mean_orders_365d"),
            F.avg("monetary_365d").alias("mean_spend_365d"),
            F.avg("online_share_365d").alias("mean_online_share"),
        )
        .orderBy("segment_id")
        .toPandas()
    )
    summary.insert(3, "share", summary["customers"] / summary["customers"].sum())
    return summary


def customer_sample(
    spark: SparkSession, settings: Settings, segment_name: str | None = None, n: int = 10
) -> pd.DataFrame:
    """A few customers' profiles with their latest scores (of one segment, if named)."""
    as_of = latest_score_date(spark, settings)
    scores = _read(spark, settings, tables.GOLD_SCORES).where(
        F.col("as_of_date") == F.lit(as_of.isoformat()).cast("date")
    )
    if segment_name is not None:
        scores = scores.where(F.col("segment_name") == segment_name)
    profile = _read(spark, settings, tables.GOLD_PROFILE).drop("as_of_date", "customer_id")
    return (
        scores.select("customer_key", "segment_name", "churn_probability", "churn_risk_band")
        .join(profile, "customer_key")
        .orderBy(F.col("churn_probability").desc(), "customer_key")
        .limit(n)
        .toPandas()
    )


def client(settings: Settings) -> MlflowClient:
    return registry.configure_tracking(settings)


def runs(settings: Settings, model: str, limit: int = 10) -> pd.DataFrame:
    """The model's latest training runs, newest first: date, metrics and decision."""
    experiment = client(settings).get_experiment_by_name(model)
    if experiment is None:
        raise LookupError(f"no MLflow experiment {model!r}: train the models first")
    found = client(settings).search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
    )
    return pd.DataFrame(
        [
            {
                "run_id": run.info.run_id,
                "started": pd.Timestamp(run.info.start_time, unit="ms"),
                "as_of_date": run.data.tags.get("as_of_date"),
                **{k: round(v, 4) for k, v in sorted(run.data.metrics.items())},
                "decision": run.data.tags.get("promotion_decision"),
            }
            for run in found
        ]
    )


def champion_and_challenger(settings: Settings, model: str) -> pd.DataFrame:
    """The champion and the challenger side by side: version, run, metrics and decision."""
    mlflow_client = client(settings)
    rows = []
    for alias in (registry.CHAMPION, registry.CHALLENGER):
        try:
            version = mlflow_client.get_model_version_by_alias(model, alias)
        except Exception as error:  # no such alias yet
            raise LookupError(
                f"{model} has no {alias!r} version: train the models first"
            ) from error
        run = mlflow_client.get_run(version.run_id)
        rows.append(
            {
                "alias": alias,
                "version": int(version.version),
                "as_of_date": run.data.tags.get("as_of_date"),
                **{k: round(v, 4) for k, v in sorted(run.data.metrics.items())},
                "decision": version.tags.get("promotion_decision"),
            }
        )
    return pd.DataFrame(rows).set_index("alias").T


def plots(settings: Settings, model: str, alias: str = registry.CHAMPION) -> list[Path]:
    """The PNG plots of the run behind ``model@alias``, downloaded to a local folder."""
    mlflow_client = client(settings)
    version = mlflow_client.get_model_version_by_alias(model, alias)
    folder = mlflow_client.download_artifacts(version.run_id, "plots")
    return sorted(Path(folder).glob("*.png"))


def segment_names(settings: Settings) -> dict[int, str]:
    version = client(settings).get_model_version_by_alias(
        registry.SEGMENTATION_MODEL, registry.CHAMPION
    )
    return {int(k): v for k, v in json.loads(version.tags["segment_names"]).items()}


def drift(settings: Settings) -> pd.DataFrame:
    """The latest night's monitoring (its ``model_monitoring`` MLflow run): the PSI of every
    monitored column against the champion's training reference, drifted ones first."""
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(monitor.EXPERIMENT)
    found = (
        mlflow_client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
        )
        if experiment is not None
        else []
    )
    if not found:
        raise LookupError("no monitoring run yet: run the nightly DAG first (make run)")
    run = found[0]
    threshold = float(run.data.params["psi_threshold"])
    rows = []
    for key, value in run.data.metrics.items():
        if key.startswith("psi."):
            _, model, column = key.split(".", 2)
            rows.append({"model": model, "column": column, "psi": round(value, 4)})
    table = pd.DataFrame(rows).assign(
        drifted=lambda t: t["psi"] > threshold,
        threshold=threshold,
        as_of_date=run.data.tags.get("as_of_date"),
        retrain_recommended=run.data.tags.get("retrain_recommended"),
    )
    return table.sort_values(["drifted", "psi"], ascending=False).reset_index(drop=True)


# ---------------------------------------------------------------- campaigns (models/readout.py)
READOUT_SHOWN = (
    "segment_name",
    "customers_treatment",
    "customers_control",
    "conversion_rate_treatment",
    "conversion_rate_control",
    "uplift_abs",
    "uplift_abs_low",
    "uplift_abs_high",
    "uplift_rel",
    "p_value",
    "significant",
    "too_small_reason",
    "revenue_per_customer_treatment",
    "revenue_per_customer_control",
    "purchases_in_store_treatment",
    "purchases_in_store_control",
)


def campaign_readout(settings: Settings, as_of: date | None = None) -> pd.DataFrame:
    """``gold.campaign_readout`` of the date (the latest by default), read with delta-rs: no
    JVM, so the notebook does not hold the catalog while a nightly job runs."""
    from deltalake import DeltaTable

    location = tables.GOLD_READOUT.location(settings.lakehouse_location)
    frame = DeltaTable(location).to_pandas()
    if frame.empty:
        raise LookupError(f"{tables.GOLD_READOUT.name} is empty: run the model DAG (make run)")
    as_of = as_of or frame["as_of_date"].max()
    frame = frame[frame["as_of_date"] == as_of]
    return frame.sort_values(
        ["campaign_id", "segment_name"],
        key=lambda c: c.where(c != "all", "") if c.name == "segment_name" else c,
    ).reset_index(drop=True)


def campaign_table(readout: pd.DataFrame, campaign_id: str) -> pd.DataFrame:
    """One campaign's rows, ``all`` first, with what marketing reads first."""
    return readout[readout["campaign_id"] == campaign_id][list(READOUT_SHOWN)].set_index(
        "segment_name"
    )


def campaign_plots(settings: Settings, campaign_id: str, as_of: date) -> list[Path]:
    """The plots of the campaign's readout run of the night (experiment ``experiments``),
    downloaded: uplift per segment, conversion curves, engagement funnel."""
    from models import readout

    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(readout.EXPERIMENT)
    found = (
        mlflow_client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.campaign_id = '{campaign_id}' and tags.as_of_date = '{as_of}'",
            max_results=1,
        )
        if experiment is not None
        else []
    )
    if not found:
        raise LookupError(f"no readout run of {campaign_id} on {as_of} in MLflow")
    folder = mlflow_client.download_artifacts(found[0].info.run_id, readout.PLOTS)
    order = ("uplift_by_segment", "conversion_curves", "engagement_funnel")
    return sorted(Path(folder).glob("*.png"), key=lambda p: order.index(p.stem))
