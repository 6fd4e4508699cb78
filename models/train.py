"""Train both models as of ``--date``, log them to MLflow, register them and promote winners.

Segmentation fits on the customers' features as of the date. Churn trains on point-in-time
snapshots and is scored on a later holdout window (see ``models.features``), next to a BG/NBD
baseline. Each run logs its parameters, metrics, plots, a signature and input example, the
Delta versions of the tables it read (as MLflow dataset inputs), the git commit and the run
date. Each training registers a new version aliased ``challenger``; it becomes ``champion``
only when the date's data-quality gates passed and it beats the champion on the same data by
the configured margin (``models.registry.promote_if_better``), the champion reading the inputs
its own signature names. The decision, with both scores, is logged in the run and kept as a
tag on the version.

A retried or rerun task registers no second version for its pipeline run and date: a model
whose version of the run was decided already is not trained again; a version left undecided
by a killed or failed try is deleted and trained anew.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from contextlib import ExitStack
from datetime import date
from functools import cache

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.models import infer_signature
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from models import monitor, plots, registry
from models.baseline import RFM_COLUMNS
from models.churn import MODEL_INPUTS, TRUSTED_TYPES, evaluate, train_churn
from models.features import (
    CHURN_FEATURES,
    KEYS_THEN,
    LABEL,
    SEGMENT_FEATURES,
    TRAIN,
    ChurnWindows,
    churn_training_set,
    collected,
    purchase_history,
)
from models.recommend_evaluation import evaluate_recommendations, holdout_cutoff
from models.segmentation import train_segmentation
from models.value import VALUE_MODEL_TAG, ValueModel, fit_value_model, unfitted_tag
from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import REPO_ROOT, Settings
from omni.gates import gate_status
from omni.history import customer_history, keys_as_of

log = logging.getLogger("omni.train")
# What each model reads: logged as dataset inputs with their Delta versions.
SEGMENTATION_INPUTS = (tables.GOLD_FEATURES,)
CHURN_INPUTS = (
    tables.SILVER_IDENTITY,
    tables.SILVER_CUSTOMERS,
    tables.SILVER_ORDER_LINES,
    tables.SILVER_POS,
    tables.SILVER_PRODUCTS,
    tables.SILVER_EVENTS,
    tables.SILVER_DEVICE_LOGINS,  # the links, dated, for identity as of each cut-off
    tables.SILVER_CRM_LINKS,
)


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _common_tags(as_of: date, run_id: str) -> dict[str, str]:
    return {"as_of_date": str(as_of), "pipeline_run_id": run_id, "git_commit": _git_commit()}


def log_table_inputs(settings: Settings, inputs, versions: dict) -> None:
    """Log each table read as an MLflow dataset: its name, path and Delta version.

    A metadata-only dataset: ``mlflow.data.from_spark`` would count each table's rows with a
    Python job (its profile), some 2 s a table, for a figure the run does not need."""
    for table in inputs:
        source = DeltaDatasetSource(
            path=lakehouse.table_path(settings, table),
            delta_table_version=versions[table.name],
        )
        mlflow.log_input(MetaDataset(source, name=table.name), context="training")


def pip_requirements() -> list[str]:
    """The models' requirements, pinned as installed: MLflow need not infer them (slow)."""
    from importlib.metadata import version

    return [
        f"{name}=={version(name)}"
        for name in ("mlflow", "scikit-learn", "numpy", "pandas", "scipy")
    ]


def _log_figures(figures: dict) -> None:
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{name}.png")
        plots.plt.close(figure)


def _promote(client, model: str, version: str, score, champion_score, gates, margin: float):
    """Decide promotion, then log the decision and the champion's score in the active run."""
    metric, value = score
    decision = registry.promote_if_better(
        client,
        model,
        version,
        metric,
        value,
        champion_score,
        gates_passed=gates.passed,
        gates_reason=gates.reason,
        margin=margin,
    )
    mlflow.log_metrics(decision.metrics())
    mlflow.set_tag("promotion_decision", decision.reason)
    log.info("%s v%s: %s", model, version, decision.reason)
    return decision


def once_per_run(client, model: str, run_id: str, as_of: date, train) -> dict:
    """``train()`` unless the pipeline run already registered a decided version of ``model``."""
    existing = registry.versions_of_run(client, model, run_id, as_of)
    decided = [v for v in existing if "promotion_decision" in v.tags]
    if decided:
        version = decided[-1]
        champion = registry.champion_version(client, model)
        log.info(
            "%s v%s was registered by run %s already: not trained again",
            model,
            version.version,
            run_id,
        )
        return {
            "version": str(version.version),
            "promoted": champion is not None and str(champion.version) == str(version.version),
            "decision": version.tags["promotion_decision"],
            "reused": True,
        }
    for version in existing:  # a try that stopped before deciding
        log.warning(
            "%s v%s of run %s was never decided: deleted, trained again",
            model,
            version.version,
            run_id,
        )
        client.delete_model_version(model, version.version)
    return train()


