"""Type and check bronze records: every record gets typed columns or a reason it is rejected.

Each ``check_*`` function is pure: bronze rows (all strings) in, the same rows out with typed
columns plus ``_reason`` and ``_reason_detail`` (null when the record is accepted). Rules are
checked in order and the first that fails names the reason, so a record has exactly one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from zoneinfo import available_timezones

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from omni.sources import MESSAGE_FIELDS

EVENT_TYPES = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout_start",
    "purchase",
)
SKU_EVENT_TYPES = ("product_view", "add_to_cart", "remove_from_cart")
PLATFORMS = ("web", "ios", "android")
MESSAGE_CHANNELS = ("email", "push")
MESSAGE_EVENT_TYPES = (
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "unsubscribed",
    "complained",
)
MAX_HOLDOUT_SHARE = 0.5
EARLIEST = date(2000, 1, 1)
LATE_DAYS = 2  # a record may land up to this many days after its own day

Rule = tuple[str, Column, Column]  # (reason code, failing condition, detail)


def blank(column: str | Column) -> Column:
    col = F.col(column) if isinstance(column, str) else column
    return col.isNull() | (F.trim(col) == "")


def first_failure(rules: Sequence[Rule]) -> tuple[Column, Column]:
    """The reason code and detail of the first failing rule, or nulls."""
    reason, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    for code, condition, text in reversed(rules):
        failed = F.coalesce(condition, F.lit(False))
        reason = F.when(failed, F.lit(code)).otherwise(reason)
        detail = F.when(failed, text).otherwise(detail)
    return reason, detail


def _missing(columns: Iterable[str]) -> Rule:
    columns = list(columns)
    names = F.concat_ws(", ", *(F.when(blank(c), F.lit(c)) for c in columns))
    condition = F.lit(False)
    for c in columns:
        condition = condition | blank(c)
    return (
        "missing_required_field",
        condition,
        F.concat(F.lit("required field(s) empty: "), names),
    )


def _bad_number(raw: str, typed: str, expected: str) -> Rule:
    return (
        "wrong_type",
        ~blank(raw) & F.col(typed).isNull(),
        F.concat(
            F.lit(f"{raw}="), F.coalesce(F.col(raw), F.lit("")), F.lit(f": expected {expected}")
        ),
    )


def _value_detail(column: str, expected: str) -> Column:
    return F.concat(
        F.lit(f"{column}="),
        F.coalesce(F.col(column).cast("string"), F.lit("null")),
        F.lit(f": expected {expected}"),
    )


def _time_rules(ts_column: str, raw_column: str) -> list[Rule]:
    latest = F.date_add(F.col("_business_date"), LATE_DAYS + 1).cast("timestamp")
    return [
        (
            "invalid_timestamp",
            ~blank(raw_column) & F.col(ts_column).isNull(),
            _value_detail(raw_column, "an ISO-8601 timestamp"),
        ),
        (
            "timestamp_before_2000",
            F.col(ts_column) < F.lit(str(EARLIEST)).cast("timestamp"),
            _value_detail(raw_column, "a time on or after 2000-01-01"),
        ),
        (
            "timestamp_in_future",
            F.col(ts_column) >= latest,
            _value_detail(raw_column, f"a time at most {LATE_DAYS} days before the folder date"),
        ),
    ]


def _known(df: DataFrame, reference: DataFrame, column: str, flag: str) -> DataFrame:
    """Add boolean ``flag``: whether ``column`` is found in the one-column ``reference``."""
    known = reference.select(F.col(reference.columns[0]).alias(column)).distinct()
    known = known.withColumn(flag, F.lit(True))
    return df.join(F.broadcast(known), on=column, how="left").withColumn(
        flag, F.coalesce(F.col(flag), F.lit(False)) | F.col(column).isNull()
    )


def _with_reason(df: DataFrame, rules: Sequence[Rule]) -> DataFrame:
    reason, detail = first_failure(rules)
    return df.withColumn("_reason", reason).withColumn("_reason_detail", detail)


def _decimal(column: str) -> Column:
    return F.trim(F.col(column)).try_cast("decimal(12,2)")


def _int(column: str) -> Column:
    return F.trim(F.col(column)).try_cast("int")


def _boolean(column: str) -> Column:
    value = F.lower(F.trim(F.col(column)))
    return F.when(value == "true", True).when(value == "false", False)


def check_products(bronze: DataFrame) -> DataFrame:
    df = bronze.withColumn("list_price_typed", _decimal("list_price"))
    rules = [
        ("wrong_column_count", F.col("_corrupt_record").isNotNull(), F.lit("expected 7 columns")),
        _missing(["sku", "category", "list_price", "currency"]),
        _bad_number("list_price", "list_price_typed", "a decimal number"),
        (
            "negative_price",
            F.col("list_price_typed") < 0,
            _value_detail("list_price", "a price of 0 or more"),
        ),
        (
            "invalid_currency",
            ~F.col("currency").rlike("^[A-Z]{3}$"),
            _value_detail("currency", "an ISO-4217 code"),
        ),
    ]
    return _with_reason(df, rules).withColumn("list_price", F.col("list_price_typed"))


def check_stores(bronze: DataFrame) -> DataFrame:
    zones = sorted(available_timezones())
    df = bronze.withColumn("opened_on_typed", F.trim(F.col("opened_on")).try_cast("date"))
    rules = [
        ("wrong_column_count", F.col("_corrupt_record").isNotNull(), F.lit("expected 7 columns")),
        _missing(["store_id", "timezone"]),
        (
            "unknown_timezone",
            ~F.col("timezone").isin(zones),
            _value_detail("timezone", "an IANA time zone such as Europe/Paris"),
        ),
        _bad_number("opened_on", "opened_on_typed", "a date YYYY-MM-DD"),
    ]
    return _with_reason(df, rules).withColumn("opened_on", F.col("opened_on_typed"))


def check_customers(bronze: DataFrame) -> DataFrame:
    df = (
        bronze.withColumn("birth_year_typed", _int("birth_year"))
        .withColumn("signup_ts_typed", F.trim(F.col("signup_ts")).try_cast("timestamp"))
        .withColumn("updated_at_typed", F.trim(F.col("updated_at")).try_cast("timestamp"))
        .withColumn("email_opt_in_typed", _boolean("email_opt_in"))
        .withColumn("push_opt_in_typed", _boolean("push_opt_in"))
    )
    flags = "true or false"
    rules = [
        ("wrong_column_count", F.col("_corrupt_record").isNotNull(), F.lit("expected 12 columns")),
        _missing(["customer_id", "updated_at", "email_opt_in", "push_opt_in"]),
        _bad_number("birth_year", "birth_year_typed", "a year such as 1984"),
        _bad_number("signup_ts", "signup_ts_typed", "a timestamp"),
        _bad_number("updated_at", "updated_at_typed", "a timestamp"),
        ("wrong_type", F.col("email_opt_in_typed").isNull(), _value_detail("email_opt_in", flags)),
        ("wrong_type", F.col("push_opt_in_typed").isNull(), _value_detail("push_opt_in", flags)),
        (
            "timestamp_before_2000",
            F.col("updated_at_typed") < F.lit(str(EARLIEST)).cast("timestamp"),
            _value_detail("updated_at", "a time on or after 2000-01-01"),
        ),
    ]
    df = _with_reason(df, rules)
    for name in ("birth_year", "signup_ts", "updated_at", "email_opt_in", "push_opt_in"):
        df = df.withColumn(name, F.col(f"{name}_typed"))
    return df


def _channel_rule() -> Rule:
    return (
        "unknown_channel",
        ~F.col("channel").isin(*MESSAGE_CHANNELS),
        _value_detail("channel", f"one of {', '.join(MESSAGE_CHANNELS)}"),
    )


def check_campaigns(bronze: DataFrame) -> DataFrame:
    """Type campaign plans: dates, a holdout share of 0 to 0.5, a window of days."""
    df = (
        bronze.withColumn("start_date_typed", F.trim(F.col("start_date")).try_cast("date"))
        .withColumn("end_date_typed", F.trim(F.col("end_date")).try_cast("date"))
        .withColumn("holdout_share_typed", F.trim(F.col("holdout_share")).try_cast("double"))
        .withColumn("window_typed", _int("conversion_window_days"))
        .withColumn("updated_at_typed", F.trim(F.col("updated_at")).try_cast("timestamp"))
    )
    rules = [
        ("wrong_column_count", F.col("_corrupt_record").isNotNull(), F.lit("expected 10 columns")),
        _missing(
            [
                "campaign_id",
                "channel",
                "audience",
                "start_date",
                "end_date",
                "holdout_share",
                "conversion_window_days",
                "updated_at",
            ]
        ),
        _channel_rule(),
        _bad_number("start_date", "start_date_typed", "a date YYYY-MM-DD"),
        _bad_number("end_date", "end_date_typed", "a date YYYY-MM-DD"),
        _bad_number("holdout_share", "holdout_share_typed", "a number"),
        _bad_number("conversion_window_days", "window_typed", "a whole number of days"),
        _bad_number("updated_at", "updated_at_typed", "a timestamp"),
        (
            "invalid_holdout_share",
            (F.col("holdout_share_typed") < 0)
            | (F.col("holdout_share_typed") > MAX_HOLDOUT_SHARE)
            | F.isnan("holdout_share_typed"),
            _value_detail("holdout_share", f"a share from 0 to {MAX_HOLDOUT_SHARE}"),
        ),
        (
            "invalid_conversion_window",
            F.col("window_typed") < 1,
            _value_detail("conversion_window_days", "1 day or more"),
        ),
        (
            "invalid_date_range",
            F.col("end_date_typed") < F.col("start_date_typed"),
            F.concat(
                _value_detail("end_date", "a date on or after start_date"),
                F.lit(" (start_date="),
                F.col("start_date"),
                F.lit(")"),
            ),
        ),
        (
            "timestamp_before_2000",
            F.col("updated_at_typed") < F.lit(str(EARLIEST)).cast("timestamp"),
            _value_detail("updated_at", "a time on or after 2000-01-01"),
        ),
    ]
    df = _with_reason(df, rules)
    for name, typed in (
        ("start_date", "start_date_typed"),
        ("end_date", "end_date_typed"),
        ("holdout_share", "holdout_share_typed"),
        ("conversion_window_days", "window_typed"),
        ("updated_at", "updated_at_typed"),
    ):
        df = df.withColumn(name, F.col(typed))
    return df.withColumn("campaign_id", F.trim("campaign_id"))


def check_messages(bronze: DataFrame, campaigns: DataFrame) -> DataFrame:
    """Type the providers' message events; each belongs to a campaign in silver.campaigns."""
    df = _known(bronze, campaigns, "campaign_id", "_campaign_known").withColumn(
        "event_ts", F.trim(F.col("event_time")).try_cast("timestamp")
    )
    rules = [
        ("malformed_json", F.col("_corrupt_record").isNotNull(), F.lit("not a JSON object")),
        _missing([name for name, _ in MESSAGE_FIELDS]),  # every field is required
        (
            "unknown_event_type",
            ~F.col("event_type").isin(*MESSAGE_EVENT_TYPES),
            _value_detail("event_type", f"one of {', '.join(MESSAGE_EVENT_TYPES)}"),
        ),
        _channel_rule(),
        *_time_rules("event_ts", "event_time"),
        (
            "unknown_campaign",
            ~F.col("_campaign_known"),
            _value_detail("campaign_id", "a campaign in silver.campaigns"),
        ),
    ]
    return (
        _with_reason(df, rules)
        .withColumn("event_date", F.to_date("event_ts"))
        .drop("_campaign_known")
    )


