"""Gold transforms on hand-built frames: point-in-time features, profile, labels, KPIs."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from omni.tables import FEATURE_COLUMNS
from omni.transforms import gold
from tests.conftest import assert_frame_equal, rows

AS_OF = date(2026, 6, 30)
TX_SCHEMA = (
    "customer_key string, channel string, store_id string, transaction_id string, date string, "
    "sku string, quantity int, net_amount double, gross_amount double, "
    "discount_amount double, category string"
)
EVENT_SCHEMA = (
    "customer_key string, event_date string, event_ts string, event_type string, "
    "session_id string, search_query string, sku string"
)


def _tx(spark, data):
    """Transactions as gold.customer_transactions shapes them (amounts as decimals)."""
    return (
        spark.createDataFrame(
            [
                tuple(
                    float(v) if isinstance(v, int) and i in (7, 8, 9) else v
                    for i, v in enumerate(row)
                )
                for row in data
            ],
            TX_SCHEMA,
        )
        .withColumn("date", F.col("date").cast("date"))
        .withColumn("net_amount", F.col("net_amount").cast("decimal(14,2)"))
        .withColumn("gross_amount", F.col("gross_amount").cast("decimal(14,2)"))
        .withColumn("discount_amount", F.col("discount_amount").cast("decimal(12,2)"))
    )


def _events(spark, data):
    return (
        spark.createDataFrame(data, EVENT_SCHEMA)
        .withColumn("event_date", F.col("event_date").cast("date"))
        .withColumn("event_ts", F.col("event_ts").cast("timestamp"))
    )


@pytest.fixture
def population(spark):
    return spark.createDataFrame(
        [
            ("K1", "C1", True, False, "2025-01-01"),
            ("K2", "C2", False, True, "2026-06-01"),
            ("K3", None, False, False, None),
        ],
        "customer_key string, customer_id string, email_opt_in boolean, push_opt_in boolean, "
        "signup_date string",
    ).withColumn("signup_date", F.col("signup_date").cast("date"))


@pytest.fixture
def transactions(spark):
    return _tx(
        spark,
        [
            ("K1", "online", None, "O1", "2026-06-20", "S1", 2, 20, 20, 0, "books"),
            ("K1", "store", "S01", "T1", "2026-06-25", "S2", 1, 45, 50, 5, "home"),
            ("K1", "store", "S01", "T2", "2026-06-28", "S2", -1, -50, -50, 0, "home"),
            ("K3", "store", "S02", "T3", "2026-03-01", "S3", 1, 10, 10, 0, "toys"),
            (None, "store", "S02", "T4", "2026-06-30", "S3", 1, 10, 10, 0, "toys"),
        ],
    )


@pytest.fixture
def activity(spark):
    return _events(
        spark,
        [
            ("K1", "2026-06-29", "2026-06-29 10:00:00", "search", "s1", "linen shirt", None),
            ("K1", "2026-06-29", "2026-06-29 10:01:00", "product_view", "s1", None, "S1"),
            ("K2", "2026-06-15", "2026-06-15 09:00:00", "page_view", "s2", None, None),
        ],
    )


def _features(population, transactions, activity, as_of=AS_OF):
    built = gold.build_customer_features(population, transactions, activity, as_of)
    return {r["customer_key"]: r.asDict() for r in built.collect()}


def test_features_have_the_registry_columns(population, transactions, activity):
    built = gold.build_customer_features(population, transactions, activity, AS_OF)
    names = [name for name, _ in FEATURE_COLUMNS]
    assert built.columns == ["customer_key", "customer_id", *names, "has_purchase", "as_of_date"]


def test_feature_values(population, transactions, activity):
    features = _features(population, transactions, activity)
    k1 = features["K1"]
    assert k1["recency_days"] == 2.0  # last receipt 06-28 (a return still counts as a visit)
    assert k1["frequency_30d"] == 3.0
    assert k1["monetary_365d"] == pytest.approx(15.0)  # 20 + 45 - 50
    assert k1["online_orders_365d"] == 1.0 and k1["store_orders_365d"] == 2.0
    assert k1["return_rate_365d"] == pytest.approx(1 / 3)
    assert k1["discount_share_365d"] == pytest.approx(5 / 70)
    assert k1["searches_30d"] == 1.0 and k1["product_views_30d"] == 1.0
    assert k1["category_breadth_365d"] == 2.0
    assert k1["has_purchase"] is True
    k2 = features["K2"]  # signed up, browsed, never bought
    assert (k2["has_purchase"], k2["recency_days"], k2["days_since_last_visit"]) == (
        False,
        365.0,
        15.0,
    )
    assert features["K3"]["recency_days"] == float((AS_OF - date(2026, 3, 1)).days)


def test_features_ignore_everything_after_the_as_of_date(spark, population, transactions, activity):
    before = _features(population, transactions, activity)
    future_tx = transactions.unionByName(
        _tx(
            spark,
            [
                ("K1", "online", None, "O9", "2026-07-01", "S1", 5, 500, 500, 0, "books"),
                ("K2", "store", "S01", "T9", "2026-07-15", "S2", 1, 99, 99, 0, "home"),
            ],
        )
    )
    future_events = activity.unionByName(
        _events(
            spark,
            [
                ("K1", "2026-07-01", "2026-07-01 00:00:01", "search", "s9", "future", None),
                ("K3", "2026-07-02", "2026-07-02 00:00:01", "page_view", "s8", None, None),
            ],
        )
    )
    assert _features(population, future_tx, future_events) == before


def test_customers_not_yet_known_are_left_out(population, transactions, activity):
    early = _features(population, transactions, activity, as_of=date(2026, 5, 1))
    assert set(early) == {"K1", "K3"}  # K2 signed up on 2026-06-01


def test_profile(population, transactions, activity):
    profile = {
        r["customer_key"]: r
        for r in gold.build_customer_profile(population, transactions, activity, AS_OF).collect()
    }
    k1 = profile["K1"]
    assert (k1["channel_mix"], k1["frequency_365d"], str(k1["monetary_365d"])) == (
        "omni_channel",
        3,
        "15.00",
    )
    assert k1["top_categories"] == ["books"]  # home nets -5 after the return: not a top one
    assert k1["recent_searches"] == ["linen shirt"]
    assert (str(k1["first_purchase_online"]), str(k1["last_purchase_store"])) == (
        "2026-06-20",
        "2026-06-28",
    )
    assert (k1["email_opt_in"], k1["push_opt_in"]) == (True, False)
    assert profile["K2"]["channel_mix"] == "none" and profile["K2"]["recency_days"] is None
    assert profile["K3"]["channel_mix"] == "store_only"


def test_churn_label_looks_only_inside_the_horizon(spark):
    tx = _tx(
        spark,
        [
            ("K1", "online", None, "O1", "2026-05-01", "S", 1, 1, 1, 0, "c"),
            ("K1", "online", None, "O2", "2026-05-20", "S", 1, 1, 1, 0, "c"),  # inside (T, T+30]
            ("K2", "online", None, "O3", "2026-05-01", "S", 1, 1, 1, 0, "c"),
            ("K2", "online", None, "O4", "2026-06-15", "S", 1, 1, 1, 0, "c"),  # after the horizon
            ("K3", "online", None, "O5", "2026-05-05", "S", 1, 1, 1, 0, "c"),  # buys after T only
        ],
    )
    labels = gold.churn_labels(tx, date(2026, 5, 1), 30)
    assert rows(labels) == [("K1", False), ("K2", True)]


def test_daily_kpis(spark):
    tx = _tx(
        spark,
        [
            ("K1", "online", None, "O1", "2026-06-01", "S", 2, 20, 20, 0, "c"),
            ("K1", "online", None, "O2", "2026-06-02", "S", 1, 10, 10, 0, "c"),
            ("K2", "online", None, "O3", "2026-06-02", "S", 1, 5, 5, 0, "c"),
            ("K1", "store", "S01", "T1", "2026-06-02", "S", 1, 7, 7, 0, "c"),
            (None, "store", "S01", "T2", "2026-06-02", "S", -1, -3, -3, 0, "c"),
        ],
    )
    events = spark.createDataFrame(
        [
            ("s1", "purchase", "2026-06-02"),
            ("s1", "page_view", "2026-06-02"),
            ("s2", "page_view", "2026-06-02"),
            ("s3", "page_view", "2026-06-02"),
            ("s4", "purchase", "2026-06-02"),
        ],
        "session_id string, event_type string, event_date string",
    ).withColumn("event_date", F.col("event_date").cast("date"))
    kpis = gold.build_daily_channel_kpis(tx, events, [date(2026, 6, 2)])
    got = rows(
        kpis,
        F.col("date").cast("string"),
        "channel",
        "store_id",
        "orders",
        F.col("net_revenue").cast("string"),
        "units",
        "active_customers",
        "new_customers",
        "sessions",
        "online_conversion_rate",
    )
    assert got == [
        ("2026-06-02", "online", None, 2, "15.00", 2, 2, 1, 4, 0.5),
        ("2026-06-02", "store", "S01", 2, "4.00", 0, 1, 1, None, None),
    ]


KPI_SCHEMA = (
    "date date, channel string, store_id string, orders bigint, net_revenue decimal(16,2), "
    "units bigint, active_customers bigint, new_customers bigint, sessions bigint, "
    "online_conversion_rate double"
)


def test_every_delivered_channel_day_has_a_kpi_row_with_zeros_when_nothing_sold(spark):
    """S01 is closed on the 2nd (its complete folder holds no file), the site is quiet on the
    3rd, and on the 3rd the receipts come as one dt= folder for all stores opened by then (not
    S03, opened on the 4th). S03's folder of the 2nd waits: no row until it is complete."""
    d2, d3 = date(2026, 6, 2), date(2026, 6, 3)
    folders = spark.createDataFrame(
        [
            ("ecommerce_events", d2, None, "complete"),
            ("ecommerce_events", d3, None, "complete"),
            ("pos_lines", d2, "S01", "complete"),
            ("pos_lines", d2, "S02", "complete"),
            ("pos_lines", d2, "S03", "waiting"),
            ("pos_lines", d3, None, "complete"),
            ("crm_customers", d3, None, "complete"),
        ],
        "source string, business_date date, store_id string, status string",
    )
    stores = spark.createDataFrame(
        [("S01", date(2020, 1, 1)), ("S02", None), ("S03", date(2026, 6, 4))],
        "store_id string, opened_on date",
    )
    tx = _tx(spark, [("K1", "store", "S02", "T1", "2026-06-02", "S", 2, 8, 8, 0, "c")])
    events = _events(
        spark, [("K1", "2026-06-02", "2026-06-02 10:00:00", "page_view", "s1", None, "S")]
    )
    delivered = gold.delivered_channel_days(folders, stores, [d2, d3])
    kpis = gold.build_daily_channel_kpis(tx, events, [d2, d3], delivered)
    zero = Decimal("0.00")
    expected = spark.createDataFrame(
        [
            (d2, "online", None, 0, zero, 0, 0, 0, 1, 0.0),
            (d2, "store", "S01", 0, zero, 0, 0, 0, None, None),
            (d2, "store", "S02", 1, Decimal("8.00"), 2, 1, 1, None, None),
            (d3, "online", None, 0, zero, 0, 0, 0, 0, None),
            (d3, "store", "S01", 0, zero, 0, 0, 0, None, None),
            (d3, "store", "S02", 0, zero, 0, 0, 0, None, None),
        ],
        KPI_SCHEMA,
    )
    assert_frame_equal(kpis.select(*expected.columns), expected)


