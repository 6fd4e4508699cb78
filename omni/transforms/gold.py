"""Pure gold transforms: customer purchases across channels, profiles, features and KPIs.

Every function takes its as-of date as a parameter and reads nothing after it, so the same
code builds tonight's features and the point-in-time training sets of the past.

Spend is *net of returns*: a return is a negative line, so a customer whose window holds only
returns, or more returns than purchases, has a negative net spend. That is valid data. Shares
of spend (online share, discount share) are taken on purchases before returns, so they stay
between 0 and 1.

A *customer* is an identity component holding a CRM ``customer_id`` or a loyalty card:
anonymous visitors who never log in and receipts without a card are counted in the KPIs but
get no profile.

Two ways to the same rows: from the history (``customer_transactions`` and
``customer_activity``, what the models' training sets use) or from the customers' days
(``silver.customer_daily``: ``customer_days`` summed by silver, ``resolve_keys`` at read), what
the nightly gold job uses, so its cost follows the days in the windows, not every line and
event ever recorded. Both go through ``daily_aggregates`` and ``customer_base_from_days``.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from omni.sources import EVENTS, POS
from omni.tables import FEATURE_COLUMNS
from omni.transforms.identity import node

ONLINE, STORE = "online", "store"


def _lit_date(value: date) -> Column:
    return F.lit(value.isoformat()).cast("date")


def _keys(identity: DataFrame, identifier_type: str, column: str, key: str) -> DataFrame:
    return identity.where(F.col("identifier_type") == identifier_type).select(
        F.col("identifier").alias(column), F.col("customer_key").alias(key)
    )


def customer_population(identity: DataFrame, customers: DataFrame) -> DataFrame:
    """One row per customer: key, CRM id (lowest when several), consent and sign-up date."""
    known = (
        identity.where(F.col("identifier_type").isin("customer_id", "loyalty_card_id"))
        .groupBy("customer_key")
        .agg(
            F.min(F.when(F.col("identifier_type") == "customer_id", F.col("identifier"))).alias(
                "customer_id"
            )
        )
    )
    crm = customers.select(
        "customer_id", "email_opt_in", "push_opt_in", F.to_date("signup_ts").alias("signup_date")
    )
    return (
        known.join(crm, on="customer_id", how="left")
        .withColumn("email_opt_in", F.coalesce("email_opt_in", F.lit(False)))
        .withColumn("push_opt_in", F.coalesce("push_opt_in", F.lit(False)))
    )


IDENTIFIERS = ("customer_id", "anonymous_id", "loyalty_card_id")
# The grain of ``silver.customer_daily``: a day of one channel's records that carry the same
# identifiers (online a customer id and a device, in store a loyalty card).
DAY_KEYS = ("date", "channel", *IDENTIFIERS)
TRANSACTION_COLUMNS = (
    "sku",
    "customer_key",
    "channel",
    "store_id",
    "transaction_id",
    "date",
    "quantity",
    "net_amount",
    "gross_amount",
    "discount_amount",
    "category",
)


def purchase_lines(order_lines: DataFrame, pos_lines: DataFrame, products: DataFrame) -> DataFrame:
    """Purchase and return lines of both channels, with the identifiers they carry and the
    sku's category: online a customer id and a device, in store a loyalty card."""
    online = order_lines.select(
        F.lit(ONLINE).alias("channel"),
        "customer_id",
        "anonymous_id",
        F.lit(None).cast("string").alias("loyalty_card_id"),
        F.lit(None).cast("string").alias("store_id"),
        F.col("order_id").alias("transaction_id"),
        F.col("order_date").alias("date"),
        "sku",
        "quantity",
        F.col("net_amount").cast("decimal(14,2)").alias("net_amount"),
        F.col("net_amount").cast("decimal(14,2)").alias("gross_amount"),
        F.lit(0).cast("decimal(12,2)").alias("discount_amount"),
    )
    store = pos_lines.select(
        F.lit(STORE).alias("channel"),
        F.lit(None).cast("string").alias("customer_id"),
        F.lit(None).cast("string").alias("anonymous_id"),
        "loyalty_card_id",
        "store_id",
        "transaction_id",
        F.col("transaction_date").alias("date"),
        "sku",
        "quantity",
        F.col("net_amount").cast("decimal(14,2)").alias("net_amount"),
        (F.col("quantity") * F.col("unit_price")).cast("decimal(14,2)").alias("gross_amount"),
        F.col("discount_amount").cast("decimal(12,2)").alias("discount_amount"),
    )
    categories = products.select("sku", "category")
    return online.unionByName(store).join(F.broadcast(categories), "sku", "left")


