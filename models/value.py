"""Customer value: BG/NBD purchases times Gamma-Gamma spend, fitted on every buyer's history.

``fit_value_model`` fits both models on one row per buyer (``models.features.purchase_history``
as of the training date) and keeps what a reviewer checks: the spend model's assumption (its
spend independent of frequency, as a correlation) and how many repeat buyers it could not use
(no positive average value: every repeat line free, say), which are counted, never dropped
silently. ``customer_value`` turns the fitted model into the serving columns
``expected_purchases_365d``, ``expected_value_365d`` and, with a churn probability,
``value_at_risk``.

The value model is part of the churn model's registered version, not a model of its own: value
at risk multiplies the two, so one version (the ``churn_model`` of every score row) says which
fits made a row, and the champion changes both at once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from models.baseline import (
    BgNbd,
    GammaGamma,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    spend_frequency_correlation,
)

VALUE_HORIZON_DAYS = 365
# The churn model version's tag that holds its value model (``ValueModel.to_json``).
VALUE_MODEL_TAG = "value_model"
VALUE_COLUMNS = ("expected_purchases_365d", "expected_value_365d", "value_at_risk")


@dataclass(frozen=True)
class ValueModel:
    purchases: BgNbd
    spend: GammaGamma
    spend_frequency_correlation: float
    customers: int
    repeat_buyers: int
    excluded_repeat_buyers: int  # repeat buyers without a positive average value

    def params(self) -> dict[str, float | int]:
        return {
            **{f"value_{k}": v for k, v in self.purchases.params().items()},
            **self.spend.params(),
            "value_customers": self.customers,
            "value_repeat_buyers": self.repeat_buyers,
            "value_excluded_repeat_buyers": self.excluded_repeat_buyers,
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ValueModel:
        fields = json.loads(text)
        return cls(
            purchases=BgNbd(**fields.pop("purchases")),
            spend=GammaGamma(**fields.pop("spend")),
            **fields,
        )


def unfitted_tag(reason: str) -> str:
    """The version tag of a churn model whose value model could not be fitted."""
    return json.dumps({"unfitted": reason})


def from_tag(text: str | None) -> tuple[ValueModel | None, str]:
    """The value model a churn version carries, or None and why not."""
    if text is None:
        return None, "the churn version carries no value model (trained before value columns)"
    fields = json.loads(text)
    if "unfitted" in fields:
        return None, f"the churn version's value model was not fitted: {fields['unfitted']}"
    return ValueModel.from_json(text), "fitted"


def _spend_usable(history: pd.DataFrame) -> pd.Series:
    """Repeat buyers whose average value the spend model can use."""
    return (history["x"] > 0) & (history["m_x"].fillna(0) > 0)


def fit_value_model(history: pd.DataFrame) -> ValueModel:
    """Both fits on one row per buyer with ``x``, ``t_x``, ``T`` (weeks) and ``m_x``."""
    repeat = history["x"] > 0
    usable = _spend_usable(history)
    spenders = history[usable]
    return ValueModel(
        purchases=fit_bgnbd(history),
        spend=fit_gamma_gamma(spenders),
        spend_frequency_correlation=spend_frequency_correlation(spenders),
        customers=len(history),
        repeat_buyers=int(repeat.sum()),
        excluded_repeat_buyers=int((repeat & ~usable).sum()),
    )


def customer_value(
    model: ValueModel, history: pd.DataFrame, churn_probability=None
) -> pd.DataFrame:
    """The value columns per row of ``history``. A repeat buyer the spend model could not use
    is valued at the population's mean spend, as a customer with no repeat purchase is."""
    usable = _spend_usable(history)
    spend_input = history.assign(
        x=np.where(usable, history["x"], 0.0), m_x=history["m_x"].where(usable)
    )
    purchases = expected_purchases(model.purchases, history, VALUE_HORIZON_DAYS)
    value = purchases * expected_spend(model.spend, spend_input)
    at_risk = (
        np.full(len(history), np.nan)
        if churn_probability is None
        else value * np.asarray(churn_probability, dtype=float)
    )
    return pd.DataFrame(
        dict(zip(VALUE_COLUMNS, (purchases, value, at_risk), strict=True)), index=history.index
    )
