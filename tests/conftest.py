"""Shared fixtures: one Delta-enabled local Spark session for the whole run, on temp folders."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from omni.config import load_settings

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# py4j logs "Closing down clientserver connection" from __del__ after pytest closed its streams.
logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("omni")
    return load_settings(
        {
            "OMNI_LANDING_DIR": str(root / "landing"),
            "OMNI_LAKEHOUSE_DIR": str(root / "lakehouse"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            "OMNI_MLFLOW_ARTIFACTS_DIR": str(root / "mlflow" / "artifacts"),
            "OMNI_SPARK_MASTER": "local[2]",
            "OMNI_SHUFFLE_PARTITIONS": "2",
        }
    )


@pytest.fixture(scope="session")
def spark(settings):
    from omni.spark import get_spark

    session = get_spark(settings, app_name="omni-tests")
    session.sparkContext.setLogLevel("ERROR")
    session.sparkContext.setCheckpointDir(str(Path(settings.lakehouse_dir) / "_checkpoints"))
    yield session
    session.stop()


def rows(df, *columns, order_by=None):
    """A frame's rows as sorted tuples, for whole-content comparisons."""
    selected = df.select(*columns) if columns else df
    return (
        sorted(tuple(r) for r in selected.collect())
        if order_by is None
        else [tuple(r) for r in selected.orderBy(*order_by).collect()]
    )


def pytest_collection_modifyitems(config, items):
    """The end-to-end module first: it is the longest, so under ``make test`` (two xdist
    workers, whole files, in this order) it starts at once and the rest share the other worker."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
