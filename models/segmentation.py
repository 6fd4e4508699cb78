"""Customer segmentation: k-means on scaled RFM and behaviour features, named by rule.

The number of segments is the k in a range with the best silhouette score on the training
data. Names come from each centroid's profile in original units, by the first rule that holds:

1. no purchase in the last 60 days on average (recency >= 60)        -> "lapsing"
2. at least 70% of spend online and more searches than sessions        -> "online browsers"
3. at least 70% of spend online                                        -> "online loyal"
4. at most 20% of spend online                                         -> "store regulars"
5. discounts at least 12% of gross spend                               -> "discount hunters"
6. otherwise                                                           -> "omni-channel loyal"

A name that several centroids share gets a value tier in front, by their net spend
("high-value store regulars", "low-value store regulars"; with three, "mid-value" between;
with more, "top-value", "high-value", ..., "lowest-value"), so every name is unique and says
what sets the segment apart.

Customers who never bought are not clustered: they have no purchase behaviour to describe and
would pull every centroid towards "lapsing". They form a segment of their own,
``NO_PURCHASE_SEGMENT`` with the reserved id ``NO_PURCHASE_SEGMENT_ID``, and k-means trains on
buyers only.

Segment ids are stable across retrains: the champion labels today's customers, and each new
segment takes the id of the champion segment whose profile is nearest (an optimal one-to-one
matching of the profiles in standard deviations of today's features). New segments with no
match get ids never used by the champion. The k-means label to id map travels with the model
version (tag ``segment_ids``); scoring applies it.

Each segment also gets a one-line description a marketer can read (``describe_segment``): its
share of the buyers and what its centroid says in the shop's units (days since the last
purchase, purchase days and net spend in a year, the online share, discounts). A retrain's
``stability`` is the share of today's buyers it leaves in the segment the champion gave them:
1.0 on a night with no new data, lower as the population moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.metrics import silhouette_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from models.features import SEGMENT_FEATURES

LOG_SCALED = ("frequency_365d", "monetary_365d", "searches_30d", "sessions_30d")
NO_PURCHASE_SEGMENT_ID = 0
NO_PURCHASE_SEGMENT = "no purchase yet"
# Value tiers that tell apart segments of one name, from the highest net spend down.
VALUE_TIERS = {
    2: ("high-value", "low-value"),
    3: ("high-value", "mid-value", "low-value"),
}
MANY_TIERS = ("top-value", "high-value", "upper-mid-value", "lower-mid-value", "low-value")


@dataclass
class SegmentationResult:
    pipeline: Pipeline
    k: int
    silhouette: float
    silhouettes: dict[int, float]
    names: dict[int, str]  # by stable segment id
    profiles: pd.DataFrame  # by stable segment id, original units, with a customers column
    segment_ids: dict[int, int]  # k-means label -> stable segment id
    champion_silhouette: float | None = None  # the champion's labels, same data and space
    stability: float | None = None  # share of rows keeping the champion's segment id

    @property
    def descriptions(self) -> dict[int, str]:
        """One line per segment, by stable segment id (``describe_segments``)."""
        return describe_segments(self.profiles)


def build_pipeline(k: int, seed: int) -> Pipeline:
    # arcsinh: a log-like squash of skewed counts and money that also accepts negative net spend.
    squash = ColumnTransformer(
        [("log", FunctionTransformer(np.arcsinh), list(LOG_SCALED))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    return Pipeline(
        [
            ("log", squash),
            ("scale", StandardScaler()),
            ("kmeans", KMeans(n_clusters=k, n_init=10, random_state=seed)),
        ]
    )


def name_segment(profile: pd.Series) -> str:
    """The documented naming rule for one centroid profile (original units)."""
    if profile["recency_days"] >= 60:
        return "lapsing"
    if profile["online_share_365d"] >= 0.7:
        if profile["searches_30d"] > profile["sessions_30d"]:
            return "online browsers"
        return "online loyal"
    if profile["online_share_365d"] <= 0.2:
        return "store regulars"
    if profile["discount_share_365d"] >= 0.12:
        return "discount hunters"
    return "omni-channel loyal"


NO_PURCHASE_DESCRIPTION = "Known customers with no purchase yet: nothing to segment them by."


def describe_segment(profile: pd.Series, share: float) -> str:
    """One line from a centroid profile (original units) and the segment's share of buyers."""
    online = profile["online_share_365d"]
    channel = (
        "mostly online"
        if online >= 0.7
        else "mostly in store"
        if online <= 0.2
        else f"{online:.0%} of spend online"
    )
    return (
        f"{share:.0%} of buyers: last purchase {profile['recency_days']:.0f} days ago, "
        f"{profile['frequency_365d']:.1f} purchase days and {profile['monetary_365d']:.0f} net "
        f"spend in a year, {channel}, {profile['discount_share_365d']:.0%} of it discounted."
    )


def describe_segments(profiles: pd.DataFrame) -> dict[int, str]:
    """``describe_segment`` of every segment (``profiles`` with its ``customers`` column)."""
    total = float(profiles["customers"].sum()) or 1.0
    return {
        int(segment): describe_segment(row, row["customers"] / total)
        for segment, row in profiles.iterrows()
    }


