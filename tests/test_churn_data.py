"""Point-in-time churn training sets in Spark: no leakage, reruns agree, any channel mix."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from pyspark.sql import functions as F

from models.churn import train_churn
from models.features import (
    CHURN_FEATURES,
    HISTORY_COLUMNS,
    LABEL,
    ChurnWindows,
    churn_training_set,
    purchase_history,
)
from tests.conftest import rows
from tests.test_gold import _events, _tx

AS_OF = date(2026, 6, 30)
HORIZON = 21
START = AS_OF - timedelta(days=150)
SNAPSHOTS, STEP = 3, 10


def _history(customers: int = 240, seed: int = 11):
    """Purchases and events of customers who buy at their own pace until they drop out."""
    rng = random.Random(seed)
    tx, events = [], []
    for n in range(customers):
        key = f"K{n:03d}"
        channel = rng.choice(["online", "store", "both"])
        gap = rng.uniform(4, 25)
        dies = START + timedelta(days=rng.uniform(20, 200))
        day, order = START + timedelta(days=rng.uniform(0, 20)), 0
        while day <= AS_OF and day <= dies:
            online = channel == "online" or (channel == "both" and rng.random() < 0.5)
            order += 1
            tx.append(
                (
                    key,
                    "online" if online else "store",
                    None if online else "S01",
                    f"{key}-{order}",
                    day.isoformat(),
                    "SKU1",
                    1,
                    20,
                    22,
                    2,
                    "books",
                )
            )
            if online:
                stamp = f"{day.isoformat()} 10:00:00"
                events.append((key, day.isoformat(), stamp, "search", f"{key}-s{order}", "q", None))
            day += timedelta(days=rng.expovariate(1 / gap) + 1)
    return tx, events


@pytest.fixture(scope="module")
def history(spark):
    tx, events = _history()
    population = (
        spark.createDataFrame(
            [(f"K{n:03d}", f"C{n:03d}", True, True, START.isoformat()) for n in range(240)],
            "customer_key string, customer_id string, email_opt_in boolean, "
            "push_opt_in boolean, signup_date string",
        )
        .withColumn("signup_date", F.col("signup_date").cast("date"))
        .cache()
    )
    return {
        "population": population,
        "transactions": _tx(spark, tx),
        "activity": _events(spark, events),
    }


def _training(inputs):
    return churn_training_set(inputs, AS_OF, HORIZON, 365, SNAPSHOTS, STEP)


def _content(df):
    return rows(
        df, "split", "snapshot_date", "customer_key", *CHURN_FEATURES, *HISTORY_COLUMNS, LABEL
    )


def test_windows_split_by_time_without_overlap():
    windows = ChurnWindows.for_date(AS_OF, HORIZON, SNAPSHOTS, STEP)
    assert windows.holdout == AS_OF - timedelta(days=HORIZON)
    assert windows.training == tuple(
        AS_OF - timedelta(days=2 * HORIZON + i * STEP) for i in range(SNAPSHOTS)
    )
    # No training label window reaches into the holdout's label window.
    assert max(windows.training) + timedelta(days=HORIZON) <= windows.holdout
    with pytest.raises(ValueError, match="snapshots=0"):
        ChurnWindows.for_date(AS_OF, HORIZON, 0, STEP)


def test_nothing_after_the_as_of_date_moves_features_or_labels(spark, history):
    before = _content(_training(history))
    late = AS_OF + timedelta(days=1)
    planted = {
        **history,
        # Every customer buys and browses the day after the as-of date, and a lot.
        "transactions": history["transactions"].unionByName(
            history["transactions"].withColumn("date", F.lit(late).cast("date"))
        ),
        "activity": history["activity"].unionByName(
            history["activity"].withColumn("event_date", F.lit(late).cast("date"))
        ),
    }
    assert _content(_training(planted)) == before


def test_holdout_window_purchases_change_labels_only(spark, history):
    windows = ChurnWindows.for_date(AS_OF, HORIZON, SNAPSHOTS, STEP)
    before = _training(history).where("split = 'holdout'")
    inside = windows.holdout + timedelta(days=3)
    planted = {
        **history,
        "transactions": history["transactions"].unionByName(
            history["transactions"].withColumn("date", F.lit(inside).cast("date"))
        ),
    }
    after = _training(planted).where("split = 'holdout'")
    columns = ("customer_key", *CHURN_FEATURES, *HISTORY_COLUMNS)
    assert rows(after, *columns) == rows(before, *columns)
    assert after.where(F.col(LABEL)).count() == 0 < before.where(F.col(LABEL)).count()


def test_a_rerun_gives_the_same_training_set(spark, history):
    assert _content(_training(history)) == _content(_training(history))


@pytest.mark.parametrize("only", ["store", "online"])
def test_churn_trains_when_a_channel_is_missing_entirely(spark, history, only):
    inputs = {
        **history,
        "transactions": history["transactions"].where(F.col("channel") == only),
        "activity": history["activity"] if only == "online" else history["activity"].limit(0),
    }
    training = _training(inputs).toPandas()
    other = "online_orders_365d" if only == "store" else "store_orders_365d"
    assert (training[other] == 0).all()
    result = train_churn(training, HORIZON)
    assert 0.5 < result.metrics["roc_auc"] <= 1
    assert 0 <= result.baseline_metrics["roc_auc"] <= 1
    assert result.holdout["probability"].between(0, 1).all()


def test_purchase_history_averages_the_repeat_days_net_value_in_every_channel(spark):
    """Days, not orders: two orders of one day are one purchase day of their summed value. The
    first day is left out of the average, a return is not a purchase day, and nothing after
    the cut-off counts."""
    line = lambda key, channel, order, day, quantity, net: (  # noqa: E731
        key, channel, None if channel == "online" else "S01", order, day, "SKU1", quantity,
        net, net, 0, "books",
    )  # fmt: skip
    transactions = _tx(
        spark,
        [
            line("A", "online", "A1", "2026-06-01", 1, 100),  # first day: not averaged
            line("A", "store", "A2", "2026-06-08", 1, 30),
            line("A", "online", "A3", "2026-06-08", 2, 20),  # same day, other channel
            line("A", "store", "A4", "2026-06-15", 1, 10),
            line("A", "store", "A5", "2026-06-20", -1, -10),  # a return: no purchase day
            line("A", "online", "A6", "2026-07-05", 1, 999),  # after the cut-off
            line("B", "store", "B1", "2026-06-29", 1, 40),  # one purchase day: no m_x
            line(None, "store", "X1", "2026-06-10", 1, 55),  # nobody's: no history
        ],
    )
    history = {
        r["customer_key"]: (r["x"], r["t_x"], r["T"], r["m_x"])
        for r in purchase_history(transactions, AS_OF).collect()
    }
    assert history == {
        "A": (2.0, 2.0, 29 / 7, pytest.approx((50 + 10) / 2)),
        "B": (0.0, 0.0, 1 / 7, None),
    }
