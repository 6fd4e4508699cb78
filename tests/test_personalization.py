"""The personalization feed: recommendations from purchases and searches, and consent."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from pyspark.sql import functions as F

from models import recommend
from models.personalize import build_feed, feed_rows
from omni import lakehouse, tables
from tests.test_gold import _events, _tx
from tests.test_quality import batch

AS_OF = date(2026, 6, 30)
DAY = (AS_OF - timedelta(days=10)).isoformat()
SEGMENT_NAMES = {1: "loyal", 2: "new", 3: "lapsed"}
# Customer -> segment. K1-K3 bought P1 and P2 together; K4 only P1; K5 only searched; K6
# has no history at all; K7 bought P1 a year and a day ago (outside the window); K8 is alone
# in a segment that bought nothing.
SEGMENTS = {"K1": 1, "K2": 1, "K3": 1, "K4": 2, "K5": 2, "K6": 1, "K7": 2, "K8": 3}


def _purchase(key, sku, day=DAY, category="home", order=None):
    return (key, "store", "S1", order or f"{key}-{sku}-{day}", day, sku, 1, 10, 10, 0, category)


@pytest.fixture(scope="module")
def shop(spark):
    tx = [_purchase(k, sku) for k in ("K1", "K2", "K3") for sku in ("P1", "P2")]
    tx += [
        _purchase("K4", "P1"),
        # After the as-of date: must not count (K4 would have P3 excluded as bought).
        _purchase("K4", "P3", (AS_OF + timedelta(days=1)).isoformat(), "apparel"),
        _purchase("K7", "P1", (AS_OF - timedelta(days=366)).isoformat()),
    ]
    stamp = f"{DAY} 10:00:0"
    events = [
        # Two anonymous sessions: "rain jacket" then a view of P3; one view before the search.
        (None, DAY, stamp + "1", "search", "s1", "rain jacket", None),
        (None, DAY, stamp + "2", "product_view", "s1", None, "P3"),
        (None, DAY, stamp + "1", "product_view", "s2", None, "P4"),
        (None, DAY, stamp + "2", "search", "s2", "rain jacket", None),
        (None, DAY, stamp + "3", "product_view", "s2", None, "P3"),
        ("K5", DAY, stamp + "1", "search", "s3", "rain jacket", None),
    ]
    products = spark.createDataFrame(
        [
            ("P1", "Cast iron pan", "home"),
            ("P2", "Scented candle", "home"),
            ("P3", "Rain jacket", "apparel"),
            ("P4", "Yoga mat", "sports"),
        ],
        "sku string, product_name string, category string",
    )
    segments = spark.createDataFrame(
        [(k, s, SEGMENT_NAMES[s]) for k, s in SEGMENTS.items()],
        "customer_key string, segment_id int, segment_name string",
    )
    return _tx(spark, tx), _events(spark, events), products, segments


def _recommendations(shop, top=2):
    transactions, activity, products, segments = shop
    result = recommend.recommend(transactions, activity, products, segments, AS_OF, 365, top)
    return {r["customer_key"]: r for r in result.collect()}


def test_recommendations_come_from_co_purchases_searches_and_the_segment(shop):
    got = _recommendations(shop)
    assert set(got) == set(SEGMENTS)
    # Bought P1: customers who bought P1 also bought P2 (cosine 3/sqrt(4*3)).
    assert got["K4"]["recommended_skus"] == ["P2"]
    assert got["K4"]["recommended_categories"] == ["home"]
    assert got["K4"]["reason"] == "because you bought Cast iron pan"
    # Searched "rain jacket": both sessions viewed P3 after it; P4 only before it.
    assert got["K5"]["recommended_skus"][0] == "P3"
    assert got["K5"]["reason"] == 'because you searched "rain jacket"'
    # No history: the best sellers of the segment.
    assert got["K6"]["recommended_skus"] == ["P1", "P2"]
    assert got["K6"]["reason"] == "popular in your segment (loyal)"
    # A segment without purchases: the best sellers of all customers.
    assert got["K8"]["recommended_skus"] == ["P1", "P2"]
    assert got["K8"]["reason"] == "popular with our customers"
    # What a customer bought in the window is never recommended back.
    for key in ("K1", "K2", "K3"):
        assert not {"P1", "P2"} & set(got[key]["recommended_skus"])
    assert got["K1"]["reason"] == "nothing to recommend yet"
    # K7's purchase is older than the window: K7 is new to P1.
    assert "P1" in got["K7"]["recommended_skus"]


def test_only_the_audience_gets_recommendations_from_everyones_history(spark, shop):
    transactions, activity, products, segments = shop
    audience = spark.createDataFrame([("K6",), ("K4",)], "customer_key string")
    result = recommend.recommend(
        transactions, activity, products, segments, AS_OF, 365, 2, audience=audience
    )
    got = {r["customer_key"]: r["recommended_skus"] for r in result.collect()}
    # K6's segment best sellers and K4's co-purchases come from K1-K3, outside the audience.
    assert got == {"K6": ["P1", "P2"], "K4": ["P2"]}


def test_recommendations_ignore_everything_after_the_as_of_date(spark, shop):
    transactions, activity, products, segments = shop
    later = (AS_OF + timedelta(days=2)).isoformat()
    extra_tx = _tx(spark, [_purchase(k, "P4", later) for k in ("K1", "K2", "K4")])
    extra_events = _events(
        spark, [("K6", later, f"{later} 09:00:00", "search", "s9", "yoga", None)]
    )
    before = _recommendations(shop)
    after = _recommendations(
        (transactions.unionByName(extra_tx), activity.unionByName(extra_events), products, segments)
    )
    assert after == before


def test_equal_scores_tie_exactly_and_the_sku_decides(spark):
    """0.1 + 0.2 is not 0.3 in doubles, and Spark adds partial sums in the order the shuffle
    delivers them: rounded sums rank the same way on every run."""
    weights = spark.createDataFrame(
        [("c1", "b", 0.1), ("c1", "b", 0.2), ("c1", "a", 0.3)],
        "customer_key string, sku string, weight double",
    )
    scored = weights.groupBy("customer_key", "sku").agg(recommend._summed("weight").alias("score"))
    assert {r["sku"]: r["score"] for r in scored.collect()} == {"a": 0.3, "b": 0.3}
    best = recommend._top_per(scored, "customer_key", [F.col("score").desc(), F.col("sku")], 1)
    assert [r["sku"] for r in best.collect()] == ["a"]


def test_recommend_refuses_an_empty_list():
    with pytest.raises(ValueError, match="top=0"):
        recommend.recommend(None, None, None, None, AS_OF, 365, 0)


def _population(spark, consent):
    return spark.createDataFrame(
        [(k, f"C{k}", e, p) for k, (e, p) in consent.items()],
        "customer_key string, customer_id string, email_opt_in boolean, push_opt_in boolean",
    )


def _scores(spark, keys, value_at_risk=None):
    def change(i, row):
        row.update(
            value_at_risk=(value_at_risk or {}).get(keys[i]),
            customer_key=keys[i],
            customer_id=f"C{keys[i]}",
            as_of_date=AS_OF,
            segment_id=SEGMENTS[keys[i]],
            segment_name=SEGMENT_NAMES[SEGMENTS[keys[i]]],
        )

    return batch(spark, "gold.customer_scores", len(keys), change)


def test_feed_rows_are_one_per_opted_in_channel(spark, shop):
    transactions, activity, products, _ = shop
    consent = {"K1": (True, True), "K4": (True, False), "K5": (False, True), "K6": (False, False)}
    population = _population(spark, consent).unionByName(
        spark.createDataFrame(
            [("K2", None, True, True)],  # no CRM id: no recorded consent
            "customer_key string, customer_id string, email_opt_in boolean, push_opt_in boolean",
        )
    )
    at_risk = {"K1": 5.0, "K2": 99.0, "K5": 9.0, "K6": 50.0}  # K4: none (no value model)
    scores = _scores(spark, ["K1", "K2", "K4", "K5", "K6"], at_risk)
    feed = feed_rows(scores, population, transactions, activity, products, AS_OF, 365, 2)
    got = {(r["customer_key"], r["channel"]): r["contact_priority"] for r in feed.collect()}
    # A campaign that must choose contacts the most value at risk first, per channel; a
    # customer without a value comes last, and a customer without consent has no rank.
    assert got == {("K1", "email"): 1, ("K4", "email"): 2, ("K5", "push"): 1, ("K1", "push"): 2}
    k4 = feed.where(F.col("customer_key") == "K4").first()
    assert (k4["customer_id"], k4["segment_name"], k4["recommended_skus"]) == ("CK4", "new", ["P2"])


def test_a_rerun_after_consent_is_withdrawn_drops_the_channel(spark, settings, tmp_path):
    """build_feed on real Delta tables: the date's rows are replaced, consent read anew."""
    local = replace(settings, lakehouse_dir=tmp_path / "lakehouse")
    keys = ["K1", "K4", "K5"]

    def crm(email_k1):
        opt = {"K1": (email_k1, True), "K4": (True, False), "K5": (False, False)}

        def change(i, row):
            row.update(
                customer_id=f"C{keys[i]}",
                loyalty_card_id=None,
                email_opt_in=opt[keys[i]][0],
                push_opt_in=opt[keys[i]][1],
            )

        return batch(spark, "silver.customers", len(keys), change)

    def identity(i, row):
        row.update(identifier_type="customer_id", identifier=f"C{keys[i]}", customer_key=keys[i])

    lakehouse.overwrite(
        spark, local, tables.SILVER_IDENTITY, batch(spark, "silver.customer_identity", 3, identity)
    )
    lakehouse.overwrite(spark, local, tables.GOLD_SCORES, _scores(spark, keys))
    lakehouse.overwrite(spark, local, tables.SILVER_CUSTOMERS, crm(True))
    first = build_feed(spark, local, AS_OF, "feed-test")
    assert first["per_channel"] == {"email": 2, "push": 1}

    def feed():
        return {
            (r["customer_key"], r["channel"])
            for r in lakehouse.read_table(spark, local, tables.GOLD_FEED).collect()
        }

    assert feed() == {("K1", "email"), ("K1", "push"), ("K4", "email")}
    lakehouse.overwrite(spark, local, tables.SILVER_CUSTOMERS, crm(False))
    assert build_feed(spark, local, AS_OF, "feed-test")["feed_rows"] == 2
    assert feed() == {("K1", "push"), ("K4", "email")}


