"""A retailer with one channel: a shop with stores and no web site, and one with no stores.

Each lands only its own sources (``raw-landing.md``: a source with no folder at all is a channel
the retailer lacks). Its history (160 days, enough for the churn horizon and its snapshots) is
backfilled in one ``omni_nightly`` run and modelled by ``omni_models``, then one more night runs
both DAGs: the DAGs' own jobs in-process (``tests/dag_runner.py``) on real Spark, Delta, Great
Expectations and an MLflow SQLite registry. Part of ``make test-year`` (marker ``year``): about
8 minutes per retailer.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest
from mlflow import MlflowClient
from pyspark.sql import functions as F

from models import registry
from models.score import NO_PURCHASE_BAND
from omni import lakehouse, sources, tables
from omni.sample import STORES, SampleSpec, generate_sample
from tests.conftest import FIGURES, settings_under
from tests.dag_runner import run_dag
from tests.lake_checks import assert_counts_reconcile, failed_checks

RUN_DATE = date(2026, 11, 1)
MODELS = (registry.SEGMENTATION_MODEL, registry.CHURN_MODEL)
# What a retailer of each kind lacks: the channel, its sources, its bronze and silver tables.
LACKS = {
    "store": (
        "online",
        {sources.EVENTS.name},
        [tables.BRONZE_EVENTS, tables.SILVER_EVENTS, tables.SILVER_ORDER_LINES],
    ),
    "online": (
        "store",
        {sources.POS.name, sources.STORES.name},
        [tables.BRONZE_POS, tables.SILVER_POS, tables.SILVER_STORES],
    ),
}
RUNS = ("backfill", "backfill-models", "night", "night-models")
pytestmark = pytest.mark.year


@pytest.fixture(scope="module", params=sorted(LACKS))
def shop(request, spark, settings, tmp_path_factory):
    """(channels, settings, each run's task counts by run id) after the backfill and a night."""
    channels = request.param
    local = settings_under(settings, tmp_path_factory.mktemp(f"only-{channels}"))
    spec = SampleSpec(customers=60, days=160, end_date=RUN_DATE, seed=5, channels=channels)
    generate_sample(local.landing_dir, spec)
    backfill_end = RUN_DATE - timedelta(days=1)
    counts, seconds = {}, {}
    for run_id, day, params in (
        ("backfill", backfill_end, {"start_date": str(spec.start_date)}),
        ("night", RUN_DATE, None),
    ):
        started = time.monotonic()
        counts[run_id] = run_dag("omni_nightly", spark, local, day, run_id, params)
        models = time.monotonic()
        counts[f"{run_id}-models"] = run_dag("omni_models", spark, local, day, f"{run_id}-models")
        seconds[run_id] = (round(models - started), round(time.monotonic() - models))
    counts["seconds"] = seconds  # (omni_nightly s, omni_models s) per run
    return channels, local, counts, spec


def test_every_gate_passes_without_the_channel_the_shop_lacks(spark, shop, record_property):
    _, local, counts, _ = shop
    record_property(FIGURES, counts["seconds"])
    for run_id in RUNS:
        results, failed = failed_checks(spark, local, run_id)
        assert results.count() > 40, run_id
        if run_id.startswith("backfill"):
            assert failed == [], (run_id, failed)
        else:  # a small shop's night can be thin (a volume warning), never blocked
            assert [f for f in failed if f[2] == "blocking"] == [], (run_id, failed)


def test_the_missing_channel_has_no_folder_rows_or_reconciliation(spark, shop):
    channels, local, counts, _ = shop
    _, absent, missing = LACKS[channels]
    assert {table.name: lakehouse.read_table(spark, local, table).count() for table in missing} == {
        table.name: 0 for table in missing
    }
    delivered = {
        r["source"]
        for r in lakehouse.read_table(spark, local, tables.LANDING_FOLDERS)
        .select("source")
        .distinct()
        .collect()
    }
    assert delivered and not delivered & absent, delivered
    # What the shop has reconciles, source by source.
    assert_counts_reconcile(spark, local)


def test_kpis_cover_every_day_of_the_channel_the_shop_has_and_none_other(spark, shop):
    channels, local, _, spec = shop
    kpis = lakehouse.read_table(spark, local, tables.GOLD_KPIS)
    days = {spec.start_date + timedelta(days=n) for n in range(spec.days)}
    got = {
        r["channel"]: (r["days"], r["rows"])
        for r in kpis.groupBy("channel")
        .agg(F.countDistinct("date").alias("days"), F.count("*").alias("rows"))
        .collect()
    }
    per_day = len(STORES) if channels == "store" else 1
    assert got == {channels: (len(days), len(days) * per_day)}


def test_each_customer_is_scored_once_a_night_with_segments_of_the_channel_it_has(spark, shop):
    channels, local, counts, spec = shop
    missing_word, _, _ = LACKS[channels]
    scores = lakehouse.read_table(spark, local, tables.GOLD_SCORES)
    customers = lakehouse.read_table(spark, local, tables.GOLD_PROFILE).count()
    assert customers >= spec.customers
    for day in (RUN_DATE - timedelta(days=1), RUN_DATE):
        of_day = scores.where(F.col("as_of_date") == F.lit(str(day)).cast("date"))
        assert of_day.select("customer_key").distinct().count() == of_day.count() == customers
        names = {r["segment_id"]: r["segment_name"] for r in of_day.collect()}
        assert len(set(names.values())) == len(names), names  # unique names
        assert not [n for n in names.values() if missing_word in n], names
    never = scores.where(F.col("churn_risk_band") == NO_PURCHASE_BAND)
    assert never.where(F.col("churn_probability").isNotNull()).count() == 0
    assert counts["night-models"]["personalize"]["feed_rows"] > 0


def test_each_run_registers_one_version_per_model(shop):
    _, local, _, _ = shop
    client = MlflowClient(local.mlflow_tracking_uri, local.mlflow_tracking_uri)
    for model in MODELS:
        decisions = {
            int(v.version): v.tags["promotion_decision"]
            for v in client.search_model_versions(f"name='{model}'")
        }
        assert sorted(decisions) == [1, 2], decisions
        assert decisions[1].startswith("promoted: no champion yet")
        champion = int(client.get_model_version_by_alias(model, "champion").version)
        assert champion == (2 if decisions[2].startswith("promoted") else 1), decisions


def test_recommendations_are_evaluated_on_the_channel_the_shop_has(shop):
    """Every customer evaluated bought in the shop's one channel before the cut-off, or is
    new; the other mixes are absent, not zero."""
    channels, _, counts, _ = shop
    mix = {"store": "store_only", "online": "online_only"}[channels]
    for run in ("backfill-models", "night-models"):
        figures = counts[run]["train_models"]["recommendations"]
        assert figures["evaluated"] and figures["customers"] > 0, figures
        mixes = {k.split(".", 1)[1] for k in figures if k.startswith("customers.")}
        assert mixes <= {mix, "new"} and mix in mixes, figures
        assert figures["customers"] == sum(figures[f"customers.{m}"] for m in mixes)
        assert 0 <= figures["recommender_recall_at_5"] <= figures["recommender_hit_rate"] <= 1
