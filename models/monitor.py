"""Monitor the champions for ``--date``: drift of their features and scores, into gold.

Each training run keeps a *reference* (``monitoring/reference.json`` in its MLflow run): the
decile edges and shares of the monitored features and of the model's outputs (churn
probabilities, segment shares) over the population it is judged on, its training date's
buyers as ``gold.customer_features`` holds them, scored by the model itself. Each night the
date's scored buyers are binned on the champion's edges, in one Spark pass: like with like,
so a night with no new data reads as no drift. They are compared with the population
stability index

    PSI = sum over bins of (current share - reference share) * ln(current / reference)

(shares floored at ``EPSILON``). Rows go to ``gold.model_monitoring``. When any PSI exceeds
``OMNI_PSI_THRESHOLD`` the run flags a retrain: a warning in the log, the tag
``retrain_recommended`` on the monitoring run (experiment ``model_monitoring``) and on the
champion version, and ``retrain_recommended`` in the job's counts.
"""

from __future__ import annotations

import logging
import math
from datetime import date

import mlflow
import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from models import registry
from models.churn import MODEL_INPUTS
from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.publish import Staging

log = logging.getLogger("omni.monitor")
REFERENCE_ARTIFACT = "monitoring/reference.json"
EXPERIMENT = "model_monitoring"
EPSILON = 1e-4
BINS = 10
# The churn model's main features: behaviour, not the calendar (tenure grows every night).
CHURN_MONITORED = (
    "recency_days",
    "frequency_90d",
    "monetary_365d",
    "avg_order_value_365d",
    "online_share_365d",
    "days_since_last_visit",
    "sessions_30d",
    "session_trend",
    "searches_30d",
    "discount_share_365d",
    "category_breadth_365d",
)
FEATURE, SCORE = "feature", "score"


