"""Gold: customer profile, point-in-time features and daily channel KPIs for ``--date``.

Profiles describe the customers as of the date. Features are written for the date and
recomputed for every earlier day that already has features and that the run's records touched
(late records), replacing those days' rows; KPIs are recomputed for every touched day, one row
for every channel day delivered complete (zeros on a closed store's or a holiday's). With
``--start-date`` one run backfills features for every day of the range: all of them in one
pass and one Delta commit (a year of days does not cost a year of jobs).

Everything of the past is read from the customers' days (``silver.customer_daily``), resolved
through tonight's identity, not from the history of lines and events; only the KPI days' own
lines and events are read. The published tables' suites judge the staged rows before any is
written (``omni.publish``).
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, tables
from omni.cli import date_arg, job_parser, run_job
from omni.config import Settings
from omni.publish import Staging
from omni.transforms import gold


def touched_dates(spark: SparkSession, settings: Settings, run_id: str, as_of: date) -> list[date]:
    """Days that the run's accepted records belong to (late records included), up to as_of."""
    read = lambda t: lakehouse.read_table(spark, settings, t).where(F.col("_run_id") == run_id)  # noqa: E731
    days = (
        read(tables.SILVER_EVENTS)
        .select(F.col("event_date").alias("d"))
        .union(read(tables.SILVER_POS).select(F.col("transaction_date").alias("d")))
        .distinct()
        .collect()
    )
    return sorted({row["d"] for row in days if row["d"] <= as_of} | {as_of})


def feature_dates(
    spark: SparkSession, settings: Settings, touched: list[date], as_of: date, start: date
) -> list[date]:
    """As-of dates to (re)build: the range asked for, plus touched days that have features."""
    asked = {start + timedelta(days=n) for n in range((as_of - start).days + 1)}
    earlier = [d for d in touched if d < start]
    existing = set()
    if earlier:
        existing = {
            row["as_of_date"]
            for row in lakehouse.read_table(spark, settings, tables.GOLD_FEATURES)
            .where(lakehouse.date_literal("as_of_date", earlier))
            .select("as_of_date")
            .distinct()
            .collect()
        }
    return sorted(asked | existing)


def build_gold(
    spark: SparkSession, settings: Settings, as_of: date, run_id: str, start: date | None = None
) -> dict:
    start = start or as_of
    if start > as_of:
        raise ValueError(f"--start-date {start} is after --date {as_of}: expected start <= date")
    staging = Staging(spark, settings, run_id, as_of, start)
    read = lambda t: lakehouse.read_table(spark, settings, t)  # noqa: E731
    identity = lakehouse.materialize(read(tables.SILVER_IDENTITY))
    population = lakehouse.materialize(
        gold.customer_population(identity, read(tables.SILVER_CUSTOMERS))
    )
    # The customers' days, resolved through tonight's identity: all gold reads of the past.
    days = lakehouse.materialize(
        gold.resolve_keys(read(tables.SILVER_CUSTOMER_DAILY), identity).where(
            F.col("customer_key").isNotNull()
        )
    )
    try:
        summary = _stage_gold(staging, identity, population, days, as_of, start)
    finally:
        for frame in (days, population, identity):
            frame.unpersist()
    published = [table.name for table in tables.GOLD_PUBLISHED]
    verdict = staging.audit_and_publish(["gold"], published)
    return {**summary, "audit": verdict.summary()}


def _stage_gold(
    staging: Staging,
    identity: DataFrame,
    population: DataFrame,
    days: DataFrame,
    as_of: date,
    start: date,
) -> dict:
    spark, settings, run_id = staging.spark, staging.settings, staging.run_id
    read = lambda t: lakehouse.read_table(spark, settings, t)  # noqa: E731
    touched = touched_dates(spark, settings, run_id, as_of)
    as_of_dates = feature_dates(spark, settings, touched, as_of, start)
    # Every as-of date (the night's, a backfill's, days late records touched) in one pass over
    # the days; the profile is the night's rows of the same base.
    base = lakehouse.materialize(gold.customer_base_from_days(population, days, as_of_dates))
    try:
        features = gold.features_of(base, settings.profile_window_days)
        written = staging.replace_where(
            tables.GOLD_FEATURES, features, lakehouse.sql_in("as_of_date", as_of_dates)
        ).count()
        tonight = base.where(F.col("as_of_date") == F.lit(as_of.isoformat()).cast("date"))
        profile = gold.build_profile_from_days(days, as_of, tonight.drop("as_of_date"))
        profiles = staging.overwrite(tables.GOLD_PROFILE, profile).count()
    finally:
        base.unpersist()
    kpi_days = sorted(set(touched) | set(as_of_dates))
    dated = lambda t, column: read(t).where(lakehouse.date_literal(column, kpi_days))  # noqa: E731
    lines = gold.resolve_keys(
        gold.purchase_lines(
            dated(tables.SILVER_ORDER_LINES, "order_date"),
            dated(tables.SILVER_POS, "transaction_date"),
            read(tables.SILVER_PRODUCTS),
        ),
        identity,
    )
    delivered = gold.delivered_channel_days(
        read(tables.LANDING_FOLDERS), read(tables.SILVER_STORES), kpi_days
    )
    kpis = gold.build_daily_channel_kpis(
        lines,
        dated(tables.SILVER_EVENTS, "event_date"),
        kpi_days,
        delivered,
        firsts=gold.first_purchases(days),
    )
    return {
        "customer_profile": profiles,
        "customer_features": written,
        "feature_dates": [str(d) for d in as_of_dates],
        "daily_channel_kpis": staging.replace_where(
            tables.GOLD_KPIS, kpis, lakehouse.sql_in("date", kpi_days)
        ).count(),
        "touched_dates": [str(d) for d in touched],
    }


def _parser():
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--start-date",
        type=date_arg,
        default=None,
        help="backfill: also build features for every day from this date to --date",
    )
    return parser


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return build_gold(spark, settings, args.date, args.run_id, args.start_date)


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("gold", _body, _parser(), argv, session)


if __name__ == "__main__":
    main()
