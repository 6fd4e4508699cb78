"""The table registry: every Delta table's name, path, keys, partitioning and schema.

A table's producer, schema, expectation suite and tests are all found from its name
(``<layer>.<table>``). Column types are Spark SQL DDL, so this module needs no pyspark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The identifiers an erasure request can name a customer by (``jobs/erase_customer.py``):
# the identity graph's types, the surrogate key, and a clear-text e-mail address.
ERASURE_IDENTIFIER_TYPES = (
    "customer_id",
    "loyalty_card_id",
    "email_hash",
    "anonymous_id",
    "customer_key",
    "email",
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    keys: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    producer: str = ""
    # What one row is, for the data dictionary; by default it is said from the keys.
    grain: str = ""
    # Tables the producer reads to build this one (``<layer>.*`` for a whole layer); bronze
    # tables read the landing zone instead.
    upstream: tuple[str, ...] = ()
    # How erasure finds a customer's rows: (column, identifier type) pairs, where the type is
    # customer_key, customer_id, loyalty_card_id, anonymous_id, email_hash, or raw_text (the
    # column's text is searched for any of the customer's identifiers, e-mail included).
    erase_by: tuple[tuple[str, str], ...] = ()
    # What a rebuild from the landing zone keeps (``omni/rebuild.py``): the record of
    # erasures, which no landing file can give back.
    kept_on_rebuild: bool = False

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def row_grain(self) -> str:
        """What one row is: the registry's words, or one row per key combination."""
        if self.grain or len(self.keys) == 1:
            return self.grain or f"one row per {self.keys[0]}"
        return f"one row per ({', '.join(self.keys)})"

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def location(self, lakehouse_location: str) -> str:
        """The table's folder under a lakehouse given as a local path or a URI."""
        return f"{lakehouse_location.rstrip('/')}/{self.layer}/{self.short_name}"

    def uri(self, lakehouse_location: str) -> str:
        """The table's folder as a URI (``file://`` for a local path), e.g. for an asset."""
        location = self.location(lakehouse_location)
        return location if "://" in location else Path(location).as_uri()

    def schema_ddl(self, names: list[str] | tuple[str, ...] | None = None) -> str:
        """Spark DDL schema (no comments) of ``names``, or of every column, in order."""
        types = {column.name: column.type for column in self.columns}
        return ", ".join(f"`{name}` {types[name]}" for name in (names or self.column_names))

    def ddl(self) -> str:
        """Column list for ``CREATE TABLE``, with comments."""
        parts = []
        for column in self.columns:
            not_null = "" if column.nullable else " NOT NULL"
            comment = column.comment.replace("'", "\\'")
            parts.append(f"`{column.name}` {column.type}{not_null} COMMENT '{comment}'")
        return ", ".join(parts)


def _c(name: str, type_: str, comment: str, nullable: bool = True) -> Column:
    return Column(name, type_, comment, nullable)


INGEST_METADATA = (
    _c("_source_file", "string", "Landing file the record was read from", False),
    _c("_source_line", "bigint", "Line number of the record in its file (1 = first line)", False),
    _c("_raw_record", "string", "The record's raw text as delivered", False),
    _c("_ingested_at", "timestamp", "When the record was ingested (UTC)", False),
    _c("_run_id", "string", "Pipeline run that ingested the record", False),
    _c("_business_date", "date", "Landing folder date (dt=) the file was exported for", False),
)
SILVER_METADATA = (
    _c("_business_date", "date", "Landing folder date the record arrived in", False),
    _c("_run_id", "string", "Pipeline run that accepted the record", False),
)

_s = "string"


def _bronze(name: str, description: str, personal: bool = True) -> Table:
    """A bronze table: each delivered line as it came, with where and when it came from.

    Nothing is parsed here: silver parses every record once, with its source's fields
    (``omni/sources.py``). Erasure searches the raw text for any of the customer's
    identifiers; reference data (products, stores) holds none.
    """
    return Table(
        name,
        description,
        INGEST_METADATA,
        partition_by=("_business_date",),
        grain="one row per delivered line (a CSV file's header line is not a record)",
        producer="jobs/bronze_ingest.py",
        erase_by=(("_raw_record", "raw_text"),) if personal else (),
    )


BRONZE_EVENTS = _bronze(
    "bronze.ecommerce_events", "Web and app clickstream events, one JSON line each, as delivered."
)
BRONZE_POS = _bronze("bronze.pos_lines", "In-store POS receipt lines, as delivered.")
BRONZE_CRM = _bronze("bronze.crm_customers", "CRM customer records (personal data in clear).")
BRONZE_PRODUCTS = _bronze(
    "bronze.products", "Product catalogue snapshots, as delivered.", personal=False
)
BRONZE_STORES = _bronze("bronze.stores", "Store list snapshots, as delivered.", personal=False)
BRONZE_CAMPAIGNS = _bronze(
    "bronze.marketing_campaigns",
    "Campaigns the marketing team planned or changed, as delivered.",
    personal=False,
)
BRONZE_MESSAGES = _bronze(
    "bronze.marketing_messages",
    "What the email and push providers report of each message (sent, opened, ...), as delivered.",
)

QUARANTINE_RECORDS = Table(
    "quarantine.records",
    "Every rejected raw record, with the reason it was rejected.",
    (
        _c(
            "source",
            _s,
            "Source: ecommerce_events, pos_lines, crm_customers, products, stores, "
            "marketing_campaigns, marketing_messages",
            False,
        ),
        _c("source_file", _s, "Landing file the record came from", False),
        _c("source_line", "bigint", "Line number of the record in its file", False),
        _c("raw_text", _s, "The record's raw text", False),
        _c("reason", _s, "Reason code, e.g. malformed_json, unknown_sku", False),
        _c("reason_detail", _s, "The offending value and what was expected"),
        _c("record_key", _s, "The record's dedup key where it could be read"),
        _c("run_id", _s, "Pipeline run that rejected it", False),
        _c("business_date", "date", "Landing folder date", False),
        _c("quarantined_at", "timestamp", "When it was rejected (UTC)", False),
    ),
    partition_by=("source",),
    grain="one row per rejected raw record",
    upstream=(
        "bronze.ecommerce_events",
        "bronze.pos_lines",
        "bronze.crm_customers",
        "bronze.products",
        "bronze.stores",
        "bronze.marketing_campaigns",
        "bronze.marketing_messages",
    ),
    producer="jobs/silver.py",
    erase_by=(("raw_text", "raw_text"),),
)

