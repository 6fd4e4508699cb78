"""Build gold.personalization_feed for ``--date``: consenting customers, per channel.

A customer appears once per channel (``email``, ``push``) they opted in to, as the CRM
records it now (``silver.customers``): consent withdrawn since the scores were made is
respected. Customers without a CRM id have no recorded consent and never appear. Each row
carries the customer's segment and churn band from ``gold.customer_scores`` of the date, their
recommendations (``models.recommend``), and their value at risk with a contact priority per
channel (1 = most value at risk): the order in which a campaign that must choose contacts them.
The date's rows are replaced as a whole, so a rerun after a withdrawal removes the customer.
The rows are audited by the feed's suite before they are published (``omni.publish``).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from models import recommend
from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.history import customer_history
from omni.publish import Staging

CHANNELS = {"email": "email_opt_in", "push": "push_opt_in"}


def contact_priority() -> Column:
    """Where a campaign must choose, it contacts the most value at risk first, per channel."""
    order = F.col("value_at_risk").desc_nulls_last()
    return F.row_number().over(
        Window.partitionBy("channel", "as_of_date").orderBy(order, "customer_key")
    )


def consenting(population: DataFrame) -> DataFrame:
    """(customer_key, customer_id, channel): one row per channel a CRM customer opted in to."""
    channel = F.explode(
        F.array_compact(
            F.array(*(F.when(F.col(flag), F.lit(name)) for name, flag in CHANNELS.items()))
        )
    )
    return population.where(F.col("customer_id").isNotNull()).select(
        "customer_key", "customer_id", channel.alias("channel")
    )


def feed_rows(
    scores: DataFrame,
    population: DataFrame,
    transactions: DataFrame,
    activity: DataFrame,
    products: DataFrame,
    as_of: date,
    days: int,
    top: int,
) -> DataFrame:
    """The feed of one date: ``scores`` of the date joined to consent and recommendations."""
    consent = consenting(population)
    audience = scores.join(consent.select("customer_key").distinct(), "customer_key")
    recommendations = recommend.recommend(
        transactions,
        activity,
        products,
        scores.select("customer_key", "segment_id", "segment_name"),
        as_of,
        days,
        top,
        audience=audience,
    )
    return (
        audience.drop("customer_id")
        .join(consent, "customer_key")
        .join(recommendations, "customer_key")
        .withColumn("contact_priority", contact_priority())
        .withColumn("generated_at", F.current_timestamp())
    )


def build_feed(spark: SparkSession, settings: Settings, as_of: date, run_id: str) -> dict:
    day = F.lit(str(as_of)).cast("date")
    scores = lakehouse.materialize(
        lakehouse.read_table(spark, settings, tables.GOLD_SCORES).where(F.col("as_of_date") == day)
    )
    scored = scores.count()
    if not scored:
        raise LookupError(
            f"gold.customer_scores has no rows for {as_of}: run models/score.py first"
        )
    with customer_history(spark, settings) as inputs:
        feed = feed_rows(
            scores,
            inputs["population"],
            inputs["transactions"],
            inputs["activity"],
            lakehouse.read_table(spark, settings, tables.SILVER_PRODUCTS),
            as_of,
            settings.profile_window_days,
            settings.recommendation_count,
        )
        # Write, audit, publish: the feed becomes visible only when its suite passes.
        staging = Staging(spark, settings, run_id, as_of)
        batch = staging.replace_where(
            tables.GOLD_FEED, feed, lakehouse.sql_in("as_of_date", [as_of])
        )
    summary = (
        batch.groupBy("channel")
        .agg(
            F.count("*").alias("rows"),
            F.sum(F.when(F.col("reason").startswith("because"), 1).otherwise(0)).alias("personal"),
        )
        .collect()
    )
    scores.unpersist()
    verdict = staging.audit_and_publish(["gold"], [tables.GOLD_FEED.name])
    return {
        "scored_customers": scored,
        "feed_rows": verdict.written.get(tables.GOLD_FEED.name, 0) if verdict.published else 0,
        "per_channel": {row["channel"]: row["rows"] for row in summary},
        "personal_per_channel": {row["channel"]: row["personal"] for row in summary},
        "audit": verdict.summary(),
    }


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return build_feed(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("personalize", _body, job_parser(__doc__.splitlines()[0]), argv, session)


if __name__ == "__main__":
    main()