def test_the_feed_needs_the_date_scored(spark, settings, tmp_path):
    local = replace(settings, lakehouse_dir=tmp_path / "lakehouse")
    with pytest.raises(LookupError, match="no rows for 2026-06-30: run models/score.py"):
        build_feed(spark, local, AS_OF, "feed-test")


def _draw(campaign_id: str, customer_id: str) -> float:
    """raw-landing.md's rule, computed apart from Spark's."""
    digest = hashlib.sha256(f"{campaign_id}:{customer_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


# The contract's draw worked by hand: sha256("<campaign_id>:<customer_id>"), its first 8 hex
# digits as an integer (0x5f1f676d, 0x68dfe8a3, 0xf5bdbf9f: above 2^31, so no sign), / 2^32.
KNOWN_DRAWS = [
    ("CMP-WINBACK", "C00001", 0x5F1F676D / 2**32),  # 0.3716: control at a share of 0.4
    ("SPRING", "C00042", 0x68DFE8A3 / 2**32),  # 0.4097
    ("CMP-APPNEWS", "C01999", 0xF5BDBF9F / 2**32),  # 0.9599
]


def test_the_holdout_draw_is_the_contracts_formula_on_known_ids(spark):
    from models.campaigns import holdout_draw
    from omni.sample_campaigns import holdout_draw as generators_draw

    pairs = spark.createDataFrame([(c, u) for c, u, _ in KNOWN_DRAWS], "c string, u string")
    drawn = pairs.select("c", "u", holdout_draw(F.col("c"), F.col("u")).alias("draw"))
    assert [(r["c"], r["u"], r["draw"]) for r in drawn.collect()] == KNOWN_DRAWS
    assert [generators_draw(c, u) for c, u, _ in KNOWN_DRAWS] == [d for *_, d in KNOWN_DRAWS]


def test_campaign_audiences_are_assigned_once_by_the_rule_and_only_treatment_is_fed(
    spark, settings, tmp_path
):
    """build_feed on real Delta tables, two nights and a rerun: running campaigns only, each
    eligible customer (audience, consent, no unsubscribe) assigned once by the contract's
    draw, and a campaign named in the feed to its treatment group only."""
    local = replace(settings, lakehouse_dir=tmp_path / "lakehouse")
    n = 80
    ids = [f"C{i}" for i in range(n)]
    night2 = AS_OF + timedelta(days=1)

    def crm(late_opt_in):
        def change(i, row):
            email = i != 3 or late_opt_in  # C3 opts in to email on night 2 only
            row.update(customer_id=ids[i], loyalty_card_id=None, email_opt_in=email)
            row.update(push_opt_in=i % 2 == 0)

        return batch(spark, "silver.customers", n, change)

    def identity(i, row):
        row.update(identifier_type="customer_id", identifier=ids[i], customer_key=f"K{i}")

    def scores(day, shift=0):
        def change(i, row):
            row.update(customer_key=f"K{i}", customer_id=ids[i], as_of_date=day)
            row.update(segment_name="at risk" if (i + shift) % 3 == 0 else "loyal")
            row.update(churn_risk_band=("high", "medium", "low", "high")[(i + shift) % 4])

        return batch(spark, "gold.customer_scores", n, change)

    plans = {  # id: (channel, audience, holdout, start, end)
        "ALL": ("email", "all", 0.5, AS_OF, night2),
        "RISK": ("push", "at risk; high", 0.3, AS_OF - timedelta(days=3), night2),
        "BANDS": ("email", "high;medium", 0.0, AS_OF, AS_OF),
        "ENDED": ("email", "all", 0.2, AS_OF - timedelta(days=9), AS_OF - timedelta(days=1)),
        "LATER": ("push", "all", 0.2, night2 + timedelta(days=1), night2 + timedelta(days=5)),
    }

    def campaign(i, row):
        name = list(plans)[i]
        channel, audience, share, start, end = plans[name]
        row.update(campaign_id=name, channel=channel, audience=audience, holdout_share=share)
        row.update(start_date=start, end_date=end, conversion_window_days=7)

    def unsubscribe(i, row):
        row.update(event_id="U5", customer_id="C5", channel="email", event_type="unsubscribed")
        row.update(campaign_id="ALL", event_ts=datetime(2026, 6, 29, 8))

    write = lambda table, frame: lakehouse.overwrite(spark, local, table, frame)  # noqa: E731
    write(tables.SILVER_IDENTITY, batch(spark, "silver.customer_identity", n, identity))
    write(tables.SILVER_CAMPAIGNS, batch(spark, "silver.campaigns", len(plans), campaign))
    write(tables.SILVER_MESSAGES, batch(spark, "silver.campaign_messages", 1, unsubscribe))
    write(tables.SILVER_CUSTOMERS, crm(False))
    write(tables.GOLD_SCORES, scores(AS_OF).unionByName(scores(night2, shift=1)))

    def expected(day, shift, opted_in, running):
        rows = {}
        for i, customer in enumerate(ids):
            segment = "at risk" if (i + shift) % 3 == 0 else "loyal"
            band = ("high", "medium", "low", "high")[(i + shift) % 4]
            consent = {"email": (i != 3 or opted_in) and customer != "C5", "push": i % 2 == 0}
            for name in running:
                channel, audience, share, *_ = plans[name]
                terms = {t.strip() for t in audience.split(";")} - {"all"}
                bands = terms & {"low", "medium", "high"}
                segments = terms - bands
                if (
                    consent[channel]
                    and (not bands or band in bands)
                    and (not segments or segment in segments)
                ):
                    group = "control" if _draw(name, customer) < share else "treatment"
                    rows[name, f"K{i}"] = (customer, channel, group, segment, band, day)
        return rows

    def assignments():
        return {
            (r["campaign_id"], r["customer_key"]): (
                r["customer_id"],
                r["channel"],
                r["treatment_group"],
                r["segment_name"],
                r["churn_risk_band"],
                r["assigned_on"],
            )
            for r in lakehouse.read_table(spark, local, tables.GOLD_ASSIGNMENTS).collect()
        }

    def feed(day):
        return {
            (r["customer_key"], r["channel"]): r["campaign_ids"]
            for r in lakehouse.read_table(spark, local, tables.GOLD_FEED)
            .where(F.col("as_of_date") == day)
            .collect()
        }

    first = build_feed(spark, local, AS_OF, "night-1")
    want = expected(AS_OF, 0, False, ["ALL", "RISK", "BANDS"])
    assert assignments() == want
    assert first["assigned"] == len(want)
    groups = {g for (_, _, g, *_) in want.values()}
    assert groups == {"treatment", "control"}
    treated = {(key, name) for (name, key), row in want.items() if row[2] == "treatment"}
    fed = feed(AS_OF)
    for (key, channel), campaign_ids in fed.items():
        channel_of = {name: plans[name][0] for name in plans}
        assert campaign_ids == sorted(
            name for name in plans if (key, name) in treated and channel_of[name] == channel
        ), (key, channel)
    assert ("K5", "email") not in fed and ("K5", "push") not in fed  # unsubscribed; odd: no push
    assert ("K3", "email") not in fed

    # Night 2: C3 now opts in (assigned that night), the scores move (nobody's first row does),
    # BANDS has ended (its rows stay, no feed names it). A rerun changes nothing.
    write(tables.SILVER_CUSTOMERS, crm(True))
    build_feed(spark, local, night2, "night-2")
    later = {
        pair: row
        for pair, row in expected(night2, 1, True, ["ALL", "RISK"]).items()
        if pair not in want
    }
    assert later and all(row[5] == night2 for row in later.values())
    assert ("ALL", "K3") in later
    assert assignments() == {**want, **later}
    rerun = build_feed(spark, local, night2, "night-2-rerun")
    assert rerun["assigned"] == len(later)
    assert assignments() == {**want, **later}
    assert all("BANDS" not in ids_ for ids_ in feed(night2).values())