def test_top_categories_rank_by_spend_and_keep_three(spark):
    tx = _tx(
        spark,
        [
            ("K1", "online", None, f"O{i}", "2026-06-20", "S", 1, spend, spend, 0, category)
            for i, (category, spend) in enumerate(
                [("toys", 5), ("books", 50), ("home", 20), ("beauty", 30), ("home", 15)]
            )
        ],
    )
    top = gold._top_categories(tx, AS_OF).collect()
    assert [(r["customer_key"], r["top_categories"]) for r in top] == [
        ("K1", ["books", "home", "beauty"])
    ]


def test_session_features_count_sessions_by_window(spark, population, transactions):
    """Sessions 3, 10, 20 and 45 days before the as-of date, and one after it."""
    days = {"a": 3, "b": 10, "c": 20, "d": 45, "e": -1}
    activity = _events(
        spark,
        [
            (
                "K2",
                str(AS_OF - timedelta(days=n)),
                f"{AS_OF - timedelta(days=n)} 09:00:00",
                "page_view",
                s,
                None,
                None,
            )
            for s, n in days.items()
        ],
    )
    k2 = _features(population, transactions, activity)["K2"]
    assert (k2["sessions_7d"], k2["sessions_14d"], k2["sessions_30d"]) == (1.0, 2.0, 3.0)
    assert k2["sessions_prev_30d"] == 1.0
    assert k2["session_trend"] == pytest.approx((3 + 1) / (1 + 1))