def _online_keys(df: DataFrame, identity: DataFrame, with_node: bool = False) -> DataFrame:
    """Online rows with their ``customer_key``: the logged-in customer's, else the device's
    (and with ``with_node``, ``key_node``: the identity graph's node the key came from)."""
    keyed = (
        df.join(
            _keys(identity, "customer_id", "customer_id", "_by_customer"), "customer_id", "left"
        )
        .join(_keys(identity, "anonymous_id", "anonymous_id", "_by_device"), "anonymous_id", "left")
        .withColumn("customer_key", F.coalesce("_by_customer", "_by_device"))
    )
    if with_node:
        keyed = keyed.withColumn(
            "key_node",
            F.when(F.col("_by_customer").isNotNull(), node("customer_id", "customer_id")).when(
                F.col("_by_device").isNotNull(), node("anonymous_id", "anonymous_id")
            ),
        )
    return keyed.drop("_by_customer", "_by_device")


def resolve_keys(df: DataFrame, identity: DataFrame, with_node: bool = False) -> DataFrame:
    """Rows of both channels (``channel`` and ``IDENTIFIERS`` columns) with the customer key
    their identifiers resolve to today: online the customer's, else the device's; in store the
    loyalty card's. Null when nothing resolves (an anonymous receipt). With ``with_node``, also
    the node the key came from (``key_node``), so the key can be resolved on another day."""
    online = _online_keys(df.where(F.col("channel") == ONLINE), identity, with_node)
    store = df.where(F.col("channel") == STORE).join(
        _keys(identity, "loyalty_card_id", "loyalty_card_id", "customer_key"),
        "loyalty_card_id",
        "left",
    )
    if with_node:
        store = store.withColumn(
            "key_node",
            F.when(F.col("customer_key").isNotNull(), node("loyalty_card_id", "loyalty_card_id")),
        )
    return online.unionByName(store)


def customer_transactions(
    order_lines: DataFrame,
    pos_lines: DataFrame,
    identity: DataFrame,
    products: DataFrame,
    with_node: bool = False,
) -> DataFrame:
    """Purchase and return lines of both channels, with the buyer's key (null when unknown)
    and with ``with_node`` the node it came from (``resolve_keys``)."""
    lines = purchase_lines(order_lines, pos_lines, products)
    extra = ("key_node",) if with_node else ()
    return resolve_keys(lines, identity, with_node).select(*TRANSACTION_COLUMNS, *extra)


def customer_activity(events: DataFrame, identity: DataFrame, with_node: bool = False) -> DataFrame:
    """Online events with the visitor's key (logged-in customer first, else the device)."""
    extra = ("key_node",) if with_node else ()
    return _online_keys(events, identity, with_node).select(
        "customer_key",
        "event_date",
        "event_ts",
        "event_type",
        "session_id",
        "search_query",
        "sku",
        *extra,
    )


EVENT_COUNTS = {
    "product_views": "product_view",
    "searches": "search",
    "cart_adds": "add_to_cart",
}


def daily_aggregates(lines: DataFrame, events: DataFrame, keys: list[str]) -> DataFrame:
    """One row per ``keys`` (a day, a channel and whom the records are of): the day's
    purchases and visits summed, with what does not add up across days kept as sets (orders,
    sessions, categories) or per value (spend per category, last time of each search).

    ``lines`` are ``purchase_lines`` (or transactions), ``events`` online events with a
    ``date`` and a ``channel``; both carry the ``keys`` columns.
    """
    bought = F.col("quantity") > 0
    per_category = lines.groupBy(*keys, "category").agg(
        F.collect_set("transaction_id").alias("_transactions"),
        F.count("*").alias("lines"),
        F.sum("net_amount").alias("net_amount"),
        F.sum(F.when(bought, F.col("gross_amount"))).alias("gross_amount"),
        F.sum(F.when(bought, F.col("discount_amount"))).alias("discount_amount"),
        F.sum(F.when(bought, F.col("quantity"))).alias("bought_units"),
        F.sum(F.when(F.col("quantity") < 0, -F.col("quantity"))).alias("returned_units"),
    )
    purchases = per_category.select(
        *keys,
        "_transactions",
        "lines",
        "net_amount",
        "gross_amount",
        "discount_amount",
        "bought_units",
        "returned_units",
        F.when(F.col("category").isNotNull(), F.struct("category", "net_amount")).alias("_spend"),
        F.when(
            F.col("category").isNotNull() & (F.col("bought_units") > 0), F.col("category")
        ).alias("_bought"),
    )
    visits = events.groupBy(*keys).agg(
        F.collect_set("session_id").alias("_sessions"),
        F.count("*").alias("events"),
        *(
            F.sum(F.when(F.col("event_type") == kind, 1).otherwise(0)).alias(name)
            for name, kind in EVENT_COUNTS.items()
        ),
    )
    searches = (
        events.where((F.col("event_type") == "search") & F.col("search_query").isNotNull())
        .groupBy(*keys, "search_query")
        .agg(F.max("event_ts").alias("_last"))
        .select(*keys, F.struct("search_query", "_last").alias("_search"))
    )
    parts = purchases.unionByName(visits, allowMissingColumns=True).unionByName(
        searches, allowMissingColumns=True
    )

    def merged(column: str) -> Column:
        return F.array_sort(F.array_distinct(F.flatten(F.collect_list(column))))

    def total(column: str, type_: str = "bigint") -> Column:
        return F.coalesce(F.sum(column), F.lit(0)).cast(type_).alias(column)

    return parts.groupBy(*keys).agg(
        merged("_transactions").alias("transaction_ids"),
        total("lines"),
        *(
            total(name, "decimal(18,2)")
            for name in ("net_amount", "gross_amount", "discount_amount")
        ),
        total("bought_units"),
        total("returned_units"),
        F.map_from_entries(F.collect_list("_spend")).alias("category_net"),
        F.array_sort(F.collect_list("_bought")).alias("bought_categories"),
        total("events"),
        merged("_sessions").alias("session_ids"),
        *(total(name) for name in EVENT_COUNTS),
        F.map_from_entries(F.collect_list("_search")).alias("search_last_at"),
    )