INGESTED_FILES = Table(
    "bronze.ingested_files",
    "One row per landing file ingested into bronze: what the next night skips.",
    (
        _c("source", _s, "Source name, as in quarantine.records", False),
        _c("source_file", _s, "Landing file, relative to the landing zone", False),
        _c("business_date", "date", "Landing folder date (dt=)", False),
        _c("records", "bigint", "Rows written to bronze (CSV header excluded)", False),
        _c("run_id", _s, "Pipeline run that ingested the file", False),
        _c("ingested_at", "timestamp", "When the file was logged (UTC)", False),
    ),
    keys=("source", "source_file"),
    producer="jobs/bronze_ingest.py",
)

LANDING_FOLDERS = Table(
    "bronze.landing_folders",
    "One row per delivery folder of the landing zone (a dt= folder, or a store's folder of "
    "instore/pos): complete or still waiting for its _SUCCESS marker, and since when.",
    (
        _c("source", _s, "Source name, as in quarantine.records", False),
        _c("folder", _s, "Delivery folder, relative to the landing zone", False),
        _c("business_date", "date", "Landing folder date (dt=)", False),
        _c("store_id", _s, "Store of a store's own folder (store_id=), null for a dt= folder"),
        _c("status", _s, "complete (has _SUCCESS: read) or waiting (not yet: never read)", False),
        _c("data_files", "int", "Data files in the folder (0: a day with no records)", False),
        _c(
            "first_seen_at",
            "timestamp",
            "When a run first saw the folder (UTC): a waiting folder waits since then",
            False,
        ),
        _c("completed_at", "timestamp", "When a run first found it complete (UTC)"),
        _c("first_run_id", _s, "Pipeline run that first saw the folder", False),
        _c(
            "checked_run_id",
            _s,
            "Pipeline run that last found the folder new, waiting or changed",
            False,
        ),
        _c("checked_at", "timestamp", "When that run looked at the folder (UTC)", False),
    ),
    keys=("source", "folder"),
    grain="one row per delivery folder",
    producer="jobs/bronze_ingest.py",
)

RECONCILIATION = Table(
    "quarantine.reconciliation",
    "Per run, source and business date: read = accepted + quarantined + duplicates + suppressed.",
    (
        _c("run_id", _s, "Pipeline run", False),
        _c("source", _s, "Source table", False),
        _c("business_date", "date", "Landing folder date", False),
        _c("read", "bigint", "Bronze records of the run", False),
        _c("accepted", "bigint", "Records written to silver", False),
        _c("quarantined", "bigint", "Records written to quarantine.records", False),
        _c("duplicates", "bigint", "Records already seen (same key)", False),
        _c("recorded_at", "timestamp", "When the counts were taken", False),
        _c(
            "suppressed",
            "bigint",
            "Records of an erased customer (quarantine.suppressed_identifiers): dropped, "
            "their bronze rows purged; null on rows recorded before the column",
        ),
    ),
    keys=("run_id", "source", "business_date"),
    upstream=(
        "bronze.ingested_files",
        "bronze.ecommerce_events",
        "bronze.pos_lines",
        "bronze.crm_customers",
        "bronze.products",
        "bronze.stores",
        "bronze.marketing_campaigns",
        "bronze.marketing_messages",
    ),
    producer="jobs/silver.py",
)

SILVER_EVENTS = Table(
    "silver.ecommerce_events",
    "Typed, deduplicated clickstream events in UTC.",
    (
        _c("event_id", _s, "Event id (unique)", False),
        _c("event_ts", "timestamp", "Event time in UTC", False),
        _c("event_date", "date", "UTC calendar date of the event", False),
        _c("event_type", _s, "page_view, product_view, search, add_to_cart, ...", False),
        _c("platform", _s, "web, ios or android", False),
        _c("session_id", _s, "Session id", False),
        _c("anonymous_id", _s, "Device or cookie id", False),
        _c("customer_id", _s, "CRM customer id when logged in"),
        _c("utm_source", _s, "Marketing attribution source"),
        _c("utm_medium", _s, "Marketing attribution medium"),
        _c("utm_campaign", _s, "Marketing attribution campaign"),
        _c("page_url", _s, "Page URL"),
        _c("sku", _s, "Product sku for product events"),
        _c("search_query", _s, "Search text, lower-cased and trimmed"),
        _c("order_id", _s, "Order id for purchases"),
        _c("currency", _s, "ISO-4217 currency for purchases"),
        *SILVER_METADATA,
    ),
    keys=("event_id",),
    partition_by=("event_date",),
    upstream=("bronze.ecommerce_events",),
    producer="jobs/silver.py",
    erase_by=(("customer_id", "customer_id"), ("anonymous_id", "anonymous_id")),
)

SILVER_ORDER_LINES = Table(
    "silver.order_lines",
    "Online order lines exploded from purchase events.",
    (
        _c("order_id", _s, "Order id", False),
        _c("line_number", "int", "1-based position in the purchase event's items", False),
        _c("event_id", _s, "Purchase event id", False),
        _c("order_ts", "timestamp", "Purchase time in UTC", False),
        _c("order_date", "date", "UTC calendar date of the purchase", False),
        _c("platform", _s, "web, ios or android", False),
        _c("anonymous_id", _s, "Device or cookie id", False),
        _c("customer_id", _s, "CRM customer id when logged in"),
        _c("sku", _s, "Product sku", False),
        _c("quantity", "int", "Units (negative for a return)", False),
        _c("unit_price", "decimal(12,2)", "Price per unit", False),
        _c("net_amount", "decimal(14,2)", "quantity x unit_price", False),
        _c("currency", _s, "ISO-4217 currency", False),
        *SILVER_METADATA,
    ),
    keys=("order_id", "line_number"),
    partition_by=("order_date",),
    upstream=("bronze.ecommerce_events", "silver.products"),
    producer="jobs/silver.py",
    erase_by=(("customer_id", "customer_id"), ("anonymous_id", "anonymous_id")),
)

