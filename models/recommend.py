"""Recommendations from past purchases and searches, by item co-occurrence, in Spark.

Everything is read from the look-back window ending at the as-of date, nothing after it:

* **purchases**: the skus a customer bought, in either channel (returns excluded);
* **co-occurrence**: customers who bought sku *a* also bought sku *b*; the similarity of two
  skus is the cosine of their sets of buyers (``buyers(a, b) / sqrt(buyers(a) * buyers(b))``),
  kept for the ``NEIGHBOURS`` most similar skus of each, seen with at least ``MIN_BUYERS``
  common buyers;
* **searches**: a query leads to the skus viewed after it in the same session, by anyone:
  ``P(sku viewed | query searched)`` over sessions, the ``NEIGHBOURS`` best per query.

A candidate sku scores, for one customer, the sum of its similarities to the skus they bought
plus ``SEARCH_WEIGHT`` times the sum of its probabilities under the queries they searched.
Skus they already bought in the window are not recommended again. When that leaves fewer
than ``top`` candidates (a new customer, a single purchase of a lone item), the list is filled
with the best sellers of the customer's segment, then with those of all customers (a segment
of lapsed customers may have bought nothing in the window). The reason names what weighed
most: the bought product and the search that contributed most to the list, or the segment.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from omni.transforms.gold import _since  # (as_of - days, as_of], as the features use

NEIGHBOURS = 20
MIN_BUYERS = 2
SEARCH_WEIGHT = 0.5
# Skus per customer that pair up in co-occurrence (the most recent): bounds the self-join.
MAX_ITEMS_PER_CUSTOMER = 25
# Places a summed score keeps (see ``_summed``): far below any difference that means something.
SCORE_DIGITS = 9
PURCHASE, SEARCH, SEGMENT = "purchase", "search", "segment"
# Where a candidate comes from, best first: the customer's own purchases and searches, the
# best sellers of their segment, the best sellers of all customers.
PERSONAL, SEGMENT_POPULAR, POPULAR = 0, 1, 2


def _purchase_lines(transactions: DataFrame, as_of: date, days: int) -> DataFrame:
    """Known customers' purchase lines (no returns) in the window."""
    return transactions.where(
        F.col("customer_key").isNotNull() & (F.col("quantity") > 0) & _since("date", as_of, days)
    )


def purchased(transactions: DataFrame, as_of: date, days: int) -> DataFrame:
    """(customer_key, sku, last_date): what each known customer bought in the window."""
    return (
        _purchase_lines(transactions, as_of, days)
        .groupBy("customer_key", "sku")
        .agg(F.max("date").alias("last_date"))
    )


def _summed(column: str | Column) -> Column:
    """The sum of a double column, rounded to ``SCORE_DIGITS`` places: Spark adds the partial
    sums in the order the shuffle delivers them, so the same doubles can sum to a different
    last bit on another run; rounded, equal scores tie exactly and the ordering's last key
    (the sku, the category, the source) decides, the same on every run."""
    return F.round(F.sum(column), SCORE_DIGITS)


def _top_per(df: DataFrame, key: str | list[str], order: list[Column], top: int) -> DataFrame:
    """The ``top`` rows of each ``key`` by ``order``."""
    rank = F.row_number().over(Window.partitionBy(key).orderBy(*order))
    return df.withColumn("_rank", rank).where(F.col("_rank") <= top).drop("_rank")


