"""The figures logged with each training run, for people to look at in the MLflow UI.

Churn: ROC and precision-recall curves and the lift by decile (model and BG/NBD baseline on
the same holdout), a reliability diagram of the calibrated probabilities, and permutation
feature importance. Segmentation: each segment's profile against the population.
Recommendations: recall of the held-out purchases per method and channel mix.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display in jobs and tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

MODEL, BASELINE = "gradient boosting (calibrated)", "BG/NBD baseline"


def _figure(title: str, size=(6.0, 4.5)) -> tuple[Figure, plt.Axes]:
    figure, axes = plt.subplots(figsize=size, layout="constrained")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    return figure, axes


def _scores(holdout: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    return [(MODEL, holdout["probability"]), (BASELINE, holdout["baseline_probability"])]


def roc(holdout: pd.DataFrame, label: str, metrics: dict, baseline: dict) -> Figure:
    figure, axes = _figure("ROC on the holdout")
    for (name, score), auc in zip(_scores(holdout), (metrics, baseline), strict=True):
        fpr, tpr, _ = roc_curve(holdout[label], score)
        axes.plot(fpr, tpr, label=f"{name} (AUC {auc['roc_auc']:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate")
    axes.legend(loc="lower right")
    return figure


def precision_recall(holdout: pd.DataFrame, label: str, metrics: dict, baseline: dict) -> Figure:
    figure, axes = _figure("Precision-recall on the holdout")
    for (name, score), auc in zip(_scores(holdout), (metrics, baseline), strict=True):
        precision, recall, _ = precision_recall_curve(holdout[label], score)
        axes.plot(recall, precision, label=f"{name} (AP {auc['pr_auc']:.3f})")
    axes.axhline(holdout[label].mean(), linestyle="--", color="grey", label="churn rate")
    axes.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    axes.legend(loc="lower left")
    return figure


def calibration(holdout: pd.DataFrame, label: str) -> Figure:
    figure, axes = _figure("Calibration: predicted vs observed churn")
    bins = max(3, min(10, len(holdout) // 40))
    for name, score in _scores(holdout):
        observed, predicted = calibration_curve(holdout[label], score, n_bins=bins)
        axes.plot(predicted, observed, marker="o", label=name)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    axes.set(xlabel="predicted probability", ylabel="observed churn rate", xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="upper left")
    return figure


def lift(holdout: pd.DataFrame, label: str) -> Figure:
    figure, axes = _figure("Lift by decile (1 = the 10% most at risk)")
    deciles = np.arange(1, 11)
    base = holdout[label].mean()
    width = 0.4
    for offset, (name, score) in zip((-width / 2, width / 2), _scores(holdout), strict=True):
        ranked = holdout[label].to_numpy()[np.argsort(-np.asarray(score), kind="stable")]
        rates = [chunk.mean() / base if len(chunk) else 0 for chunk in np.array_split(ranked, 10)]
        axes.bar(deciles + offset, rates, width=width, label=name)
    axes.axhline(1, linestyle="--", color="grey")
    axes.set(xlabel="decile of predicted risk", ylabel="churn rate / average", xticks=deciles)
    axes.legend()
    return figure


def importance(values: pd.Series) -> Figure:
    top = values.head(15).iloc[::-1]
    figure, axes = _figure("Permutation importance (ROC-AUC drop on the holdout)", (6.5, 5.0))
    axes.barh(top.index, top.to_numpy())
    axes.set(xlabel="mean drop in ROC-AUC when the feature is shuffled")
    return figure


def segment_profiles(profiles: pd.DataFrame, names: dict[int, str], population: pd.DataFrame):
    """Heat map of each segment's mean, in standard deviations from the population mean."""
    features = [c for c in profiles.columns if c != "customers"]
    spread = population[features].std().replace(0, 1)
    z = (profiles[features] - population[features].mean()) / spread
    figure, axes = plt.subplots(
        figsize=(1.1 * len(features) + 3, 0.6 * len(profiles) + 2), layout="constrained"
    )
    image = axes.imshow(z.to_numpy(), cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    axes.set_xticks(range(len(features)), features, rotation=35, ha="right")
    axes.set_yticks(
        range(len(profiles)),
        [
            f"{segment}: {names.get(int(segment), '?')} ({int(profiles.loc[segment, 'customers'])})"
            for segment in profiles.index
        ],
    )
    for (row, column), value in np.ndenumerate(profiles[features].to_numpy()):
        axes.text(column, row, f"{value:.3g}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axes, label="standard deviations from the mean")
    axes.set_title("Segment profiles: mean of each feature (colour: vs all customers)")
    return figure


def recommendation_recall(rows: list[dict], top: int) -> Figure:
    """Recall@top of each method per channel mix (``models.recommend.holdout_evaluation``)."""
    frame = pd.DataFrame(rows)
    table = frame.pivot(index="channel_mix", columns="method", values="recall")
    customers = frame.drop_duplicates("channel_mix").set_index("channel_mix")["customers"]
    figure, axes = _figure(f"Recall@{top} of the held-out purchases", size=(7.0, 4.5))
    width = 0.8 / len(table.columns)
    for i, method in enumerate(table.columns):
        axes.bar(np.arange(len(table)) + i * width, table[method], width, label=method)
    axes.set_xticks(
        np.arange(len(table)) + width * (len(table.columns) - 1) / 2,
        [f"{mix}\n({customers[mix]} customers)" for mix in table.index],
    )
    axes.set_ylabel(f"recall@{top}")
    axes.legend()
    return figure


# ---------------------------------------------------------------- campaigns (models/readout.py)
GROUP_COLOURS = {"treatment": "tab:blue", "control": "tab:grey"}


def uplift_by_segment(rows: list[dict]) -> Figure:
    """One campaign's absolute uplift of the conversion rate per segment (``all`` first), with
    its 95% interval; a segment too small to say is drawn hollow, with no interval."""
    ordered = sorted(rows, key=lambda r: (r["segment_name"] != "all", r["segment_name"]))
    figure, axes = _figure(
        f"{ordered[0]['campaign_id']}: uplift of the conversion rate (95% interval)",
        size=(7.0, 1.2 + 0.5 * len(ordered)),
    )
    for y, row in enumerate(ordered):
        value = row["uplift_abs"] or 0.0
        if row["too_small"]:
            axes.plot([value], [y], "o", mfc="none", color="tab:grey")
            continue
        low, high = row["uplift_abs_low"], row["uplift_abs_high"]
        colour = "tab:green" if row["significant"] else "tab:blue"
        axes.errorbar([value], [y], xerr=[[value - low], [high - value]], fmt="o", color=colour)
    axes.axvline(0, color="black", lw=0.8)
    axes.set_yticks(
        range(len(ordered)),
        [
            f"{r['segment_name']} ({r['customers_treatment']}/{r['customers_control']})"
            + (" too small" if r["too_small"] else "")
            for r in ordered
        ],
    )
    axes.invert_yaxis()
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("treatment - control conversion rate (green: p < 0.05)")
    return figure


def conversion_curves(curves: pd.DataFrame, title: str, window_days: int) -> Figure:
    """Cumulative conversion rate of each group by days since assignment (``curves``: columns
    ``treatment_group``, ``day`` and ``rate``)."""
    figure, axes = _figure(f"{title}: customers converted, by days since assignment")
    for group, part in curves.groupby("treatment_group"):
        part = part.sort_values("day")
        axes.step(
            part["day"], part["rate"], where="post", label=group, color=GROUP_COLOURS.get(group)
        )
    axes.set_xlim(0, window_days)
    axes.set_xlabel("days after the assignment night")
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.legend()
    return figure


def engagement_funnel(row: dict, steps: tuple[str, ...]) -> Figure:
    """The treatment group's engagement as the providers report it: the share of the group
    at each of ``steps`` (``<step>_rate`` of the readout row), the last one in red."""
    figure, axes = _figure(
        f"{row['campaign_id']}: the treatment group's messages "
        f"({row['customers_treatment']} customers)"
    )
    shares = [row[f"{step}_rate"] or 0.0 for step in steps]
    bars = axes.bar(steps, shares, color=["tab:blue"] * (len(steps) - 1) + ["tab:red"])
    axes.bar_label(bars, [f"{share:.1%}" for share in shares])
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylim(0, 1.1)
    return figure