SILVER_POS = Table(
    "silver.pos_lines",
    "Typed, deduplicated in-store receipt lines, times in UTC; returns are negative lines.",
    (
        _c("transaction_id", _s, "Receipt id", False),
        _c("line_number", "int", "Line on the receipt", False),
        _c("store_id", _s, "Store id", False),
        _c("register_id", _s, "Register id"),
        _c("transaction_ts", "timestamp", "Transaction time in UTC", False),
        _c("transaction_local_ts", "timestamp", "Transaction time in the store's zone", False),
        _c("transaction_date", "date", "Store-local calendar date", False),
        _c("sku", _s, "Product sku", False),
        _c("quantity", "int", "Units; negative for a returned item", False),
        _c("unit_price", "decimal(12,2)", "Price per unit", False),
        _c("discount_amount", "decimal(12,2)", "Amount off the line (positive)", False),
        _c("net_amount", "decimal(14,2)", "quantity x unit_price - discount_amount", False),
        _c("is_return", "boolean", "True when quantity is negative", False),
        _c("payment_type", _s, "Payment type"),
        _c("loyalty_card_id", _s, "Loyalty card scanned, null when none"),
        _c("currency", _s, "ISO-4217 currency", False),
        *SILVER_METADATA,
    ),
    keys=("transaction_id", "line_number"),
    partition_by=("transaction_date",),
    upstream=("bronze.pos_lines", "silver.products", "silver.stores"),
    producer="jobs/silver.py",
    erase_by=(("loyalty_card_id", "loyalty_card_id"),),
)

SILVER_CUSTOMERS = Table(
    "silver.customers",
    "CRM customers, latest record wins; personal data reduced to a keyed email hash.",
    (
        _c("customer_id", _s, "CRM customer id", False),
        _c("loyalty_card_id", _s, "Loyalty card linked to the customer"),
        _c("email_hash", _s, "HMAC-SHA256 of the normalised email (key from configuration)"),
        _c("birth_year", "int", "Year of birth"),
        _c("postal_code", _s, "Postal code"),
        _c("signup_ts", "timestamp", "Sign-up time (UTC)"),
        _c("email_opt_in", "boolean", "Consent to marketing email", False),
        _c("push_opt_in", "boolean", "Consent to push notifications", False),
        _c("updated_at", "timestamp", "Source record time; the latest wins", False),
        *SILVER_METADATA,
    ),
    keys=("customer_id",),
    upstream=("bronze.crm_customers",),
    producer="jobs/silver.py",
    erase_by=(
        ("customer_id", "customer_id"),
        ("loyalty_card_id", "loyalty_card_id"),
        ("email_hash", "email_hash"),
    ),
)

SILVER_PRODUCTS = Table(
    "silver.products",
    "Product catalogue, latest snapshot wins.",
    (
        _c("sku", _s, "Product sku", False),
        _c("product_name", _s, "Name"),
        _c("category", _s, "Category", False),
        _c("subcategory", _s, "Subcategory"),
        _c("brand", _s, "Brand"),
        _c("list_price", "decimal(12,2)", "List price", False),
        _c("currency", _s, "ISO-4217 currency", False),
        *SILVER_METADATA,
    ),
    keys=("sku",),
    upstream=("bronze.products",),
    producer="jobs/silver.py",
)

SILVER_STORES = Table(
    "silver.stores",
    "Stores with their IANA time zones, latest snapshot wins.",
    (
        _c("store_id", _s, "Store id", False),
        _c("store_name", _s, "Name"),
        _c("city", _s, "City"),
        _c("region", _s, "Region"),
        _c("country", _s, "Country"),
        _c("timezone", _s, "IANA time zone of the store", False),
        _c("opened_on", "date", "Opening date"),
        *SILVER_METADATA,
    ),
    keys=("store_id",),
    upstream=("bronze.stores",),
    producer="jobs/silver.py",
)

SILVER_CAMPAIGNS = Table(
    "silver.campaigns",
    "Campaigns as last planned: the latest updated_at of a campaign_id wins.",
    (
        _c("campaign_id", _s, "Campaign id", False),
        _c("name", _s, "Campaign name"),
        _c("channel", _s, "email or push", False),
        _c(
            "audience",
            _s,
            "Who may receive it: all, or segment names and churn risk bands separated by ';'",
            False,
        ),
        _c("offer", _s, "What the message offers"),
        _c("start_date", "date", "First day the campaign is sent", False),
        _c("end_date", "date", "Last day the campaign is sent", False),
        _c(
            "holdout_share",
            "double",
            "Share of the eligible audience kept as a control group, 0 to 0.5",
            False,
        ),
        _c(
            "conversion_window_days",
            "int",
            "Days after a send in which a purchase counts for the campaign",
            False,
        ),
        _c("updated_at", "timestamp", "Source record time (UTC); the latest wins", False),
        *SILVER_METADATA,
    ),
    keys=("campaign_id",),
    upstream=("bronze.marketing_campaigns",),
    producer="jobs/silver.py",
)

SILVER_MESSAGES = Table(
    "silver.campaign_messages",
    "Typed, deduplicated provider events of the campaigns' messages, times in UTC.",
    (
        _c("event_id", _s, "Provider event id (unique)", False),
        _c("message_id", _s, "Message id, shared by all events of one message", False),
        _c("campaign_id", _s, "Campaign the message belongs to (in silver.campaigns)", False),
        _c("channel", _s, "email or push", False),
        _c("customer_id", _s, "CRM customer id the message was sent to", False),
        _c(
            "event_type",
            _s,
            "sent, delivered, opened, clicked, bounced, unsubscribed or complained",
            False,
        ),
        _c("event_ts", "timestamp", "Event time in UTC", False),
        _c("event_date", "date", "UTC calendar date of the event", False),
        *SILVER_METADATA,
    ),
    keys=("event_id",),
    partition_by=("event_date",),
    upstream=("bronze.marketing_messages", "silver.campaigns"),
    producer="jobs/silver.py",
    erase_by=(("customer_id", "customer_id"),),
)

SILVER_DEVICE_LOGINS = Table(
    "silver.device_logins",
    "Every (device, logged-in customer) pair the events show, customer null for anonymous "
    "visits: the identity graph's online links, kept so identity does not rescan the events.",
    (
        _c("anonymous_id", _s, "Device or cookie id", False),
        _c("customer_id", _s, "CRM customer id logged in on the device; null for anonymous"),
        _c(
            "first_seen_date",
            "date",
            "Earliest event date of the pair in the run that added it",
            False,
        ),
        _c("_run_id", _s, "Pipeline run that added the pair", False),
    ),
    keys=("anonymous_id", "customer_id"),
    upstream=("silver.ecommerce_events",),
    producer="jobs/silver.py",
    erase_by=(("customer_id", "customer_id"), ("anonymous_id", "anonymous_id")),
)