def item_similarity(bought: DataFrame) -> DataFrame:
    """(sku, neighbour, similarity): cosine of the two skus' buyer sets, best first."""
    recent = _top_per(
        bought, "customer_key", [F.col("last_date").desc(), F.col("sku")], MAX_ITEMS_PER_CUSTOMER
    ).select("customer_key", "sku")
    buyers = recent.groupBy("sku").agg(F.count("*").alias("buyers"))
    pairs = (
        recent.alias("a")
        .join(recent.alias("b"), "customer_key")
        .where(F.col("a.sku") != F.col("b.sku"))
        .groupBy(F.col("a.sku").alias("sku"), F.col("b.sku").alias("neighbour"))
        .agg(F.count("*").alias("common"))
        .where(F.col("common") >= MIN_BUYERS)
    )
    scored = (
        pairs.join(buyers, "sku")
        .join(
            buyers.select(F.col("sku").alias("neighbour"), F.col("buyers").alias("n_buyers")),
            "neighbour",
        )
        .select(
            "sku",
            "neighbour",
            (F.col("common") / F.sqrt(F.col("buyers") * F.col("n_buyers"))).alias("similarity"),
        )
    )
    return _top_per(scored, "sku", [F.col("similarity").desc(), F.col("neighbour")], NEIGHBOURS)


def search_associations(activity: DataFrame, as_of: date, days: int) -> DataFrame:
    """(search_query, sku, probability): P(sku viewed after the query in a session)."""
    in_window = activity.where(_since("event_date", as_of, days))
    searches = in_window.where(
        (F.col("event_type") == "search") & F.col("search_query").isNotNull()
    ).select("session_id", "search_query", F.col("event_ts").alias("searched_at"))
    views = in_window.where(
        (F.col("event_type") == "product_view") & F.col("sku").isNotNull()
    ).select("session_id", "sku", F.col("event_ts").alias("viewed_at"))
    sessions = searches.groupBy("search_query").agg(F.countDistinct("session_id").alias("sessions"))
    led_to = (
        searches.join(views, "session_id")
        .where(F.col("viewed_at") >= F.col("searched_at"))
        .groupBy("search_query", "sku")
        .agg(F.countDistinct("session_id").alias("hits"))
        .join(sessions, "search_query")
        .select("search_query", "sku", (F.col("hits") / F.col("sessions")).alias("probability"))
    )
    return _top_per(led_to, "search_query", [F.col("probability").desc(), F.col("sku")], NEIGHBOURS)


def customer_searches(activity: DataFrame, as_of: date, days: int) -> DataFrame:
    """(customer_key, search_query): the queries each known customer searched in the window."""
    return (
        activity.where(
            F.col("customer_key").isNotNull()
            & (F.col("event_type") == "search")
            & F.col("search_query").isNotNull()
            & _since("event_date", as_of, days)
        )
        .select("customer_key", "search_query")
        .distinct()
    )


def segment_best_sellers(bought: DataFrame, segments: DataFrame, top: int) -> DataFrame:
    """(segment_id, sku, share): the skus most of a segment's buyers bought, ``top`` of them."""
    members = segments.select("customer_key", "segment_id")
    size = members.groupBy("segment_id").agg(F.count("*").alias("members"))
    share = (
        bought.join(members, "customer_key")
        .groupBy("segment_id", "sku")
        .agg(F.countDistinct("customer_key").alias("buyers"))
        .join(size, "segment_id")
        .select("segment_id", "sku", (F.col("buyers") / F.col("members")).alias("share"))
    )
    return _top_per(share, "segment_id", [F.col("share").desc(), F.col("sku")], top)


def _contributions(
    bought: DataFrame, searched: DataFrame, similar: DataFrame, associations: DataFrame
) -> DataFrame:
    """(customer_key, sku, kind, source, weight): each signal's part of a candidate's score."""
    from_purchases = (
        bought.select("customer_key", F.col("sku").alias("source"))
        .join(similar.withColumnRenamed("sku", "source"), "source")
        .select(
            "customer_key",
            F.col("neighbour").alias("sku"),
            F.lit(PURCHASE).alias("kind"),
            "source",
            F.col("similarity").alias("weight"),
        )
    )
    from_searches = searched.join(associations, "search_query").select(
        "customer_key",
        "sku",
        F.lit(SEARCH).alias("kind"),
        F.col("search_query").alias("source"),
        (F.col("probability") * SEARCH_WEIGHT).alias("weight"),
    )
    return from_purchases.unionByName(from_searches).join(
        bought.select("customer_key", "sku"), ["customer_key", "sku"], "left_anti"
    )


