"""Model steps on small frames, and promotion against a real MLflow SQLite registry."""

from __future__ import annotations

import importlib.metadata
from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from models import registry
from models.baseline import (
    BgNbd,
    GammaGamma,
    bgnbd_log_likelihood,
    expected_purchases,
    expected_spend,
    expected_value,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    p_alive,
    p_no_purchase,
    spend_frequency_correlation,
)
from models.churn import MODEL_INPUTS, TRUSTED_TYPES, lift_at_top_decile, train_churn
from models.features import CHURN_FEATURES, LABEL, SEGMENT_FEATURES, training_cutoff
from models.segmentation import name_segment, name_segments, train_segmentation
from models.value import (
    VALUE_COLUMNS,
    ValueModel,
    customer_value,
    fit_value_model,
    from_tag,
    unfitted_tag,
)
from omni.gates import GateStatus

PASSED = GateStatus(True, "gates passed")


def _customers(n: int, seed: int = 3) -> pd.DataFrame:
    """Synthetic churn snapshots: lapsed customers mostly churn; BG/NBD history to match."""
    rng = np.random.default_rng(seed)
    lapsed = rng.random(n) < 0.35
    frame = pd.DataFrame({name: rng.gamma(2.0, 3.0, n) for name in CHURN_FEATURES})
    frame["recency_days"] = np.where(lapsed, rng.uniform(40, 120, n), rng.uniform(0, 30, n))
    frame["online_share_365d"] = rng.random(n)
    frame["discount_share_365d"] = rng.random(n) * 0.3
    frame[LABEL] = np.where(rng.random(n) < 0.85, lapsed, ~lapsed)
    frame["T"] = rng.uniform(8, 20, n)
    frame["x"] = rng.poisson(4, n).astype(float)
    frame["t_x"] = np.where(
        frame["x"] > 0, np.maximum(frame["T"] - frame["recency_days"] / 7, 0), 0.0
    )
    frame["split"] = np.where(rng.random(n) < 0.3, "holdout", "train")
    return frame


def test_training_cutoff_is_the_as_of_date_minus_the_horizon():
    from datetime import date

    assert training_cutoff(date(2026, 11, 1), 30) == date(2026, 10, 2)
    with pytest.raises(ValueError, match="horizon_days=0"):
        training_cutoff(date(2026, 11, 1), 0)


def test_churn_model_learns_the_signal_and_reports_metrics_beside_the_baseline():
    frame = _customers(800)
    result = train_churn(frame, 30)
    assert result.metrics["roc_auc"] > 0.75
    assert set(result.metrics) == set(result.baseline_metrics)
    assert set(result.metrics) == {
        "roc_auc",
        "pr_auc",
        "brier",
        "lift_top_decile",
        "calibration_error",
    }
    # Platt scaling on 560 rows, checked on 240: 0.06 to 0.12 over seeds 3 to 6 (the isotonic
    # test below holds the tighter figure).
    assert result.metrics["calibration_error"] < 0.13
    # Trained on the train rows, scored on exactly the holdout rows.
    assert result.train_rows == (frame.split == "train").sum()
    assert result.holdout_rows == (frame.split == "holdout").sum()
    assert result.calibration == "sigmoid"  # under 1,000 training rows
    assert result.holdout["probability"].between(0, 1).all()
    assert result.importance.index[0] == "recency_days"