SILVER_CRM_LINKS = Table(
    "silver.crm_links",
    "Every (customer, loyalty card) and (customer, email hash) pair CRM records have shown, "
    "with the day it was first seen: the identity graph's CRM links as of any date, so a "
    "training snapshot links only what was known by its cut-off.",
    (
        _c("customer_id", _s, "CRM customer id", False),
        _c("identifier_type", _s, "loyalty_card_id or email_hash", False),
        _c("identifier", _s, "The card id, or the keyed hash of the email", False),
        _c(
            "first_seen_date",
            "date",
            "Earliest updated_at date (UTC) of a CRM record with the pair in the run that added it",
            False,
        ),
        _c("_run_id", _s, "Pipeline run that added the pair", False),
    ),
    keys=("customer_id", "identifier_type", "identifier"),
    upstream=("silver.customers",),
    producer="jobs/silver.py",
    erase_by=(("customer_id", "customer_id"),),
)

SILVER_IDENTITY = Table(
    "silver.customer_identity",
    "Every identifier seen, mapped to one customer_key (connected components of the links).",
    (
        _c(
            "identifier_type", _s, "customer_id, loyalty_card_id, anonymous_id or email_hash", False
        ),
        _c("identifier", _s, "The identifier (emails only as their keyed hash)", False),
        _c("customer_key", _s, "Stable key of the customer the identifier belongs to", False),
        _c("updated_run_id", _s, "Run that last computed the mapping", False),
    ),
    keys=("identifier_type", "identifier"),
    upstream=("silver.customers", "silver.device_logins", "silver.pos_lines"),
    producer="jobs/silver.py",
    erase_by=(("customer_key", "customer_key"),),
)

SILVER_KEY_HISTORY = Table(
    "silver.customer_key_history",
    "Every customer_key ever retired (two customers found to be one) and the key that survives "
    "it now, so rows written under the old key (yesterday's scores, features, feed) still join "
    "to today's customer.",
    (
        _c("retired_key", _s, "A customer_key that no longer exists", False),
        _c(
            "surviving_key",
            _s,
            "The customer_key that holds the retired key's identifiers today (follows later "
            "merges)",
            False,
        ),
        _c("merged_into_key", _s, "The key it was merged into on the night it was retired", False),
        _c("retired_on", "date", "Business date of the night the key was retired", False),
        _c("retired_run_id", _s, "Pipeline run that retired it", False),
    ),
    keys=("retired_key",),
    grain="one row per retired customer_key",
    upstream=("silver.customer_identity",),
    producer="jobs/silver.py",
    erase_by=(("retired_key", "customer_key"), ("surviving_key", "customer_key")),
)

_dec = "decimal(18,2)"
SILVER_CUSTOMER_DAILY = Table(
    "silver.customer_daily",
    "Each identified buyer's and visitor's day, summed: what gold's profiles and features read "
    "instead of the whole history of lines and events. Rows are keyed by the identifiers the "
    "records carry, not by customer_key: gold resolves them through today's identity, so a link "
    "found later (a device logging in) moves the days with it. A night rebuilds the days its "
    "records fall on, late ones included.",
    (
        _c("date", "date", "Day of the lines (order or receipt date) and events", False),
        _c("channel", _s, "online or store", False),
        _c("customer_id", _s, "CRM customer id the online records carry; null when none"),
        _c("anonymous_id", _s, "Device or cookie id the online records carry; null in store"),
        _c("loyalty_card_id", _s, "Loyalty card the receipts carry; null online"),
        _c(
            "transaction_ids",
            "array<string>",
            "Distinct orders (online) or receipts (store)",
            False,
        ),
        _c("lines", "bigint", "Purchase and return lines", False),
        _c("net_amount", _dec, "Net spend: purchases less returns (may be negative)", False),
        _c(
            "gross_amount",
            _dec,
            "Spend of the purchase lines before returns and discounts (online: their amount)",
            False,
        ),
        _c("discount_amount", _dec, "Discount on the purchase lines", False),
        _c("bought_units", "bigint", "Units of the purchase lines", False),
        _c("returned_units", "bigint", "Units of the return lines", False),
        _c(
            "category_net",
            f"map<string,{_dec}>",
            "Net spend per product category (silver.products), lines of a known category",
            False,
        ),
        _c("bought_categories", "array<string>", "Categories of the purchase lines", False),
        _c("events", "bigint", "Online events", False),
        _c(
            "session_ids", "array<string>", "Distinct online sessions with an event that day", False
        ),
        _c("product_views", "bigint", "Product views", False),
        _c("searches", "bigint", "Searches", False),
        _c("cart_adds", "bigint", "Add-to-cart events", False),
        _c(
            "search_last_at",
            "map<string,timestamp>",
            "Each search query of the day and when it was last searched (UTC)",
            False,
        ),
        _c("_run_id", _s, "Pipeline run that last rebuilt the day", False),
    ),
    keys=("date", "channel", "customer_id", "anonymous_id", "loyalty_card_id"),
    partition_by=("date",),
    grain="one row per channel day of the records carrying the same identifiers",
    upstream=(
        "silver.ecommerce_events",
        "silver.order_lines",
        "silver.pos_lines",
        "silver.products",
    ),
    producer="jobs/silver.py",
    erase_by=(
        ("customer_id", "customer_id"),
        ("anonymous_id", "anonymous_id"),
        ("loyalty_card_id", "loyalty_card_id"),
    ),
)

# What omni/history.py reads (load_inputs): the customer history the models read.
HISTORY_INPUTS = (
    "silver.customer_identity",
    "silver.customers",
    "silver.order_lines",
    "silver.pos_lines",
    "silver.products",
    "silver.ecommerce_events",
)
# What jobs/gold.py builds the profiles and features from: the customers' days, not the history.
GOLD_INPUTS = ("silver.customer_identity", "silver.customers", "silver.customer_daily")

