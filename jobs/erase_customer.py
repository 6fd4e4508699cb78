"""Erase one customer, named by any of their identifiers, from every table, for good.

The identifier is resolved through ``silver.customer_identity`` to the customer's key and all
identifiers linked to it; every table that holds customer data (the registry's ``erase_by``)
loses the matching rows, raw texts included. Then the removed rows are purged from the files:
``REORG ... APPLY (PURGE)`` rewrites files that carry deletion vectors and ``VACUUM RETAIN 0
HOURS`` deletes the old files, so time travel cannot bring the rows back. An audit row in
``quarantine.erasure_audit`` keeps only SHA-256 hashes of what was asked and erased, and the
landing files that hold the customer: listed by default (the landing zone is the source
systems'), rewritten without the customer's lines with ``--landing rewrite``. The customer's
identifiers go to ``quarantine.suppressed_identifiers`` as keyed hashes, so that no later
delivery, late record or rebuild from the landing zone brings them back (``omni.suppression``).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote, urlparse

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, quality_report, suppression, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.sources import CRM
from omni.transforms.identity import TYPE_ORDER
from omni.transforms.silver import hmac_sha256, normalise_email, parse_records

IDENTIFIER_TYPES = tables.ERASURE_IDENTIFIER_TYPES
assert set(TYPE_ORDER) <= set(IDENTIFIER_TYPES), "an identity type cannot be erased by"
# Where the identifier is read from when not on the command line: the erasure DAG passes it
# in the environment, so personal data stays out of process lists and task logs.
IDENTIFIER_ENV = "OMNI_ERASE_IDENTIFIER"
# What an erasure does to the landing files that hold the customer.
LANDING_ACTIONS = ("report", "rewrite")
log = logging.getLogger("omni.erasure")


class UnknownCustomerError(LookupError):
    """No table knows the identifier."""


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def resolve_customer(
    spark: SparkSession, settings: Settings, identifier_type: str, identifier: str
) -> tuple[str, dict[str, set[str]]]:
    """The customer's key and every identifier linked to it, by type."""
    if identifier_type not in IDENTIFIER_TYPES:
        raise ValueError(f"identifier type {identifier_type!r}: expected one of {IDENTIFIER_TYPES}")
    if not identifier or not identifier.strip():
        raise ValueError("identifier is empty: expected the value to erase")
    identity = lakehouse.read_table(spark, settings, tables.SILVER_IDENTITY)
    if identifier_type == "email":
        frame = spark.createDataFrame([(identifier,)], "email string")
        identifier_type = "email_hash"
        identifier = frame.select(
            hmac_sha256(normalise_email(F.col("email")), settings.hash_key)
        ).first()[0]
    if identifier_type == "customer_key":
        key = identifier
    else:
        match = identity.where(
            (F.col("identifier_type") == identifier_type) & (F.col("identifier") == identifier)
        ).first()
        if match is None:
            raise UnknownCustomerError(
                f"the {identifier_type} of the request is not in silver.customer_identity "
                "(nothing erased; the value is not repeated here)"
            )
        key = match["customer_key"]
    linked: dict[str, set[str]] = defaultdict(set)
    for row in identity.where(F.col("customer_key") == key).collect():
        linked[row["identifier_type"]].add(row["identifier"])
    if not linked and identifier_type == "customer_key":
        raise UnknownCustomerError(
            "the customer_key of the request is not in silver.customer_identity (nothing erased; "
            "the value is not repeated here)"
        )
    linked["customer_key"].add(key)
    # Keys the customer had before merges: rows written under them are the customer's too.
    for row in (
        lakehouse.read_table(spark, settings, tables.SILVER_KEY_HISTORY)
        .where(F.col("surviving_key") == key)
        .select("retired_key")
        .collect()
    ):
        linked["customer_key"].add(row["retired_key"])
    return key, linked