def _visits(events: DataFrame, *keys: str | Column) -> DataFrame:
    """Online events as ``daily_aggregates`` takes them: whom they are of (``keys``), their
    date and channel, and what a day of visits keeps."""
    return events.select(
        *keys,
        F.col("event_date").alias("date"),
        F.lit(ONLINE).alias("channel"),
        "session_id",
        "event_type",
        "search_query",
        "event_ts",
    )


def customer_days(lines: DataFrame, events: DataFrame) -> DataFrame:
    """Rows of ``silver.customer_daily`` (without the run id): ``daily_aggregates`` of the
    records that carry an identifier, by the identifiers they carry (resolved at read, so a
    link found later moves their days with it). ``lines``: ``purchase_lines``."""
    identified = F.col("customer_id").isNotNull()
    for column in IDENTIFIERS[1:]:
        identified = identified | F.col(column).isNotNull()
    visits = _visits(
        events, "customer_id", "anonymous_id", F.lit(None).cast("string").alias("loyalty_card_id")
    )
    return daily_aggregates(lines.where(identified), visits.where(identified), list(DAY_KEYS))


def history_days(transactions: DataFrame, activity: DataFrame) -> DataFrame:
    """``daily_aggregates`` per customer key, channel and day of resolved history."""
    visits = _visits(activity.where(F.col("customer_key").isNotNull()), "customer_key")
    return daily_aggregates(
        transactions.where(F.col("customer_key").isNotNull()),
        visits,
        ["customer_key", "date", "channel"],
    )


def first_purchases(days: DataFrame) -> DataFrame:
    """(customer_key, channel, first_date): each customer's first purchase day per channel."""
    return (
        days.where(F.col("bought_units") > 0)
        .groupBy("customer_key", "channel")
        .agg(F.min("date").alias("first_date"))
    )


def _since(column: str, as_of: date, days: int) -> Column:
    """Rows within the ``days`` days ending at ``as_of`` (inclusive)."""
    return (F.col(column) > _lit_date(as_of - timedelta(days=days))) & (
        F.col(column) <= _lit_date(as_of)
    )


def _purchase_aggregates(transactions: DataFrame, as_of: date) -> DataFrame:
    tx = transactions.where(F.col("customer_key").isNotNull() & (F.col("date") <= _lit_date(as_of)))
    in_365 = _since("date", as_of, 365)
    net_365 = F.when(in_365, F.col("net_amount")).otherwise(0)

    def orders(condition: Column) -> Column:
        return F.countDistinct(F.when(condition, F.col("transaction_id")))

    return tx.groupBy("customer_key").agg(
        F.max("date").alias("last_purchase_date"),
        F.min("date").alias("first_purchase_date"),
        orders(_since("date", as_of, 30)).alias("frequency_30d"),
        orders(_since("date", as_of, 60) & ~_since("date", as_of, 30)).alias("frequency_prev_30d"),
        orders(_since("date", as_of, 90)).alias("frequency_90d"),
        orders(in_365).alias("frequency_365d"),
        orders(in_365 & (F.col("channel") == ONLINE)).alias("online_orders_365d"),
        orders(in_365 & (F.col("channel") == STORE)).alias("store_orders_365d"),
        F.sum(F.when(_since("date", as_of, 90), F.col("net_amount")).otherwise(0)).alias(
            "monetary_90d"
        ),
        F.sum(net_365).alias("monetary_365d"),
        F.sum(
            F.when(
                in_365 & (F.col("channel") == ONLINE) & (F.col("quantity") > 0),
                F.col("gross_amount"),
            ).otherwise(0)
        ).alias("online_gross_365d"),
        F.sum(F.when(in_365 & (F.col("quantity") < 0), -F.col("quantity")).otherwise(0)).alias(
            "returned_units_365d"
        ),
        F.sum(F.when(in_365 & (F.col("quantity") > 0), F.col("quantity")).otherwise(0)).alias(
            "bought_units_365d"
        ),
        F.sum(
            F.when(in_365 & (F.col("quantity") > 0), F.col("discount_amount")).otherwise(0)
        ).alias("discount_365d"),
        F.sum(F.when(in_365 & (F.col("quantity") > 0), F.col("gross_amount")).otherwise(0)).alias(
            "gross_365d"
        ),
        F.countDistinct(F.when(in_365 & (F.col("quantity") > 0), F.col("category"))).alias(
            "category_breadth_365d"
        ),
        F.min(F.when(F.col("channel") == ONLINE, F.col("date"))).alias("first_purchase_online"),
        F.max(F.when(F.col("channel") == ONLINE, F.col("date"))).alias("last_purchase_online"),
        F.min(F.when(F.col("channel") == STORE, F.col("date"))).alias("first_purchase_store"),
        F.max(F.when(F.col("channel") == STORE, F.col("date"))).alias("last_purchase_store"),
    )


