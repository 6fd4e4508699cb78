"""Model steps on small frames, and promotion against a real MLflow SQLite registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from models import registry
from models.churn import lift_at_top_decile, train_churn
from models.features import CHURN_FEATURES, LABEL, SEGMENT_FEATURES, training_cutoff
from models.segmentation import name_segment, name_segments, train_segmentation


def _customers(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lapsed = rng.random(n) < 0.35
    frame = pd.DataFrame({name: rng.gamma(2.0, 3.0, n) for name in CHURN_FEATURES})
    frame["recency_days"] = np.where(lapsed, rng.uniform(40, 120, n), rng.uniform(0, 30, n))
    frame["online_share_365d"] = rng.random(n)
    frame["discount_share_365d"] = rng.random(n) * 0.3
    frame[LABEL] = np.where(rng.random(n) < 0.85, lapsed, ~lapsed)
    return frame


def test_training_cutoff_is_the_as_of_date_minus_the_horizon():
    from datetime import date

    assert training_cutoff(date(2026, 11, 1), 30) == date(2026, 10, 2)
    with pytest.raises(ValueError, match="horizon_days=0"):
        training_cutoff(date(2026, 11, 1), 0)


def test_churn_model_learns_the_signal_and_reports_metrics():
    result = train_churn(_customers(800))
    assert result.metrics["roc_auc"] > 0.75
    assert set(result.metrics) == {"roc_auc", "pr_auc", "brier", "lift_top_decile"}
    assert result.train_rows + result.holdout_rows == 800


def test_churn_model_refuses_a_single_class():
    frame = _customers(100).assign(**{LABEL: False})
    with pytest.raises(ValueError, match="churn labels are all 0 over 100 customers"):
        train_churn(frame)


def test_lift_of_a_perfect_ranking():
    y = np.array([1] * 10 + [0] * 90)
    assert lift_at_top_decile(y, y.astype(float)) == pytest.approx(10.0)


@pytest.mark.parametrize(
    "profile, name",
    [
        ({"recency_days": 90, "online_share_365d": 0.9}, "lapsing"),
        ({"online_share_365d": 0.9, "searches_30d": 9, "sessions_30d": 3}, "online browsers"),
        ({"online_share_365d": 0.9}, "online loyal"),
        ({"online_share_365d": 0.1}, "store regulars"),
        ({"discount_share_365d": 0.2}, "discount hunters"),
        ({}, "omni-channel loyal"),
    ],
)
def test_segment_naming_rule(profile, name):
    base = {
        "recency_days": 10,
        "online_share_365d": 0.5,
        "searches_30d": 1,
        "sessions_30d": 2,
        "discount_share_365d": 0.05,
        "monetary_365d": 100,
    }
    assert name_segment(pd.Series({**base, **profile})) == name


def test_duplicate_segment_names_are_numbered_by_value():
    profiles = pd.DataFrame(
        {
            "recency_days": [90, 95, 5],
            "online_share_365d": [0.5, 0.5, 0.5],
            "searches_30d": 0,
            "sessions_30d": 0,
            "discount_share_365d": 0.0,
            "monetary_365d": [10, 50, 30],
        }
    )
    assert name_segments(profiles) == {0: "lapsing 2", 1: "lapsing", 2: "omni-channel loyal"}


def test_segmentation_picks_k_in_range_and_names_every_segment():
    frame = _customers(300)[list(SEGMENT_FEATURES)]
    result = train_segmentation(frame, k_range=range(3, 5))
    assert result.k in (3, 4)
    assert set(result.names) == set(range(result.k))
    assert set(result.pipeline.predict(frame)) == set(range(result.k))


def _register(client, settings, name: str, metric: float) -> str:
    import mlflow

    registry.use_experiment(settings, name)
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = DummyClassifier(strategy="prior").fit(X, [0, 1, 0, 1])
    with mlflow.start_run():
        mlflow.log_metric("roc_auc", metric)
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    return str(info.registered_model_version)


def test_promotion_keeps_the_better_model(settings):
    client = registry.configure_tracking(settings)
    model = "promotion_test_model"
    first = _register(client, settings, model, 0.70)
    decision = registry.promote_if_better(client, model, first, "roc_auc", 0.70, margin=0.01)
    assert decision.promoted
    worse = _register(client, settings, model, 0.65)
    decision = registry.promote_if_better(client, model, worse, "roc_auc", 0.65, margin=0.01)
    assert not decision.promoted
    assert str(client.get_model_version_by_alias(model, registry.CHAMPION).version) == first
    assert str(client.get_model_version_by_alias(model, registry.CHALLENGER).version) == worse
    better = _register(client, settings, model, 0.80)
    decision = registry.promote_if_better(client, model, better, "roc_auc", 0.80, margin=0.01)
    assert decision.promoted and decision.champion_value == pytest.approx(0.70)
    assert str(client.get_model_version_by_alias(model, registry.CHAMPION).version) == better