def clear_emails(spark: SparkSession, settings: Settings, customer_ids: set[str]) -> set[str]:
    """The e-mails as delivered in bronze, to find them in raw texts."""
    if not customer_ids:
        return set()
    bronze = lakehouse.read_table(spark, settings, tables.BRONZE_CRM).select(
        *tables.BRONZE_CRM.column_names
    )
    rows = parse_records(bronze, CRM).where(
        F.col("customer_id").isin(sorted(customer_ids)) & F.col("email").isNotNull()
    )
    return {row["email"].strip() for row in rows.select("email").distinct().collect()}


def _mentions(column: str, needles: set[str]) -> Column:
    """The text holds one of ``needles`` as a whole token (C1 does not match C12)."""
    if not needles:
        return F.lit(False)
    return F.lower(F.col(column)).rlike(_mentions_text(needles).pattern)


def _mentions_text(needles: set[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n.lower()) for n in sorted(needles, key=len, reverse=True))
    return re.compile(f"(?<![a-z0-9_.-])({alternatives})(?![a-z0-9_-])")


def erase_from_gx_files(settings: Settings, needles: set[str]) -> int:
    """Delete the GX validation results, Data Docs pages and quality report pages that quote
    the customer.

    Samples of failed rows are stored by GX outside the lakehouse too (JSON results, HTML
    pages); the next validation rebuilds the Data Docs index without them.
    """
    if not needles or not settings.gx_dir.exists():
        return 0
    pattern = _mentions_text(needles)
    deleted = 0
    folders = (
        settings.gx_dir / "validations",
        settings.gx_dir / "data_docs" / "validations",
        quality_report.report_dir(settings),
    )
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else ():
            if path.suffix in (".json", ".html") and pattern.search(
                path.read_text(encoding="utf-8", errors="replace").lower()
            ):
                path.unlink()
                deleted += 1
    return deleted


def erase_predicate(table: tables.Table, linked: dict[str, set[str]], needles: set[str]) -> Column:
    condition = F.lit(False)
    for column, kind in table.erase_by:
        if kind == "raw_text":
            condition = condition | _mentions(column, needles)
        elif linked.get(kind):
            condition = condition | F.col(column).isin(sorted(linked[kind]))
    return F.coalesce(condition, F.lit(False))


def delete_rows(spark: SparkSession, settings: Settings, table: tables.Table, condition) -> int:
    """DELETE the matching rows; the count comes from the commit's own metrics."""
    from delta.tables import DeltaTable

    target = DeltaTable.forPath(spark, lakehouse.table_path(settings, table))
    before = target.history(1).first()["version"]
    target.delete(condition)
    last = target.history(1).first()
    if last["version"] == before:  # nothing matched: Delta commits nothing
        return 0
    if last["operation"] != "DELETE":
        raise RuntimeError(f"{table.name}: expected a DELETE commit, found {last['operation']}")
    return int((last["operationMetrics"] or {}).get("numDeletedRows", 0))


def landing_files_with(spark: SparkSession, settings: Settings, needles: set[str]) -> list[str]:
    """The landing files (paths under the landing zone) with a line that names the customer.

    One Spark pass over every delivered file (``part-*``, gzip or not), in parallel: the
    landing zone keeps years of deliveries."""
    root = settings.landing_dir
    if not needles or not root.exists():
        return []
    lines = (
        spark.read.option("recursiveFileLookup", "true")
        .option("pathGlobFilter", "part-*")
        .text(str(root))
    )
    hits = lines.where(_mentions("value", needles)).select("_metadata.file_path").distinct()
    base = root.resolve()
    return sorted(
        str(Path(unquote(urlparse(row["file_path"]).path)).resolve().relative_to(base))
        for row in hits.collect()
    )