def _activity_aggregates(activity: DataFrame, as_of: date, days: int) -> DataFrame:
    events = activity.where(
        F.col("customer_key").isNotNull() & (F.col("event_date") <= _lit_date(as_of))
    )
    recent = _since("event_date", as_of, days)

    def count_of(event_type: str) -> Column:
        return F.sum(F.when(recent & (F.col("event_type") == event_type), 1).otherwise(0))

    return events.groupBy("customer_key").agg(
        F.max("event_date").alias("last_event_date"),
        F.countDistinct(F.when(recent, F.col("session_id"))).alias("sessions_30d"),
        F.countDistinct(F.when(_since("event_date", as_of, 7), F.col("session_id"))).alias(
            "sessions_7d"
        ),
        F.countDistinct(F.when(_since("event_date", as_of, 14), F.col("session_id"))).alias(
            "sessions_14d"
        ),
        F.countDistinct(
            F.when(_since("event_date", as_of, 2 * days) & ~recent, F.col("session_id"))
        ).alias("sessions_prev_30d"),
        count_of("product_view").alias("product_views_30d"),
        count_of("search").alias("searches_30d"),
        count_of("add_to_cart").alias("cart_adds_30d"),
    )


def _ratio(numerator: str, denominator: str) -> Column:
    return F.when(F.col(denominator) > 0, F.col(numerator) / F.col(denominator)).otherwise(0.0)


def _known_by(as_of: Column) -> Column:
    """A customer of the as-of date: signed up, bought or seen online by then."""
    return (
        (F.col("signup_date") <= as_of)
        | F.col("last_purchase_date").isNotNull()
        | F.col("last_event_date").isNotNull()
    )


def customer_base(
    population: DataFrame, transactions: DataFrame, activity: DataFrame, as_of: date
) -> DataFrame:
    """Population as of ``as_of`` (signed up or seen by then) joined to its aggregates: what
    the features and the profile of one day are built on, straight from the history."""
    purchases = _purchase_aggregates(transactions, as_of)
    events = _activity_aggregates(activity, as_of, 30)
    base = population.join(purchases, "customer_key", "left").join(events, "customer_key", "left")
    return base.where(_known_by(_lit_date(as_of)))


def build_customer_features(
    population: DataFrame,
    transactions: DataFrame,
    activity: DataFrame,
    as_of: date,
    window_days: int = 365,
) -> DataFrame:
    """Point-in-time features for every customer known at ``as_of``; nothing after it is read."""
    base = customer_base(population, transactions, activity, as_of)
    return _features(base, _lit_date(as_of), window_days)


def _features(base: DataFrame, as_of_col: Column, window_days: int) -> DataFrame:
    """The feature columns of ``base`` rows (one customer, one as-of date ``as_of_col``)."""
    last_visit = F.greatest("last_purchase_date", "last_event_date")
    first_seen = F.least("first_purchase_date", "signup_date")
    features = {
        "recency_days": F.coalesce(F.datediff(as_of_col, "last_purchase_date"), F.lit(window_days)),
        "frequency_30d": F.col("frequency_30d"),
        "frequency_90d": F.col("frequency_90d"),
        "frequency_365d": F.col("frequency_365d"),
        "monetary_90d": F.col("monetary_90d"),
        "monetary_365d": F.col("monetary_365d"),
        "avg_order_value_365d": _ratio("monetary_365d", "frequency_365d"),
        "online_share_365d": _ratio("online_gross_365d", "gross_365d"),
        "store_orders_365d": F.col("store_orders_365d"),
        "online_orders_365d": F.col("online_orders_365d"),
        "tenure_days": F.coalesce(F.datediff(as_of_col, first_seen), F.lit(0)),
        "days_since_last_visit": F.coalesce(F.datediff(as_of_col, last_visit), F.lit(window_days)),
        "sessions_30d": F.col("sessions_30d"),
        "product_views_30d": F.col("product_views_30d"),
        "searches_30d": F.col("searches_30d"),
        "cart_adds_30d": F.col("cart_adds_30d"),
        "return_rate_365d": _ratio("returned_units_365d", "bought_units_365d"),
        "discount_share_365d": _ratio("discount_365d", "gross_365d"),
        "category_breadth_365d": F.col("category_breadth_365d"),
        "activity_trend": (F.coalesce("frequency_30d", F.lit(0)) + 1)
        / (F.coalesce("frequency_prev_30d", F.lit(0)) + 1),
        "sessions_7d": F.col("sessions_7d"),
        "sessions_14d": F.col("sessions_14d"),
        "sessions_prev_30d": F.col("sessions_prev_30d"),
        "session_trend": (F.coalesce("sessions_30d", F.lit(0)) + 1)
        / (F.coalesce("sessions_prev_30d", F.lit(0)) + 1),
    }
    assert tuple(features) == tuple(name for name, _ in FEATURE_COLUMNS)
    return base.select(
        "customer_key",
        "customer_id",
        *(
            F.coalesce(expr.cast("double"), F.lit(0.0)).alias(name)
            for name, expr in features.items()
        ),
        F.col("last_purchase_date").isNotNull().alias("has_purchase"),
        as_of_col.alias("as_of_date"),
    )