def test_the_churn_model_reads_what_the_purchase_model_says_of_each_customer():
    """Its first step adds BG/NBD's P(alive), chance of no purchase and expected purchases,
    from a BG/NBD fitted on the training rows; a buyer without a purchase summary still gets a
    probability, and the importance lists the purchase model's outputs beside the features."""
    from models.baseline import BgNbd, expected_purchases, fit_bgnbd, p_alive, p_no_purchase
    from models.churn import PURCHASE_MODEL_FEATURES

    frame = _customers(800)
    result = train_churn(frame, 30)
    step = result.pipeline[0]
    train = frame[frame.split == "train"]
    fitted = fit_bgnbd(train)
    np.testing.assert_allclose(step.params_, [fitted.r, fitted.alpha, fitted.a, fitted.b])
    X = result.holdout[list(MODEL_INPUTS)]
    added = step.transform(X)
    model = BgNbd(*step.params_)
    np.testing.assert_allclose(added["bgnbd_p_alive"], p_alive(model, X))
    np.testing.assert_allclose(added["bgnbd_p_no_purchase"], p_no_purchase(model, X, 30))
    np.testing.assert_allclose(added["bgnbd_expected_purchases"], expected_purchases(model, X, 30))
    assert set(PURCHASE_MODEL_FEATURES) <= set(result.importance.index)

    unknown = X.head(3).assign(x=np.nan, t_x=np.nan, T=np.nan)
    assert step.transform(unknown)[list(PURCHASE_MODEL_FEATURES)].isna().all().all()
    assert np.isfinite(result.pipeline.predict_proba(unknown)[:, 1]).all()
    with pytest.raises(ValueError, match=r"lacks \['x', 't_x', 'T'\]"):
        result.pipeline.predict_proba(X[list(CHURN_FEATURES)])


def test_calibration_error_is_the_gap_between_promised_and_observed_rates_per_decile():
    from models.churn import calibration_error

    rng = np.random.default_rng(3)
    promised = rng.uniform(0, 1, 20_000)
    honest = (rng.uniform(0, 1, 20_000) < promised).astype(int)
    assert calibration_error(honest, promised) < 0.01
    # Every probability 0.2 too high: off by 0.2 in every decile but the clipped top one.
    assert calibration_error(honest, np.clip(promised + 0.2, 0, 1)) == pytest.approx(0.18, abs=0.01)
    # Two customers, each alone in a group: half a point off each.
    assert calibration_error(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5


@pytest.mark.parametrize("rows", [800, 1500])  # sigmoid, then isotonic calibration
def test_the_churn_model_saves_and_loads_with_only_its_trusted_types(settings, rows):
    import mlflow

    registry.configure_tracking(settings)
    registry.use_experiment(settings, "churn_save_test")
    result = train_churn(_customers(rows), 30)
    X = result.holdout[list(MODEL_INPUTS)]
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            result.pipeline,
            name="model",
            pip_requirements=["scikit-learn"],
            skops_trusted_types=list(TRUSTED_TYPES),
        )
    loaded = mlflow.sklearn.load_model(info.model_uri)
    np.testing.assert_allclose(loaded.predict_proba(X), result.pipeline.predict_proba(X))


def test_churn_probabilities_are_calibrated():
    result = train_churn(_customers(1600, seed=5), 30)
    assert result.calibration == "isotonic"  # from 1,000 training rows
    holdout = result.holdout
    # Mean predicted churn matches the observed rate overall and in every fifth of the risk
    # ranking (expected calibration error over quintiles).
    assert holdout["probability"].mean() == pytest.approx(holdout[LABEL].mean(), abs=0.03)
    fifths = pd.qcut(holdout["probability"].rank(method="first"), 5, labels=False)
    gaps = holdout.groupby(fifths).apply(lambda g: abs(g["probability"].mean() - g[LABEL].mean()))
    assert (gaps * holdout.groupby(fifths).size() / len(holdout)).sum() < 0.05


def test_churn_model_refuses_a_single_class():
    frame = _customers(200).assign(**{LABEL: False})
    with pytest.raises(ValueError, match=r"churn train rows: 0 churned and \d+ retained"):
        train_churn(frame, 30)