def _champion_model(client, model: str):
    current = registry.champion_version(client, model)
    if current is None:
        return None, None
    return current, mlflow.sklearn.load_model(f"models:/{model}/{current.version}")


def train_segmentation_model(
    spark, settings: Settings, client, features: pd.DataFrame, gates, as_of, run_id, versions
) -> dict:
    X = features[list(SEGMENT_FEATURES)].astype(float).reset_index(drop=True)
    champion, champion_model = _champion_model(client, registry.SEGMENTATION_MODEL)
    previous = next_id = None
    if champion is not None:
        # Versions registered before stable ids carry no map: their labels are their ids.
        ids = {
            int(k): int(v) for k, v in json.loads(champion.tags.get("segment_ids", "{}")).items()
        }
        previous = np.array(
            [ids.get(int(label), int(label)) for label in champion_model.predict(X)]
        )
        next_id = int(champion.tags.get("next_segment_id", int(previous.max()) + 1))
    started = time.monotonic()
    result = train_segmentation(X, previous=previous, next_id=next_id)
    seconds = time.monotonic() - started
    registry.use_experiment(settings, registry.SEGMENTATION_MODEL)
    with mlflow.start_run(run_name=f"segmentation {as_of}", tags=_common_tags(as_of, run_id)):
        mlflow.log_params(
            {
                "k": result.k,
                "k_range": f"{min(result.silhouettes)}-{max(result.silhouettes)}",
                "k_criterion": "best silhouette (ties: fewer segments)",
                "features": ",".join(SEGMENT_FEATURES),
                "customers": len(X),
                "promotion_margin": settings.segmentation_promotion_margin,
            }
        )
        mlflow.log_metrics({"silhouette": result.silhouette, "fit_seconds": seconds})
        if result.stability is not None:  # the first version has no champion to keep
            mlflow.log_metric("segment_stability", result.stability)
        for k, score in result.silhouettes.items():
            mlflow.log_metric("silhouette_by_k", score, step=k)
        log_table_inputs(settings, SEGMENTATION_INPUTS, versions)
        mlflow.log_dict(result.names, "segment_names.json")
        mlflow.log_dict(result.descriptions, "segment_descriptions.json")
        mlflow.log_table(
            result.profiles.assign(name=pd.Series(result.names)).reset_index(),
            "segment_profiles.json",
        )
        _log_figures({"segment_profiles": plots.segment_profiles(result.profiles, result.names, X)})
        segments = [result.segment_ids[int(label)] for label in result.pipeline.predict(X)]
        mlflow.log_dict(
            monitor.build_reference(
                as_of, X, {"segment_id": monitor.categorical_reference(segments)}
            ),
            monitor.REFERENCE_ARTIFACT,
        )
        info = mlflow.sklearn.log_model(
            result.pipeline,
            name="model",
            registered_model_name=registry.SEGMENTATION_MODEL,
            signature=infer_signature(X.head(200), result.pipeline.predict(X.head(200))),
            input_example=X.head(5),
            pip_requirements=pip_requirements(),
        )
        version = str(info.registered_model_version)
        for key, value in {
            "segment_names": {str(k): v for k, v in result.names.items()},
            "segment_descriptions": {str(k): v for k, v in result.descriptions.items()},
            "segment_ids": {str(k): v for k, v in result.segment_ids.items()},
            "next_segment_id": max([*result.segment_ids.values(), (next_id or 0) - 1]) + 1,
        }.items():
            client.set_model_version_tag(
                registry.SEGMENTATION_MODEL, version, key, json.dumps(value)
            )
        decision = _promote(
            client,
            registry.SEGMENTATION_MODEL,
            version,
            ("silhouette", result.silhouette),
            lambda _: result.champion_silhouette,
            gates,
            settings.segmentation_promotion_margin,
        )
    return {
        "version": version,
        "k": result.k,
        "silhouette": round(result.silhouette, 4),
        "promoted": decision.promoted,
        "decision": decision.reason,
        "names": result.names,
        "descriptions": result.descriptions,
        "stability": None if result.stability is None else round(result.stability, 4),
        "seconds": round(seconds, 1),
    }