def test_more_returns_than_purchases_is_a_negative_net_spend_and_shares_stay_fractions(
    spark, population, activity
):
    tx = _tx(
        spark,
        [
            ("K1", "online", None, "O1", "2026-06-20", "S1", 1, 20, 20, 0, "books"),
            ("K1", "store", "S01", "T1", "2026-06-25", "S2", -1, -50, -50, 0, "home"),
            ("K3", "store", "S02", "T2", "2026-06-26", "S3", -2, -30, -30, 0, "toys"),
        ],
    )
    features = _features(population, tx, activity)
    assert features["K1"]["monetary_365d"] == pytest.approx(-30.0)
    assert features["K1"]["avg_order_value_365d"] == pytest.approx(-15.0)
    assert features["K1"]["online_share_365d"] == 1.0  # every purchase made online
    assert features["K3"]["monetary_365d"] == pytest.approx(-30.0)  # returns only
    assert features["K3"]["online_share_365d"] == 0.0
    profile = {
        r["customer_key"]: r
        for r in gold.build_customer_profile(population, tx, activity, AS_OF).collect()
    }
    assert str(profile["K1"]["monetary_365d"]) == "-30.00"
    assert profile["K1"]["online_share_365d"] == 1.0
    assert profile["K3"]["online_share_365d"] is None  # no purchase to share out


