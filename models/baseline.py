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
without buying first. The expected number of purchases in the next ``t`` weeks is the paper's
equation (10), with the Gaussian hypergeometric function.

The spend model is Gamma-Gamma (Fader, Hardie and Lee, "RFM and CLV", 2005): the value of a
customer's transactions varies around their own mean (gamma, shape ``p``), and those means vary
across customers (gamma, ``q`` and ``gamma``). It is fitted on repeat buyers' ``x`` and their
average transaction value ``m_x``, and assumes the spend independent of the purchase frequency:
``spend_frequency_correlation`` is the check. Its conditional expectation of a customer's
average value, times the expected purchases, is the expected value of the horizon.

Both fits reproduce the published parameters on the CDNOW sample (tests/test_models.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

WEEK = 7.0
RFM_COLUMNS = ("x", "t_x", "T")
SPEND_COLUMNS = ("x", "m_x")
MIN_CUSTOMERS = 10


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def params(self) -> dict[str, float]:
        return {f"bgnbd_{k}": round(v, 6) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float

    def params(self) -> dict[str, float]:
        return {f"gamma_gamma_{k}": round(v, 6) for k, v in asdict(self).items()}

    def mean_spend(self) -> float:
        """The population's mean transaction value, ``p * gamma / (q - 1)`` (finite for q > 1)."""
        if self.q <= 1:
            raise ValueError(f"Gamma-Gamma q = {self.q:.4g}: the mean spend needs q > 1")
        return self.p * self.gamma / (self.q - 1)


def _columns(frame: pd.DataFrame, model: str, columns: tuple[str, ...]) -> list[np.ndarray]:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{model} needs columns {list(columns)}; missing {missing}")
    return [frame[c].to_numpy(dtype=float) for c in columns]


def _refuse(frame: pd.DataFrame, model: str, columns, bad: np.ndarray, expected: str) -> None:
    if bad.any():
        row = frame[list(columns)].iloc[int(np.argmax(bad))].to_dict()
        raise ValueError(f"{model} input {row}: expected {expected}")


def _check(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, T = _columns(frame, "BG/NBD", RFM_COLUMNS)
    bad = ~np.isfinite(x + t_x + T) | (x < 0) | (t_x < 0) | (T < t_x) | ((x == 0) & (t_x > 0))
    _refuse(frame, "BG/NBD", RFM_COLUMNS, bad, "x >= 0, 0 <= t_x <= T, t_x = 0 when x = 0")
    return x, t_x, T


def _spend(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    x, m_x = _columns(frame, "Gamma-Gamma", SPEND_COLUMNS)
    repeat = x > 0
    _refuse(
        frame[repeat],
        "Gamma-Gamma",
        SPEND_COLUMNS,
        ~(m_x[repeat] > 0),
        "a positive average transaction value m_x for a repeat buyer (x > 0)",
    )
    return x, m_x


def _repeat_buyers(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    x, m_x = _spend(frame)
    return x[x > 0], m_x[x > 0]


def _enough(model: str, n: int, extra: str = "") -> None:
    if n < MIN_CUSTOMERS:
        raise ValueError(f"{model} fit on {n} customers{extra}: expected at least {MIN_CUSTOMERS}")


def _fit(loss, start: list[float], model: str) -> np.ndarray:
    """Minimise ``loss`` over the logarithms of the parameters: every parameter is positive."""
    best = minimize(loss, np.log(start), method="L-BFGS-B", bounds=[(-8.0, 8.0)] * len(start))
    if not np.isfinite(best.fun):
        raise ValueError(f"{model} fit did not converge: {best.message}")
    return np.exp(best.x)


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
    _enough("BG/NBD", len(x))
    if T.max() <= 0:
        raise ValueError(f"BG/NBD fit on {len(x)} customers with no history: expected some T > 0")

    def loss(log_params: np.ndarray) -> float:
        return -float(np.sum(_log_likelihood(np.exp(log_params), x, t_x, T))) / len(x)

    start = [1.0, max(float(T.mean()), 1.0), 1.0, 1.0]
    return BgNbd(*(float(v) for v in _fit(loss, start, "BG/NBD")))


def bgnbd_log_likelihood(model: BgNbd, frame: pd.DataFrame) -> float:
    """The sample's log-likelihood under ``model`` (the paper reports -9582.4 on CDNOW)."""
    x, t_x, T = _check(frame)
    params = np.array([model.r, model.alpha, model.a, model.b])
    return float(np.sum(_log_likelihood(params, x, t_x, T)))


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


def expected_purchases(model: BgNbd, frame: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """Expected purchases in the next ``horizon_days`` given each customer's history (the
    paper's equation 10)."""
    x, t_x, T = _check(frame)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    t = horizon_days / WEEK
    if a == 1:
        raise ValueError("BG/NBD a = 1: the expected purchases need a != 1")
    quiet = ((alpha + T) / (alpha + T + t)) ** (r + x)
    growth = 1.0 - quiet * hyp2f1(r + x, b + x, a + b + x - 1.0, t / (alpha + T + t))
    dropped = np.where(
        x > 0, a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0
    )
    return (a + b + x - 1.0) / (a - 1.0) * growth / (1.0 + dropped)


def _gamma_gamma_log_likelihood(params: np.ndarray, x, m_x) -> np.ndarray:
    p, q, gamma = params
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m_x)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * m_x)
    )


def fit_gamma_gamma(frame: pd.DataFrame) -> GammaGamma:
    """Maximum-likelihood fit on the repeat buyers (``x > 0``) of one row per customer with
    ``x`` and ``m_x``; customers with no repeat purchase carry no spend information."""
    x, m_x = _repeat_buyers(frame)
    _enough("Gamma-Gamma", len(x), " with a repeat purchase")

    def loss(log_params: np.ndarray) -> float:
        return -float(np.sum(_gamma_gamma_log_likelihood(np.exp(log_params), x, m_x))) / len(x)

    return GammaGamma(*(float(v) for v in _fit(loss, [1.0, 1.0, 1.0], "Gamma-Gamma")))


def gamma_gamma_log_likelihood(model: GammaGamma, frame: pd.DataFrame) -> float:
    x, m_x = _repeat_buyers(frame)
    return float(
        np.sum(_gamma_gamma_log_likelihood(np.array([model.p, model.q, model.gamma]), x, m_x))
    )


def spend_frequency_correlation(frame: pd.DataFrame) -> float:
    """Pearson correlation of repeat buyers' purchase count and average value: the Gamma-Gamma
    model assumes none (0.11 on CDNOW in the paper, which it judges small enough); NaN when
    either has a single value, where no correlation can be measured."""
    x, m_x = _repeat_buyers(frame)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(m_x) == 0:
        return float("nan")
    return float(np.corrcoef(x, m_x)[0, 1])


def expected_spend(model: GammaGamma, frame: pd.DataFrame) -> np.ndarray:
    """Each customer's expected average transaction value: the repeat buyers' own average shrunk
    towards the population's mean by the paper's weights; the mean for everyone else."""
    x, m_x = _spend(frame)
    mean = model.mean_spend()
    px = model.p * np.where(x > 0, x, 0.0)
    weight = px / (px + model.q - 1)
    own = np.where(x > 0, np.nan_to_num(m_x), 0.0)
    return (1 - weight) * mean + weight * own


def expected_value(
    purchases: BgNbd, spend: GammaGamma, frame: pd.DataFrame, horizon_days: float
) -> np.ndarray:
    """Expected value of the next ``horizon_days``: expected purchases times expected spend."""
    return expected_purchases(purchases, frame, horizon_days) * expected_spend(spend, frame)
