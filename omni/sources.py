"""The raw sources of ``raw-landing.md``: where each lands, its format and its bronze table."""

from __future__ import annotations

from dataclasses import dataclass

from omni import tables
from omni.tables import Table


@dataclass(frozen=True)
class Source:
    name: str
    folder: str  # relative to the landing zone
    format: str  # "jsonl" or "csv"
    bronze: Table
    header: tuple[str, ...] = ()
    # Stores export on their own: each dt= folder holds store_id= folders, each marked
    # complete by its own _SUCCESS (or by the dt= folder's).
    store_folders: bool = False

    @property
    def data_columns(self) -> list[str]:
        """Columns parsed from the record, ``_corrupt_record`` included (no ingest metadata)."""
        metadata = {c.name for c in tables.INGEST_METADATA}
        return [c for c in self.bronze.column_names if c not in metadata]

    @property
    def data_schema(self) -> str:
        """DDL of the data columns with their bronze types, for Spark's parsers."""
        return self.bronze.schema_ddl(self.data_columns)


EVENTS = Source("ecommerce_events", "ecommerce/events", "jsonl", tables.BRONZE_EVENTS)
POS = Source(
    "pos_lines", "instore/pos", "csv", tables.BRONZE_POS, tables.POS_COLUMNS, store_folders=True
)
CRM = Source("crm_customers", "crm/customers", "csv", tables.BRONZE_CRM, tables.CRM_COLUMNS)
PRODUCTS = Source(
    "products", "reference/products", "csv", tables.BRONZE_PRODUCTS, tables.PRODUCT_COLUMNS
)
STORES = Source("stores", "reference/stores", "csv", tables.BRONZE_STORES, tables.STORE_COLUMNS)

# Reference data first: later sources are checked against it.
SOURCES: tuple[Source, ...] = (PRODUCTS, STORES, CRM, EVENTS, POS)
BY_NAME = {source.name: source for source in SOURCES}
