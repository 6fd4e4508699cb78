"""Erased customers stay erased: their identifiers, as keyed hashes, keep their records out.

Sources deliver at least once and their files stay in the landing zone, so an erased
customer's CRM row, a late event of their device or a rebuild from the landing zone would
bring them back. Each erasure adds the customer's identifiers to
``quarantine.suppressed_identifiers`` as HMAC-SHA256 hashes under the pipeline's hash key
(the e-mail's hash hashed again), never in clear. Silver then drops every record that
carries one, before anything is stored (``records_naming``): counted in
``quarantine.reconciliation`` as ``suppressed``, never quarantined (quarantine keeps raw
text), and its bronze row deleted and purged by the same run.

A record is matched on the identifier columns of its silver table (the registry's
``erase_by``); a record rejected by the checks, whose columns may not parse, is also matched
on every token of its raw text.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, tables
from omni.config import Settings
from omni.transforms.silver import hmac_sha256, normalise_email

# The identifier types a record carries (the identity graph's); a customer_key is the
# pipeline's own and never arrives from a source.
RECORD_IDENTIFIER_TYPES = ("customer_id", "loyalty_card_id", "email_hash", "anonymous_id")
# Where a bronze record is: the key of a suppressed record and of its bronze row.
RECORD_KEY = ("_run_id", "_business_date", "_source_file", "_source_line")
# What separates tokens in a raw record (JSON or CSV punctuation, spaces); an e-mail, an id
# with dashes or dots stays one token.
_TOKEN_SEPARATOR = r"[^A-Za-z0-9_.@+\-]+"


def identifier_rows(linked: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(type, value) of the customer's identifiers a record can carry."""
    return sorted(
        (kind, value)
        for kind in RECORD_IDENTIFIER_TYPES
        for value in linked.get(kind, ())
        if value is not None
    )


def suppress(
    spark: SparkSession, settings: Settings, linked: dict[str, set[str]], erasure_id: str
) -> int:
    """Add the customer's identifiers to the suppression list; returns how many it holds for
    them (a rerun adds nothing twice)."""
    pairs = identifier_rows(linked)
    if not pairs:
        return 0
    rows = spark.createDataFrame(pairs, "identifier_type string, value string").select(
        "identifier_type",
        hmac_sha256(F.col("value"), settings.hash_key).alias("identifier_hash"),
        F.lit(erasure_id).alias("erasure_id"),
        F.current_timestamp().alias("suppressed_at"),
    )
    lakehouse.merge(spark, settings, tables.SUPPRESSED_IDENTIFIERS, rows, update=False)
    return len(pairs)


def load(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """The suppressed hashes, held in memory for the night; None when there are none."""
    hashes = (
        lakehouse.read_table(spark, settings, tables.SUPPRESSED_IDENTIFIERS)
        .select("identifier_hash")
        .distinct()
    )
    hashes = hashes.localCheckpoint()
    return hashes if hashes.limit(1).count() else None


def identifier_columns(table: tables.Table, columns: list[str]) -> list[str]:
    """The columns of ``table``'s records (among ``columns``) that carry an identifier."""
    return [
        column
        for column, kind in table.erase_by
        if kind in RECORD_IDENTIFIER_TYPES and column in columns
    ]


def _candidates(columns: list[str], key: str) -> Column:
    """Every keyed hash a record could match: its identifier columns'; for a rejected record
    also its raw text's tokens', and an e-mail token's as ``email_hash``."""
    hashed = F.array(*(hmac_sha256(F.col(c).cast("string"), key) for c in columns))
    tokens = F.split(F.coalesce(F.col("_raw_record"), F.lit("")), _TOKEN_SEPARATOR)
    raw = F.concat(
        F.transform(tokens, lambda token: hmac_sha256(token, key)),
        F.transform(
            F.filter(tokens, lambda token: token.contains("@")),
            lambda token: hmac_sha256(hmac_sha256(normalise_email(token), key), key),
        ),
    )
    empty = F.array().cast("array<string>")
    return F.concat(hashed, F.when(F.col("_reason").isNotNull(), raw).otherwise(empty))


def records_naming(
    checked: DataFrame, table: tables.Table, suppressed: DataFrame, key: str
) -> DataFrame | None:
    """The ``RECORD_KEY`` of the checked records (parsed, with ``_reason`` and, when
    rejected, ``_raw_record``) that carry a suppressed identifier; None for a source that
    carries no identifier (products, stores, campaigns)."""
    columns = identifier_columns(table, checked.columns)
    if not columns:
        return None
    return (
        checked.select(*RECORD_KEY, F.explode(_candidates(columns, key)).alias("identifier_hash"))
        .join(F.broadcast(suppressed), "identifier_hash", "left_semi")
        .select(*RECORD_KEY)
        .distinct()
    )


def bronze_predicate(records: list) -> str:
    """SQL that holds for the bronze rows of ``records`` (rows with ``RECORD_KEY``), by
    partition first, so Delta rewrites only those dates' files."""
    by_file: dict[tuple, list[int]] = {}
    for row in records:
        by_file.setdefault((row["_run_id"], row["_business_date"], row["_source_file"]), []).append(
            int(row["_source_line"])
        )
    dates = sorted({date for _, date, _ in by_file})
    lines = " OR ".join(
        f"({lakehouse.sql_in('_run_id', [run])} AND {lakehouse.sql_in('_business_date', [day])}"
        f" AND {lakehouse.sql_in('_source_file', [path])}"
        f" AND `_source_line` IN ({', '.join(str(n) for n in sorted(numbers))}))"
        for (run, day, path), numbers in sorted(by_file.items())
    )
    return f"{lakehouse.sql_in('_business_date', dates)} AND ({lines})"
