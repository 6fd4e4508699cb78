"""Gold: customer profile, point-in-time features and daily channel KPIs for ``--date``.

Profiles describe the customers as of the date; features are written for the date (replacing
that date's rows on a rerun); KPIs are recomputed for every day the run's records touched, so
late records correct the days they belong to.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.transforms import gold


def load_inputs(spark: SparkSession, settings: Settings) -> dict:
    """Silver inputs, resolved to customer keys, shared by gold and model training."""
    read = lambda t: lakehouse.read_table(spark, settings, t)  # noqa: E731
    identity = read(tables.SILVER_IDENTITY).cache()
    events = read(tables.SILVER_EVENTS)
    return {
        "population": gold.customer_population(identity, read(tables.SILVER_CUSTOMERS)).cache(),
        "transactions": gold.customer_transactions(
            read(tables.SILVER_ORDER_LINES),
            read(tables.SILVER_POS),
            identity,
            read(tables.SILVER_PRODUCTS),
        ).cache(),
        "activity": gold.customer_activity(events, identity).cache(),
        "events": events,
    }


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


def build_gold(spark: SparkSession, settings: Settings, as_of: date, run_id: str) -> dict:
    inputs = load_inputs(spark, settings)
    profile = gold.build_customer_profile(
        inputs["population"], inputs["transactions"], inputs["activity"], as_of
    )
    features = gold.build_customer_features(
        inputs["population"],
        inputs["transactions"],
        inputs["activity"],
        as_of,
        settings.profile_window_days,
    )
    days = touched_dates(spark, settings, run_id, as_of)
    kpis = gold.build_daily_channel_kpis(inputs["transactions"], inputs["events"], days)
    day_list = ", ".join(f"DATE'{d}'" for d in days)
    return {
        "customer_profile": lakehouse.overwrite(spark, settings, tables.GOLD_PROFILE, profile),
        "customer_features": lakehouse.replace_where(
            spark, settings, tables.GOLD_FEATURES, features, f"as_of_date = DATE'{as_of}'"
        ),
        "daily_channel_kpis": lakehouse.replace_where(
            spark, settings, tables.GOLD_KPIS, kpis, f"date IN ({day_list})"
        ),
        "kpi_days": len(days),
    }


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return build_gold(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None) -> dict:
    return run_job("gold", _body, job_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    main()