def _candidates(
    bought: DataFrame,
    activity: DataFrame,
    segments: DataFrame,
    audience: DataFrame,
    as_of: date,
    days: int,
    top: int,
) -> tuple[DataFrame, DataFrame]:
    """(contributions, tiers) for the ``audience``: each signal's part of a personal
    candidate's score (cached), and every candidate with its ``tier`` (``PERSONAL``,
    ``SEGMENT_POPULAR``, ``POPULAR``) and score, a sku once per tier it is in."""
    # Similarities come from everyone's purchases; candidates only for the audience.
    contributions = _contributions(
        bought.join(audience, "customer_key", "left_semi"),
        customer_searches(activity, as_of, days).join(audience, "customer_key", "left_semi"),
        item_similarity(bought),
        search_associations(activity, as_of, days),
    ).cache()
    personal = contributions.groupBy("customer_key", "sku").agg(
        _summed("weight").alias("score"), F.lit(PERSONAL).alias("tier")
    )
    popular = (
        segments.join(audience, "customer_key", "left_semi")
        .select("customer_key", "segment_id")
        .join(segment_best_sellers(bought, segments, top * 3), "segment_id")
        .join(bought.select("customer_key", "sku"), ["customer_key", "sku"], "left_anti")
        .select(
            "customer_key",
            "sku",
            F.col("share").alias("score"),
            F.lit(SEGMENT_POPULAR).alias("tier"),
        )
    )
    # A segment that bought nothing in the window (lapsed customers) falls back on everyone.
    best_sellers = (
        bought.groupBy("sku")
        .agg(F.countDistinct("customer_key").alias("share"))
        .orderBy(F.col("share").desc(), "sku")
        .limit(top * 3)
    )
    overall = (
        audience.crossJoin(F.broadcast(best_sellers))
        .join(bought.select("customer_key", "sku"), ["customer_key", "sku"], "left_anti")
        .select("customer_key", "sku", F.col("share").alias("score"), F.lit(POPULAR).alias("tier"))
    )
    return contributions, personal.unionByName(popular).unionByName(overall)


def choose(tiers: DataFrame, top: int, by: tuple[str, ...] = ()) -> DataFrame:
    """(*by, customer_key, sku, tier, score): the ``top`` candidates of each customer of
    ``tiers`` (per value of the ``by`` columns). A sku in several tiers keeps its best
    (lowest) one; lower tiers come first, then higher scores, then the sku."""
    candidates = tiers.groupBy(*by, "customer_key", "sku").agg(
        F.min("tier").alias("tier"), F.min_by("score", "tier").alias("score")
    )
    return _top_per(
        candidates,
        [*by, "customer_key"],
        [F.col("tier"), F.col("score").desc(), F.col("sku")],
        top,
    )


