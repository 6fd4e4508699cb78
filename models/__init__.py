"""Model steps: features, segmentation, churn, registry, training and scoring entry points."""