def value_tiers(count: int) -> tuple[str, ...]:
    """``count`` distinct value tiers, highest first."""
    if count in VALUE_TIERS:
        return VALUE_TIERS[count]
    return (*MANY_TIERS[: count - 1], "lowest-value")


def name_segments(profiles: pd.DataFrame) -> dict[int, str]:
    """A unique name for every segment: the rule's name, with a value tier where it repeats."""
    names = {int(segment): name_segment(row) for segment, row in profiles.iterrows()}
    for name in set(names.values()):
        same = [segment for segment in names if names[segment] == name]
        if len(same) < 2:
            continue
        by_value = sorted(same, key=lambda s: (-profiles.loc[s, "monetary_365d"], s))
        for segment, tier in zip(by_value, value_tiers(len(same)), strict=True):
            names[segment] = f"{tier} {name}"
    return names


def match_segments(
    features: pd.DataFrame, labels: np.ndarray, previous: np.ndarray, next_id: int
) -> dict[int, int]:
    """Stable id per k-means label: the matched champion segment's, else a fresh one."""
    spread = features.std().replace(0, 1)
    new = features.groupby(labels).mean() / spread
    old = features.groupby(previous).mean() / spread
    cost = np.linalg.norm(new.to_numpy()[:, None, :] - old.to_numpy()[None, :, :], axis=2)
    rows, columns = linear_sum_assignment(cost)
    ids = {int(new.index[r]): int(old.index[c]) for r, c in zip(rows, columns, strict=True)}
    for label in new.index:
        if int(label) not in ids:
            ids[int(label)] = next_id
            next_id += 1
    return ids


def _silhouette(transformed: np.ndarray, labels: np.ndarray, sample_size: int, seed: int) -> float:
    if len(np.unique(labels)) < 2:
        return -1.0
    return float(
        silhouette_score(
            transformed, labels, sample_size=min(sample_size, len(labels)), random_state=seed
        )
    )


MIN_PER_SEGMENT = 5


def train_segmentation(
    frame: pd.DataFrame,
    k_range: range = range(3, 7),
    seed: int = 7,
    sample_size: int = 5000,
    previous: np.ndarray | None = None,
    next_id: int | None = None,
) -> SegmentationResult:
    """Fit k-means for every k in ``k_range`` that leaves ``MIN_PER_SEGMENT`` customers a
    segment on average; keep the best silhouette.

    ``previous``: the champion's stable segment id for every row of ``frame``, to keep ids
    stable and to score the champion's segmentation on the same data (``next_id``: the first
    id the champion never used).
    """
    # A small shop gets fewer segments, never one of under MIN_PER_SEGMENT customers.
    usable = range(min(k_range), min(max(k_range), len(frame) // MIN_PER_SEGMENT) + 1)
    if not usable:
        raise ValueError(
            f"{len(frame)} customers to segment: expected at least "
            f"{min(k_range) * MIN_PER_SEGMENT} ({MIN_PER_SEGMENT} for each of {min(k_range)} "
            "segments)"
        )
    X = frame[list(SEGMENT_FEATURES)].astype(float).reset_index(drop=True)
    scores: dict[int, float] = {}
    fitted: dict[int, Pipeline] = {}
    spaces: dict[int, np.ndarray] = {}
    for k in usable:
        pipeline = build_pipeline(k, seed).fit(X)
        spaces[k] = pipeline[:-1].transform(X)
        scores[k] = _silhouette(spaces[k], pipeline[-1].labels_, sample_size, seed)
        fitted[k] = pipeline
    best = max(scores, key=lambda k: (scores[k], -k))
    pipeline = fitted[best]
    labels = pipeline[-1].labels_
    if previous is None:
        # Id 0 is the no-purchase segment's: k-means segments start at 1.
        segment_ids = {label: label + 1 for label in range(best)}
        champion_silhouette = None
    else:
        previous = np.asarray(previous)
        if len(previous) != len(X):
            raise ValueError(f"{len(previous)} champion labels for {len(X)} customers")
        first_free = int(previous.max()) + 1 if next_id is None else next_id
        first_free = max(first_free, NO_PURCHASE_SEGMENT_ID + 1)
        if (previous == NO_PURCHASE_SEGMENT_ID).any():  # a champion from before the reserved id
            previous = np.where(previous == NO_PURCHASE_SEGMENT_ID, first_free, previous)
            first_free += 1
        segment_ids = match_segments(X, labels, previous, first_free)
        champion_silhouette = _silhouette(spaces[best], previous, sample_size, seed)
    stable = np.array([segment_ids[int(label)] for label in labels])
    profiles = X.assign(segment_id=stable).groupby("segment_id").mean()
    profiles["customers"] = pd.Series(stable).value_counts().sort_index()
    return SegmentationResult(
        pipeline,
        best,
        scores[best],
        scores,
        name_segments(profiles),
        profiles,
        segment_ids,
        champion_silhouette,
        None if previous is None else float(np.mean(stable == previous)),
    )
