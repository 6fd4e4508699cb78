"""Churn classifier: gradient-boosted trees on point-in-time features, scored on a holdout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from models.features import CHURN_FEATURES, LABEL


@dataclass
class ChurnResult:
    pipeline: Pipeline
    metrics: dict[str, float]
    train_rows: int
    holdout_rows: int
    churn_rate: float


def build_pipeline(seed: int) -> Pipeline:
    return Pipeline(
        [
            (
                "model",
                HistGradientBoostingClassifier(
                    max_iter=200,
                    learning_rate=0.05,
                    max_leaf_nodes=15,
                    l2_regularization=1.0,
                    random_state=seed,
                ),
            ),
        ]
    )


def lift_at_top_decile(y_true: np.ndarray, scores: np.ndarray) -> float:
    top = max(1, len(scores) // 10)
    order = np.argsort(-scores)[:top]
    base = y_true.mean()
    return float(y_true[order].mean() / base) if base > 0 else float("nan")


def train_churn(frame: pd.DataFrame, seed: int = 7, holdout: float = 0.25) -> ChurnResult:
    """Fit on a stratified split and report ROC-AUC, PR-AUC, Brier score and top-decile lift."""
    y = frame[LABEL].astype(int).to_numpy()
    if len(np.unique(y)) < 2:
        raise ValueError(
            f"churn labels are all {y[0] if len(y) else 'missing'} over {len(y)} customers: "
            "expected both churned and retained customers (is the history longer than the horizon?)"
        )
    X = frame[list(CHURN_FEATURES)].astype(float)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=holdout, stratify=y, random_state=seed
    )
    pipeline = build_pipeline(seed).fit(X_train, y_train)
    probabilities = pipeline.predict_proba(X_test)[:, 1]
    metrics = {
        "roc_auc": float(roc_auc_score(y_test, probabilities)),
        "pr_auc": float(average_precision_score(y_test, probabilities)),
        "brier": float(brier_score_loss(y_test, probabilities)),
        "lift_top_decile": lift_at_top_decile(y_test, probabilities),
    }
    return ChurnResult(pipeline, metrics, len(X_train), len(X_test), float(y.mean()))