def check_events(bronze: DataFrame, products: DataFrame) -> DataFrame:
    """Type clickstream events; purchases must carry valid items of known skus."""
    items_bad_type = F.exists(
        F.coalesce(F.col("items"), F.array()),
        lambda i: (
            i.quantity.try_cast("int").isNull() | i.unit_price.try_cast("decimal(12,2)").isNull()
        ),
    )
    items_negative = F.exists(
        F.coalesce(F.col("items"), F.array()),
        lambda i: i.unit_price.try_cast("decimal(12,2)") < 0,
    )
    items_bad_quantity = F.exists(
        F.coalesce(F.col("items"), F.array()), lambda i: i.quantity.try_cast("int") <= 0
    )
    # A bronze record is one line of one file. Only records with items are exploded, so the
    # per-record verdict is small and joins back by broadcast, without shuffling the batch.
    record = ["_source_file", "_source_line"]
    item_skus = bronze.where(F.size("items") > 0).select(
        *record, F.explode("items.sku").alias("sku")
    )
    unknown_items = (
        _known(item_skus, products, "sku", "_item_known")
        .groupBy(*record)
        .agg(F.min(F.col("_item_known").cast("int")).alias("_items_known"))
    )
    df = (
        _known(bronze, products, "sku", "_sku_known")
        .join(F.broadcast(unknown_items), on=record, how="left")
        .withColumn("event_ts", F.trim(F.col("event_time")).try_cast("timestamp"))
    )
    is_purchase = F.col("event_type") == "purchase"
    rules = [
        ("malformed_json", F.col("_corrupt_record").isNotNull(), F.lit("not a JSON object")),
        _missing(
            ["event_id", "event_time", "event_type", "platform", "session_id", "anonymous_id"]
        ),
        (
            "unknown_event_type",
            ~F.col("event_type").isin(*EVENT_TYPES),
            _value_detail("event_type", f"one of {', '.join(EVENT_TYPES)}"),
        ),
        (
            "unknown_platform",
            ~F.col("platform").isin(*PLATFORMS),
            _value_detail("platform", f"one of {', '.join(PLATFORMS)}"),
        ),
        (
            "missing_required_field",
            is_purchase
            & (
                blank("order_id")
                | blank("currency")
                | (F.size("items") < 1)
                | F.col("items").isNull()
            ),
            F.lit("a purchase needs order_id, currency and at least one item"),
        ),
        (
            "missing_required_field",
            F.col("event_type").isin(*SKU_EVENT_TYPES) & blank("sku"),
            F.lit("a product event needs a sku"),
        ),
        (
            "missing_required_field",
            (F.col("event_type") == "search") & blank("search_query"),
            F.lit("a search event needs search_query"),
        ),
        (
            "wrong_type",
            is_purchase & items_bad_type,
            F.concat(
                F.lit("items="),
                F.to_json("items"),
                F.lit(": expected whole quantities and decimal prices"),
            ),
        ),
        (
            "negative_price",
            is_purchase & items_negative,
            F.concat(F.lit("items="), F.to_json("items"), F.lit(": expected prices of 0 or more")),
        ),
        (
            "invalid_quantity",
            is_purchase & items_bad_quantity,
            F.concat(F.lit("items="), F.to_json("items"), F.lit(": expected quantities above 0")),
        ),
        (
            "invalid_currency",
            is_purchase & ~F.col("currency").rlike("^[A-Z]{3}$"),
            _value_detail("currency", "an ISO-4217 code"),
        ),
        *_time_rules("event_ts", "event_time"),
        ("unknown_sku", ~F.col("_sku_known"), _value_detail("sku", "a sku in silver.products")),
        (
            "unknown_sku",
            F.col("_items_known") == 0,
            F.concat(
                F.lit("items="), F.to_json("items"), F.lit(": expected skus in silver.products")
            ),
        ),
    ]
    return (
        _with_reason(df, rules)
        .withColumn("event_date", F.to_date("event_ts"))
        .withColumn("search_query", F.lower(F.trim("search_query")))
        .drop("_sku_known", "_items_known")
    )