def train_churn_model(
    spark,
    settings: Settings,
    client,
    training: pd.DataFrame,
    gates,
    windows,
    as_of,
    run_id,
    versions,
    value: ValueModel | str,
    buyers: pd.DataFrame,
) -> dict:
    """``value`` is the fitted value model, or why it could not be fitted (too few repeat
    buyers, say): the churn model is still trained, and its scores carry no value.

    ``buyers`` are tonight's buyers' inputs (features and purchase summary): the model's
    monitoring reference is its own scoring of them, the population ``models.monitor`` bins
    every night (training snapshots of past cut-offs and holdout customers are another
    population: their PSI against a night would be high by construction)."""
    fitted = isinstance(value, ValueModel)
    if not fitted:
        log.warning("churn: no value model: %s", value)
    started = time.monotonic()
    result = train_churn(training, settings.churn_horizon_days)
    seconds = time.monotonic() - started
    X = result.holdout[list(MODEL_INPUTS)]
    y = result.holdout[LABEL].to_numpy()
    trees = result.pipeline[-1].estimator
    registry.use_experiment(settings, registry.CHURN_MODEL)
    with mlflow.start_run(run_name=f"churn {as_of}", tags=_common_tags(as_of, run_id)):
        mlflow.log_params(
            {
                "horizon_days": settings.churn_horizon_days,
                "holdout_cutoff": str(windows.holdout),
                "training_cutoffs": ",".join(str(c) for c in windows.training),
                "split": "time: train snapshots end where the holdout's labels begin",
                "identity": "as known on each cut-off: links first seen by then",
                "train_rows": result.train_rows,
                "holdout_rows": result.holdout_rows,
                "holdout_churn_rate": round(result.churn_rate, 4),
                "train_churn_rate": round(
                    float(training.loc[training.split == TRAIN, LABEL].mean()), 4
                ),
                "calibration": result.calibration,
                "inputs": "customer features, BG/NBD purchase summary (x, t_x, T)",
                # The BG/NBD of the model's first step, fitted on the training rows.
                **{
                    f"purchase_model_{name}": round(param, 6)
                    for name, param in zip(("r", "alpha", "a", "b"), result.pipeline[0].params_)
                },
                "promotion_margin": settings.churn_promotion_margin,
                **{
                    f"model__{k}": v
                    for k, v in trees.get_params().items()
                    if k
                    in (
                        "max_iter",
                        "learning_rate",
                        "max_leaf_nodes",
                        "min_samples_leaf",
                        "l2_regularization",
                    )
                },
                **result.baseline.params(),
                **(value.params() if fitted else {"value_model": value[:500]}),
            }
        )
        mlflow.log_metrics(
            {
                **result.metrics,
                **{f"baseline_{k}": v for k, v in result.baseline_metrics.items()},
                "fit_seconds": seconds,
            }
        )
        if fitted:
            # Gamma-Gamma assumes spend independent of frequency: near 0 is what it needs.
            mlflow.log_metric("spend_frequency_correlation", value.spend_frequency_correlation)
        log_table_inputs(settings, CHURN_INPUTS, versions)
        label = LABEL
        _log_figures(
            {
                "roc": plots.roc(result.holdout, label, result.metrics, result.baseline_metrics),
                "precision_recall": plots.precision_recall(
                    result.holdout, label, result.metrics, result.baseline_metrics
                ),
                "calibration": plots.calibration(result.holdout, label),
                "lift": plots.lift(result.holdout, label),
                "feature_importance": plots.importance(result.importance),
            }
        )
        mlflow.log_dict(result.importance.round(6).to_dict(), "feature_importance.json")
        mlflow.log_dict(
            monitor.churn_reference(as_of, buyers, result.pipeline), monitor.REFERENCE_ARTIFACT
        )
        info = mlflow.sklearn.log_model(
            result.pipeline,
            name="model",
            registered_model_name=registry.CHURN_MODEL,
            signature=infer_signature(X.head(200), result.pipeline.predict_proba(X.head(200))),
            input_example=X.head(5),
            pyfunc_predict_fn="predict_proba",
            pip_requirements=pip_requirements(),
            # Our own model: its calibrators and tree predictors are safe to load.
            skops_trusted_types=list(TRUSTED_TYPES),
        )
        version = str(info.registered_model_version)
        client.set_model_version_tag(
            registry.CHURN_MODEL,
            version,
            VALUE_MODEL_TAG,
            value.to_json() if fitted else unfitted_tag(value),
        )

        def champion_auc(current) -> float:
            model = mlflow.sklearn.load_model(f"models:/{registry.CHURN_MODEL}/{current.version}")
            inputs = registry.input_names(registry.CHURN_MODEL, current.version)
            return evaluate(y, model.predict_proba(X[inputs])[:, 1])["roc_auc"]

        decision = _promote(
            client,
            registry.CHURN_MODEL,
            version,
            ("roc_auc", result.metrics["roc_auc"]),
            champion_auc,
            gates,
            settings.churn_promotion_margin,
        )
    return {
        "version": version,
        "promoted": decision.promoted,
        "train_rows": result.train_rows,
        "holdout_rows": result.holdout_rows,
        "churn_rate": round(result.churn_rate, 4),
        **{k: round(v, 4) for k, v in result.metrics.items()},
        **{f"baseline_{k}": round(v, 4) for k, v in result.baseline_metrics.items()},
        "decision": decision.reason,
        "seconds": round(seconds, 1),
        "value": {
            "spend_frequency_correlation": round(value.spend_frequency_correlation, 4),
            "repeat_buyers": value.repeat_buyers,
            "excluded_repeat_buyers": value.excluded_repeat_buyers,
        }
        if fitted
        else value,
    }