GOLD_PROFILE = Table(
    "gold.customer_profile",
    "One row per customer: RFM over 365 days, channel history, interests and consent.",
    (
        _c("customer_key", _s, "Customer key (silver.customer_identity)", False),
        _c("customer_id", _s, "CRM customer id, null when unknown"),
        _c("recency_days", "int", "Days since the last purchase in any channel"),
        _c("frequency_365d", "bigint", "Orders and receipts in the last 365 days", False),
        _c(
            "monetary_365d",
            "decimal(16,2)",
            "Net spend in the last 365 days: purchases less returns (negative when returns "
            "exceed purchases)",
            False,
        ),
        _c("first_purchase_online", "date", "First online purchase date"),
        _c("last_purchase_online", "date", "Last online purchase date"),
        _c("first_purchase_store", "date", "First in-store purchase date"),
        _c("last_purchase_store", "date", "Last in-store purchase date"),
        _c(
            "online_share_365d",
            "double",
            "Share of 365-day purchase spend (before returns) made online; null without a purchase",
        ),
        _c("channel_mix", _s, "online_only, store_only, omni_channel or none", False),
        _c("top_categories", "array<string>", "Up to 3 categories by 365-day spend"),
        _c("product_views_30d", "bigint", "Product views in the last 30 days", False),
        _c("searches_30d", "bigint", "Searches in the last 30 days", False),
        _c("recent_searches", "array<string>", "Up to 5 most recent distinct search queries"),
        _c("last_seen_date", "date", "Last day with any online event or purchase"),
        _c("email_opt_in", "boolean", "Consent to marketing email", False),
        _c("push_opt_in", "boolean", "Consent to push notifications", False),
        _c("as_of_date", "date", "Date the profile describes", False),
    ),
    keys=("customer_key",),
    grain="one row per customer",
    upstream=GOLD_INPUTS,
    producer="jobs/gold.py",
    erase_by=(("customer_key", "customer_key"),),
)

FEATURE_COLUMNS = (
    ("recency_days", "Days since the last purchase (capped at the window when none)"),
    ("frequency_30d", "Orders and receipts in the last 30 days"),
    ("frequency_90d", "Orders and receipts in the last 90 days"),
    ("frequency_365d", "Orders and receipts in the last 365 days"),
    ("monetary_90d", "Net spend in the last 90 days, returns deducted (may be negative)"),
    ("monetary_365d", "Net spend in the last 365 days, returns deducted (may be negative)"),
    ("avg_order_value_365d", "Net spend per order, returns deducted (may be negative)"),
    ("online_share_365d", "Share of 365-day purchase spend (before returns) made online"),
    ("store_orders_365d", "Receipts in the last 365 days"),
    ("online_orders_365d", "Online orders in the last 365 days"),
    ("tenure_days", "Days since the first purchase or sign-up"),
    ("days_since_last_visit", "Days since the last online event or purchase"),
    ("sessions_30d", "Online sessions in the last 30 days"),
    ("product_views_30d", "Product views in the last 30 days"),
    ("searches_30d", "Searches in the last 30 days"),
    ("cart_adds_30d", "Add-to-cart events in the last 30 days"),
    ("return_rate_365d", "Returned units over bought units, last 365 days"),
    ("discount_share_365d", "Discount over purchase spend before returns, last 365 days"),
    ("category_breadth_365d", "Distinct categories bought in the last 365 days"),
    ("activity_trend", "Purchases in the last 30 days over the 30 days before (smoothed)"),
    ("sessions_7d", "Online sessions in the last 7 days"),
    ("sessions_14d", "Online sessions in the last 14 days"),
    ("sessions_prev_30d", "Online sessions in the 30 days before the last 30"),
    ("session_trend", "Sessions in the last 30 days over the 30 days before (smoothed)"),
)

GOLD_FEATURES = Table(
    "gold.customer_features",
    "Point-in-time model features: one row per customer per as-of date, nothing after it.",
    (
        _c("customer_key", _s, "Customer key", False),
        _c("customer_id", _s, "CRM customer id, null when unknown"),
        *(_c(name, "double", comment, False) for name, comment in FEATURE_COLUMNS),
        _c("has_purchase", "boolean", "Bought at least once up to as_of_date", False),
        _c("as_of_date", "date", "Features use data up to and including this date", False),
    ),
    keys=("customer_key", "as_of_date"),
    partition_by=("as_of_date",),
    grain="one row per customer per as-of date",
    upstream=GOLD_INPUTS,
    producer="jobs/gold.py",
    erase_by=(("customer_key", "customer_key"),),
)

GOLD_KPIS = Table(
    "gold.daily_channel_kpis",
    "One row per day per channel (online, and store per store): every channel day delivered "
    "complete has its row, with zeros when nothing was sold (a closed store, a holiday).",
    (
        _c("date", "date", "Calendar day (UTC online, store-local in store)", False),
        _c("channel", _s, "online or store", False),
        _c("store_id", _s, "Store id for store rows, null for online"),
        _c("orders", "bigint", "Orders (online) or receipts (store)", False),
        _c(
            "net_revenue",
            "decimal(16,2)",
            "Net revenue, returns deducted (negative on a day of more returns than sales)",
            False,
        ),
        _c("units", "bigint", "Net units sold", False),
        _c("active_customers", "bigint", "Identified customers who bought", False),
        _c(
            "new_customers",
            "bigint",
            "Customers whose first purchase in the channel was this day",
            False,
        ),
        _c(
            "sessions",
            "bigint",
            "Online sessions (0 on a delivered day without any; null for store)",
        ),
        _c("online_conversion_rate", "double", "Sessions with a purchase over sessions (online)"),
    ),
    keys=("date", "channel", "store_id"),
    partition_by=(),
    grain="one row per day per channel (and store)",
    upstream=(
        "silver.customer_identity",
        "silver.customer_daily",
        "silver.order_lines",
        "silver.pos_lines",
        "silver.products",
        "silver.ecommerce_events",
        "silver.stores",
        "bronze.landing_folders",
    ),
    producer="jobs/gold.py",
)

