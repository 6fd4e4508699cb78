"""Silver: parse, type, check, deduplicate and merge the bronze records not yet processed.

Every bronze record of a pending ingest run ends in exactly one place: its silver table
(accepted), ``quarantine.records`` (with a reason), the duplicate count or, when it carries an
erased customer's identifier (``omni.suppression``), the suppressed count, its bronze row
deleted and purged. The counts are recorded per source and business date in
``quarantine.reconciliation`` and the job fails when ``read = accepted + quarantined +
duplicates + suppressed`` does not hold. Silver and quarantine rows
carry the ingest run's id, so a retried run replaces its own rows and never doubles them.

Nothing is written before the audit (``omni.publish``): every table's rows are staged, the
silver and quarantine suites judge the tables as they will be, and either all is published or
all is held in ``quarantine.held_batches``, the ingest runs left pending for the next night.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, sources, suppression, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.publish import Staging, release
from omni.sources import Source
from omni.transforms import gold, identity, silver, validation


class ReconciliationError(RuntimeError):
    """Counts of a source and date do not add up."""


@dataclass(frozen=True)
class SilverStep:
    source: Source
    table: tables.Table
    dedup_keys: tuple[str, ...]
    check: Callable[[DataFrame, dict[str, DataFrame]], DataFrame]
    # Tables that keep one row per key: the newest by this column wins (ties: the later run).
    latest_by: str | None = None
    # The silver table's date partition. A record and its re-sent copies share this date, so
    # duplicates are looked for, and merged against, in the batch's dates only: the cost of a
    # night follows its own records, not the history.
    date_column: str | None = None


def steps(settings: Settings) -> list[SilverStep]:
    def check_customers(bronze: DataFrame, _: dict[str, DataFrame]) -> DataFrame:
        email = silver.normalise_email(F.col("email"))
        return validation.check_customers(bronze).withColumn(
            "email_hash", silver.hmac_sha256(email, settings.hash_key)
        )

    return [
        SilverStep(
            sources.PRODUCTS,
            tables.SILVER_PRODUCTS,
            ("sku", "_business_date"),
            lambda b, _: validation.check_products(b),
            latest_by="_business_date",
        ),
        SilverStep(
            sources.STORES,
            tables.SILVER_STORES,
            ("store_id", "_business_date"),
            lambda b, _: validation.check_stores(b),
            latest_by="_business_date",
        ),
        SilverStep(
            sources.CRM,
            tables.SILVER_CUSTOMERS,
            ("customer_id", "updated_at"),
            check_customers,
            latest_by="updated_at",
        ),
        SilverStep(
            sources.EVENTS,
            tables.SILVER_EVENTS,
            ("event_id",),
            lambda b, ref: validation.check_events(b, ref["products"]),
            date_column="event_date",
        ),
        SilverStep(
            sources.POS,
            tables.SILVER_POS,
            ("transaction_id", "line_number"),
            lambda b, ref: validation.check_pos(b, ref["products"], ref["stores"]),
            date_column="transaction_date",
        ),
        SilverStep(
            sources.CAMPAIGNS,
            tables.SILVER_CAMPAIGNS,
            ("campaign_id", "updated_at"),
            lambda b, _: validation.check_campaigns(b),
            latest_by="updated_at",
        ),
        SilverStep(
            sources.MESSAGES,
            tables.SILVER_MESSAGES,
            ("event_id",),
            lambda b, ref: validation.check_messages(b, ref["campaigns"]),
            date_column="event_date",
        ),
    ]


def pending_runs(
    spark: SparkSession, settings: Settings, source: Source
) -> tuple[list[str], list[object]]:
    """Ingest runs of ``source`` with no reconciliation rows yet, and their business dates.

    Read from the small ingest log, so bronze is then read in those dates' partitions only.
    """
    ingested = (
        lakehouse.read_table(spark, settings, tables.INGESTED_FILES)
        .where((F.col("source") == source.name) & (F.col("records") > 0))
        .select("run_id", "business_date")
        .distinct()
    )
    done = (
        lakehouse.read_table(spark, settings, tables.RECONCILIATION)
        .where(F.col("source") == source.name)
        .select("run_id")
    )
    pending = ingested.join(done, "run_id", "left_anti").collect()
    return sorted({r["run_id"] for r in pending}), sorted({r["business_date"] for r in pending})


def _dates_of(df: DataFrame, column: str | None) -> list[object] | None:
    if column is None:
        return None
    return sorted(r[0] for r in df.select(column).distinct().collect() if r[0] is not None)


@dataclass
class _Quarantine:
    """The night's rejected records of every source, staged as one replace of their slices
    (a source's rows of its pending runs): one Delta commit, not one per source."""

    rows: list[DataFrame] = field(default_factory=list)
    slices: list[str] = field(default_factory=list)

    def add(self, rows: DataFrame, source: str, runs: list[str]) -> None:
        self.rows.append(rows)
        self.slices.append(
            f"({lakehouse.sql_in('source', [source])} AND {lakehouse.sql_in('run_id', runs)})"
        )

    def stage(self, staging: Staging) -> None:
        if self.rows:
            rows = self.rows[0]
            for frame in self.rows[1:]:
                rows = rows.unionByName(frame)
            staging.replace_where(tables.QUARANTINE_RECORDS, rows, " OR ".join(self.slices))
        for frame in self.rows:  # copied into the staged batch
            release(frame)


def process(
    spark: SparkSession,
    settings: Settings,
    step: SilverStep,
    reference: dict[str, DataFrame],
    staging: Staging,
    quarantine: _Quarantine,
    suppressed: DataFrame | None = None,
) -> list[dict]:
    """Stage the pending bronze runs of one source, its rejected records into ``quarantine``,
    the deletion of its records that carry a ``suppressed`` identifier hash from bronze;
    return the reconciliation rows."""
    runs, business_dates = pending_runs(spark, settings, step.source)
    if not runs:
        return []
    batch = (
        lakehouse.read_table(spark, settings, step.source.bronze)
        .where(
            lakehouse.date_literal("_business_date", business_dates) & F.col("_run_id").isin(runs)
        )
        .select(*step.source.bronze.column_names)  # a bronze of before kept parsed columns too
    )
    # One pass of the parse and the checks, kept for the steps below. Only rejected rows keep
    # their raw text (for quarantine): accepted rows are typed columns, and dedup shuffles
    # narrow rows.
    checked = lakehouse.materialize(
        step.check(silver.parse_records(batch, step.source), reference)
        .withColumn("_raw_record", F.when(F.col("_reason").isNotNull(), F.col("_raw_record")))
        .drop("_corrupt_record")
    )
    dropped = _suppressed_records(settings, step, batch, checked, suppressed, staging)
    # What is left once the suppressed records are out: accepted, quarantined or duplicates.
    placed = checked
    if dropped:
        placed = checked.join(
            F.broadcast(spark.createDataFrame(dropped)), list(suppression.RECORD_KEY), "left_anti"
        )
    rejected = placed.where(F.col("_reason").isNotNull())
    seen = lakehouse.read_table(spark, settings, step.table).where(~F.col("_run_id").isin(runs))
    dates = _dates_of(placed.where(F.col("_reason").isNull()), step.date_column)
    if dates is not None:
        seen = seen.where(lakehouse.date_literal(step.date_column, dates))
    valid = placed.where(F.col("_reason").isNull()).drop("_raw_record")
    flagged = lakehouse.materialize(silver.flag_duplicates(valid, step.dedup_keys, seen))
    accepted = flagged.where(~F.col("_is_duplicate"))
    kept = {
        (row["_run_id"], row["_business_date"]): (row["accepted"], row["duplicates"])
        for row in flagged.groupBy("_run_id", "_business_date")
        .agg(
            F.sum((~F.col("_is_duplicate")).cast("long")).alias("accepted"),
            F.sum(F.col("_is_duplicate").cast("long")).alias("duplicates"),
        )
        .collect()
    }

    # Checkpointed here to be counted; staged with every source's at the end (``_Quarantine``).
    rows_of_runs = silver.quarantine_rows(
        rejected, step.source.name, step.dedup_keys, F.col("_run_id")
    ).localCheckpoint()
    quarantine.add(rows_of_runs, step.source.name, runs)
    quarantined = {
        (row["run_id"], row["business_date"]): row["count"]
        for row in rows_of_runs.groupBy("run_id", "business_date").count().collect()
    }
    if step.source is sources.CRM:
        staging.append(tables.SILVER_CRM_LINKS, new_crm_links(spark, settings, accepted))
    if step.source is sources.EVENTS:
        staging.append(tables.SILVER_DEVICE_LOGINS, new_device_logins(spark, settings, accepted))
        # An order line's date is its purchase event's date: one of the batch's dates.
        staging.merge(
            tables.SILVER_ORDER_LINES,
            validation.explode_order_lines(accepted),
            update=False,
            target_dates=("order_date", dates),
        )
    if step.latest_by:
        latest = silver.latest_per_key(accepted, step.table.keys, [step.latest_by])
        staging.merge(step.table, latest, newer_by=step.latest_by)
    else:
        # ``accepted`` holds no key already in silver outside these runs (``seen``), so the
        # rows are appended; a retried run replaces the rows it wrote before.
        staging.replace_where(
            step.table,
            accepted,
            f"{lakehouse.sql_in(step.date_column, dates)} AND {lakehouse.sql_in('_run_id', runs)}",
        )
    checked.unpersist()
    flagged.unpersist()

    # Read is counted on bronze itself, quarantined on the rows staged for quarantine, so a row
    # lost or doubled by a join in between breaks the equation.
    bronze_read = {
        (row["_run_id"], row["_business_date"]): row["n"]
        for row in batch.groupBy("_run_id", "_business_date").agg(F.count("*").alias("n")).collect()
    }
    dropped_per_run = Counter((row["_run_id"], row["_business_date"]) for row in dropped)
    rows = []
    for key, read in sorted(bronze_read.items()):
        accepted, duplicates = kept.get(key, (0, 0))
        entry = {
            "run_id": key[0],
            "source": step.source.name,
            "business_date": key[1],
            "read": read,
            "accepted": accepted,
            "quarantined": quarantined.get(key, 0),
            "duplicates": duplicates,
            "suppressed": dropped_per_run.get(key, 0),
        }
        if read != sum(entry[k] for k in PLACES):
            raise ReconciliationError(
                f"{step.source.name} {key[1]} run {key[0]}: read {read} != "
                + " + ".join(f"{k} {entry[k]}" for k in PLACES)
            )
        rows.append(entry)
    return rows


# Where a bronze record ends: the reconciliation's columns, which add up to ``read``.
PLACES = ("accepted", "quarantined", "duplicates", "suppressed")


def _suppressed_records(
    settings: Settings,
    step: SilverStep,
    batch: DataFrame,
    checked: DataFrame,
    suppressed: DataFrame | None,
    staging: Staging,
) -> list:
    """The checked records of the bronze ``batch`` that carry a suppressed identifier (their
    ``RECORD_KEY``), their bronze rows' deletion staged: they are stored nowhere, quarantine
    included."""
    if suppressed is None:
        return []
    naming = suppression.records_naming(checked, step.table, suppressed, settings.hash_key)
    dropped = [] if naming is None else naming.collect()
    if dropped:
        # Replaced by no rows: deleted.
        predicate = suppression.bronze_predicate(dropped)
        staging.replace_where(step.source.bronze, batch.limit(0), predicate)
    return dropped


_LOGIN_COLUMNS = ("anonymous_id", "customer_id", "event_date", "_run_id")


def _unseen(pairs: DataFrame, known: DataFrame, keys: tuple[str, ...]) -> DataFrame:
    """``pairs`` whose ``keys`` are not in ``known`` (null-safe: a null matches a null)."""
    seen = known.select(*(F.col(k).alias(f"_known_{k}") for k in keys))
    matches = [pairs[k].eqNullSafe(seen[f"_known_{k}"]) for k in keys]
    condition = matches[0]
    for match in matches[1:]:
        condition = condition & match
    return pairs.join(seen, condition, "left_anti")


def new_device_logins(spark: SparkSession, settings: Settings, accepted: DataFrame) -> DataFrame:
    """The batch's (device, customer) pairs not yet in ``silver.device_logins``.

    The identity graph reads this table, whose size follows the devices and customers, not the
    event history. While it is empty (a lakehouse from before the table), it is seeded from all
    silver events. Pairs already there are left out (``customer_id`` is null for anonymous
    visits), so a retried run adds nothing.
    """
    logins = lakehouse.read_table(spark, settings, tables.SILVER_DEVICE_LOGINS)
    events = accepted
    if logins.limit(1).count() == 0:
        events = accepted.select(*_LOGIN_COLUMNS).unionByName(
            lakehouse.read_table(spark, settings, tables.SILVER_EVENTS).select(*_LOGIN_COLUMNS)
        )
    pairs = events.groupBy("anonymous_id", "customer_id").agg(
        F.min("event_date").alias("first_seen_date"), F.min("_run_id").alias("_run_id")
    )
    return _unseen(pairs, logins, tables.SILVER_DEVICE_LOGINS.keys)


_CRM_COLUMNS = ("customer_id", "loyalty_card_id", "email_hash", "updated_at", "_run_id")


def new_crm_links(spark: SparkSession, settings: Settings, accepted: DataFrame) -> DataFrame:
    """The batch's (customer, card) and (customer, email hash) pairs not yet in
    ``silver.crm_links``, each first seen on its earliest record's ``updated_at`` date.

    Every accepted record counts, not only the latest of a customer: a card replaced within the
    batch was still linked from its record's date. While the table is empty (a lakehouse from
    before it) it is seeded from ``silver.customers``, whose latest records are all that is
    left of the earlier ones: a link is then dated by its latest record, never earlier than
    it was seen. A retried run adds nothing.
    """
    links = lakehouse.read_table(spark, settings, tables.SILVER_CRM_LINKS)
    records = accepted.select(*_CRM_COLUMNS)
    if links.limit(1).count() == 0:
        customers = lakehouse.read_table(spark, settings, tables.SILVER_CUSTOMERS)
        records = records.unionByName(customers.select(*_CRM_COLUMNS))
    pairs = (
        identity.crm_pairs(records, F.to_date("updated_at").alias("seen"), "_run_id")
        .groupBy(*tables.SILVER_CRM_LINKS.keys)
        .agg(F.min("seen").alias("first_seen_date"), F.min("_run_id").alias("_run_id"))
    )
    return _unseen(pairs, links, tables.SILVER_CRM_LINKS.keys)


# The silver tables whose rows the customers' days sum, each with its date.
_DAY_SOURCES = (
    (tables.SILVER_EVENTS, "event_date"),
    (tables.SILVER_ORDER_LINES, "order_date"),
    (tables.SILVER_POS, "transaction_date"),
)


def days_to_rebuild(staging: Staging) -> tuple[set, bool]:
    """The days of ``silver.customer_daily`` tonight's staged writes change, and whether the
    table is rebuilt whole.

    A day changes when tonight stages records dated on it (late ones included; a retried run
    stages its rows again) or holds lines of a sku whose category tonight changes. A table
    never written (a new lakehouse, or one from before the table) is rebuilt whole; one
    written empty (a shop whose records carry no identifier) is not rebuilt again.
    """
    spark, settings = staging.spark, staging.settings
    days: set = set()
    for table, column in _DAY_SOURCES:
        for rows in staging.staged_rows(table):
            days.update(_dates_of(rows, column))
    before = lakehouse.read_table(spark, settings, tables.SILVER_PRODUCTS)
    recategorised = [
        row["sku"]
        for row in staging.view(tables.SILVER_PRODUCTS)
        .join(before.select("sku", F.col("category").alias("_before")), "sku")
        .where(~F.col("category").eqNullSafe(F.col("_before")))
        .select("sku")
        .collect()
    ]
    if recategorised:
        for table, column in _DAY_SOURCES[1:]:
            sold = staging.view(table).where(F.col("sku").isin(recategorised))
            days.update(_dates_of(sold, column))
    whole = lakehouse.table_version(spark, settings, tables.SILVER_CUSTOMER_DAILY) == 0
    if whole:
        for table, column in _DAY_SOURCES:
            days.update(_dates_of(staging.view(table), column))
    return days, whole


def stage_customer_daily(staging: Staging) -> dict[str, int]:
    """Stage ``silver.customer_daily`` for the days tonight changes (``days_to_rebuild``),
    each rebuilt from the silver tables as they will be: a rerun gives the same rows."""
    days, whole = days_to_rebuild(staging)
    if not days:
        return {"customer_days_rebuilt": 0, "customer_days_whole": whole, "customer_day_rows": 0}

    def dated(table: tables.Table, column: str) -> DataFrame:
        rows = staging.view(table)
        return rows if whole else rows.where(lakehouse.date_literal(column, sorted(days)))

    lines = gold.purchase_lines(
        dated(tables.SILVER_ORDER_LINES, "order_date"),
        dated(tables.SILVER_POS, "transaction_date"),
        staging.view(tables.SILVER_PRODUCTS),
    )
    rows = gold.customer_days(lines, dated(tables.SILVER_EVENTS, "event_date")).withColumn(
        "_run_id", F.lit(staging.run_id)
    )
    if whole:
        staged = staging.overwrite(tables.SILVER_CUSTOMER_DAILY, rows)
    else:
        staged = staging.replace_where(
            tables.SILVER_CUSTOMER_DAILY, rows, lakehouse.sql_in("date", sorted(days))
        )
    return {
        "customer_days_rebuilt": len(days),
        "customer_days_whole": whole,
        "customer_day_rows": staged.count(),
    }


def stage_identity(
    staging: Staging, settings: Settings, run_id: str, business_date: date
) -> dict[str, int]:
    """Recompute ``silver.customer_identity`` from tonight's silver tables as they will be;
    stage it with the key history of the keys it retires.

    The history is published first, from the identity as it was: a run killed between the two
    writes computes the same history again from the same old identity.
    """
    spark = staging.spark
    nodes, edges = identity.identity_links(
        staging.view(tables.SILVER_CUSTOMERS),
        staging.view(tables.SILVER_DEVICE_LOGINS).select("anonymous_id", "customer_id"),
        staging.view(tables.SILVER_POS).select("loyalty_card_id"),
        settings.max_customers_per_device,
    )
    resolved = identity.resolve_identities(nodes, edges, run_id).localCheckpoint()
    before = lakehouse.read_table(spark, settings, tables.SILVER_IDENTITY)
    retired = identity.retired_keys(before, resolved).localCheckpoint()
    history = identity.key_history(
        lakehouse.read_table(spark, settings, tables.SILVER_KEY_HISTORY),
        retired,
        resolved,
        business_date,
        run_id,
    )
    staging.overwrite(tables.SILVER_KEY_HISTORY, history)
    return {
        "identity_rows": staging.overwrite(tables.SILVER_IDENTITY, resolved).count(),
        "retired_keys": retired.count(),
    }


def run_silver(spark: SparkSession, settings: Settings, run_id: str, business_date: date) -> dict:
    """Stage every source's pending runs and the identity, audit the silver and quarantine
    layers for the night of ``business_date``, publish or hold (the ``audit``)."""
    spark.sparkContext.setCheckpointDir(f"{settings.lakehouse_location}/_checkpoints")
    staging = Staging(spark, settings, run_id, business_date)
    summary: dict[str, dict] = {}
    reconciliation = []
    quarantine = _Quarantine()
    suppressed = suppression.load(spark, settings)
    for step in steps(settings):
        # Tonight's products, stores and campaigns count: a sku first sold tonight is known
        # tonight, and a campaign planned tonight owns tonight's messages.
        reference = {
            "products": staging.view(tables.SILVER_PRODUCTS).select("sku"),
            "stores": staging.view(tables.SILVER_STORES).select("store_id", "timezone"),
            "campaigns": staging.view(tables.SILVER_CAMPAIGNS).select("campaign_id"),
        }
        rows = process(spark, settings, step, reference, staging, quarantine, suppressed)
        reconciliation.extend(rows)
        summary[step.source.name] = {k: sum(r[k] for r in rows) for k in ("read", *PLACES)}
    quarantine.stage(staging)
    # Before the reconciliation, whose rows mark the ingest runs done: a run killed between
    # the writes finds its runs pending again and rebuilds the days.
    summary.update(stage_customer_daily(staging))
    if reconciliation:
        frame = spark.createDataFrame(reconciliation).withColumn(
            "recorded_at", F.current_timestamp()
        )
        staging.merge(tables.RECONCILIATION, frame)
    summary.update(stage_identity(staging, settings, run_id, business_date))
    verdict = staging.audit_and_publish(["silver", "quarantine"])
    if verdict.published:
        # The suppressed records' bronze rows went with the publish: their files go now, so
        # no earlier version of bronze holds them.
        for name in verdict.written:
            if tables.table(name).layer == "bronze":
                lakehouse.purge(spark, settings, tables.table(name))
    if suppressed is not None:
        release(suppressed)
    return {**summary, "audit": verdict.summary()}


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return run_silver(spark, settings, args.run_id, args.date)


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("silver", _body, job_parser(__doc__.splitlines()[0]), argv, session)


if __name__ == "__main__":
    main()
