"""MLflow tracking and registry helpers: experiments, registration and champion promotion."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
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
    from omni.postgres import require_tracking_store

    require_tracking_store(settings)
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

    def metrics(self) -> dict[str, float]:
        """What to log beside the run's own metrics: the champion's score and the outcome."""
        scores = {"promoted": float(self.promoted)}
        if self.champion_value is not None:
            scores[f"champion_{self.metric}"] = self.champion_value
        return scores


def champion_version(client: MlflowClient, model: str):
    try:
        return client.get_model_version_by_alias(model, CHAMPION)
    except MlflowException:
        return None


class ChampionNotEvaluatedError(RuntimeError):
    """The champion could not be scored on the challenger's data: nothing can be decided."""


def versions_of_run(client: MlflowClient, model: str, pipeline_run_id: str, as_of) -> list:
    """Versions of ``model`` that the pipeline run ``pipeline_run_id`` registered for ``as_of``.

    Found through the MLflow runs tagged with the pipeline run and date (tags set when the
    run starts), so a version registered by a try that was killed before tagging it is found.
    """
    experiment = mlflow.get_experiment_by_name(model)
    if experiment is None:
        return []

    def quoted(value: object) -> str:
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.pipeline_run_id = {quoted(pipeline_run_id)} AND tags.as_of_date = "
            f"{quoted(as_of)}"
        ),
    )
    return sorted(
        (
            version
            for run in runs
            for version in client.search_model_versions(
                f"name = {quoted(model)} AND run_id = {quoted(run.info.run_id)}"
            )
        ),
        key=lambda version: int(version.version),
    )


def promote_if_better(
    client: MlflowClient,
    model: str,
    version: str,
    metric: str,
    value: float,
    champion_score: Callable[[object], float],
    *,
    gates_passed: bool,
    gates_reason: str,
    margin: float,
) -> PromotionDecision:
    """Alias the new version ``challenger``; make it ``champion`` only if it earns it.

    ``champion_score(version)`` scores the current champion on the same data the challenger
    was scored on (the churn holdout, the day's features): ``value`` must beat it by at least
    ``margin`` (higher is better). Nothing is promoted when the data-quality gates of the
    training data did not pass. The decision is also kept as tags on the new version.

    A champion that cannot be scored on the same data is not a reason to promote: that raises
    ``ChampionNotEvaluatedError`` with the reason, the challenger stays a challenger, and the
    task fails for an operator to look (a model whose inputs changed is promoted by hand).
    """
    client.set_registered_model_alias(model, CHALLENGER, version)
    current = champion_version(client, model)
    champion_value = None
    if not gates_passed:
        promoted, reason = False, f"not promoted: {gates_reason}"
    elif current is None:
        promoted, reason = True, "promoted: no champion yet, the first version becomes champion"
    else:
        try:
            champion_value = float(champion_score(current))
        except Exception as error:
            reason = (
                f"not decided: champion v{current.version} could not be evaluated on the same "
                f"data ({type(error).__name__}: {error}); v{version} stays the challenger. "
                f"Fix the champion, or promote by hand: MlflowClient().set_registered_model_"
                f"alias('{model}', '{CHAMPION}', '{version}')"
            )
            # Not a decision: a retry of the task trains and asks again.
            client.set_model_version_tag(model, version, "promotion_blocked", reason)
            raise ChampionNotEvaluatedError(f"{model}: {reason}") from error
        promoted = value >= champion_value + margin
        reason = (
            f"{'promoted' if promoted else 'kept the champion'}: {metric} {value:.4f} vs "
            f"champion v{current.version} {champion_value:.4f} on the same data "
            f"(margin {margin})"
        )
    if promoted:
        client.set_registered_model_alias(model, CHAMPION, version)
    client.set_model_version_tag(model, version, "promotion_decision", reason)
    return PromotionDecision(
        model,
        version,
        promoted,
        metric,
        value,
        champion_value,
        None if current is None else str(current.version),
        reason,
    )


def input_names(model: str, version: str) -> list[str]:
    """The columns a registered version reads, from its signature: a champion trained before a
    change of inputs is scored on its own, so it can be kept, compared and served."""
    info = mlflow.models.get_model_info(f"models:/{model}/{version}")
    if info.signature is None:
        raise LookupError(f"registered model {model!r} version {version} has no signature")
    return list(info.signature.inputs.input_names())