def recommend(
    transactions: DataFrame,
    activity: DataFrame,
    products: DataFrame,
    segments: DataFrame,
    as_of: date,
    days: int,
    top: int = 5,
    top_categories: int = 3,
    audience: DataFrame | None = None,
) -> DataFrame:
    """The ``top`` skus for each customer of ``audience`` (customer_key; default: everyone in
    ``segments``). ``segments`` (customer_key, segment_id, segment_name) holds every scored
    customer: segment best sellers are counted over all of them.

    Returns customer_key, recommended_skus (best first), recommended_categories (the
    categories of those skus, by summed score, at most ``top_categories``) and reason.
    """
    if top < 1 or top_categories < 1:
        raise ValueError(f"top={top}, top_categories={top_categories}: expected at least 1 each")
    audience = (segments if audience is None else audience).select("customer_key").distinct()
    bought = purchased(transactions, as_of, days).cache()
    segments = segments.select("customer_key", "segment_id", "segment_name")
    members = segments.join(audience, "customer_key", "left_semi")
    contributions, tiers = _candidates(bought, activity, segments, audience, as_of, days, top)
    chosen = choose(tiers, top).cache()
    names = products.select("sku", "product_name", "category")
    skus = chosen.groupBy("customer_key").agg(
        F.sort_array(
            F.collect_list(F.struct(F.col("tier"), (-F.col("score")).alias("s"), F.col("sku")))
        ).alias("ranked")
    )
    categories = (
        chosen.join(names, "sku")
        .where(F.col("category").isNotNull())
        .groupBy("customer_key", "category")
        .agg(_summed(F.col("score") / (F.col("tier") + 1)).alias("weight"))
    )
    categories = (
        _top_per(
            categories,
            "customer_key",
            [F.col("weight").desc(), F.col("category")],
            top_categories,
        )
        .groupBy("customer_key")
        .agg(
            F.sort_array(F.collect_list(F.struct((-F.col("weight")).alias("w"), "category")))
            .getField("category")
            .alias("recommended_categories")
        )
    )
    return (
        members.select("customer_key", "segment_name")
        .join(skus, "customer_key", "left")
        .join(categories, "customer_key", "left")
        .join(_reasons(contributions, chosen, names), "customer_key", "left")
        .select(
            "customer_key",
            F.coalesce(F.col("ranked.sku"), F.array().cast("array<string>")).alias(
                "recommended_skus"
            ),
            F.coalesce("recommended_categories", F.array().cast("array<string>")).alias(
                "recommended_categories"
            ),
            F.coalesce(
                "reason",
                F.when(
                    F.col("ranked")[0]["tier"] == SEGMENT_POPULAR,
                    F.concat(F.lit("popular in your segment ("), "segment_name", F.lit(")")),
                )
                .when(F.col("ranked")[0]["tier"] == POPULAR, F.lit("popular with our customers"))
                .otherwise(F.lit("nothing to recommend yet")),
            ).alias("reason"),
        )
    )


def _reasons(contributions: DataFrame, chosen: DataFrame, names: DataFrame) -> DataFrame:
    """(customer_key, reason): the bought product and the search that weighed most."""
    used = contributions.join(
        chosen.where(F.col("tier") == PERSONAL).select("customer_key", "sku"),
        ["customer_key", "sku"],
    )
    per_source = used.groupBy("customer_key", "kind", "source").agg(
        _summed("weight").alias("weight")
    )
    heaviest = [F.col("weight").desc(), F.col("source")]
    strongest = _top_per(per_source, ["customer_key", "kind"], heaviest, 1).join(
        names.select(F.col("sku").alias("source"), "product_name"), "source", "left"
    )
    part = F.when(
        F.col("kind") == PURCHASE,
        F.concat(F.lit("you bought "), F.coalesce("product_name", "source")),
    ).otherwise(F.concat(F.lit('you searched "'), F.col("source"), F.lit('"')))
    return strongest.groupBy("customer_key").agg(
        F.concat(
            F.lit("because "),
            F.concat_ws(
                " and ",
                F.sort_array(F.collect_list(F.struct(F.col("kind"), part.alias("text")))).getField(
                    "text"
                ),
            ),
        ).alias("reason")
    )


# What the offline evaluation compares, by the tiers each may draw from: the feed's
# recommender, and the two popularity baselines it falls back on.
METHODS = {
    "recommender": (PERSONAL, SEGMENT_POPULAR, POPULAR),
    "segment_popularity": (SEGMENT_POPULAR, POPULAR),
    "popularity": (POPULAR,),
}
ALL, NEW = "all", "new"  # every customer evaluated; those with no purchase before the cut-off


def channel_mix(transactions: DataFrame, as_of: date, days: int) -> DataFrame:
    """(customer_key, channel_mix): "online only", "store only" or "both", from the
    customer's purchases in the window; customers with none there are not listed."""
    online = F.max((F.col("channel") == "online").cast("int"))
    store = F.max((F.col("channel") == "store").cast("int"))
    return (
        _purchase_lines(transactions, as_of, days)
        .groupBy("customer_key")
        .agg(
            F.when((online == 1) & (store == 1), "both")
            .when(online == 1, "online only")
            .otherwise("store only")
            .alias("channel_mix")
        )
    )