def _within(column: str, as_of: Column, start: int, end: int = 0) -> Column:
    """Rows dated in ``(as_of - start, as_of - end]`` days, for an as-of date column."""
    return (F.col(column) > F.date_sub(as_of, start)) & (F.col(column) <= F.date_sub(as_of, end))


def _latest_on_or_before(days: DataFrame, dates: DataFrame, column: str, alias: str) -> DataFrame:
    """(customer_key, as_of_date, alias): each customer's latest ``column`` day on or before each
    as-of date. Each day row covers the as-of dates up to its next day: one match per date."""
    spans = (
        days.select("customer_key", column)
        .distinct()
        .withColumn(
            "_next", F.lead(column).over(Window.partitionBy("customer_key").orderBy(column))
        )
    )
    return spans.join(
        F.broadcast(dates),
        (F.col(column) <= F.col("as_of_date"))
        & (F.col("_next").isNull() | (F.col("_next") > F.col("as_of_date"))),
    ).select("customer_key", "as_of_date", F.col(column).alias(alias))


def _in_windows(daily: DataFrame, dates: DataFrame, column: str, days: int) -> DataFrame:
    """Each daily row joined to every as-of date whose ``days``-day window holds it."""
    return daily.join(
        F.broadcast(dates),
        (F.col(column) <= F.col("as_of_date"))
        & (F.col(column) > F.date_sub(F.col("as_of_date"), days)),
    )


def customer_base_over(
    population: DataFrame, transactions: DataFrame, activity: DataFrame, dates: list[date]
) -> DataFrame:
    """``customer_base`` for every date of ``dates`` at once, with an ``as_of_date`` column:
    ``customer_base_from_days`` of the history's daily aggregates (one pass, not one per date).
    ``customer_base`` of each date gives the same rows (tested)."""
    return customer_base_from_days(population, history_days(transactions, activity), dates)


