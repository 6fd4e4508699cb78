"""Build gold.personalization_feed for ``--date``: consenting customers, per channel.

A customer appears once per channel (``email``, ``push``) they opted in to, as the CRM
records it now (``silver.customers``): consent withdrawn since the scores were made is
respected. Customers without a CRM id have no recorded consent and never appear. Each row
carries the customer's segment and churn band from ``gold.customer_scores`` of the date, their
recommendations (``models.recommend``), and their value at risk with a contact priority per
channel (1 = most value at risk): the order in which a campaign that must choose contacts them.
The date's rows are replaced as a whole, so a rerun after a withdrawal removes the customer.
An ``unsubscribed`` event of the email or push provider withdraws that channel
(``omni.consent``).

The same run assigns the audiences of the campaigns running on the date
(``models.campaigns``, into ``gold.campaign_assignments``), and each row names the campaigns
the customer is in the treatment group of on its channel (``campaign_ids``): a control
customer's row never names the campaign. Both tables are audited by their suites before
either is published (``omni.publish``).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from models import campaigns as campaign_rules
from models import recommend
from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.consent import consenting, withdrawals
from omni.history import customer_history
from omni.publish import Staging


def contact_priority() -> Column:
    """Where a campaign must choose, it contacts the most value at risk first, per channel."""
    order = F.col("value_at_risk").desc_nulls_last()
    return F.row_number().over(
        Window.partitionBy("channel", "as_of_date").orderBy(order, "customer_key")
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
    withdrawn: DataFrame | None = None,
    campaign_ids: DataFrame | None = None,
) -> DataFrame:
    """The feed of one date: ``scores`` of the date joined to consent (less the channels
    ``withdrawn``), recommendations and the campaigns of each customer and channel
    (``campaign_ids``: ``models.campaigns.feed_campaigns``' rows; none when not given)."""
    consent = consenting(population, withdrawn)
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
    rows = audience.drop("customer_id").join(consent, "customer_key")
    none = F.array().cast("array<string>")
    if campaign_ids is None:
        rows = rows.withColumn("campaign_ids", none)
    else:
        rows = rows.join(campaign_ids, ["customer_key", "channel"], "left").withColumn(
            "campaign_ids", F.coalesce("campaign_ids", none)
        )
    return (
        rows.join(recommendations, "customer_key")
        .withColumn("contact_priority", contact_priority())
        .withColumn("generated_at", F.current_timestamp())
    )


def stage_assignments(
    staging: Staging, scores: DataFrame, population: DataFrame, withdrawn: DataFrame, as_of: date
) -> DataFrame:
    """Stage the date's new ``gold.campaign_assignments`` rows (a rerun replaces the date's);
    return the running campaigns of each customer and channel, for the feed."""
    campaigns = staging.view(tables.SILVER_CAMPAIGNS)
    day = lakehouse.sql_in("assigned_on", [as_of])
    before = staging.view(tables.GOLD_ASSIGNMENTS).where(f"NOT ({day})")
    new = campaign_rules.new_assignments(campaigns, scores, population, withdrawn, before, as_of)
    staging.replace_where(
        tables.GOLD_ASSIGNMENTS, new.withColumn("_run_id", F.lit(staging.run_id)), day
    )
    assignments = staging.view(tables.GOLD_ASSIGNMENTS)
    return campaign_rules.feed_campaigns(assignments, campaigns, as_of)


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
    messages = lakehouse.read_table(spark, settings, tables.SILVER_MESSAGES)
    withdrawn = lakehouse.materialize(withdrawals(messages, as_of))
    # Write, audit, publish: the feed and the assignments become visible only when their
    # suites pass.
    staging = Staging(spark, settings, run_id, as_of)
    with customer_history(spark, settings) as inputs:
        campaign_ids = stage_assignments(staging, scores, inputs["population"], withdrawn, as_of)
        feed = feed_rows(
            scores,
            inputs["population"],
            inputs["transactions"],
            inputs["activity"],
            lakehouse.read_table(spark, settings, tables.SILVER_PRODUCTS),
            as_of,
            settings.profile_window_days,
            settings.recommendation_count,
            withdrawn,
            campaign_ids,
        )
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
    withdrawn.unpersist()
    verdict = staging.audit_and_publish(
        ["gold"], [tables.GOLD_FEED.name, tables.GOLD_ASSIGNMENTS.name]
    )
    written = verdict.written if verdict.published else {}
    return {
        "scored_customers": scored,
        "feed_rows": written.get(tables.GOLD_FEED.name, 0),
        "assigned": written.get(tables.GOLD_ASSIGNMENTS.name, 0),
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