def explode_order_lines(events: DataFrame) -> DataFrame:
    """One row per item of each accepted purchase event."""
    purchases = events.where(F.col("event_type") == "purchase")
    return (
        purchases.select(
            "order_id",
            "event_id",
            F.col("event_ts").alias("order_ts"),
            F.col("event_date").alias("order_date"),
            "platform",
            "anonymous_id",
            "customer_id",
            "currency",
            "_business_date",
            "_run_id",
            F.posexplode("items").alias("position", "item"),
        )
        .withColumn("line_number", F.col("position") + 1)
        .withColumn("sku", F.col("item.sku"))
        .withColumn("quantity", F.col("item.quantity").try_cast("int"))
        .withColumn("unit_price", F.col("item.unit_price").try_cast("decimal(12,2)"))
        .withColumn("net_amount", (F.col("quantity") * F.col("unit_price")).cast("decimal(14,2)"))
        .drop("position", "item")
    )


def check_pos(bronze: DataFrame, products: DataFrame, stores: DataFrame) -> DataFrame:
    """Type receipt lines and convert store-local time to UTC with the store's IANA zone."""
    zones = stores.select("store_id", F.col("timezone").alias("_timezone"))
    df = (
        _known(bronze, products, "sku", "_sku_known")
        .join(F.broadcast(zones), on="store_id", how="left")
        .withColumn("line_number_typed", _int("line_number"))
        .withColumn("quantity_typed", _int("quantity"))
        .withColumn("unit_price_typed", _decimal("unit_price"))
        .withColumn(
            "discount_typed",
            F.coalesce(_decimal("discount_amount"), F.when(blank("discount_amount"), F.lit(0))),
        )
        .withColumn("transaction_local_ts", F.trim(F.col("transaction_ts")).try_cast("timestamp"))
        .withColumn(
            "transaction_utc_ts", F.to_utc_timestamp("transaction_local_ts", F.col("_timezone"))
        )
    )
    rules = [
        ("wrong_column_count", F.col("_corrupt_record").isNotNull(), F.lit("expected 12 columns")),
        _missing(
            [
                "transaction_id",
                "line_number",
                "store_id",
                "transaction_ts",
                "sku",
                "quantity",
                "unit_price",
            ]
        ),
        _bad_number("line_number", "line_number_typed", "a whole number"),
        _bad_number("quantity", "quantity_typed", "a whole number"),
        _bad_number("unit_price", "unit_price_typed", "a decimal number"),
        _bad_number("discount_amount", "discount_typed", "a decimal number"),
        (
            "negative_price",
            (F.col("unit_price_typed") < 0) | (F.col("discount_typed") < 0),
            F.concat(
                _value_detail("unit_price", "0 or more"),
                F.lit("; "),
                _value_detail("discount_amount", "0 or more"),
            ),
        ),
        (
            "invalid_quantity",
            F.col("quantity_typed") == 0,
            _value_detail("quantity", "a non-zero quantity (negative for returns)"),
        ),
        (
            "unknown_store",
            F.col("_timezone").isNull(),
            _value_detail("store_id", "a store in silver.stores"),
        ),
        *_time_rules("transaction_local_ts", "transaction_ts"),
        ("unknown_sku", ~F.col("_sku_known"), _value_detail("sku", "a sku in silver.products")),
    ]
    net = F.col("quantity_typed") * F.col("unit_price_typed") - F.col("discount_typed")
    return (
        _with_reason(df, rules)
        .withColumn("line_number", F.col("line_number_typed"))
        .withColumn("quantity", F.col("quantity_typed"))
        .withColumn("unit_price", F.col("unit_price_typed"))
        .withColumn("discount_amount", F.col("discount_typed"))
        .withColumn("net_amount", net.cast("decimal(14,2)"))
        .withColumn("is_return", F.col("quantity_typed") < 0)
        .withColumn("transaction_date", F.to_date("transaction_local_ts"))
        .withColumn("transaction_ts", F.col("transaction_utc_ts"))
        .withColumn("loyalty_card_id", F.when(~blank("loyalty_card_id"), F.trim("loyalty_card_id")))
        .drop("_sku_known", "_timezone")
    )
