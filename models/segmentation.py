"""Customer segmentation: k-means on scaled RFM and behaviour features, named by rule.

The number of segments is the k in a range with the best silhouette score on the training
data. Names come from each centroid's profile in original units, by the first rule that holds:

1. no purchase in the last 60 days on average (recency >= 60)        -> "lapsing"
2. at least 70% of spend online and more searches than sessions        -> "online browsers"
3. at least 70% of spend online                                        -> "online loyal"
4. at most 20% of spend online                                         -> "store regulars"
5. discounts at least 12% of gross spend                               -> "discount hunters"
6. otherwise                                                           -> "omni-channel loyal"

A name used twice gets the centroid's monetary rank appended ("store regulars 2").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.metrics import silhouette_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from models.features import SEGMENT_FEATURES

LOG_SCALED = ("frequency_365d", "monetary_365d", "searches_30d", "sessions_30d")


@dataclass
class SegmentationResult:
    pipeline: Pipeline
    k: int
    silhouette: float
    silhouettes: dict[int, float]
    names: dict[int, str]
    profiles: pd.DataFrame


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


def name_segments(profiles: pd.DataFrame) -> dict[int, str]:
    """Names for every segment; duplicates get a rank by monetary value."""
    names = {int(segment): name_segment(row) for segment, row in profiles.iterrows()}
    counts: dict[str, int] = {}
    order = profiles["monetary_365d"].sort_values(ascending=False).index
    for segment in order:
        name = names[int(segment)]
        counts[name] = counts.get(name, 0) + 1
        if counts[name] > 1:
            names[int(segment)] = f"{name} {counts[name]}"
    return names


def train_segmentation(
    frame: pd.DataFrame, k_range: range = range(3, 7), seed: int = 7, sample_size: int = 5000
) -> SegmentationResult:
    """Fit k-means for every k in ``k_range``; keep the best silhouette."""
    if len(frame) < max(k_range) * 5:
        raise ValueError(f"{len(frame)} customers to segment: expected at least {max(k_range) * 5}")
    X = frame[list(SEGMENT_FEATURES)].astype(float)
    scores: dict[int, float] = {}
    fitted: dict[int, Pipeline] = {}
    for k in k_range:
        pipeline = build_pipeline(k, seed).fit(X)
        transformed = pipeline[:-1].transform(X)
        labels = pipeline[-1].labels_
        scores[k] = float(
            silhouette_score(
                transformed, labels, sample_size=min(sample_size, len(X)), random_state=seed
            )
        )
        fitted[k] = pipeline
    best = max(scores, key=lambda k: (scores[k], -k))
    pipeline = fitted[best]
    profiles = X.assign(segment_id=pipeline[-1].labels_).groupby("segment_id").mean()
    profiles["customers"] = pd.Series(pipeline[-1].labels_).value_counts().sort_index()
    return SegmentationResult(
        pipeline, best, scores[best], scores, name_segments(profiles), profiles
    )