GOLD_SCORES = Table(
    "gold.customer_scores",
    "Segment and churn probability per customer per as-of date, from the champion models.",
    (
        _c("customer_key", _s, "Customer key", False),
        _c("customer_id", _s, "CRM customer id, null when unknown"),
        _c("as_of_date", "date", "Features date the scores describe", False),
        _c("segment_id", "int", "Segment from the customer_segmentation champion", False),
        _c("segment_name", _s, "Readable segment name (no purchase yet: never bought)", False),
        _c(
            "churn_probability",
            "double",
            "P(no purchase within the horizon); null for a customer with no purchase yet",
        ),
        _c("churn_risk_band", _s, "low, medium or high; no_purchase_yet when never bought", False),
        _c("segmentation_model", _s, "Registered model name and version", False),
        _c("churn_model", _s, "Registered model name and version", False),
        _c("scored_at", "timestamp", "When the row was scored (UTC)", False),
        _c(
            "expected_purchases_365d",
            "double",
            "Expected purchase days in the next 365 days (BG/NBD of the churn model's version); "
            "null for a customer with no purchase yet",
        ),
        _c(
            "expected_value_365d",
            "double",
            "Expected net spend in the next 365 days, in the shop's currency: expected purchases "
            "times the Gamma-Gamma expected value of a purchase day; null with no purchase yet",
        ),
        _c(
            "value_at_risk",
            "double",
            "expected_value_365d times churn_probability; null with no purchase yet",
        ),
        _c(
            "segment_description",
            _s,
            "One line on the segment: its share of buyers and its centroid in the shop's units "
            "(null for a segmentation version from before descriptions)",
        ),
    ),
    keys=("customer_key", "as_of_date"),
    partition_by=("as_of_date",),
    grain="one row per customer per as-of date",
    upstream=(
        "gold.customer_features",
        "silver.order_lines",
        "silver.pos_lines",
        "silver.customer_identity",
    ),
    producer="models/score.py",
    erase_by=(("customer_key", "customer_key"),),
)

GOLD_FEED = Table(
    "gold.personalization_feed",
    "What email and push may send: one row per consenting customer per channel per as-of "
    "date, with segment, churn band and recommendations from past purchases and searches.",
    (
        _c("customer_key", _s, "Customer key", False),
        _c("customer_id", _s, "CRM customer id (consent is recorded against it)", False),
        _c("channel", _s, "email or push: the customer opted in to this channel", False),
        _c("as_of_date", "date", "Scores and purchase history up to this date", False),
        _c("segment_id", "int", "Segment from gold.customer_scores", False),
        _c("segment_name", _s, "Readable segment name", False),
        _c(
            "churn_risk_band",
            _s,
            "low, medium, high or no_purchase_yet, from gold.customer_scores",
            False,
        ),
        _c(
            "churn_probability",
            "double",
            "P(no purchase within the horizon); null for a customer with no purchase yet",
        ),
        _c(
            "value_at_risk",
            "double",
            "From gold.customer_scores: expected value over 365 days times churn probability; "
            "null with no purchase yet or no value model",
        ),
        _c(
            "contact_priority",
            "int",
            "Rank in the channel and as-of date, 1 first, by value at risk (highest first, "
            "customers without one last, then by customer_key): a campaign that can contact "
            "only N customers takes those ranked N or better",
            False,
        ),
        _c(
            "recommended_skus",
            "array<string>",
            "Skus to show, best first, none already bought in the look-back window",
            False,
        ),
        _c(
            "recommended_categories",
            "array<string>",
            "Categories of the recommended skus, by weight",
            False,
        ),
        _c(
            "reason",
            _s,
            "Why: the bought product and the search that weighed most, or the segment",
            False,
        ),
        _c("segmentation_model", _s, "Registered model name and version of the segment", False),
        _c("churn_model", _s, "Registered model name and version of the churn band", False),
        _c(
            "campaign_ids",
            "array<string>",
            "Campaigns running on the date that the customer is in the treatment group of on "
            "this channel (gold.campaign_assignments); a control customer's row never names "
            "the campaign",
            False,
        ),
        _c(
            "generated_at",
            "timestamp",
            "When the row was built, consent (CRM opt-in, no unsubscribe) read then (UTC)",
            False,
        ),
    ),
    keys=("customer_key", "channel", "as_of_date"),
    partition_by=("as_of_date",),
    grain="one row per consenting customer per channel per as-of date",
    upstream=(
        "gold.customer_scores",
        *HISTORY_INPUTS,
        "silver.campaigns",
        "silver.campaign_messages",
        "gold.campaign_assignments",
    ),
    producer="models/personalize.py",
    erase_by=(("customer_key", "customer_key"),),
)

GOLD_ASSIGNMENTS = Table(
    "gold.campaign_assignments",
    "Every customer each campaign was eligible for, treatment or control, assigned once: the "
    "night they were first eligible, with their segment and churn band of that night.",
    (
        _c("campaign_id", _s, "Campaign (silver.campaigns)", False),
        _c("customer_key", _s, "Customer key when assigned (silver.customer_key_history)", False),
        _c("customer_id", _s, "CRM customer id the group is drawn for", False),
        _c("channel", _s, "The campaign's channel: email or push", False),
        _c(
            "treatment_group",
            _s,
            "treatment (sent the campaign) or control (held out): control when holdout_draw is "
            "below the campaign's holdout_share (raw-landing.md)",
            False,
        ),
        _c(
            "holdout_draw",
            "double",
            "First 8 hex digits of sha256('<campaign_id>:<customer_id>') / 2^32, in [0, 1)",
            False,
        ),
        _c("segment_name", _s, "Segment when first eligible (gold.customer_scores)", False),
        _c("churn_risk_band", _s, "Churn risk band when first eligible", False),
        _c("assigned_on", "date", "As-of date of the night the customer was first eligible", False),
        _c("_run_id", _s, "Pipeline run that assigned the customer", False),
    ),
    keys=("campaign_id", "customer_key"),
    grain="one row per eligible customer per campaign",
    upstream=(
        "silver.campaigns",
        "silver.campaign_messages",
        "silver.customers",
        "silver.customer_identity",
        "gold.customer_scores",
    ),
    producer="models/personalize.py",
    erase_by=(("customer_key", "customer_key"), ("customer_id", "customer_id")),
)

_GROUPS = {
    "treatment": "treatment group (sent the campaign)",
    "control": "control group (held out)",
}


def _per_group(name: str, type_: str, what: str) -> tuple[Column, ...]:
    """One column per group; counts are never null, rates are null for a group with nobody."""
    return tuple(
        _c(f"{name}_{group}", type_, f"{what}, {words}", type_ != "bigint")
        for group, words in _GROUPS.items()
    )


_UPLIFT_METHOD = (
    "treatment minus control conversion rate; 95% interval by the normal approximation with "
    "unpooled variances (Wald)"
)

