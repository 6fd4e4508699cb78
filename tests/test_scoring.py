"""Scoring into gold.customer_scores with real champions in a real MLflow registry."""

from __future__ import annotations

import json
from datetime import date

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from pyspark.sql import functions as F
from sklearn.linear_model import LogisticRegression

from models import registry
from models.features import CHURN_FEATURES, SEGMENT_FEATURES
from models.score import NO_PURCHASE_BAND, score_customers
from models.segmentation import (
    NO_PURCHASE_DESCRIPTION,
    NO_PURCHASE_SEGMENT,
    NO_PURCHASE_SEGMENT_ID,
    train_segmentation,
)
from omni import gates, lakehouse, tables
from tests.conftest import settings_under
from tests.test_quality import batch

AS_OF = date(2026, 6, 30)
BUYERS, NEVER_BOUGHT = 60, 12


def _register(model_name: str, model, X: pd.DataFrame, tags: dict, **kwargs) -> None:
    mlflow.set_experiment(model_name)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=model_name,
            signature=infer_signature(X.head(20)),
            pip_requirements=["scikit-learn"],
            **kwargs,
        )
    client = mlflow.MlflowClient()
    version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, json.dumps(value))
    client.set_registered_model_alias(model_name, registry.CHAMPION, version)


def _features(spark, keys, buyer):
    rng = np.random.default_rng(4)

    def change(i, row):
        row.update({name: float(rng.gamma(2.0, 3.0)) for name in CHURN_FEATURES})
        row.update(customer_key=keys[i], as_of_date=AS_OF, has_purchase=buyer(i))
        if not buyer(i):  # what gold gives a customer who never bought
            row.update(recency_days=365.0, frequency_365d=0.0, monetary_365d=0.0)

    return batch(spark, "gold.customer_features", len(keys), change)


@pytest.fixture(scope="module")
def scored(spark, settings, tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    local = settings_under(settings, root, landing=False)
    registry.configure_tracking(local)
    keys = [f"K{i:03d}" for i in range(BUYERS + NEVER_BOUGHT)]
    features = _features(spark, keys, lambda i: i < BUYERS)
    lakehouse.overwrite(spark, local, tables.GOLD_FEATURES, features)
    buyers = features.where("has_purchase").toPandas()
    segmentation = train_segmentation(buyers[list(SEGMENT_FEATURES)], k_range=range(3, 4))
    _register(
        registry.SEGMENTATION_MODEL,
        segmentation.pipeline,
        buyers[list(SEGMENT_FEATURES)],
        {
            "segment_names": {str(k): v for k, v in segmentation.names.items()},
            "segment_descriptions": {str(k): v for k, v in segmentation.descriptions.items()},
            "segment_ids": {str(k): v for k, v in segmentation.segment_ids.items()},
        },
    )
    X = buyers[list(CHURN_FEATURES)]
    churn = LogisticRegression(max_iter=500).fit(X, (X["recency_days"] > 5).astype(int))
    _register(registry.CHURN_MODEL, churn, X, {}, pyfunc_predict_fn="predict_proba")
    first = score_customers(spark, local, AS_OF, "scoring-test")
    rows = {
        r["customer_key"]: r
        for r in lakehouse.read_table(spark, local, tables.GOLD_SCORES).collect()
    }
    yield local, keys, segmentation, first, rows
    registry.configure_tracking(settings)


def test_customers_who_never_bought_keep_a_segment_but_get_no_churn_probability(scored):
    _, keys, segmentation, first, rows = scored
    assert set(rows) == set(keys)
    never = [rows[k] for k in keys[BUYERS:]]
    assert {
        (r["segment_id"], r["segment_name"], r["churn_probability"], r["churn_risk_band"])
        for r in never
    } == {(NO_PURCHASE_SEGMENT_ID, NO_PURCHASE_SEGMENT, None, NO_PURCHASE_BAND)}
    buyers = [rows[k] for k in keys[:BUYERS]]
    assert all(0 <= r["churn_probability"] <= 1 for r in buyers)
    assert {r["churn_risk_band"] for r in buyers} <= {"low", "medium", "high"}
    assert {r["segment_id"] for r in buyers} == set(segmentation.names) == {1, 2, 3}
    assert {r["segment_name"] for r in buyers} == set(segmentation.names.values())
    assert {(r["segment_id"], r["segment_description"]) for r in buyers} == set(
        segmentation.descriptions.items()
    )
    assert {r["segment_description"] for r in never} == {NO_PURCHASE_DESCRIPTION}
    assert first["bands"][NO_PURCHASE_BAND] == NEVER_BOUGHT


def test_a_rerun_replaces_the_dates_scores_keys_that_no_longer_exist_included(spark, scored):
    local, keys, _, _, _ = scored
    # Two customers found to be one: the retired key's features are gone from the date.
    retired = keys[0]
    lakehouse.overwrite(
        spark,
        local,
        tables.GOLD_FEATURES,
        lakehouse.read_table(spark, local, tables.GOLD_FEATURES).where(
            F.col("customer_key") != retired
        ),
    )
    again = score_customers(spark, local, AS_OF, "scoring-test")
    table = lakehouse.read_table(spark, local, tables.GOLD_SCORES)
    assert again["scored"] == len(keys) - 1 == table.count()
    assert table.where(F.col("customer_key") == retired).count() == 0


def test_scores_that_fail_their_suite_are_held_and_the_published_scores_stay(spark, scored):
    local, keys, _, _, _ = scored
    published = lakehouse.read_table(spark, local, tables.GOLD_SCORES)
    before = (lakehouse.table_version(spark, local, tables.GOLD_SCORES), published.collect())
    # A customer's features twice for the date: the batch scores them twice, which the
    # scores' suite refuses (one row per customer and date).
    features = lakehouse.read_table(spark, local, tables.GOLD_FEATURES)
    twice = features.unionByName(features.where(F.col("customer_key") == keys[1]))
    lakehouse.overwrite(spark, local, tables.GOLD_FEATURES, twice.localCheckpoint())
    run_id = "scoring-test-bad"
    result = score_customers(spark, local, AS_OF, run_id)

    assert result["audit"]["published"] is False and result["scored"] == 0
    after = lakehouse.read_table(spark, local, tables.GOLD_SCORES)
    assert lakehouse.table_version(spark, local, tables.GOLD_SCORES) == before[0]
    assert sorted(after.collect()) == sorted(before[1])
    held = lakehouse.read_table(spark, local, tables.HELD_BATCHES).where(F.col("run_id") == run_id)
    assert {r["table_name"] for r in held.collect()} == {tables.GOLD_SCORES.name}
    assert held.count() == len(keys)  # the retired customer gone, one scored twice
    status = gates.layer_gate(local, [tables.GOLD_SCORES.name], run_id, AS_OF)
    assert not status.passed and "expect_compound_columns_to_be_unique" in status.reason