def customer_base_from_days(population: DataFrame, days: DataFrame, dates: list[date]) -> DataFrame:
    """``customer_base`` for every date of ``dates``, from daily aggregates with a
    ``customer_key`` (``daily_aggregates`` rows, several per customer and day allowed: one per
    identifier that resolves to the customer).

    Each day joins the as-of dates whose windows hold it. Counts of orders add up per day
    because an order or receipt has one date; sessions and categories are counted distinct over
    the days of the window.
    """
    if not dates:
        raise ValueError("dates: expected at least one as-of date")
    spark = population.sparkSession
    as_of = F.col("as_of_date")
    calendar = spark.createDataFrame([(d,) for d in sorted(set(dates))], "as_of_date date")
    bought = days.where(F.col("lines") > 0)
    visited = days.where(F.col("events") > 0)
    online = F.col("channel") == ONLINE

    def orders(condition: Column | None = None) -> Column:
        ids = F.col("transaction_ids")
        ids = ids if condition is None else F.when(condition, ids)
        return F.size(F.array_distinct(F.flatten(F.collect_list(ids))))

    daily = bought.groupBy("customer_key", "date").agg(
        orders().alias("orders"),
        orders(online).alias("online_orders"),
        orders(~online).alias("store_orders"),
        F.sum("net_amount").alias("net"),
        F.sum(F.when(online, F.col("gross_amount")).otherwise(0)).alias("online_gross"),
        F.sum("returned_units").alias("returned"),
        F.sum("bought_units").alias("bought"),
        F.sum("discount_amount").alias("discount"),
        F.sum("gross_amount").alias("gross"),
    )

    # The types one-date sums of the lines' amounts have (Spark's sum widens a decimal by 10
    # digits), so that ratios of them divide with the same scale as in ``customer_base``.
    amounts = {
        "net": "decimal(24,2)",
        "online_gross": "decimal(24,2)",
        "gross": "decimal(24,2)",
        "discount": "decimal(22,2)",
    }

    def total(name: str, start: int, end: int = 0) -> Column:
        summed = F.sum(F.when(_within("date", as_of, start, end), F.col(name)))
        return summed.cast(amounts[name]) if name in amounts else summed

    purchases = (
        _in_windows(daily, calendar, "date", 365)
        .groupBy("customer_key", "as_of_date")
        .agg(
            total("orders", 30).alias("frequency_30d"),
            total("orders", 60, 30).alias("frequency_prev_30d"),
            total("orders", 90).alias("frequency_90d"),
            total("orders", 365).alias("frequency_365d"),
            total("online_orders", 365).alias("online_orders_365d"),
            total("store_orders", 365).alias("store_orders_365d"),
            total("net", 90).alias("monetary_90d"),
            total("net", 365).alias("monetary_365d"),
            total("online_gross", 365).alias("online_gross_365d"),
            total("returned", 365).alias("returned_units_365d"),
            total("bought", 365).alias("bought_units_365d"),
            total("discount", 365).alias("discount_365d"),
            total("gross", 365).alias("gross_365d"),
        )
    )
    categories = (
        _in_windows(
            bought.select(
                "customer_key", "date", F.explode("bought_categories").alias("category")
            ).distinct(),
            calendar,
            "date",
            365,
        )
        .groupBy("customer_key", "as_of_date")
        .agg(F.countDistinct("category").alias("category_breadth_365d"))
    )
    firsts = bought.groupBy("customer_key").agg(F.min("date").alias("first_purchase_date"))
    sessions = (
        _in_windows(
            visited.select(
                "customer_key", "date", F.explode("session_ids").alias("session_id")
            ).distinct(),
            calendar,
            "date",
            60,
        )
        .groupBy("customer_key", "as_of_date")
        .agg(
            *(
                F.countDistinct(
                    F.when(_within("date", as_of, start, end), F.col("session_id"))
                ).alias(name)
                for name, start, end in (
                    ("sessions_30d", 30, 0),
                    ("sessions_7d", 7, 0),
                    ("sessions_14d", 14, 0),
                    ("sessions_prev_30d", 60, 30),
                )
            )
        )
    )
    counts = (
        _in_windows(
            visited.groupBy("customer_key", "date").agg(
                *(F.sum(name).alias(name) for name in EVENT_COUNTS)
            ),
            calendar,
            "date",
            30,
        )
        .groupBy("customer_key", "as_of_date")
        .agg(*(F.sum(name).alias(f"{name}_30d") for name in EVENT_COUNTS))
    )
    keys = ["customer_key", "as_of_date"]
    base = population.crossJoin(F.broadcast(calendar))
    for part in (
        _latest_on_or_before(bought, calendar, "date", "last_purchase_date"),
        _latest_on_or_before(visited, calendar, "date", "last_event_date"),
        purchases,
        categories,
        sessions,
        counts,
    ):
        base = base.join(part, keys, "left")
    base = base.join(firsts, "customer_key", "left").withColumn(
        "first_purchase_date",
        F.when(F.col("last_purchase_date").isNotNull(), F.col("first_purchase_date")),
    )
    return base.where(_known_by(as_of))


def build_customer_features_over(
    population: DataFrame,
    transactions: DataFrame,
    activity: DataFrame,
    dates: list[date],
    window_days: int = 365,
) -> DataFrame:
    """``build_customer_features`` of every date of ``dates``, in one pass (a backfill)."""
    return features_of(customer_base_over(population, transactions, activity, dates), window_days)


def features_of(base: DataFrame, window_days: int = 365) -> DataFrame:
    """The features of ``customer_base_over`` or ``customer_base_from_days`` rows."""
    return _features(base, F.col("as_of_date"), window_days)


def _top_values(df: DataFrame, value: str, order_by: Column, top: int, alias: str) -> DataFrame:
    """Per customer, the ``top`` values of ``value`` ranked by ``order_by`` as an array."""
    order = Window.partitionBy("customer_key").orderBy(order_by, value)
    return (
        df.withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= top)
        .groupBy("customer_key")
        .agg(F.sort_array(F.collect_list(F.struct("rank", value))).alias("ranked"))
        .select("customer_key", F.col(f"ranked.{value}").alias(alias))
    )


def _top_categories(transactions: DataFrame, as_of: date, top: int = 3) -> DataFrame:
    spend = (
        transactions.where(
            F.col("customer_key").isNotNull()
            & _since("date", as_of, 365)
            & F.col("category").isNotNull()
        )
        .groupBy("customer_key", "category")
        .agg(F.sum("net_amount").alias("spend"))
        .where(F.col("spend") > 0)
    )
    return _top_values(spend, "category", F.col("spend").desc(), top, "top_categories")