GOLD_READOUT = Table(
    "gold.campaign_readout",
    "What each campaign changed: per night, for every campaign running or inside its conversion "
    "window, its treatment and control groups compared on purchases in every channel (online "
    "and in store, through the identity graph), overall and per segment, with the treatment "
    "group's engagement from the providers' events.",
    (
        _c("campaign_id", _s, "Campaign (silver.campaigns)", False),
        _c("campaign_name", _s, "The campaign's name"),
        _c("channel", _s, "The campaign's channel: email or push", False),
        _c(
            "segment_name",
            _s,
            "Segment of the customers when assigned (gold.campaign_assignments), or all",
            False,
        ),
        _c("as_of_date", "date", "Night of the readout: purchases up to this date count", False),
        _c(
            "campaign_status",
            _s,
            "running (as_of_date <= end_date) or in_window (ended, conversion window still open)",
            False,
        ),
        _c("conversion_window_days", "int", "Days after assignment a purchase counts", False),
        *_per_group("customers", "bigint", "Customers assigned"),
        *_per_group(
            "converters",
            "bigint",
            "Customers with a purchase in any channel after their assignment night and within "
            "conversion_window_days of it (up to as_of_date)",
        ),
        *_per_group("conversion_rate", "double", "converters / customers"),
        *_per_group(
            "revenue_per_customer",
            "double",
            "Net revenue (returns deducted) in the window, all channels, per assigned customer",
        ),
        *_per_group("purchases_online", "bigint", "Online orders in the window"),
        *_per_group("purchases_in_store", "bigint", "In-store receipts in the window"),
        _c("uplift_abs", "double", f"Absolute uplift: {_UPLIFT_METHOD}"),
        _c("uplift_abs_low", "double", "Lower end of the 95% interval of uplift_abs"),
        _c("uplift_abs_high", "double", "Upper end of the 95% interval of uplift_abs"),
        _c(
            "uplift_rel",
            "double",
            "Relative uplift: treatment / control conversion rate - 1; 95% interval from the "
            "log of the rate ratio (delta method); null when a group has no converter",
        ),
        _c("uplift_rel_low", "double", "Lower end of the 95% interval of uplift_rel"),
        _c("uplift_rel_high", "double", "Upper end of the 95% interval of uplift_rel"),
        _c(
            "p_value",
            "double",
            "Two-sided p-value of no difference in conversion rate: two-proportion z-test with "
            "the pooled rate; null when too_small",
        ),
        _c("significant", "boolean", "p_value < 0.05; null when too_small"),
        _c(
            "too_small",
            "boolean",
            "Too few customers or conversions for the normal approximation (a group under 30 "
            "customers, or under 5 expected converters or non-converters at the pooled rate): "
            "no interval, p-value or verdict is given",
            False,
        ),
        _c("too_small_reason", _s, "Why too_small, naming the counts"),
        _c(
            "revenue_uplift",
            "double",
            "Treatment minus control revenue per customer; 95% interval by Welch's normal "
            "approximation",
        ),
        _c("revenue_uplift_low", "double", "Lower end of the 95% interval of revenue_uplift"),
        _c("revenue_uplift_high", "double", "Upper end of the 95% interval of revenue_uplift"),
        _c(
            "sent_rate",
            "double",
            "Share of the treatment group the providers report a message of the campaign for",
        ),
        _c("delivered_rate", "double", "Share of the treatment group with a delivered message"),
        _c("opened_rate", "double", "Share of the treatment group with an opened message"),
        _c("clicked_rate", "double", "Share of the treatment group with a clicked message"),
        _c(
            "unsubscribed_rate",
            "double",
            "Share of the treatment group who unsubscribed from a message of the campaign",
        ),
        _c(
            "control_contacted",
            "bigint",
            "Control customers the providers report a message of the campaign for (should be 0)",
            False,
        ),
        _c("_run_id", _s, "Pipeline run that computed the row", False),
        _c("computed_at", "timestamp", "When the row was computed (UTC)", False),
    ),
    keys=("campaign_id", "segment_name", "as_of_date"),
    grain="one row per campaign per segment (and one all row) per as-of date",
    upstream=(
        "silver.campaigns",
        "silver.campaign_messages",
        "gold.campaign_assignments",
        "silver.customer_identity",
        "silver.order_lines",
        "silver.pos_lines",
        "silver.products",
    ),
    producer="models/readout.py",
)

GOLD_MONITORING = Table(
    "gold.model_monitoring",
    "Nightly drift of the champions' inputs and outputs: population stability index (PSI) "
    "of each monitored feature and score against the champion's training reference.",
    (
        _c("as_of_date", "date", "Date of the scored population", False),
        _c("model_name", _s, "Registered model", False),
        _c("model_version", _s, "Champion version monitored", False),
        _c("column_name", _s, "Feature or score column compared", False),
        _c("kind", _s, "feature or score", False),
        _c("psi", "double", "Population stability index against the reference", False),
        _c("threshold", "double", "PSI above which a retrain is flagged", False),
        _c("drifted", "boolean", "psi > threshold", False),
        _c("reference_date", "date", "As-of date of the champion's training run", False),
        _c("reference_rows", "bigint", "Rows the reference distribution was taken from", False),
        _c("rows", "bigint", "Rows of the scored population compared", False),
        _c("run_id", _s, "Pipeline run that computed it", False),
        _c("monitored_at", "timestamp", "When it was computed (UTC)", False),
    ),
    keys=("as_of_date", "model_name", "column_name"),
    partition_by=(),
    upstream=("gold.customer_scores", "gold.customer_features"),
    producer="models/monitor.py",
)

ERASURE_AUDIT = Table(
    "quarantine.erasure_audit",
    "One row per erasure request; the identifiers only as SHA-256 hashes.",
    (
        _c("erasure_id", _s, "Id of the request (the run id)", False),
        _c("identifier_type", _s, "Type of the identifier the request named", False),
        _c("identifier_sha256", _s, "SHA-256 of the identifier the request named", False),
        _c("customer_key_sha256", _s, "SHA-256 of the erased customer_key"),
        _c("rows_deleted", "map<string,bigint>", "Rows removed per table", False),
        _c("erased_at", "timestamp", "When the erasure finished (UTC)", False),
        _c(
            "landing_files",
            "array<string>",
            "Landing files (paths under the landing zone) that held a line of the customer",
        ),
        _c(
            "landing_action",
            _s,
            "What the erasure did to them: reported (the default: the landing zone belongs to "
            "the source systems) or rewritten (without the customer's lines)",
        ),
        _c(
            "identifiers_suppressed",
            "bigint",
            "Identifiers of the customer added to quarantine.suppressed_identifiers, which "
            "keeps their later records out",
        ),
    ),
    keys=("erasure_id",),
    upstream=("silver.customer_identity", "bronze.crm_customers"),
    producer="jobs/erase_customer.py",
    kept_on_rebuild=True,
)

