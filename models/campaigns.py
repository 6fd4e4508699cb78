"""Campaign assignment: who of each running campaign's audience is sent it, and who is held out.

Each night, for every campaign running on the date (``start_date <= date <= end_date`` in
``silver.campaigns``), the eligible audience is the scored customers who consent to the
campaign's channel (``omni.consent``: CRM opt-in, no unsubscribe) and match its audience:
``all``, or a ``;``-separated list of segment names and churn risk bands. Bands listed narrow
the bands, segments listed narrow the segments, and a customer must match both (``at
risk;high``: the segment "at risk" with a high churn risk; ``high;medium``: either band, any
segment).

A customer is assigned once per campaign, the first night they are eligible, and keeps that
row (``gold.campaign_assignments``: the segment and band of that night, ``assigned_on``); the
group follows the contract's rule (``raw-landing.md``): control when the first 8 hex digits of
``sha256("<campaign_id>:<customer_id>")``, read as an integer and divided by 2^32, are below
the campaign's ``holdout_share``. The rule needs no state, so a rerun, a retry or another
night gives every customer the same group; the table keeps who was eligible when.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from omni.consent import consenting

TREATMENT, CONTROL = "treatment", "control"
ALL = "all"
# The churn risk bands an audience can name (gold.customer_scores' churn_risk_band).
BANDS = ("low", "medium", "high", "no_purchase_yet")
ASSIGNMENT_COLUMNS = (
    "campaign_id",
    "customer_key",
    "customer_id",
    "channel",
    "treatment_group",
    "holdout_draw",
    "segment_name",
    "churn_risk_band",
    "assigned_on",
)


def holdout_draw(campaign_id: Column, customer_id: Column) -> Column:
    """The contract's draw in [0, 1): the first 8 hex digits of
    ``sha256("<campaign_id>:<customer_id>")`` as an integer, divided by 2^32."""
    digest = F.sha2(F.concat(campaign_id, F.lit(":"), customer_id), 256)
    return F.conv(F.substring(digest, 1, 8), 16, 10).cast("double") / float(2**32)


def running(campaigns: DataFrame, as_of: date) -> DataFrame:
    """The campaigns sent on ``as_of``."""
    day = F.lit(str(as_of)).cast("date")
    return campaigns.where((F.col("start_date") <= day) & (F.col("end_date") >= day))


def _audience_terms(campaigns: DataFrame) -> DataFrame:
    """``campaigns`` with the audience split into ``bands`` and ``segments`` (both empty for
    ``all``)."""
    terms = F.filter(
        F.transform(F.split("audience", ";"), lambda t: F.trim(t)), lambda t: (t != "") & (t != ALL)
    )
    bands = F.array(*(F.lit(b) for b in BANDS))
    return campaigns.withColumn(
        "bands", F.filter(terms, lambda t: F.array_contains(bands, t))
    ).withColumn("segments", F.filter(terms, lambda t: ~F.array_contains(bands, t)))


def eligible(
    campaigns: DataFrame, scores: DataFrame, population: DataFrame, withdrawn: DataFrame
) -> DataFrame:
    """(campaign, customer) pairs of the running ``campaigns`` whose audience and channel the
    scored customer matches and consents to."""
    consent = consenting(population, withdrawn)
    scored = scores.select("customer_key", "segment_name", "churn_risk_band")
    candidates = (
        F.broadcast(_audience_terms(campaigns))
        .select("campaign_id", "channel", "holdout_share", "bands", "segments")
        .join(consent, "channel")
        .join(scored, "customer_key")
    )
    band_ok = (F.size("bands") == 0) | F.array_contains("bands", F.col("churn_risk_band"))
    segment_ok = (F.size("segments") == 0) | F.array_contains("segments", F.col("segment_name"))
    return candidates.where(band_ok & segment_ok)


def new_assignments(
    campaigns: DataFrame,
    scores: DataFrame,
    population: DataFrame,
    withdrawn: DataFrame,
    assigned_before: DataFrame,
    as_of: date,
) -> DataFrame:
    """Tonight's rows of ``gold.campaign_assignments``: the eligible customers of each running
    campaign not assigned on an earlier night (``assigned_before``)."""
    pairs = eligible(running(campaigns, as_of), scores, population, withdrawn)
    draw = holdout_draw(F.col("campaign_id"), F.col("customer_id"))
    return (
        pairs.join(
            assigned_before.select("campaign_id", "customer_key"),
            ["campaign_id", "customer_key"],
            "left_anti",
        )
        .withColumn("holdout_draw", draw)
        .withColumn(
            "treatment_group",
            F.when(F.col("holdout_draw") < F.col("holdout_share"), CONTROL).otherwise(TREATMENT),
        )
        .withColumn("assigned_on", F.lit(str(as_of)).cast("date"))
        .select(*ASSIGNMENT_COLUMNS)
    )


def feed_campaigns(assignments: DataFrame, campaigns: DataFrame, as_of: date) -> DataFrame:
    """(customer_key, channel, campaign_ids): the running campaigns each customer is in the
    treatment group of, per channel. A control customer is never given the campaign."""
    live = running(campaigns, as_of).select("campaign_id")
    return (
        assignments.where(F.col("treatment_group") == TREATMENT)
        .join(live, "campaign_id")
        .groupBy("customer_key", "channel")
        .agg(F.array_sort(F.collect_set("campaign_id")).alias("campaign_ids"))
    )