def _recent_searches(activity: DataFrame, as_of: date, top: int = 5) -> DataFrame:
    searches = (
        activity.where(
            F.col("customer_key").isNotNull()
            & (F.col("event_type") == "search")
            & _since("event_date", as_of, 30)
            & F.col("search_query").isNotNull()
        )
        .groupBy("customer_key", "search_query")
        .agg(F.max("event_ts").alias("last_ts"))
    )
    return _top_values(searches, "search_query", F.col("last_ts").desc(), top, "recent_searches")


def build_customer_profile(
    population: DataFrame,
    transactions: DataFrame,
    activity: DataFrame,
    as_of: date,
) -> DataFrame:
    """One row per customer known at ``as_of``: RFM, channel history, interests, consent."""
    base = customer_base(population, transactions, activity, as_of)
    interests = _top_categories(transactions, as_of), _recent_searches(activity, as_of)
    return _profile(base, *interests, as_of)


def build_profile_from_days(days: DataFrame, as_of: date, base: DataFrame) -> DataFrame:
    """``build_customer_profile`` from daily aggregates with a ``customer_key``: ``base`` is
    the date's rows of ``customer_base_from_days``."""
    bought = days.where((F.col("lines") > 0) & (F.col("date") <= _lit_date(as_of)))
    online, store = F.col("channel") == ONLINE, F.col("channel") == STORE
    channels = bought.groupBy("customer_key").agg(
        F.min(F.when(online, F.col("date"))).alias("first_purchase_online"),
        F.max(F.when(online, F.col("date"))).alias("last_purchase_online"),
        F.min(F.when(store, F.col("date"))).alias("first_purchase_store"),
        F.max(F.when(store, F.col("date"))).alias("last_purchase_store"),
    )
    spend = (
        days.where(_since("date", as_of, 365))
        .select("customer_key", F.explode("category_net").alias("category", "net_amount"))
        .groupBy("customer_key", "category")
        .agg(F.sum("net_amount").alias("spend"))
        .where(F.col("spend") > 0)
    )
    searches = (
        days.where(_since("date", as_of, 30))
        .select("customer_key", F.explode("search_last_at").alias("search_query", "last_ts"))
        .groupBy("customer_key", "search_query")
        .agg(F.max("last_ts").alias("last_ts"))
    )
    return _profile(
        base.join(channels, "customer_key", "left"),
        _top_values(spend, "category", F.col("spend").desc(), 3, "top_categories"),
        _top_values(searches, "search_query", F.col("last_ts").desc(), 5, "recent_searches"),
        as_of,
    )


def _profile(base: DataFrame, top_categories: DataFrame, searches: DataFrame, as_of: date):
    """The profile's columns of a date's base rows, with the customers' interests."""
    online = F.coalesce(F.col("online_orders_365d"), F.lit(0)) > 0
    store = F.coalesce(F.col("store_orders_365d"), F.lit(0)) > 0
    mix = (
        F.when(online & store, "omni_channel")
        .when(online, "online_only")
        .when(store, "store_only")
        .otherwise("none")
    )
    return (
        base.join(top_categories, "customer_key", "left")
        .join(searches, "customer_key", "left")
        .select(
            "customer_key",
            "customer_id",
            F.datediff(_lit_date(as_of), "last_purchase_date").alias("recency_days"),
            F.coalesce("frequency_365d", F.lit(0)).alias("frequency_365d"),
            F.coalesce("monetary_365d", F.lit(0)).alias("monetary_365d"),
            "first_purchase_online",
            "last_purchase_online",
            "first_purchase_store",
            "last_purchase_store",
            F.when(F.col("gross_365d") > 0, _ratio("online_gross_365d", "gross_365d")).alias(
                "online_share_365d"
            ),
            mix.alias("channel_mix"),
            F.coalesce("top_categories", F.array().cast("array<string>")).alias("top_categories"),
            F.coalesce("product_views_30d", F.lit(0)).alias("product_views_30d"),
            F.coalesce("searches_30d", F.lit(0)).alias("searches_30d"),
            F.coalesce("recent_searches", F.array().cast("array<string>")).alias("recent_searches"),
            F.greatest("last_purchase_date", "last_event_date").alias("last_seen_date"),
            "email_opt_in",
            "push_opt_in",
            _lit_date(as_of).alias("as_of_date"),
        )
    )


def churn_labels(transactions: DataFrame, as_of: date, horizon_days: int) -> DataFrame:
    """``churned`` per customer who bought by ``as_of``: no purchase in (as_of, as_of + H]."""
    if horizon_days < 1:
        raise ValueError(f"horizon_days={horizon_days}: expected 1 or more")
    known = transactions.where(F.col("customer_key").isNotNull())
    buyers = known.where(F.col("date") <= _lit_date(as_of)).select("customer_key").distinct()
    end = as_of + timedelta(days=horizon_days)
    came_back = (
        known.where(
            (F.col("date") > _lit_date(as_of))
            & (F.col("date") <= _lit_date(end))
            & (F.col("quantity") > 0)
        )
        .select("customer_key")
        .distinct()
        .withColumn("returned", F.lit(True))
    )
    return buyers.join(came_back, "customer_key", "left").select(
        "customer_key", F.col("returned").isNull().alias("churned")
    )


