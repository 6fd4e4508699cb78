"""Drift monitoring: PSI against the champion's training reference, table, log and registry."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models import monitor, registry
from models.features import CHURN_FEATURES
from omni import lakehouse, tables
from omni.transforms import gold
from tests.conftest import settings_under
from tests.test_gold import _events, _tx
from tests.test_quality import batch

AS_OF = date(2026, 6, 30)


def test_psi_is_near_zero_for_the_same_population_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    reference = monitor.numeric_reference(rng.gamma(2, 10, 5000))
    assert len(reference["shares"]) == len(reference["edges"]) + 1 == 10
    assert sum(reference["shares"]) == pytest.approx(1)

    def shares(values):
        edges = np.array(reference["edges"])
        counts = np.bincount(np.searchsorted(edges, values), minlength=len(edges) + 1)
        return (counts / len(values)).tolist()

    same = monitor.psi(reference["shares"], shares(rng.gamma(2, 10, 5000)))
    shifted = monitor.psi(reference["shares"], shares(rng.gamma(2, 10, 5000) + 15))
    assert same < 0.02
    assert shifted > 0.5


def test_repeated_values_merge_bins_and_bad_references_are_refused():
    reference = monitor.numeric_reference([0.0] * 80 + [1.0] * 10 + [5.0] * 10)
    assert reference["edges"] == [0.0, 1.0]
    assert reference["shares"] == pytest.approx([0.8, 0.1, 0.1])
    with pytest.raises(ValueError, match="expected finite values"):
        monitor.numeric_reference([1.0, float("nan")])
    with pytest.raises(ValueError, match="3 reference bins against 2"):
        monitor.psi([0.2, 0.3, 0.5], [0.5, 0.5])


def test_spark_bins_values_exactly_as_the_reference_does(spark):
    rng = np.random.default_rng(2)
    values = np.round(rng.gamma(1.5, 4, 2000), 1)  # ties on the edges
    reference = monitor.numeric_reference(values)
    segments = monitor.categorical_reference(rng.integers(0, 3, 2000))
    df = spark.createDataFrame(
        pd.DataFrame({"x": values, "segment_id": np.r_[rng.integers(0, 3, 1990), [7] * 10]})
    )
    rows, shares = monitor.current_shares(df, {"x": reference, "segment_id": segments})
    assert rows == 2000
    assert shares["x"] == pytest.approx(reference["shares"])
    # A segment the reference never saw lands in the extra last bin.
    assert shares["segment_id"][-1] == pytest.approx(10 / 2000)
    assert len(shares["segment_id"]) == len(monitor.reference_shares(segments)) == 4


def _features(spark, recency, as_of):
    keys = [f"K{i:04d}" for i in range(len(recency))]

    def change(i, row):
        row.update(dict.fromkeys(monitor.CHURN_MONITORED, 1.0))
        row.update(customer_key=keys[i], as_of_date=as_of, recency_days=float(recency[i]))
        row.update(searches_30d=float(i % 4), monetary_365d=float(50 + i % 200))

    features = batch(spark, "gold.customer_features", len(keys), change)

    def score(i, row):
        row.update(customer_key=keys[i], as_of_date=as_of, churn_probability=0.1 + (i % 8) / 10)

    return features, batch(spark, "gold.customer_scores", len(keys), score)


def _champion_with_reference(settings, recency) -> str:
    n = len(recency)
    train = pd.DataFrame(
        {
            name: np.full(n, 1.0)
            for name in monitor.CHURN_MONITORED
            if name not in ("recency_days", "searches_30d", "monetary_365d")
        }
        | {
            "recency_days": recency,
            "searches_30d": np.arange(n) % 4.0,
            "monetary_365d": 50.0 + np.arange(n) % 200,
        }
    )
    reference = monitor.build_reference(
        AS_OF,
        train,
        {"churn_probability": monitor.numeric_reference(0.1 + (np.arange(n) % 8) / 10)},
    )
    registry.use_experiment(settings, registry.CHURN_MODEL)
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            DummyClassifier(strategy="prior").fit(X, [0, 1, 0, 1]),
            name="model",
            registered_model_name=registry.CHURN_MODEL,
            pip_requirements=["scikit-learn"],
        )
        mlflow.log_dict(reference, monitor.REFERENCE_ARTIFACT)
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(
        registry.CHURN_MODEL, registry.CHAMPION, version
    )
    return version


def test_nightly_monitoring_flags_a_retrain_only_when_the_population_drifts(
    spark, settings, tmp_path, caplog, request
):
    local = settings_under(settings, tmp_path, landing=False)
    client = registry.configure_tracking(local)
    request.addfinalizer(lambda: registry.configure_tracking(settings))
    rng = np.random.default_rng(5)
    version = _champion_with_reference(local, rng.uniform(0, 60, 800).round())

    def night(day, recency, run_id):
        features, scores = _features(spark, recency, day)
        # 300 customers who never bought: no churn probability, never part of the population
        # the champions are judged on (their recency of 365 would read as a drift).
        never = batch(
            spark,
            "gold.customer_features",
            300,
            lambda i, row: row.update(
                customer_key=f"N{i:04d}", as_of_date=day, has_purchase=False, recency_days=365.0
            ),
        )
        unscored = batch(
            spark,
            "gold.customer_scores",
            300,
            lambda i, row: row.update(
                customer_key=f"N{i:04d}",
                as_of_date=day,
                churn_probability=None,
                churn_risk_band="no_purchase_yet",
            ),
        )
        lakehouse.append(spark, local, tables.GOLD_FEATURES, features.unionByName(never))
        lakehouse.append(spark, local, tables.GOLD_SCORES, scores.unionByName(unscored))
        return monitor.monitor_models(spark, local, day, run_id)

    calm = night(AS_OF, rng.uniform(0, 60, 800).round(), "night-1")
    assert calm["retrain_recommended"] is False and calm["drifted"] == []
    # Segmentation has no champion here: said so, not silently skipped.
    assert calm["unmonitored_models"] == [registry.SEGMENTATION_MODEL]
    table = lakehouse.read_table(spark, local, tables.GOLD_MONITORING).toPandas()
    assert set(table["column_name"]) == {*monitor.CHURN_MONITORED, "churn_probability"}
    assert (table["model_version"] == version).all() and not table["drifted"].any()
    assert (table["rows"] == 800).all()
    assert client.get_model_version(registry.CHURN_MODEL, version).tags["retrain_recommended"] == (
        "false"
    )

    later = AS_OF + timedelta(days=1)
    with caplog.at_level(logging.WARNING, logger="omni.monitor"):
        drift = night(later, rng.uniform(40, 120, 800).round(), "night-2")
    assert drift["retrain_recommended"] is True
    assert drift["drifted"] == [f"{registry.CHURN_MODEL}.recency_days"]
    assert "retrain recommended" in caplog.text and "recency_days" in caplog.text
    rows = lakehouse.read_table(spark, local, tables.GOLD_MONITORING).toPandas()
    assert len(rows) == 2 * len(table)
    recency = rows[(rows.column_name == "recency_days") & (rows.as_of_date == later)].iloc[0]
    assert recency["drifted"] and recency["psi"] > local.psi_threshold
    assert client.get_model_version(registry.CHURN_MODEL, version).tags["retrain_recommended"] == (
        "true"
    )
    [run] = mlflow.search_runs(
        experiment_names=[monitor.EXPERIMENT],
        filter_string=f"tags.as_of_date = '{later}'",
        output_format="list",
    )
    assert run.data.tags["retrain_recommended"] == "true"
    assert run.data.metrics[f"psi.{registry.CHURN_MODEL}.recency_days"] == pytest.approx(
        recency["psi"]
    )
    # A rerun of the night replaces its rows.
    night_again = monitor.monitor_models(spark, local, later, "night-2-retry")
    assert night_again["drifted"] == drift["drifted"]
    assert len(lakehouse.read_table(spark, local, tables.GOLD_MONITORING).toPandas()) == len(rows)


def _history(spark, rng, customers: int, as_of: date):
    """A shop's population, purchases and web activity over the 500 days before ``as_of``."""
    population = spark.createDataFrame(
        [(f"K{i:04d}", f"C{i:04d}", True, True, "2024-01-01") for i in range(customers)],
        "customer_key string, customer_id string, email_opt_in boolean, push_opt_in boolean, "
        "signup_date string",
    ).withColumn("signup_date", F.col("signup_date").cast("date"))
    lines, events = [], []
    for i in range(customers):
        for n in range(1 + rng.poisson(4)):
            day = str(as_of - timedelta(days=int(rng.integers(0, 500))))
            online = bool(rng.random() < 0.4)
            amount = round(float(rng.gamma(2, 30)), 2)
            lines.append(
                (
                    f"K{i:04d}",
                    "online" if online else "store",
                    None if online else f"S0{rng.integers(1, 4)}",
                    f"T{i}-{n}",
                    day,
                    f"SKU{rng.integers(0, 40):02d}",
                    1,
                    amount,
                    amount,
                    0.0,
                    f"category {rng.integers(0, 6)}",
                )
            )
        for n in range(rng.poisson(3)):
            day = as_of - timedelta(days=int(rng.integers(0, 120)))
            session = f"s{i}-{n}"
            key = f"K{i:04d}"
            events.append((key, str(day), f"{day} 10:00:00", "search", session, "shirt", None))
            events.append((key, str(day), f"{day} 10:01:00", "page_view", session, None, None))
    return population, _tx(spark, lines), _events(spark, events)