SUPPRESSED_IDENTIFIERS = Table(
    "quarantine.suppressed_identifiers",
    "The identifiers of erased customers, as keyed hashes: silver drops every later record "
    "that carries one (omni/suppression.py). Kept when the lakehouse is rebuilt from the "
    "landing zone.",
    (
        _c(
            "identifier_type",
            _s,
            "customer_id, loyalty_card_id, email_hash or anonymous_id",
            False,
        ),
        _c(
            "identifier_hash",
            _s,
            "HMAC-SHA256 of the identifier under the pipeline's hash key (OMNI_HASH_KEY; of "
            "the email_hash for an e-mail): the identifier itself is kept nowhere",
            False,
        ),
        _c("erasure_id", _s, "The erasure request that added it", False),
        _c("suppressed_at", "timestamp", "When it was added (UTC)", False),
    ),
    keys=("identifier_type", "identifier_hash"),
    upstream=("silver.customer_identity",),
    producer="jobs/erase_customer.py",
    kept_on_rebuild=True,
)

HELD_BATCHES = Table(
    "quarantine.held_batches",
    "Every record of a batch that a blocking expectation held back (write, audit, publish): "
    "nothing of that run's layer was published. Query by run_id; from_json(record, <the "
    "table's schema>) gives the record's columns.",
    (
        _c("run_id", _s, "Pipeline run whose batch was held", False),
        _c("business_date", "date", "The run's business date", False),
        _c("table_name", _s, "The table the record was for, <layer>.<table>", False),
        _c("write", _s, "How it would have landed: append, replace, overwrite or merge", False),
        _c("record", _s, "The record as JSON, in the table's columns", False),
        _c("held_at", "timestamp", "When the audit held it back (UTC)", False),
    ),
    partition_by=("table_name",),
    grain="one row per record held back, per run",
    upstream=("bronze.*", "silver.*", "gold.*", "quarantine.records", "quarantine.reconciliation"),
    producer="omni/publish.py",
    erase_by=(("record", "raw_text"),),
)

VALIDATION_RESULTS = Table(
    "quality.validation_results",
    "One row per expectation per validated table per run: the data-quality gates' history.",
    (
        _c("run_id", _s, "Pipeline run that validated the table", False),
        _c("business_date", "date", "The run's business date", False),
        _c("table_name", _s, "Validated table, <layer>.<table> (also the suite's name)", False),
        _c("expectation_id", _s, "Id of the expectation in its suite", False),
        _c("expectation_type", _s, "GX type, e.g. expect_column_values_to_be_unique", False),
        _c("check_kind", _s, "freshness, volume or the suite's own (the expectation's meta.check)"),
        _c("column_name", _s, "Column(s) the expectation is about, null for table-level ones"),
        _c("kwargs", _s, "The expectation's arguments as JSON, run parameters filled in", False),
        _c("severity", _s, "blocking (fails the run) or warning (recorded and reported)", False),
        _c("success", "boolean", "Whether the expectation held", False),
        _c("observed_value", _s, "Observed value as JSON (e.g. a count, a mean, a date)"),
        _c("element_count", "bigint", "Rows the expectation looked at"),
        _c("unexpected_count", "bigint", "Rows that broke it"),
        _c("unexpected_percent", "double", "Share of the non-null rows that broke it, in percent"),
        _c("unexpected_sample", _s, "Up to 5 rows (or values) that broke it, as JSON"),
        _c("exception", _s, "The error when the expectation could not be evaluated"),
        _c("batch_rows", "bigint", "Rows in the validated batch", False),
        _c(
            "batch_days",
            "int",
            "Delivery units the batch covers: business days, or store-days (volume is per unit)",
            False,
        ),
        _c("validated_at", "timestamp", "When the validation ran (UTC)", False),
    ),
    keys=("run_id", "table_name", "expectation_id"),
    partition_by=("business_date",),
    upstream=("bronze.*", "quarantine.records", "quarantine.reconciliation", "silver.*", "gold.*"),
    producer="omni/quality.py",  # called by every job's audit (omni/publish.py), jobs/validate.py
    # Samples of bad rows can quote a customer's identifiers: erasure searches them.
    erase_by=(("unexpected_sample", "raw_text"),),
)

ALL_TABLES: tuple[Table, ...] = (
    BRONZE_EVENTS,
    BRONZE_POS,
    BRONZE_CRM,
    BRONZE_PRODUCTS,
    BRONZE_STORES,
    BRONZE_CAMPAIGNS,
    BRONZE_MESSAGES,
    INGESTED_FILES,
    LANDING_FOLDERS,
    QUARANTINE_RECORDS,
    RECONCILIATION,
    HELD_BATCHES,
    ERASURE_AUDIT,
    SUPPRESSED_IDENTIFIERS,
    SILVER_PRODUCTS,
    SILVER_STORES,
    SILVER_CUSTOMERS,
    SILVER_EVENTS,
    SILVER_ORDER_LINES,
    SILVER_POS,
    SILVER_CAMPAIGNS,
    SILVER_MESSAGES,
    SILVER_DEVICE_LOGINS,
    SILVER_CRM_LINKS,
    SILVER_IDENTITY,
    SILVER_KEY_HISTORY,
    SILVER_CUSTOMER_DAILY,
    GOLD_PROFILE,
    GOLD_FEATURES,
    GOLD_KPIS,
    GOLD_SCORES,
    GOLD_FEED,
    GOLD_ASSIGNMENTS,
    GOLD_READOUT,
    GOLD_MONITORING,
    VALIDATION_RESULTS,
)
TABLES: dict[str, Table] = {table.name: table for table in ALL_TABLES}
# The gold tables the nightly run publishes, once validated, and the model DAG consumes.
GOLD_PUBLISHED = (GOLD_PROFILE, GOLD_FEATURES, GOLD_KPIS)


def table(name: str) -> Table:
    """Look a table up by ``<layer>.<table>``, naming the known ones when it is unknown."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known tables: {sorted(TABLES)}") from None


def layer_tables(layer: str) -> list[Table]:
    found = [t for t in ALL_TABLES if t.layer == layer]
    if not found:
        layers = sorted({t.layer for t in ALL_TABLES})
        raise ValueError(f"layer {layer!r}: expected one of {layers}")
    return found
