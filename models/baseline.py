"""BG/NBD baseline for churn: P(alive) and the chance of no purchase in the horizon.

The beta-geometric / negative-binomial model (Fader, Hardie and Lee, 2005) describes each
customer by three numbers from the purchase history up to the cut-off, in weeks:

- ``x``: repeat purchase days (distinct purchase days minus one),
- ``t_x``: the time of the last purchase since the first,
- ``T``: the time from the first purchase to the cut-off.

While alive, a customer buys at a Poisson rate (gamma-distributed across customers, ``r`` and
``alpha``); after each purchase they drop out with a probability (beta-distributed, ``a`` and
``b``). The four parameters are fitted by maximum likelihood with scipy; no labels are used.

The churn baseline is the probability of no purchase in the next ``H`` days:
``1 - P(alive) + P(alive) * ((alpha + T) / (alpha + T + H)) ** (r + x)``: a customer who is
still alive makes no purchase in ``H`` with the gamma posterior's chance, and nobody drops out
without buying first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln

WEEK = 7.0
RFM_COLUMNS = ("x", "t_x", "T")


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def params(self) -> dict[str, float]:
        return {f"bgnbd_{k}": round(v, 6) for k, v in asdict(self).items()}


def _check(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in RFM_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"BG/NBD needs columns {list(RFM_COLUMNS)}; missing {missing}")
    x, t_x, T = (frame[c].to_numpy(dtype=float) for c in RFM_COLUMNS)
    bad = (x < 0) | (t_x < 0) | (T < t_x) | ((x == 0) & (t_x > 0))
    if bad.any():
        row = frame[list(RFM_COLUMNS)].iloc[int(np.argmax(bad))].to_dict()
        raise ValueError(f"BG/NBD input {row}: expected x >= 0, 0 <= t_x <= T, t_x = 0 when x = 0")
    return x, t_x, T


def _log_likelihood(params: np.ndarray, x, t_x, T) -> np.ndarray:
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    survived = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = np.where(
            x > 0,
            betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return common + np.logaddexp(survived, dropped)


def fit_bgnbd(frame: pd.DataFrame) -> BgNbd:
    """Maximum-likelihood fit on one row per customer with ``x``, ``t_x`` and ``T`` in weeks."""
    x, t_x, T = _check(frame)
    if len(x) < 10 or T.max() <= 0:
        raise ValueError(
            f"BG/NBD fit on {len(x)} customers with at most {T.max() if len(T) else 0:.1f} weeks "
            "of history: expected at least 10 customers and some history"
        )

    def loss(log_params: np.ndarray) -> float:
        return -float(np.sum(_log_likelihood(np.exp(log_params), x, t_x, T))) / len(x)

    start = np.log([1.0, max(float(T.mean()), 1.0), 1.0, 1.0])
    best = minimize(loss, start, method="L-BFGS-B", bounds=[(-8.0, 8.0)] * 4)
    if not np.isfinite(best.fun):
        raise ValueError(f"BG/NBD fit did not converge: {best.message}")
    return BgNbd(*(float(v) for v in np.exp(best.x)))


def p_alive(model: BgNbd, frame: pd.DataFrame) -> np.ndarray:
    x, t_x, T = _check(frame)
    ratio = np.where(
        x > 0,
        model.a
        / (model.b + np.maximum(x, 1) - 1)
        * ((model.alpha + T) / (model.alpha + t_x)) ** (model.r + x),
        0.0,
    )
    return 1.0 / (1.0 + ratio)


def p_no_purchase(model: BgNbd, frame: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Chance of no purchase in the next ``horizon_days``: the baseline's churn probability."""
    x, _, T = _check(frame)
    alive = p_alive(model, frame)
    horizon = horizon_days / WEEK
    quiet_if_alive = ((model.alpha + T) / (model.alpha + T + horizon)) ** (model.r + x)
    return 1.0 - alive + alive * quiet_if_alive