def test_a_night_with_no_new_data_reads_as_no_drift_against_the_champions_training_date(
    spark, settings, tmp_path, request
):
    """Like with like: the churn champion's reference is its training date's buyers scored by
    itself, the population monitoring bins each night. The next night, with no new data, is
    the same customers one day older: below the threshold on every column. (A reference built
    on training snapshots of past cut-offs read as drift on such a night.)"""
    local = settings_under(settings, tmp_path, landing=False)
    registry.configure_tracking(local)
    request.addfinalizer(lambda: registry.configure_tracking(settings))
    population, transactions, activity = _history(spark, np.random.default_rng(7), 800, AS_OF)
    quiet = AS_OF + timedelta(days=1)
    features = {
        day: lakehouse.materialize(
            lakehouse.conform(
                gold.build_customer_features(population, transactions, activity, day),
                tables.GOLD_FEATURES,
            )
        )
        for day in (AS_OF, quiet)
    }
    buyers = features[AS_OF].where(F.col("has_purchase")).orderBy("customer_key").toPandas()
    X = buyers[list(CHURN_FEATURES)]
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, buyers.recency_days > 90)
    registry.use_experiment(local, registry.CHURN_MODEL)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=registry.CHURN_MODEL,
            pip_requirements=["scikit-learn"],
        )
        mlflow.log_dict(
            monitor.churn_reference(AS_OF, buyers, model, CHURN_FEATURES),
            monitor.REFERENCE_ARTIFACT,
        )
    mlflow.MlflowClient().set_registered_model_alias(
        registry.CHURN_MODEL, registry.CHAMPION, str(info.registered_model_version)
    )

    def night(day):
        night_buyers = features[day].where(F.col("has_purchase")).orderBy("customer_key")
        keyed = night_buyers.toPandas()
        probability = model.predict_proba(keyed[list(CHURN_FEATURES)])[:, 1]

        def score(i, row):
            row.update(
                customer_key=keyed.customer_key[i],
                as_of_date=day,
                churn_probability=float(probability[i]),
            )

        lakehouse.append(spark, local, tables.GOLD_FEATURES, features[day])
        scores = batch(spark, "gold.customer_scores", len(keyed), score)
        lakehouse.append(spark, local, tables.GOLD_SCORES, scores)
        monitor.monitor_models(spark, local, day, f"night-{day}")
        return (
            lakehouse.read_table(spark, local, tables.GOLD_MONITORING)
            .where(F.col("as_of_date") == F.lit(str(day)).cast("date"))
            .toPandas()
            .set_index("column_name")
        )

    trained_on = night(AS_OF)
    assert set(trained_on.index) == {*monitor.CHURN_MONITORED, "churn_probability"}
    assert (trained_on["rows"] == len(buyers)).all()
    assert trained_on["psi"].abs().max() < 1e-9  # the same population, binned the same way
    next_night = night(quiet)
    assert (next_night["rows"] == len(buyers)).all()
    assert not next_night["drifted"].any(), next_night["psi"].sort_values().tail(3)
    assert next_night["psi"].max() < local.psi_threshold / 2
