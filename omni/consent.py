"""Who may be contacted on which channel: the CRM's opt-ins, less what the providers report
withdrawn.

``raw-landing.md``: an ``unsubscribed`` message event withdraws the customer's consent for
that channel from its time on. A CRM record that still says opted in does not give it back
(the CRM may not have heard of the unsubscribe yet); nothing in the sources says a customer
subscribed again, so a withdrawal stands.

Shared by the personalization feed and the campaign assignment (``models/``), so both read
consent the same way.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# Each contact channel and the CRM flag that records its opt-in.
CHANNELS = {"email": "email_opt_in", "push": "push_opt_in"}
UNSUBSCRIBED = "unsubscribed"


def withdrawals(messages: DataFrame, as_of: date | None = None) -> DataFrame:
    """(customer_id, channel, withdrawn_at): the first unsubscribe of each customer and
    channel in the providers' events (``silver.campaign_messages``), up to the end of
    ``as_of`` when given: a night rebuilt later knows what that night knew, so a campaign's
    own unsubscribers are not taken out of the audience it was assigned from."""
    if as_of is not None:
        messages = messages.where(F.col("event_date") <= F.lit(str(as_of)).cast("date"))
    return (
        messages.where(F.col("event_type") == UNSUBSCRIBED)
        .groupBy("customer_id", "channel")
        .agg(F.min("event_ts").alias("withdrawn_at"))
    )


def consenting(population: DataFrame, withdrawn: DataFrame | None = None) -> DataFrame:
    """(customer_key, customer_id, channel): one row per channel a CRM customer opted in to
    and has not unsubscribed from (``withdrawn``: ``withdrawals``' rows)."""
    channel = F.explode(
        F.array_compact(
            F.array(*(F.when(F.col(flag), F.lit(name)) for name, flag in CHANNELS.items()))
        )
    )
    opted_in = population.where(F.col("customer_id").isNotNull()).select(
        "customer_key", "customer_id", channel.alias("channel")
    )
    if withdrawn is None:
        return opted_in
    return opted_in.join(
        withdrawn.select("customer_id", "channel"), ["customer_id", "channel"], "left_anti"
    ).select("customer_key", "customer_id", "channel")