def delivered_channel_days(folders: DataFrame, stores: DataFrame, dates: list[date]) -> DataFrame:
    """The (date, channel, store_id) that a complete delivery stands for, among ``dates``.

    ``folders`` is ``bronze.landing_folders``. A complete clickstream folder is the online
    channel's day; a store's own complete receipts folder is that store's day; a complete
    receipts ``dt=`` folder is the day of every store opened by then (``stores``). A closed
    store or a holiday (a complete folder with no data file) is a delivered day all the same.
    """
    complete = folders.where(
        (F.col("status") == "complete") & F.col("business_date").isin([_lit_date(d) for d in dates])
    ).select(F.col("business_date").alias("date"), "source", "store_id")
    online = complete.where(F.col("source") == EVENTS.name).select(
        "date", F.lit(ONLINE).alias("channel"), F.lit(None).cast("string").alias("store_id")
    )
    pos = complete.where(F.col("source") == POS.name)
    own = pos.where(F.col("store_id").isNotNull()).select(
        "date", F.lit(STORE).alias("channel"), "store_id"
    )
    opened = stores.select("store_id", "opened_on")
    whole_day = (
        pos.where(F.col("store_id").isNull())
        .select("date")
        .join(opened, F.col("opened_on").isNull() | (F.col("opened_on") <= F.col("date")))
        .select("date", F.lit(STORE).alias("channel"), "store_id")
    )
    return online.unionByName(own).unionByName(whole_day).distinct()


KPI_COUNTS = ("orders", "units", "active_customers", "new_customers")


def build_daily_channel_kpis(
    transactions: DataFrame,
    events: DataFrame,
    dates: list[date],
    delivered: DataFrame | None = None,
    firsts: DataFrame | None = None,
) -> DataFrame:
    """KPIs per day for ``dates``: online, and per store; new = first purchase in the channel.

    With ``delivered`` (``delivered_channel_days``), every delivered channel day has its row,
    with zeros when nothing was sold (a closed store, a holiday, a quiet site). ``firsts``
    (``first_purchases``) saves reading the whole history of ``transactions`` for the new
    customers: then ``transactions`` need only hold the dates' lines."""
    wanted = [_lit_date(d) for d in dates]
    if firsts is None:
        firsts = (
            transactions.where(F.col("customer_key").isNotNull() & (F.col("quantity") > 0))
            .groupBy("customer_key", "channel")
            .agg(F.min("date").alias("first_date"))
        )
    tx = transactions.where(F.col("date").isin(wanted)).join(
        firsts, ["customer_key", "channel"], "left"
    )
    sales = tx.groupBy("date", "channel", "store_id").agg(
        F.countDistinct("transaction_id").alias("orders"),
        F.sum("net_amount").alias("net_revenue"),
        F.sum("quantity").alias("units"),
        F.countDistinct("customer_key").alias("active_customers"),
        F.countDistinct(F.when(F.col("first_date") == F.col("date"), F.col("customer_key"))).alias(
            "new_customers"
        ),
    )
    sessions = (
        events.where(F.col("event_date").isin(wanted))
        .groupBy(F.col("event_date").alias("date"))
        .agg(
            F.countDistinct("session_id").alias("sessions"),
            F.countDistinct(F.when(F.col("event_type") == "purchase", F.col("session_id"))).alias(
                "converted_sessions"
            ),
        )
        .withColumn("channel", F.lit(ONLINE))
    )
    # Sessions are online only, so they join on day and channel (an online row has no store).
    kpis = sales.join(sessions, ["date", "channel"], "full_outer")
    if delivered is not None:
        # One row per key (grouping matches the online rows' null store): sold or not.
        keys = ["date", "channel", "store_id"]
        kpis = (
            kpis.unionByName(delivered, allowMissingColumns=True)
            .groupBy(*keys)
            .agg(*(F.max(c).alias(c) for c in kpis.columns if c not in keys))
        )
    return (
        kpis.fillna(0, subset=list(KPI_COUNTS))
        .withColumn(
            "sessions",
            F.when(F.col("channel") == ONLINE, F.coalesce("sessions", F.lit(0))).cast("bigint"),
        )
        .withColumn("net_revenue", F.coalesce("net_revenue", F.lit(0)).cast("decimal(16,2)"))
        .withColumn(
            "online_conversion_rate",
            F.when(F.col("sessions") > 0, F.col("converted_sessions") / F.col("sessions")),
        )
        .drop("converted_sessions")
    )
