"""Train both models as of ``--date``, log them to MLflow, register them and promote winners.

Segmentation fits on the customers' features as of the date; churn fits on features as of
date minus the horizon, labelled by what happened in the horizon (see ``models.features``).
Each training registers a new version aliased ``challenger``; it becomes ``champion`` when
there is none yet or it beats the champion (``models.registry.promote_if_better``).
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from dataclasses import asdict
from datetime import date
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.gold import load_inputs
from models import registry
from models.churn import train_churn
from models.features import CHURN_FEATURES, LABEL, SEGMENT_FEATURES, churn_training_set
from models.segmentation import train_segmentation
from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import REPO_ROOT, Settings

log = logging.getLogger("omni.train")
TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _common_tags(as_of: date, run_id: str) -> dict[str, str]:
    return {"as_of_date": str(as_of), "pipeline_run_id": run_id, "git_commit": _git_commit()}


def train_segmentation_model(
    settings: Settings, client, features: pd.DataFrame, as_of: date, run_id: str
) -> dict:
    result = train_segmentation(features)
    registry.use_experiment(settings, registry.SEGMENTATION_MODEL)
    X = features[list(SEGMENT_FEATURES)].astype(float)
    with mlflow.start_run(run_name=f"segmentation {as_of}", tags=_common_tags(as_of, run_id)):
        mlflow.log_params(
            {
                "k": result.k,
                "k_range": f"{min(result.silhouettes)}-{max(result.silhouettes)}",
                "features": ",".join(SEGMENT_FEATURES),
                "customers": len(X),
            }
        )
        mlflow.log_metric("silhouette", result.silhouette)
        for k, score in result.silhouettes.items():
            mlflow.log_metric("silhouette_by_k", score, step=k)
        mlflow.log_dict(result.names, "segment_names.json")
        with tempfile.TemporaryDirectory() as folder:
            profiles = Path(folder) / "segment_profiles.csv"
            result.profiles.assign(name=pd.Series(result.names)).to_csv(profiles)
            mlflow.log_artifact(str(profiles))
        labels = result.pipeline.predict(X.head(200))
        info = mlflow.sklearn.log_model(
            result.pipeline,
            name="model",
            registered_model_name=registry.SEGMENTATION_MODEL,
            signature=infer_signature(X.head(200), labels),
            input_example=X.head(5),
        )
    version = str(info.registered_model_version)
    client.set_model_version_tag(
        registry.SEGMENTATION_MODEL,
        version,
        "segment_names",
        json.dumps({str(k): v for k, v in result.names.items()}),
    )
    decision = registry.promote_if_better(
        client, registry.SEGMENTATION_MODEL, version, "silhouette", result.silhouette
    )
    log.info("segmentation: %s", decision.reason)
    return {
        "version": version,
        "k": result.k,
        "silhouette": round(result.silhouette, 4),
        "promoted": decision.promoted,
        "names": result.names,
    }


def train_churn_model(
    settings: Settings, client, training: pd.DataFrame, as_of: date, run_id: str
) -> dict:
    result = train_churn(training)
    registry.use_experiment(settings, registry.CHURN_MODEL)
    X = training[list(CHURN_FEATURES)].astype(float)
    with mlflow.start_run(run_name=f"churn {as_of}", tags=_common_tags(as_of, run_id)):
        mlflow.log_params(
            {
                "horizon_days": settings.churn_horizon_days,
                "train_rows": result.train_rows,
                "holdout_rows": result.holdout_rows,
                "churn_rate": round(result.churn_rate, 4),
                **{
                    f"model__{k}": v
                    for k, v in result.pipeline[-1].get_params().items()
                    if k in ("max_iter", "learning_rate", "max_leaf_nodes", "l2_regularization")
                },
            }
        )
        mlflow.log_metrics(result.metrics)
        info = mlflow.sklearn.log_model(
            result.pipeline,
            name="model",
            registered_model_name=registry.CHURN_MODEL,
            signature=infer_signature(X.head(200), result.pipeline.predict_proba(X.head(200))),
            input_example=X.head(5),
            pyfunc_predict_fn="predict_proba",
            # Our own model: its tree predictors are safe to load (skops asks to say so).
            skops_trusted_types=list(TRUSTED_TYPES),
        )
    version = str(info.registered_model_version)
    decision = registry.promote_if_better(
        client, registry.CHURN_MODEL, version, "roc_auc", result.metrics["roc_auc"]
    )
    log.info("churn: %s", decision.reason)
    return {
        "version": version,
        "promoted": decision.promoted,
        "rows": result.train_rows + result.holdout_rows,
        "churn_rate": round(result.churn_rate, 4),
        **{k: round(v, 4) for k, v in result.metrics.items()},
        "decision": asdict(decision)["reason"],
    }


def train_models(spark: SparkSession, settings: Settings, as_of: date, run_id: str) -> dict:
    client = registry.configure_tracking(settings)
    features = (
        lakehouse.read_table(spark, settings, tables.GOLD_FEATURES)
        .where(F.col("as_of_date") == F.lit(str(as_of)).cast("date"))
        .select("customer_key", *SEGMENT_FEATURES)
        .toPandas()
    )
    if features.empty:
        raise ValueError(f"gold.customer_features has no rows for {as_of}: run jobs/gold.py first")
    inputs = load_inputs(spark, settings)
    training = (
        churn_training_set(inputs, as_of, settings.churn_horizon_days, settings.profile_window_days)
        .select("customer_key", *CHURN_FEATURES, LABEL)
        .toPandas()
    )
    return {
        "segmentation": train_segmentation_model(settings, client, features, as_of, run_id),
        "churn": train_churn_model(settings, client, training, as_of, run_id),
    }


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return train_models(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None) -> dict:
    return run_job("train_models", _body, job_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    main()