def test_bgnbd_p_alive_follows_the_purchase_history():
    frame = _customers(400)
    model = fit_bgnbd(frame)
    probe = pd.DataFrame(
        {"x": [0.0, 5.0, 5.0, 5.0], "t_x": [0.0, 10.0, 6.0, 2.0], "T": [12.0, 12.0, 12.0, 12.0]}
    )
    alive = p_alive(model, probe)
    assert alive[0] == 1.0  # nobody drops out before a repeat purchase
    assert alive[1] > alive[2] > alive[3]  # the longer the silence, the likelier gone
    quiet = p_no_purchase(model, probe, 30)
    assert ((quiet >= 0) & (quiet <= 1)).all() and quiet[3] > quiet[1]
    with pytest.raises(ValueError, match="expected x >= 0, 0 <= t_x <= T"):
        p_alive(model, pd.DataFrame({"x": [1.0], "t_x": [5.0], "T": [3.0]}))


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """The CDNOW sample of both papers: 2,357 customers of their first quarter of 1997, with
    ``x``, ``t_x`` and ``T`` in weeks over the 39-week calibration period and ``m_x`` the
    average value of the repeat transactions, as the ``lifetimes`` wheel ships it (read as a
    file: the package's own code is not used)."""
    name = "lifetimes/datasets/cdnow_customers_summary_with_transactions.csv"
    path = importlib.metadata.distribution("lifetimes").locate_file(name)
    return pd.read_csv(path).rename(columns={"zbar": "m_x"})


