"""Pure silver transforms: parsing raw records, keyed hashing of personal data, dedup flags,
quarantine rows."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from omni.sources import CORRUPT_RECORD, Source

_BLOCK = 64  # SHA-256 block size in bytes


def hmac_sha256(column: Column, key: str) -> Column:
    """HMAC-SHA256 (RFC 2104) of a string column as lower-case hex, computed in Spark.

    Spark has SHA-2 but no HMAC; the inner and outer padded keys are fixed, so they are
    prepared here once and HMAC is two nested SHA-256 calls on binary concatenations.
    """
    if not key:
        raise ValueError("hash key is empty: expected a secret string (OMNI_HASH_KEY)")
    key_bytes = key.encode("utf-8")
    if len(key_bytes) > _BLOCK:
        key_bytes = hashlib.sha256(key_bytes).digest()
    key_bytes = key_bytes.ljust(_BLOCK, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in key_bytes)
    outer_pad = bytes(b ^ 0x5C for b in key_bytes)
    message = F.encode(column, "UTF-8")
    inner = F.unhex(F.sha2(F.concat(F.lit(bytearray(inner_pad)), message), 256))
    return F.when(column.isNotNull(), F.sha2(F.concat(F.lit(bytearray(outer_pad)), inner), 256))


def parse_records(bronze: DataFrame, source: Source) -> DataFrame:
    """Bronze rows with their raw text (``_raw_record``) parsed into the source's fields.

    The one parse of a record: a JSON object's unknown fields are ignored; a line that is no
    JSON object, or a CSV row of the wrong width, keeps its text in ``_corrupt_record`` for
    the checks to quarantine. Every bronze column is kept.
    """
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_RECORD}
    if source.format == "jsonl":
        parsed = F.from_json("_raw_record", source.data_schema, options)
    else:
        parsed = F.from_csv(
            "_raw_record", source.data_schema, {**options, "escape": '"', "quote": '"'}
        )
    record = "_parsed_record"
    return bronze.select("*", parsed.alias(record)).select(
        *(F.col(f"{record}.`{name}`").alias(name) for name in source.data_columns),
        *(F.col(f"`{name}`") for name in bronze.columns),
    )


def normalise_email(column: Column) -> Column:
    value = F.lower(F.trim(column))
    return F.when(value != "", value)


def flag_duplicates(df: DataFrame, keys: Sequence[str], seen: DataFrame) -> DataFrame:
    """Add ``_is_duplicate``: the key repeats earlier in the batch or is already in ``seen``.

    Within the batch the first arrival wins (earliest folder, then file, then line), so reruns
    pick the same row.
    """
    order = Window.partitionBy(*keys).orderBy("_business_date", "_source_file", "_source_line")
    seen_keys = seen.select(*keys).distinct().withColumn("_seen", F.lit(True))
    return (
        df.withColumn("_arrival", F.row_number().over(order))
        .join(seen_keys, on=list(keys), how="left")
        .withColumn("_is_duplicate", (F.col("_arrival") > 1) | F.col("_seen").isNotNull())
        .drop("_arrival", "_seen")
    )


def quarantine_rows(
    rejected: DataFrame, source: str, keys: Sequence[str], run_id: str | Column
) -> DataFrame:
    """Rows for ``quarantine.records`` from records that carry a ``_reason``; ``run_id``: the
    ingest run, or the column that holds it."""
    record_key = F.concat_ws("|", *(F.coalesce(F.col(k).cast("string"), F.lit("")) for k in keys))
    return rejected.select(
        F.lit(source).alias("source"),
        F.col("_source_file").alias("source_file"),
        F.col("_source_line").alias("source_line"),
        F.col("_raw_record").alias("raw_text"),
        F.col("_reason").alias("reason"),
        F.col("_reason_detail").alias("reason_detail"),
        record_key.alias("record_key"),
        (F.lit(run_id) if isinstance(run_id, str) else run_id).alias("run_id"),
        F.col("_business_date").alias("business_date"),
        F.current_timestamp().alias("quarantined_at"),
    )


def latest_per_key(df: DataFrame, keys: Sequence[str], order_by: Sequence[str]) -> DataFrame:
    """Keep one row per key: the one that sorts last by ``order_by``."""
    order = Window.partitionBy(*keys).orderBy(*(F.col(c).desc() for c in order_by))
    return df.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")
