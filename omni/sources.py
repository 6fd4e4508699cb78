"""The raw sources of ``raw-landing.md``: where each lands, its format, its fields and its
bronze table.

Bronze keeps every line as delivered; a source's fields are what silver parses it into
(``omni.transforms.parse``), every value as text except the purchased items' structure: the
checks that type them name the offending value when it is not what the contract says.
"""

from __future__ import annotations

from dataclasses import dataclass

from omni import tables
from omni.tables import Table

CORRUPT_RECORD = "_corrupt_record"

_s = "string"
EVENT_FIELDS = (
    ("event_id", _s),
    ("event_time", _s),
    ("event_type", _s),
    ("platform", _s),
    ("session_id", _s),
    ("anonymous_id", _s),
    ("customer_id", _s),
    ("utm_source", _s),
    ("utm_medium", _s),
    ("utm_campaign", _s),
    ("page_url", _s),
    ("sku", _s),
    ("search_query", _s),
    ("order_id", _s),
    ("items", "array<struct<sku:string,quantity:string,unit_price:string>>"),
    ("currency", _s),
)
POS_COLUMNS = (
    "transaction_id",
    "line_number",
    "store_id",
    "register_id",
    "transaction_ts",
    "sku",
    "quantity",
    "unit_price",
    "discount_amount",
    "payment_type",
    "loyalty_card_id",
    "currency",
)
CRM_COLUMNS = (
    "customer_id",
    "loyalty_card_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_year",
    "postal_code",
    "signup_ts",
    "email_opt_in",
    "push_opt_in",
    "updated_at",
)
PRODUCT_COLUMNS = (
    "sku",
    "product_name",
    "category",
    "subcategory",
    "brand",
    "list_price",
    "currency",
)
STORE_COLUMNS = ("store_id", "store_name", "city", "region", "country", "timezone", "opened_on")
CAMPAIGN_COLUMNS = (
    "campaign_id",
    "name",
    "channel",
    "audience",
    "offer",
    "start_date",
    "end_date",
    "holdout_share",
    "conversion_window_days",
    "updated_at",
)
MESSAGE_FIELDS = tuple(
    (name, _s)
    for name in (
        "event_id",
        "message_id",
        "campaign_id",
        "channel",
        "customer_id",
        "event_type",
        "event_time",
    )
)


@dataclass(frozen=True)
class Source:
    name: str
    folder: str  # relative to the landing zone
    format: str  # "jsonl" or "csv"
    bronze: Table
    # The contract's fields, in a CSV file's column order, with the type each is parsed as.
    fields: tuple[tuple[str, str], ...]
    # Stores export on their own: each dt= folder holds store_id= folders, each marked
    # complete by its own _SUCCESS (or by the dt= folder's).
    store_folders: bool = False

    @property
    def header(self) -> tuple[str, ...]:
        """A CSV file's header line, by name (a JSON Lines source has none)."""
        return tuple(name for name, _ in self.fields) if self.format == "csv" else ()

    @property
    def data_columns(self) -> list[str]:
        """The columns a record is parsed into: its fields and ``_corrupt_record``."""
        return [name for name, _ in self.fields] + [CORRUPT_RECORD]

    @property
    def data_schema(self) -> str:
        """DDL of the parsed columns, for Spark's parsers."""
        return ", ".join(f"`{name}` {kind}" for name, kind in (*self.fields, (CORRUPT_RECORD, _s)))


def _text(columns: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((column, _s) for column in columns)


EVENTS = Source("ecommerce_events", "ecommerce/events", "jsonl", tables.BRONZE_EVENTS, EVENT_FIELDS)
POS = Source(
    "pos_lines",
    "instore/pos",
    "csv",
    tables.BRONZE_POS,
    _text(POS_COLUMNS),
    store_folders=True,
)
CRM = Source("crm_customers", "crm/customers", "csv", tables.BRONZE_CRM, _text(CRM_COLUMNS))
PRODUCTS = Source(
    "products", "reference/products", "csv", tables.BRONZE_PRODUCTS, _text(PRODUCT_COLUMNS)
)
STORES = Source("stores", "reference/stores", "csv", tables.BRONZE_STORES, _text(STORE_COLUMNS))
CAMPAIGNS = Source(
    "marketing_campaigns",
    "marketing/campaigns",
    "csv",
    tables.BRONZE_CAMPAIGNS,
    _text(CAMPAIGN_COLUMNS),
)
MESSAGES = Source(
    "marketing_messages", "marketing/messages", "jsonl", tables.BRONZE_MESSAGES, MESSAGE_FIELDS
)

# Reference data first: later sources are checked against it (a message against campaigns).
SOURCES: tuple[Source, ...] = (PRODUCTS, STORES, CRM, EVENTS, POS, CAMPAIGNS, MESSAGES)
BY_NAME = {source.name: source for source in SOURCES}