def _significant(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


def test_bgnbd_fit_reproduces_the_published_cdnow_parameters(cdnow):
    """Fader, Hardie and Lee (2005), "Counting your customers the easy way", table 1."""
    assert len(cdnow) == 2357
    model = fit_bgnbd(cdnow)
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    fitted = {name: getattr(model, name) for name in published}
    assert {k: _significant(v) for k, v in fitted.items()} == {
        k: _significant(v) for k, v in published.items()
    }
    assert round(bgnbd_log_likelihood(model, cdnow), 1) == -9582.4
    # The paper's worked example: x = 2, t_x = 30.43, T = 38.86 expects 1.226 purchases in
    # the next 39 weeks.
    example = pd.DataFrame({"x": [2.0], "t_x": [30.43], "T": [38.86]})
    assert expected_purchases(model, example, 39 * 7)[0] == pytest.approx(1.226, abs=5e-4)


def test_gamma_gamma_fit_reproduces_the_published_cdnow_parameters(cdnow):
    """Fader, Hardie and Lee (2005), "RFM and CLV": p = 6.25, q = 3.74, gamma = 15.44 on the
    946 repeat buyers, whose spend is nearly independent of their frequency (r = 0.11)."""
    model = fit_gamma_gamma(cdnow)
    fitted = (model.p, model.q, model.gamma)
    assert [_significant(v) for v in fitted] == [_significant(v) for v in (6.25, 3.74, 15.44)]
    assert gamma_gamma_log_likelihood(model, cdnow) > gamma_gamma_log_likelihood(
        GammaGamma(6.0, 4.0, 15.0), cdnow
    )
    assert round(spend_frequency_correlation(cdnow), 2) == 0.11
    # A repeat buyer's expected value is their own average shrunk towards the mean; a customer
    # with no repeat purchase gets the mean, p * gamma / (q - 1).
    spend = expected_spend(model, cdnow.head(3))
    assert spend == pytest.approx([24.66, 18.91, 35.17], abs=0.01)
    assert model.mean_spend() == pytest.approx(spend[2])


def test_expected_value_is_purchases_times_spend_and_refuses_a_repeat_buyer_without_spend(cdnow):
    purchases, spend = fit_bgnbd(cdnow), fit_gamma_gamma(cdnow)
    value = expected_value(purchases, spend, cdnow, 365)
    assert value == pytest.approx(
        expected_purchases(purchases, cdnow, 365) * expected_spend(spend, cdnow)
    )
    assert (value > 0).all()
    # More purchases at the same recency and spend: more expected purchases and more value.
    same = pd.DataFrame({"x": [1.0, 4.0], "t_x": [30.0, 30.0], "T": [38.86, 38.86]})
    assert np.diff(expected_purchases(BgNbd(0.243, 4.414, 0.793, 2.426), same, 365)) > 0
    refused = cdnow.head(2).assign(m_x=[0.0, 11.77])
    for step in (fit_gamma_gamma, lambda frame: expected_spend(spend, frame)):
        with pytest.raises(ValueError, match=r"\{'x': 2.0, 'm_x': 0.0\}: expected a positive"):
            step(refused)


def test_the_value_model_counts_the_repeat_buyers_it_cannot_use_and_values_them_at_the_mean(
    cdnow,
):
    history = cdnow.assign(m_x=cdnow["m_x"].where(cdnow["x"] > 0))  # null with no repeat day
    free = history.index[history["x"] > 0][:3]
    history.loc[free, "m_x"] = [0.0, -5.0, 0.0]  # repeat days worth nothing, or returns
    model = fit_value_model(history)
    assert (model.customers, model.repeat_buyers, model.excluded_repeat_buyers) == (2357, 946, 3)
    assert model.spend == fit_gamma_gamma(history.drop(free))  # fitted without them
    churn = np.linspace(0.0, 1.0, len(history))
    value = customer_value(model, history, churn)
    assert list(value.columns) == list(VALUE_COLUMNS)
    assert value["expected_purchases_365d"].to_numpy() == pytest.approx(
        expected_purchases(model.purchases, history, 365)
    )
    assert value.loc[free, "expected_value_365d"].to_numpy() == pytest.approx(
        value.loc[free, "expected_purchases_365d"].to_numpy() * model.spend.mean_spend()
    )
    assert value["value_at_risk"].to_numpy() == pytest.approx(value["expected_value_365d"] * churn)
    assert value["expected_value_365d"].gt(0).all()
    assert customer_value(model, history.head(2))["value_at_risk"].isna().all()


def test_a_churn_versions_value_model_tag_round_trips_or_says_why_there_is_none(cdnow):
    model = fit_value_model(cdnow)
    assert from_tag(model.to_json()) == (model, "fitted")
    assert model.params()["gamma_gamma_p"] == round(model.spend.p, 6)
    few = cdnow[cdnow["x"] == 0].head(20).pipe(lambda f: pd.concat([f, cdnow[cdnow.x > 0].head(3)]))
    with pytest.raises(ValueError, match="Gamma-Gamma fit on 3 customers with a repeat purchase"):
        fit_value_model(few)
    assert from_tag(unfitted_tag("too few")) == (
        None,
        "the churn version's value model was not fitted: too few",
    )
    assert from_tag(None)[0] is None and "carries no value model" in from_tag(None)[1]
    assert ValueModel.from_json(model.to_json()).spend == model.spend


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


@pytest.mark.parametrize(
    "recency, spend, names",
    [
        (
            [90, 95, 5],
            [10, 50, 30],
            ["low-value lapsing", "high-value lapsing", "omni-channel loyal"],
        ),
        (
            [5, 5, 5],
            [10, 50, 30],
            [
                "low-value omni-channel loyal",
                "high-value omni-channel loyal",
                "mid-value omni-channel loyal",
            ],
        ),
        (
            [5] * 6,
            [60, 50, 40, 30, 20, 10],
            [
                "top-value omni-channel loyal",
                "high-value omni-channel loyal",
                "upper-mid-value omni-channel loyal",
                "lower-mid-value omni-channel loyal",
                "low-value omni-channel loyal",
                "lowest-value omni-channel loyal",
            ],
        ),
    ],
)
def test_segments_of_one_name_are_told_apart_by_value_and_every_name_is_unique(
    recency, spend, names
):
    profiles = pd.DataFrame(
        {
            "recency_days": recency,
            "online_share_365d": 0.5,
            "searches_30d": 0,
            "sessions_30d": 0,
            "discount_share_365d": 0.0,
            "monetary_365d": spend,
        },
        index=range(1, len(spend) + 1),
    )
    got = name_segments(profiles)
    assert got == dict(enumerate(names, start=1))
    assert not any(name[-1].isdigit() for name in got.values())


def test_a_small_shop_gets_fewer_segments_and_too_few_buyers_a_clear_error():
    frame = _customers(300)[list(SEGMENT_FEATURES)]
    result = train_segmentation(frame.head(29), k_range=range(3, 7))
    assert result.k in (3, 4, 5) and set(result.silhouettes) == {3, 4, 5}
    with pytest.raises(ValueError, match="14 customers to segment: expected at least 15"):
        train_segmentation(frame.head(14), k_range=range(3, 7))


def test_segmentation_picks_k_in_range_and_names_every_segment():
    frame = _customers(300)[list(SEGMENT_FEATURES)]
    result = train_segmentation(frame, k_range=range(3, 5))
    assert result.k in (3, 4)
    # Id 0 is the no-purchase segment's: k-means segments are numbered from 1.
    assert set(result.names) == set(result.segment_ids.values()) == set(range(1, result.k + 1))
    assert set(result.pipeline.predict(frame)) == set(range(result.k))
    assert result.stability is None  # no champion to keep a segment of


def test_every_segment_has_a_one_line_description_of_its_centroid():
    frame = _customers(300)[list(SEGMENT_FEATURES)]
    result = train_segmentation(frame, k_range=range(3, 5))
    assert set(result.descriptions) == set(result.names)
    assert len(set(result.descriptions.values())) == len(result.descriptions)
    shares = []
    for segment, text in result.descriptions.items():
        profile = result.profiles.loc[segment]
        assert "\n" not in text and text.endswith(".")
        assert f"last purchase {profile['recency_days']:.0f} days ago" in text, text
        assert f"{profile['monetary_365d']:.0f} net spend in a year" in text, text
        shares.append(int(text.split("%")[0]))
    assert sum(shares) == pytest.approx(100, abs=len(shares))  # rounded shares of all buyers


def _register(settings, name: str) -> str:
    import mlflow

    registry.use_experiment(settings, name)
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = DummyClassifier(strategy="prior").fit(X, [0, 1, 0, 1])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=name, pip_requirements=["scikit-learn"]
        )
    return str(info.registered_model_version)