def numeric_reference(values, bins: int = BINS) -> dict:
    """Inner decile edges of ``values`` and the share of values in each bin.

    A value v falls in bin i when edges[i-1] < v <= edges[i] (the first bin is v <= edges[0],
    the last v > edges[-1]); repeated edges (many equal values) are merged.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"reference of {values.size} values: expected finite values, at least 1")
    inner = np.linspace(0, 1, bins + 1)[1:-1]
    # Edges are observed values (no interpolation): counts and flags keep their own bins.
    edges = np.unique(np.quantile(values, inner, method="inverted_cdf"))
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return {
        "type": "numeric",
        "edges": edges.tolist(),
        "shares": (counts / values.size).tolist(),
        "rows": int(values.size),
    }


def categorical_reference(values) -> dict:
    """Share of each value (segment ids) of ``values``."""
    labels, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return {
        "type": "categorical",
        "shares": {str(k): float(c / counts.sum()) for k, c in zip(labels, counts, strict=True)},
        "rows": int(counts.sum()),
    }


def build_reference(as_of: date, features, scores: dict[str, dict]) -> dict:
    """A model's monitoring reference: every column of ``features`` (its training date's
    buyers), binned, and its output distributions ``scores`` (from ``numeric_reference`` or
    ``categorical_reference``)."""
    return {
        "as_of_date": str(as_of),
        "features": {column: numeric_reference(features[column]) for column in features.columns},
        "scores": scores,
    }


def churn_reference(as_of: date, buyers, model, inputs: tuple[str, ...] = MODEL_INPUTS) -> dict:
    """The churn model's reference: ``buyers`` (the ``inputs`` of the training date's buyers,
    the columns ``model`` reads) binned on ``CHURN_MONITORED``, and ``model``'s own
    probabilities for them."""
    X = buyers[list(inputs)]
    probabilities = numeric_reference(model.predict_proba(X)[:, 1])
    return build_reference(as_of, X[list(CHURN_MONITORED)], {"churn_probability": probabilities})


def psi(reference: list[float], current: list[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    if len(reference) != len(current):
        raise ValueError(f"{len(reference)} reference bins against {len(current)} current ones")
    total = 0.0
    for r, c in zip(reference, current, strict=True):
        r, c = max(r, EPSILON), max(c, EPSILON)
        total += (c - r) * math.log(c / r)
    return total


def _bin(column: str, edges: list[float]):
    """Spark bin index of ``column``: the number of edges below the value."""
    return sum((F.col(column) > F.lit(edge)).cast("int") for edge in edges) if edges else F.lit(0)


def current_shares(df: DataFrame, reference: dict[str, dict]) -> tuple[int, dict[str, list]]:
    """Rows of ``df`` and, per referenced column, its shares in the reference's bins.

    One aggregation over ``df`` for every column and bin.
    """
    aggregates = [F.count(F.lit(1)).alias("_rows")]
    slots: dict[str, list[str]] = {}
    for column, spec in reference.items():
        if spec["type"] == "numeric":
            index = _bin(column, spec["edges"])
            values = list(range(len(spec["edges"]) + 1))
        else:
            index = F.col(column).cast("string")
            values = list(spec["shares"])
        slots[column] = []
        for i, value in enumerate(values):
            alias = f"_{len(aggregates)}"
            aggregates.append(F.sum((index == F.lit(value)).cast("int")).alias(alias))
            slots[column].append(alias)
        if spec["type"] == "categorical":  # values the reference never saw form one more bin
            alias = f"_{len(aggregates)}"
            aggregates.append(F.sum((~index.isin(values)).cast("int")).alias(alias))
            slots[column].append(alias)
    row = df.agg(*aggregates).first()
    rows = int(row["_rows"])
    return rows, {
        column: [(row[alias] or 0) / rows if rows else 0.0 for alias in aliases]
        for column, aliases in slots.items()
    }


def reference_shares(spec: dict) -> list[float]:
    if spec["type"] == "numeric":
        return list(spec["shares"])
    return [*spec["shares"].values(), 0.0]


def _load_reference(version) -> dict | None:
    try:
        return mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{REFERENCE_ARTIFACT}")
    except Exception as error:  # noqa: BLE001 - MLflow raises several kinds for a missing file
        log.warning(
            "%s v%s has no monitoring reference (%s): not monitored; retrain to create one",
            version.name,
            version.version,
            error,
        )
        return None


def monitor_models(spark: SparkSession, settings: Settings, as_of: date, run_id: str) -> dict:
    client = registry.configure_tracking(settings)
    day = F.lit(str(as_of)).cast("date")
    scores = lakehouse.read_table(spark, settings, tables.GOLD_SCORES).where(
        F.col("as_of_date") == day
    )
    features = lakehouse.read_table(spark, settings, tables.GOLD_FEATURES).where(
        F.col("as_of_date") == day
    )
    # The models learned from buyers and score buyers only: customers who never bought are
    # not part of the population whose drift they are judged on.
    population = lakehouse.materialize(
        features.where(F.col("has_purchase")).join(
            scores.select("customer_key", "segment_id", "churn_probability"), "customer_key"
        )
    )
    rows, unmonitored = [], []
    for model in (registry.CHURN_MODEL, registry.SEGMENTATION_MODEL):
        version = registry.champion_version(client, model)
        reference = _load_reference(version) if version is not None else None
        if reference is None:
            unmonitored.append(model)
            continue
        columns = {**reference["features"], **reference["scores"]}
        count, shares = current_shares(population, columns)
        if not count:
            raise LookupError(
                f"no scored customers with features for {as_of}: run models/score.py first"
            )
        for column, spec in columns.items():
            value = psi(reference_shares(spec), shares[column])
            rows.append(
                {
                    "as_of_date": as_of,
                    "model_name": model,
                    "model_version": str(version.version),
                    "column_name": column,
                    "kind": SCORE if column in reference["scores"] else FEATURE,
                    "psi": value,
                    "threshold": settings.psi_threshold,
                    "drifted": value > settings.psi_threshold,
                    "reference_date": date.fromisoformat(reference["as_of_date"]),
                    "reference_rows": spec["rows"],
                    "rows": count,
                    "run_id": run_id,
                }
            )
    population.unpersist()
    # Write, audit, publish: the night's PSIs become visible only when their suite passes (a
    # night with no monitored model writes none and the date's table is audited as it is).
    staging = Staging(spark, settings, run_id, as_of)
    if rows:
        names = [c for c in tables.GOLD_MONITORING.column_names if c != "monitored_at"]
        frame = spark.createDataFrame(
            [tuple(r[n] for n in names) for r in rows], tables.GOLD_MONITORING.schema_ddl(names)
        ).withColumn("monitored_at", F.current_timestamp())
        predicate = lakehouse.sql_in("as_of_date", [as_of])
        staging.replace_where(tables.GOLD_MONITORING, frame, predicate)
    audit = staging.audit_and_publish(["gold"], [tables.GOLD_MONITORING.name]).summary()
    drifted = sorted(f"{r['model_name']}.{r['column_name']}" for r in rows if r["drifted"])
    retrain = bool(drifted)
    if retrain:
        log.warning(
            "retrain recommended: PSI above %s for %s", settings.psi_threshold, ", ".join(drifted)
        )
    _log_run(client, settings, as_of, run_id, rows, drifted)
    return {
        "monitored": len(rows),
        "unmonitored_models": unmonitored,
        "drifted": drifted,
        "retrain_recommended": retrain,
        "max_psi": round(max((r["psi"] for r in rows), default=0.0), 4),
        "audit": audit,
    }


def _log_run(client, settings: Settings, as_of: date, run_id: str, rows, drifted) -> None:
    """The night's PSIs as an MLflow run; the retrain flag on it and on each champion."""
    registry.use_experiment(settings, EXPERIMENT)
    retrain = "true" if drifted else "false"
    with mlflow.start_run(
        run_name=f"monitoring {as_of}",
        tags={
            "as_of_date": str(as_of),
            "pipeline_run_id": run_id,
            "retrain_recommended": retrain,
            "drifted": ",".join(drifted),
        },
    ):
        mlflow.log_param("psi_threshold", settings.psi_threshold)
        mlflow.log_metrics(
            {f"psi.{r['model_name']}.{r['column_name']}": r["psi"] for r in rows}
            | {"drifted_columns": float(len(drifted))}
        )
    for model, version in {(r["model_name"], r["model_version"]) for r in rows}:
        flagged = any(name.startswith(f"{model}.") for name in drifted)
        client.set_model_version_tag(model, version, "retrain_recommended", str(flagged).lower())
        client.set_model_version_tag(model, version, "last_monitored", str(as_of))


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return monitor_models(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("monitor_models", _body, job_parser(__doc__.splitlines()[0]), argv, session)


if __name__ == "__main__":
    main()
