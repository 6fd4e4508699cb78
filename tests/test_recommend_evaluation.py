"""The recommendations evaluated offline: held-out purchases, two baselines, MLflow."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import mlflow
import pytest
from pyspark.sql import functions as F

from models import recommend, registry
from models.recommend_evaluation import EXPERIMENT, evaluate_recommendations, summary
from tests.conftest import settings_under
from tests.test_gold import _events, _tx

AS_OF = date(2026, 6, 30)
HOLDOUT = 10
CUTOFF = AS_OF - timedelta(days=HOLDOUT)
BEFORE = (CUTOFF - timedelta(days=5)).isoformat()
AFTER = (CUTOFF + timedelta(days=5)).isoformat()
# Before the cut-off: K1-K4 (segment 1, in store) bought P1, K1-K3 also P2; K5-K9
# (segment 2, online) bought P9, the best seller of all. After it: K4 buys P2 (which its P1
# predicts), K5 buys P3 (nothing predicts it), K10 (new) buys the best seller P9, K1 buys P1
# again (not new to K1: not evaluated) and K5 buys P1 after the as-of date (not counted).
SEGMENTS = {**{f"K{i}": 1 for i in range(1, 5)}, **{f"K{i}": 2 for i in range(5, 10)}}


def _purchase(key, sku, day, channel):
    return (key, channel, "S1", f"{key}-{sku}-{day}", day, sku, 1, 10, 10, 0, "home")


@pytest.fixture(scope="module")
def shop(spark):
    tx = [_purchase(k, "P1", BEFORE, "store") for k in ("K1", "K2", "K3", "K4")]
    tx += [_purchase(k, "P2", BEFORE, "store") for k in ("K1", "K2", "K3")]
    tx += [_purchase(f"K{i}", "P9", BEFORE, "online") for i in range(5, 10)]
    tx += [
        _purchase("K4", "P2", AFTER, "store"),
        _purchase("K5", "P3", AFTER, "online"),
        _purchase("K10", "P9", AFTER, "online"),
        _purchase("K1", "P1", AFTER, "store"),
        _purchase("K5", "P1", (AS_OF + timedelta(days=1)).isoformat(), "online"),
    ]
    segments = spark.createDataFrame(
        [(k, s, f"segment {s}") for k, s in SEGMENTS.items()],
        "customer_key string, segment_id int, segment_name string",
    )
    activity = _events(spark, [("K6", BEFORE, f"{BEFORE} 10:00:00", "search", "s1", "pan", None)])
    return _tx(spark, tx), activity, segments


def _population(spark):
    return spark.createDataFrame(
        [(f"K{i}", f"C{i}", True, False, "2025-01-01") for i in range(1, 11)],
        "customer_key string, customer_id string, email_opt_in boolean, push_opt_in boolean, "
        "signup_date string",
    ).withColumn("signup_date", F.col("signup_date").cast("date"))


def _figures(rows):
    return {
        (r["method"], r["channel_mix"]): (r["customers"], r["recall"], r["hit_rate"]) for r in rows
    }


def test_held_out_purchases_score_the_recommender_against_both_baselines(shop):
    transactions, activity, segments = shop
    rows = recommend.holdout_evaluation(
        transactions, activity, segments, AS_OF, HOLDOUT, 365, top=1
    )
    assert _figures(rows) == {
        # K4's P2 comes from its P1 (recommender) and from its segment's best sellers; the
        # best seller of all (P9) misses it. K5's P3 is missed by everyone; K10's P9, new,
        # is everyone's fallback.
        ("recommender", "all"): (3, pytest.approx(2 / 3), pytest.approx(2 / 3)),
        ("segment_popularity", "all"): (3, pytest.approx(2 / 3), pytest.approx(2 / 3)),
        ("popularity", "all"): (3, pytest.approx(1 / 3), pytest.approx(1 / 3)),
        ("recommender", "new"): (1, 1.0, 1.0),
        ("segment_popularity", "new"): (1, 1.0, 1.0),
        ("popularity", "new"): (1, 1.0, 1.0),
        ("recommender", "online only"): (1, 0.0, 0.0),
        ("segment_popularity", "online only"): (1, 0.0, 0.0),
        ("popularity", "online only"): (1, 0.0, 0.0),
        ("recommender", "store only"): (1, 1.0, 1.0),
        ("segment_popularity", "store only"): (1, 1.0, 1.0),
        ("popularity", "store only"): (1, 0.0, 0.0),
    }
    # All customers first, then the mixes by name; the methods in METHODS' order.
    assert [(r["channel_mix"], r["method"]) for r in rows[:4]] == [
        ("all", "recommender"),
        ("all", "segment_popularity"),
        ("all", "popularity"),
        ("new", "recommender"),
    ]

    figures = summary(rows, 1)
    assert figures["recommender_recall_at_1"] == pytest.approx(2 / 3)
    assert figures["popularity_hit_rate.store_only"] == 0.0
    assert figures["customers"] == 3 and figures["customers.online_only"] == 1
    assert figures["recall_lift_over_popularity"] == pytest.approx(2.0)


def test_recall_is_the_share_of_a_customers_new_skus_in_their_list(spark, shop):
    """K4 buys two new skus, P2 and P3, after the cut-off: one in a list of one is half."""
    transactions, activity, segments = shop
    more = transactions.unionByName(_tx(spark, [_purchase("K4", "P3", AFTER, "store")]))
    rows = recommend.holdout_evaluation(more, activity, segments, AS_OF, HOLDOUT, 365, top=1)
    assert _figures(rows)[("recommender", "store only")] == (1, 0.5, 1.0)


def test_the_evaluation_refuses_an_empty_holdout(shop):
    transactions, activity, segments = shop
    with pytest.raises(ValueError, match="holdout_days=0"):
        recommend.holdout_evaluation(transactions, activity, segments, AS_OF, 0, 365)


def test_the_evaluation_is_logged_once_per_run_with_its_table_and_plot(
    spark, settings, tmp_path, shop
):
    transactions, activity, _ = shop
    local = replace(
        settings_under(settings, tmp_path),
        recommendation_holdout_days=HOLDOUT,
        recommendation_count=1,
    )
    client = registry.configure_tracking(local)
    population = _population(spark)
    reads = []

    def history():
        reads.append(1)
        return {"population": population, "transactions": transactions, "activity": activity}

    tags = {"pipeline_run_id": "night-1", "as_of_date": str(AS_OF)}
    got = evaluate_recommendations(spark, local, client, history, AS_OF, "night-1", tags)

    # No segmentation champion: everyone is one segment, so segment popularity is popularity.
    assert got["evaluated"] and got["customers"] == 3
    assert got["recommender_recall_at_1"] == pytest.approx(2 / 3)
    assert got["segment_popularity_recall_at_1"] == got["popularity_recall_at_1"]
    assert got["lift"] == 2.0
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    (run,) = mlflow.search_runs([experiment.experiment_id], output_format="list")
    assert run.data.params["cutoff"] == str(CUTOFF)
    assert run.data.params["segmented_by"] == "none"
    assert run.data.tags["beats_popularity"] == "true" and got["beats_popularity"]
    assert run.data.metrics["recall_lift_over_popularity"] == pytest.approx(2.0)
    assert run.data.metrics["popularity_recall_at_1.store_only"] == 0.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/recommendation_recall.png"}
    table = mlflow.load_table("recommendation_evaluation.json", run_ids=[run.info.run_id])
    assert len(table) == 12 and set(table["method"]) == set(recommend.METHODS)

    # A retried training finds the run's evaluation and does not read the history again.
    again = evaluate_recommendations(spark, local, client, history, AS_OF, "night-1", tags)
    assert again["reused"] and again["recommender_recall_at_1"] == got["recommender_recall_at_1"]
    assert again["beats_popularity"]
    assert len(reads) == 1
    assert len(mlflow.search_runs([experiment.experiment_id], output_format="list")) == 1


def test_a_recommender_no_better_than_popularity_is_flagged(
    spark, settings, tmp_path, shop, caplog
):
    """Without K4's purchase after the cut-off, the only customers left are K5 (nobody
    predicts P3) and K10 (new: everyone's fallback): all methods recall the same."""
    transactions, activity, _ = shop
    local = replace(settings_under(settings, tmp_path), recommendation_holdout_days=HOLDOUT)
    client = registry.configure_tracking(local)
    inputs = {
        "population": _population(spark),
        "transactions": transactions.where(
            ~(
                (F.col("customer_key") == "K4")
                & (F.col("sku") == "P2")
                & (F.col("date") > str(CUTOFF))
            )
        ),
        "activity": activity,
    }
    with caplog.at_level("WARNING", logger="omni.recommend_evaluation"):
        got = evaluate_recommendations(
            spark, local, client, lambda: inputs, AS_OF, "night-2", {"as_of_date": str(AS_OF)}
        )
    assert not got["beats_popularity"] and got["lift"] == 1.0
    assert "does not beat popularity" in caplog.text
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    (run,) = mlflow.search_runs([experiment.experiment_id], output_format="list")
    assert run.data.tags["beats_popularity"] == "false"


def test_a_holdout_of_zero_days_turns_the_evaluation_off(spark, settings):
    off = replace(settings, recommendation_holdout_days=0)
    got = evaluate_recommendations(spark, off, None, None, AS_OF, "night-1", {})
    assert got == {"evaluated": False, "reason": "OMNI_RECOMMENDATION_HOLDOUT_DAYS=0"}