def _aliases(client, model):
    return {
        alias: str(client.get_model_version_by_alias(model, alias).version)
        for alias in (registry.CHAMPION, registry.CHALLENGER)
    }


def test_promotion_needs_a_better_score_on_the_same_data_and_passed_gates(settings):
    client = registry.configure_tracking(settings)
    model = "promotion_test_model"
    # Each version's score on "the same data" (what the champion is re-scored with).
    scores: dict[str, float] = {}

    def promote(version, value, gates=PASSED):
        scores[version] = value
        return registry.promote_if_better(
            client,
            model,
            version,
            "roc_auc",
            value,
            lambda champion: scores[str(champion.version)],
            gates_passed=gates.passed,
            gates_reason=gates.reason,
            margin=0.01,
        )

    first = _register(settings, model)
    assert promote(first, 0.70).promoted
    worse = _register(settings, model)
    decision = promote(worse, 0.705)  # better, but not by the margin
    assert not decision.promoted and decision.champion_value == pytest.approx(0.70)
    assert _aliases(client, model) == {registry.CHAMPION: first, registry.CHALLENGER: worse}
    failed_gate = _register(settings, model)
    decision = promote(failed_gate, 0.95, GateStatus(False, "blocking failures on gold"))
    assert not decision.promoted and "blocking failures on gold" in decision.reason
    assert _aliases(client, model)[registry.CHAMPION] == first
    better = _register(settings, model)
    decision = promote(better, 0.80)
    assert decision.promoted and decision.champion_version == first
    assert _aliases(client, model) == {registry.CHAMPION: better, registry.CHALLENGER: better}
    # The decision stays with each version.
    tags = client.get_model_version(model, worse).tags
    assert tags["promotion_decision"].startswith("kept the champion: roc_auc 0.7050")
    assert decision.metrics() == {"promoted": 1.0, "champion_roc_auc": pytest.approx(0.70)}