def churn_training_frame(inputs: dict, settings: Settings, as_of: date) -> pd.DataFrame:
    """``churn_training_set`` with the settings' horizon, window and snapshots, ``collected``."""
    return collected(
        churn_training_set(
            inputs,
            as_of,
            settings.churn_horizon_days,
            settings.profile_window_days,
            settings.churn_training_snapshots,
            settings.churn_snapshot_step_days,
        )
    )


def _value_model(history: pd.DataFrame) -> ValueModel | str:
    try:
        return fit_value_model(history)
    except ValueError as error:
        return str(error)


def train_models(spark: SparkSession, settings: Settings, as_of: date, run_id: str) -> dict:
    client = registry.configure_tracking(settings)
    versions = {
        t.name: lakehouse.table_version(spark, settings, t)
        for t in (*SEGMENTATION_INPUTS, *CHURN_INPUTS)
    }
    # Tonight's buyers: what segmentation learns from (customers who never bought have their
    # own segment) and the population both champions are monitored on (``models.monitor``).
    features = (
        lakehouse.read_table(
            spark, settings, tables.GOLD_FEATURES, versions[tables.GOLD_FEATURES.name]
        )
        .where((F.col("as_of_date") == F.lit(str(as_of)).cast("date")) & F.col("has_purchase"))
        .select("customer_key", *CHURN_FEATURES)
        .orderBy("customer_key")
        .toPandas()
    )
    if features.empty:
        raise ValueError(
            f"gold.customer_features has no customer with a purchase for {as_of}: expected the "
            "features of the date (run jobs/gold.py first) and at least one buyer"
        )
    gates = gate_status(spark, settings, as_of, tables.GOLD_FEATURES.name)
    if not gates.passed:
        log.warning("no model will be promoted: %s", gates.reason)
    windows = ChurnWindows.for_date(
        as_of,
        settings.churn_horizon_days,
        settings.churn_training_snapshots,
        settings.churn_snapshot_step_days,
    )

    with ExitStack() as stack:
        # Read only when the churn model or the recommendations need it (a retry may not).
        loaded = cache(lambda: stack.enter_context(customer_history(spark, settings, versions)))

        @cache
        def history() -> dict:
            """The inputs, with the identifiers keyed otherwise on a cut-off (the churn
            snapshots' and the recommendation holdout's): each sees the customers as the links
            seen by its cut-off made them (``models.features.known_on``)."""
            inputs = loaded()
            recommended_from = holdout_cutoff(settings, as_of)
            cutoffs = [*windows.cutoffs, *([recommended_from] if recommended_from else [])]
            moved = keys_as_of(
                spark, settings, inputs["identity"], cutoffs, as_of, versions
            ).localCheckpoint()
            log.info("%d identifiers keyed otherwise on a cut-off", moved.count())
            return {**inputs, KEYS_THEN: moved}

        def train_churn_on_history() -> dict:
            inputs = history()
            training = churn_training_frame(inputs, settings, as_of)
            # The value model learns from every buyer's whole history up to the date.
            history_rows = (
                purchase_history(inputs["transactions"], as_of).orderBy("customer_key").toPandas()
            )
            # The monitoring reference: tonight's buyers with their purchase summary, as scored.
            buyers = features.merge(
                history_rows[["customer_key", *RFM_COLUMNS]], on="customer_key", how="left"
            )
            return train_churn_model(
                spark,
                settings,
                client,
                training,
                gates,
                windows,
                as_of,
                run_id,
                versions,
                _value_model(history_rows),
                buyers,
            )

        summary = {
            "gates": gates.reason,
            "segmentation": once_per_run(
                client,
                registry.SEGMENTATION_MODEL,
                run_id,
                as_of,
                lambda: train_segmentation_model(
                    spark, settings, client, features, gates, as_of, run_id, versions
                ),
            ),
            "churn": once_per_run(
                client, registry.CHURN_MODEL, run_id, as_of, train_churn_on_history
            ),
        }
        # After segmentation: customers are segmented at the cut-off by tonight's champion.
        summary["recommendations"] = evaluate_recommendations(
            spark, settings, client, history, as_of, run_id, _common_tags(as_of, run_id)
        )
    return summary


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return train_models(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("train_models", _body, job_parser(__doc__.splitlines()[0]), argv, session)


if __name__ == "__main__":
    main()