def rewrite_landing_file(path: Path, needles: set[str]) -> int:
    """Rewrite ``path`` without its lines that name the customer (a CSV header never does);
    returns how many went. The new file replaces the old one in one rename."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as source:
        lines = source.read().splitlines(keepends=True)  # \n, \r\n or \r: as Spark splits
    pattern = _mentions_text(needles)
    kept = [line for line in lines if not pattern.search(line.decode("utf-8", "replace").lower())]
    partial = path.with_name(f".{path.name}.erasing")  # hidden: no reader lists it
    with opener(partial, "wb") as target:
        target.writelines(kept)
    os.replace(partial, path)
    return len(lines) - len(kept)


def erase_customer(
    spark: SparkSession,
    settings: Settings,
    identifier_type: str,
    identifier: str,
    run_id: str,
    landing: str = "report",
) -> dict:
    """Erase the customer from every table and file of the lakehouse and GX's files; list the
    landing files that hold them, and with ``landing="rewrite"`` rewrite those without the
    customer's lines (by default the landing zone, the source systems', is left as it is)."""
    if landing not in LANDING_ACTIONS:
        raise ValueError(f"landing={landing!r}: expected one of {LANDING_ACTIONS}")
    key, linked = resolve_customer(spark, settings, identifier_type, identifier)
    # Texts are searched for every identifier: raw records hold the delivered ones, held
    # batches (records of silver and gold tables as JSON) the keys and hashes too.
    needles = set().union(*linked.values()) | clear_emails(
        spark, settings, linked.get("customer_id", set())
    )
    # First, so records delivered while the erasure runs are kept out by the next night.
    suppressed = suppression.suppress(spark, settings, linked, run_id)
    deleted: dict[str, int] = {}
    for table in tables.ALL_TABLES:
        if not table.erase_by:
            continue
        lakehouse.ensure_table(spark, settings, table)
        count = delete_rows(spark, settings, table, erase_predicate(table, linked, needles))
        if count:
            lakehouse.purge(spark, settings, table)
        deleted[table.name] = count
    landing_files = landing_files_with(spark, settings, needles)
    lines_removed = {}
    if landing == "rewrite":
        for path in landing_files:
            lines_removed[path] = rewrite_landing_file(settings.landing_dir / path, needles)
    action = "rewritten" if landing == "rewrite" else "reported"
    audit = spark.createDataFrame(
        [(run_id, identifier_type, _sha256(identifier), _sha256(key), deleted)],
        "erasure_id string, identifier_type string, identifier_sha256 string, "
        "customer_key_sha256 string, rows_deleted map<string,bigint>",
    ).select(
        "*",
        F.current_timestamp().alias("erased_at"),
        F.array(*[F.lit(p) for p in landing_files]).cast("array<string>").alias("landing_files"),
        F.lit(action).alias("landing_action"),
        F.lit(suppressed).cast("bigint").alias("identifiers_suppressed"),
    )
    lakehouse.merge(spark, settings, tables.ERASURE_AUDIT, audit)
    gx_files = erase_from_gx_files(settings, needles)
    if landing_files and landing != "rewrite":
        log.warning(
            "%d landing file(s) still hold the customer (the landing zone is the source "
            "systems'; --landing rewrite removes their lines): %s",
            len(landing_files),
            ", ".join(landing_files),
        )
    return {
        "rows_deleted": deleted,
        "tables": len(deleted),
        "gx_files_deleted": gx_files,
        "landing_files": landing_files,
        "landing_action": action,
        "landing_lines_removed": sum(lines_removed.values()),
        "identifiers_suppressed": suppressed,
    }


def _parser():
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--identifier-type", required=True, choices=IDENTIFIER_TYPES)
    parser.add_argument(
        "--identifier", default=None, help=f"the identifier (default: ${IDENTIFIER_ENV})"
    )
    parser.add_argument(
        "--landing",
        choices=LANDING_ACTIONS,
        default="report",
        help="the landing files that hold the customer: list them in the audit (report, the "
        "default) or also rewrite them without the customer's lines (rewrite)",
    )
    return parser


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    identifier = args.identifier or os.environ.get(IDENTIFIER_ENV, "")
    return erase_customer(
        spark, settings, args.identifier_type, identifier, args.run_id, args.landing
    )


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("erase_customer", _body, _parser(), argv, session)


if __name__ == "__main__":
    main()