def test_segment_ids_stay_with_the_same_customers_across_retrains():
    frame = _customers(600, seed=9)[list(SEGMENT_FEATURES)]
    first = train_segmentation(frame, k_range=range(4, 5), seed=1)
    labels = first.pipeline.predict(frame[list(SEGMENT_FEATURES)])
    previous = np.array([first.segment_ids[int(label)] for label in labels])
    # A retrain on the next day's data (slightly moved) with another seed: k-means numbers
    # its clusters differently, the matching gives the champion's ids back.
    moved = frame * np.random.default_rng(2).normal(1.0, 0.02, frame.shape)
    second = train_segmentation(moved, k_range=range(4, 5), seed=99, previous=previous)
    relabelled = np.array(
        [second.segment_ids[int(x)] for x in second.pipeline.predict(moved[list(SEGMENT_FEATURES)])]
    )
    assert (relabelled == previous).mean() > 0.9
    assert second.stability == pytest.approx((relabelled == previous).mean())
    # A night with no new data: the retrain keeps every customer in the champion's segment.
    same = train_segmentation(frame, k_range=range(4, 5), seed=1, previous=previous)
    assert same.stability == 1.0
    assert set(second.names) == set(second.segment_ids.values()) == set(previous)
    assert second.champion_silhouette == pytest.approx(second.silhouette, abs=0.05)
    # More segments than the champion: the new one gets an id the champion never used.
    third = train_segmentation(moved, k_range=range(5, 6), seed=3, previous=previous)
    assert sorted(third.segment_ids.values()) == [*sorted(set(previous)), max(previous) + 1]


def test_a_champion_that_cannot_be_evaluated_is_never_replaced_for_it(settings):
    client = registry.configure_tracking(settings)
    model = "unevaluated_champion_model"
    champion = _register(settings, model)
    registry.promote_if_better(
        client, model, champion, "roc_auc", 0.7, float, gates_passed=True, gates_reason="", margin=0
    )
    challenger = _register(settings, model)

    def cannot_score(_):
        raise KeyError("recency_days")

    with pytest.raises(registry.ChampionNotEvaluatedError, match=f"champion v{champion} could not"):
        registry.promote_if_better(
            client,
            model,
            challenger,
            "roc_auc",
            0.99,
            cannot_score,
            gates_passed=True,
            gates_reason="",
            margin=0,
        )
    assert _aliases(client, model) == {registry.CHAMPION: champion, registry.CHALLENGER: challenger}
    tags = client.get_model_version(model, challenger).tags
    assert "promotion_decision" not in tags and "KeyError" in tags["promotion_blocked"]


def test_a_retried_training_registers_no_second_version_for_its_run(settings):
    import mlflow

    from models.train import once_per_run

    client = registry.configure_tracking(settings)
    model, day = "retried_training_model", date(2026, 6, 30)
    trained = []

    def train(decide=True):
        registry.use_experiment(settings, model)
        with mlflow.start_run(tags={"pipeline_run_id": "night-1", "as_of_date": str(day)}):
            version = _register_in_run(model)
        trained.append(version)
        if not decide:
            raise RuntimeError("killed before the promotion decision")
        decision = registry.promote_if_better(
            client, model, version, "m", 1.0, float, gates_passed=True, gates_reason="", margin=0
        )
        return {"version": version, "promoted": decision.promoted}

    with pytest.raises(RuntimeError, match="killed"):
        once_per_run(client, model, "night-1", day, lambda: train(decide=False))
    first = once_per_run(client, model, "night-1", day, train)
    again = once_per_run(client, model, "night-1", day, train)
    assert again == {
        "version": first["version"],
        "promoted": True,
        "decision": "promoted: no champion yet, the first version becomes champion",
        "reused": True,
    }
    assert len(trained) == 2  # the killed try's version, then one that was decided
    versions = registry.versions_of_run(client, model, "night-1", day)
    assert [str(v.version) for v in versions] == [first["version"]]
    assert registry.versions_of_run(client, model, "night-2", day) == []


def _register_in_run(name: str) -> str:
    import mlflow

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = DummyClassifier(strategy="prior").fit(X, [0, 1, 0, 1])
    info = mlflow.sklearn.log_model(
        model, name="model", registered_model_name=name, pip_requirements=["scikit-learn"]
    )
    return str(info.registered_model_version)
