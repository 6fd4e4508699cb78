"""MLflow tracking and registry helpers: experiments, registration and champion promotion."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from omni.config import Settings

log = logging.getLogger(__name__)
CHAMPION = "champion"
CHALLENGER = "challenger"
SEGMENTATION_MODEL = "customer_segmentation"
CHURN_MODEL = "customer_churn"


def configure_tracking(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store (SQLite by default) and return a client."""
    # Nothing leaves the machine, and batch logs stay readable.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def use_experiment(settings: Settings, name: str) -> str:
    """Create the experiment with artifacts under the configured folder, or reuse it."""
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        location = (settings.mlflow_artifacts_dir / name).resolve()
        location.mkdir(parents=True, exist_ok=True)
        experiment_id = mlflow.create_experiment(name, artifact_location=location.as_uri())
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@dataclass(frozen=True)
class PromotionDecision:
    model: str
    version: str
    promoted: bool
    metric: str
    challenger_value: float
    champion_value: float | None
    champion_version: str | None
    reason: str


def champion_version(client: MlflowClient, model: str):
    try:
        return client.get_model_version_by_alias(model, CHAMPION)
    except MlflowException:
        return None


def promote_if_better(
    client: MlflowClient,
    model: str,
    version: str,
    metric: str,
    value: float,
    *,
    greater_is_better: bool = True,
    margin: float = 0.0,
) -> PromotionDecision:
    """Alias the new version ``challenger``; make it ``champion`` if there is none or it wins.

    It wins when it beats the champion's logged ``metric`` by at least ``margin``.
    """
    client.set_registered_model_alias(model, CHALLENGER, version)
    current = champion_version(client, model)
    if current is None:
        client.set_registered_model_alias(model, CHAMPION, version)
        return PromotionDecision(
            model,
            version,
            True,
            metric,
            value,
            None,
            None,
            "no champion yet: the first version becomes champion",
        )
    champion_value = client.get_run(current.run_id).data.metrics.get(metric)
    if champion_value is None:
        better = True
    elif greater_is_better:
        better = value >= champion_value + margin
    else:
        better = value <= champion_value - margin
    if better:
        client.set_registered_model_alias(model, CHAMPION, version)
    reason = (
        f"{metric} {value:.4f} vs champion v{current.version} "
        f"{champion_value if champion_value is None else round(champion_value, 4)}"
        f" (margin {margin}): {'promoted' if better else 'kept the champion'}"
    )
    return PromotionDecision(
        model, version, better, metric, value, champion_value, current.version, reason
    )