NET_OF_RETURNS = {"monetary_90d", "monetary_365d", "avg_order_value_365d", "net_revenue"}


def test_no_blocking_expectation_puts_a_floor_under_a_net_of_returns_value():
    from omni import suites, tables

    for table in tables.ALL_TABLES:
        if table.layer != "gold":
            continue
        for name in NET_OF_RETURNS & set(table.column_names):
            comment = next(c.comment for c in table.columns if c.name == name)
            assert "negative" in comment, (table.name, name)
        for item in suites.load_suite(table.name).expectations:
            bounds_values = item["type"] == "expect_column_values_to_be_between"
            if (
                bounds_values
                and item["kwargs"].get("column") in NET_OF_RETURNS
                and item.get("severity") != "warning"
            ):
                assert "min_value" not in item["kwargs"], (table.name, item)


def test_features_of_many_dates_in_one_pass_equal_the_day_by_day_ones(
    spark, population, transactions, activity
):
    # A session that runs past midnight, and a second order the same day.
    activity = activity.unionByName(
        _events(
            spark,
            [
                ("K1", "2026-06-29", "2026-06-29 23:59:00", "page_view", "s5", None, None),
                ("K1", "2026-06-30", "2026-06-30 00:01:00", "add_to_cart", "s5", None, "S1"),
            ],
        )
    )
    transactions = transactions.unionByName(
        _tx(spark, [("K1", "online", None, "O2", "2026-06-20", "S1", 1, 5, 5, 0, None)])
    )
    days = [date(2025, 12, 31), date(2026, 3, 1), date(2026, 5, 31), date(2026, 6, 29), AS_OF]
    days.append(date(2027, 6, 25))  # more than a year after K3's only receipt
    args = (population, transactions, activity)
    one_pass = {
        (r["customer_key"], r["as_of_date"]): r.asDict()
        for r in gold.build_customer_features_over(*args, days).collect()
    }
    by_day = {
        (r["customer_key"], r["as_of_date"]): r.asDict()
        for day in days
        for r in gold.build_customer_features(*args, day).collect()
    }
    assert one_pass.keys() == by_day.keys()
    for key, row in by_day.items():
        assert {c: v for c, v in one_pass[key].items() if v != row[c]} == {}, (key, row)
    assert ("K1", AS_OF) in one_pass and ("K2", date(2026, 5, 31)) not in one_pass
    assert one_pass[("K3", date(2027, 6, 25))]["frequency_365d"] == 0.0
    with pytest.raises(ValueError, match="expected at least one as-of date"):
        gold.build_customer_features_over(*args, [])