def holdout_evaluation(
    transactions: DataFrame,
    activity: DataFrame,
    segments: DataFrame,
    as_of: date,
    holdout_days: int,
    window_days: int,
    top: int = 5,
) -> list[dict]:
    """Recall@``top`` and hit rate of each of ``METHODS`` on the last ``holdout_days``.

    Recommendations are made as of the cut-off ``as_of - holdout_days`` from the
    ``window_days`` before it, exactly as the feed makes them, and compared with what each
    customer bought after it, up to ``as_of``, in any channel. Only skus new to the customer
    count: no method recommends what the customer bought in the window already. A customer's
    recall is the share of those skus in their list; the hit rate is the share of customers
    with at least one of them in it. ``segments`` (customer_key, segment_id, segment_name)
    are the customers' segments at the cut-off.

    Returns one dict per method and channel mix (``ALL``, the mixes of ``channel_mix`` as of
    the cut-off, ``NEW``): method, channel_mix, customers, recall, hit_rate.
    """
    if holdout_days < 1 or top < 1:
        raise ValueError(f"holdout_days={holdout_days}, top={top}: expected at least 1 each")
    cutoff = as_of - timedelta(days=holdout_days)
    bought = purchased(transactions, cutoff, window_days).cache()
    held = (
        purchased(transactions, as_of, holdout_days)
        .select("customer_key", "sku")
        .join(bought.select("customer_key", "sku"), ["customer_key", "sku"], "left_anti")
        .cache()
    )
    audience = held.select("customer_key").distinct()
    segments = segments.select("customer_key", "segment_id", "segment_name")
    contributions, tiers = _candidates(
        bought, activity, segments, audience, cutoff, window_days, top
    )
    # Every method chooses from the tiers it may draw from, all in one pass.
    drawn = tiers.sparkSession.createDataFrame(
        [(method, tier) for method, allowed in METHODS.items() for tier in allowed],
        "method string, tier int",
    )
    chosen = choose(tiers.join(F.broadcast(drawn), "tier"), top, by=("method",))
    hits = (
        chosen.join(held, ["customer_key", "sku"])
        .groupBy("method", "customer_key")
        .agg(F.count("*").alias("hits"))
    )
    relevant = held.groupBy("customer_key").agg(F.count("*").alias("relevant"))
    per_customer = (
        relevant.join(channel_mix(transactions, cutoff, window_days), "customer_key", "left")
        .crossJoin(F.broadcast(drawn.select("method").distinct()))
        .join(hits, ["method", "customer_key"], "left")
        .select(
            "method",
            F.coalesce("channel_mix", F.lit(NEW)).alias("channel_mix"),
            (F.coalesce("hits", F.lit(0)) / F.col("relevant")).alias("recall"),
            (F.coalesce("hits", F.lit(0)) > 0).cast("double").alias("hit"),
        )
    )
    per_mix = (
        per_customer.groupBy("method", "channel_mix")
        .agg(
            F.count("*").alias("customers"),
            F.sum("recall").alias("recall"),
            F.sum("hit").alias("hits"),
        )
        .collect()
    )
    for frame in (bought, held, contributions):
        frame.unpersist()
    # Sums per mix add up to the figures over all customers.
    totals: dict[tuple[str, str], list] = {}
    for row in per_mix:
        for mix in (row["channel_mix"], ALL):
            total = totals.setdefault((row["method"], mix), [0, 0.0, 0.0])
            total[0] += row["customers"]
            total[1] += row["recall"]
            total[2] += row["hits"]
    rows = [
        {
            "method": method,
            "channel_mix": mix,
            "customers": customers,
            "recall": recall / customers,
            "hit_rate": hits / customers,
        }
        for (method, mix), (customers, recall, hits) in totals.items()
    ]
    order = {method: i for i, method in enumerate(METHODS)}
    return sorted(
        rows,
        key=lambda r: (r["channel_mix"] != ALL, r["channel_mix"], order[r["method"]]),
    )
