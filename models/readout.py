"""Build gold.campaign_readout for ``--date``: what each campaign changed, in every channel.

Every campaign running on the date or inside its conversion window after it ended
(``start_date <= date <= end_date + conversion_window_days``) is read out. Each customer of
its ``gold.campaign_assignments`` is followed from the day after their assignment night (the
night's feed is sent the next day) for ``conversion_window_days``, up to the date; customers
assigned on the date itself are not followed yet. A purchase in any channel counts: online
orders and store receipts, resolved through today's identity graph, so a receipt with the
loyalty card of an e-mailed customer is their conversion, which no e-mail tool sees.

Treatment and control are compared overall (``segment_name = 'all'``) and per segment, the
segment of the assignment night (the campaign cannot move it):

- conversion rate: customers with a purchase in the window / customers assigned;
- absolute uplift, treatment minus control, with a 95% Wald interval (unpooled variances);
- relative uplift, treatment / control - 1, with a 95% interval from the log of the rate
  ratio (delta method);
- p-value: two-sided two-proportion z-test with the pooled rate;
- revenue per customer (net of returns) and its uplift, with a 95% Welch interval.

A comparison the normal approximation does not carry (a group under ``MIN_GROUP``
customers, or under ``MIN_EXPECTED`` expected converters or non-converters at the pooled
rate) is flagged ``too_small`` with the counts that make it so, and gets no interval,
p-value or verdict. The treatment group's engagement (sent, delivered, opened, clicked,
unsubscribed: shares of the group) comes from the providers' events
(``silver.campaign_messages``); ``control_contacted`` counts control customers a provider
reports a message for, which should never happen.

The date's rows are replaced as a whole, audited by their suite before they are published.
Each campaign's night is then an MLflow run in the ``experiments`` experiment: its overall
figures as metrics, its rows as a table and three plots (uplift per segment with intervals,
the groups' cumulative conversion curves, the engagement funnel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from models import plots, registry
from models.campaigns import CONTROL, TREATMENT
from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.history import read_transactions
from omni.publish import Staging
from omni.transforms.gold import ONLINE, STORE

ALL = "all"
RUNNING, IN_WINDOW = "running", "in_window"
MIN_GROUP = 30
MIN_EXPECTED = 5
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
FOLLOWED_COLUMNS = (
    "campaign_id",
    "customer_key",
    "customer_id",
    "treatment_group",
    "segment_name",
    "window_from",
    "window_to",
)
# The MLflow experiment of the readouts, one run per campaign and night, and its plots' folder.
EXPERIMENT = "experiments"
PLOTS = "plots"
RUN_METRICS = (
    "customers_treatment",
    "customers_control",
    "conversion_rate_treatment",
    "conversion_rate_control",
    "uplift_abs",
    "uplift_abs_low",
    "uplift_abs_high",
    "uplift_rel",
    "p_value",
    "revenue_uplift",
    "sent_rate",
    "opened_rate",
    "clicked_rate",
    "unsubscribed_rate",
)
ENGAGEMENT = ("sent", "delivered", "opened", "clicked", "unsubscribed")


def live(campaigns: DataFrame, as_of: date) -> DataFrame:
    """The campaigns running on ``as_of`` or inside their conversion window after the end."""
    day = F.lit(str(as_of)).cast("date")
    last = F.date_add("end_date", F.col("conversion_window_days"))
    return campaigns.where((F.col("start_date") <= day) & (day <= last)).withColumn(
        "campaign_status", F.when(day <= F.col("end_date"), RUNNING).otherwise(IN_WINDOW)
    )


def followed(assignments: DataFrame, campaigns: DataFrame, as_of: date) -> DataFrame:
    """The assigned customers of the live ``campaigns`` whose window has begun, each with the
    window's first and last day (``window_from``, ``window_to``: at most ``as_of``)."""
    day = F.lit(str(as_of)).cast("date")
    plans = live(campaigns, as_of).select("campaign_id", "conversion_window_days")
    return (
        assignments.join(F.broadcast(plans), "campaign_id")
        .where(F.col("assigned_on") < day)
        .withColumn("window_from", F.date_add("assigned_on", 1))
        .withColumn(
            "window_to",
            F.least(F.date_add("assigned_on", F.col("conversion_window_days")), day),
        )
        .select(*FOLLOWED_COLUMNS)
    )


def outcomes(customers: DataFrame, identity: DataFrame, transactions: DataFrame) -> DataFrame:
    """One row per followed customer (``followed``' rows): ``converted``, ``revenue`` and the
    purchases of each channel in their window, the customer found through ``identity`` (by
    CRM id: every identifier of the person as known today)."""
    keys = identity.where(F.col("identifier_type") == "customer_id").select(
        F.col("identifier").alias("customer_id"), F.col("customer_key").alias("person")
    )
    lines = transactions.where(F.col("customer_key").isNotNull()).select(
        F.col("customer_key").alias("buyer"),
        "date",
        "channel",
        "transaction_id",
        "quantity",
        "net_amount",
    )
    in_window = (
        (F.col("buyer") == F.col("person"))
        & (F.col("date") >= F.col("window_from"))
        & (F.col("date") <= F.col("window_to"))
    )
    bought = F.col("quantity") > 0

    def receipts(channel: str):
        return F.count_distinct(
            F.when(bought & (F.col("channel") == channel), F.col("transaction_id"))
        )

    return (
        customers.join(keys, "customer_id", "left")
        .join(lines, in_window, "left")
        .groupBy(*FOLLOWED_COLUMNS)
        .agg(
            F.coalesce(F.max(bought), F.lit(False)).alias("converted"),
            F.min(F.when(bought, F.col("date"))).alias("first_purchase"),
            F.coalesce(F.sum("net_amount").cast("double"), F.lit(0.0)).alias("revenue"),
            receipts(ONLINE).alias("purchases_online"),
            receipts(STORE).alias("purchases_in_store"),
        )
        .withColumn("days_to_convert", F.datediff("first_purchase", "window_from") + 1)
    )


def conversion_curves(outcome: DataFrame, totals: list[dict[str, Any]]) -> pd.DataFrame:
    """Per campaign and group, the share of the group converted by each day since assignment
    (columns ``campaign_id``, ``treatment_group``, ``day``, ``rate``; day 0 is 0)."""
    counts = (
        outcome.where("converted")
        .groupBy("campaign_id", "treatment_group", "days_to_convert")
        .count()
        .toPandas()
    )
    rows = []
    for total in totals:
        if total["segment_name"] != ALL:
            continue
        key = (total["campaign_id"], total["treatment_group"])
        mine = counts[
            (counts["campaign_id"] == key[0]) & (counts["treatment_group"] == key[1])
        ].sort_values("days_to_convert")
        rows.append((*key, 0, 0.0))
        converted = 0
        for day, count in zip(mine["days_to_convert"], mine["count"], strict=True):
            converted += int(count)
            rows.append((*key, int(day), converted / total["customers"]))
    return pd.DataFrame(rows, columns=["campaign_id", "treatment_group", "day", "rate"])


def engagement(messages: DataFrame) -> DataFrame:
    """(campaign_id, customer_id) with a flag per ``ENGAGEMENT`` step the providers report
    (a message reported in any way was sent, its ``sent`` event late or not)."""
    flags = [F.max(F.lit(True)).alias("sent")] + [
        F.max(F.col("event_type") == step).alias(step) for step in ENGAGEMENT[1:]
    ]
    return messages.groupBy("campaign_id", "customer_id").agg(*flags)


def group_totals(outcome: DataFrame, engaged: DataFrame) -> list[dict[str, Any]]:
    """Per campaign, segment (and ``all``) and group: counts and sums for ``compare``."""
    rows = outcome.join(engaged, ["campaign_id", "customer_id"], "left")
    rows = rows.unionByName(rows.withColumn("segment_name", F.lit(ALL)))
    flag = lambda name: F.sum(F.coalesce(F.col(name), F.lit(False)).cast("int"))  # noqa: E731
    return [
        row.asDict()
        for row in rows.groupBy("campaign_id", "segment_name", "treatment_group")
        .agg(
            F.count("*").alias("customers"),
            F.sum(F.col("converted").cast("int")).alias("converters"),
            F.sum("revenue").alias("revenue"),
            F.sum(F.col("revenue") * F.col("revenue")).alias("revenue_sq"),
            F.sum("purchases_online").alias("purchases_online"),
            F.sum("purchases_in_store").alias("purchases_in_store"),
            *(flag(step).alias(step) for step in ENGAGEMENT),
        )
        .collect()
    ]


@dataclass(frozen=True)
class Group:
    customers: int = 0
    converters: int = 0
    revenue: float = 0.0
    revenue_sq: float = 0.0

    @property
    def rate(self) -> float | None:
        return self.converters / self.customers if self.customers else None

    @property
    def revenue_mean(self) -> float | None:
        return self.revenue / self.customers if self.customers else None

    @property
    def revenue_variance(self) -> float:
        """Sample variance of the revenue per customer."""
        n = self.customers
        if n < 2:
            return 0.0
        return max(self.revenue_sq - n * self.revenue_mean**2, 0.0) / (n - 1)


def too_small(treatment: Group, control: Group) -> str | None:
    """Why the normal approximation does not carry this comparison, or None."""
    for name, group in ((TREATMENT, treatment), (CONTROL, control)):
        if group.customers < MIN_GROUP:
            return f"{name} has {group.customers} customers: at least {MIN_GROUP} per group needed"
    pooled = (treatment.converters + control.converters) / (treatment.customers + control.customers)
    for name, group in ((TREATMENT, treatment), (CONTROL, control)):
        for what, share in (("converters", pooled), ("non-converters", 1 - pooled)):
            expected = group.customers * share
            if expected < MIN_EXPECTED:
                return (
                    f"{expected:.1f} {what} expected in {name} at the pooled rate "
                    f"{pooled:.4f}: at least {MIN_EXPECTED} needed"
                )
    return None


def compare(treatment: Group, control: Group) -> dict[str, Any]:
    """The readout's comparison of two groups (the module's docstring says how)."""
    p_t, p_c = treatment.rate, control.rate
    reason = too_small(treatment, control)
    both = p_t is not None and p_c is not None
    result: dict[str, Any] = {
        "uplift_abs": p_t - p_c if both else None,
        "uplift_rel": p_t / p_c - 1 if both and p_c > 0 else None,
        "revenue_uplift": (treatment.revenue_mean - control.revenue_mean if both else None),
        "too_small": reason is not None,
        "too_small_reason": reason,
    }
    for name in (
        "uplift_abs_low",
        "uplift_abs_high",
        "uplift_rel_low",
        "uplift_rel_high",
        "p_value",
        "significant",
        "revenue_uplift_low",
        "revenue_uplift_high",
    ):
        result[name] = None
    if reason is not None:
        return result
    n_t, n_c = treatment.customers, control.customers
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    result["uplift_abs_low"] = result["uplift_abs"] - Z95 * se
    result["uplift_abs_high"] = result["uplift_abs"] + Z95 * se
    if treatment.converters and control.converters:
        log_ratio = math.log(p_t / p_c)
        se_log = math.sqrt((1 - p_t) / treatment.converters + (1 - p_c) / control.converters)
        result["uplift_rel_low"] = math.exp(log_ratio - Z95 * se_log) - 1
        result["uplift_rel_high"] = math.exp(log_ratio + Z95 * se_log) - 1
    pooled = (treatment.converters + control.converters) / (n_t + n_c)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    p_value = math.erfc(abs(p_t - p_c) / se_pooled / math.sqrt(2))
    result["p_value"], result["significant"] = p_value, p_value < 0.05
    se_revenue = math.sqrt(treatment.revenue_variance / n_t + control.revenue_variance / n_c)
    result["revenue_uplift_low"] = result["revenue_uplift"] - Z95 * se_revenue
    result["revenue_uplift_high"] = result["revenue_uplift"] + Z95 * se_revenue
    return result


def readout_rows(plans: list[dict[str, Any]], totals: list[dict[str, Any]], as_of: date):
    """``gold.campaign_readout``'s rows (dicts) from the live campaigns (``plans``) and their
    ``group_totals``: an ``all`` row for each campaign, whoever is followed yet, and a row per
    segment with followed customers."""
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for total in totals:
        key = (total["campaign_id"], total["segment_name"])
        by_key.setdefault(key, {})[total["treatment_group"]] = total
    for plan in plans:
        by_key.setdefault((plan["campaign_id"], ALL), {})
    plans_by_id = {plan["campaign_id"]: plan for plan in plans}
    rows = []
    for (campaign_id, segment), groups in sorted(by_key.items()):
        plan = plans_by_id[campaign_id]
        sides = {g: groups.get(g, {}) for g in (TREATMENT, CONTROL)}
        stats = {
            g: Group(
                int(side.get("customers") or 0),
                int(side.get("converters") or 0),
                float(side.get("revenue") or 0.0),
                float(side.get("revenue_sq") or 0.0),
            )
            for g, side in sides.items()
        }
        treated = stats[TREATMENT]
        row: dict[str, Any] = {
            "campaign_id": campaign_id,
            "campaign_name": plan["name"],
            "channel": plan["channel"],
            "segment_name": segment,
            "as_of_date": as_of,
            "campaign_status": plan["campaign_status"],
            "conversion_window_days": plan["conversion_window_days"],
        }
        for g, group in stats.items():
            row[f"customers_{g}"] = group.customers
            row[f"converters_{g}"] = group.converters
            row[f"conversion_rate_{g}"] = group.rate
            row[f"revenue_per_customer_{g}"] = group.revenue_mean
            for channel in ("online", "in_store"):
                row[f"purchases_{channel}_{g}"] = int(sides[g].get(f"purchases_{channel}") or 0)
        row.update(compare(treated, stats[CONTROL]))
        for step in ENGAGEMENT:
            count = int(sides[TREATMENT].get(step) or 0)
            row[f"{step}_rate"] = count / treated.customers if treated.customers else None
        row["control_contacted"] = int(sides[CONTROL].get("sent") or 0)
        rows.append(row)
    return rows


def build_readout(spark: SparkSession, settings: Settings, as_of: date, run_id: str) -> dict:
    read = lambda t: lakehouse.read_table(spark, settings, t)  # noqa: E731
    plans = [row.asDict() for row in live(read(tables.SILVER_CAMPAIGNS), as_of).collect()]
    staging = Staging(spark, settings, run_id, as_of)
    totals: list[dict[str, Any]] = []
    curves = pd.DataFrame(columns=["campaign_id", "treatment_group", "day", "rate"])
    if plans:
        identity = lakehouse.materialize(read(tables.SILVER_IDENTITY))
        customers = followed(read(tables.GOLD_ASSIGNMENTS), read(tables.SILVER_CAMPAIGNS), as_of)
        first = customers.agg(F.min("window_from")).first()[0] or as_of
        transactions = read_transactions(spark, settings, identity).where(
            F.col("date").between(F.lit(first), F.lit(as_of))
        )
        outcome = lakehouse.materialize(outcomes(customers, identity, transactions))
        totals = group_totals(outcome, engagement(read(tables.SILVER_MESSAGES)))
        curves = conversion_curves(outcome, totals)
        outcome.unpersist()
        identity.unpersist()
    rows = readout_rows(plans, totals, as_of)
    names = [c for c in tables.GOLD_READOUT.column_names if c != "computed_at"]
    frame = spark.createDataFrame(
        [tuple(row[n] if n != "_run_id" else run_id for n in names) for row in rows],
        tables.GOLD_READOUT.schema_ddl(names),
    ).withColumn("computed_at", F.current_timestamp())
    staging.replace_where(tables.GOLD_READOUT, frame, lakehouse.sql_in("as_of_date", [as_of]))
    verdict = staging.audit_and_publish(["gold"], [tables.GOLD_READOUT.name])
    overall = [row for row in rows if row["segment_name"] == ALL]
    logged = log_runs(settings, as_of, run_id, plans, rows, curves) if verdict.published else []
    return {
        "campaigns": len(plans),
        "mlflow_runs": logged,
        "rows": verdict.written.get(tables.GOLD_READOUT.name, 0) if verdict.published else 0,
        "significant": sorted(r["campaign_id"] for r in overall if r["significant"]),
        "too_small": sorted(r["campaign_id"] for r in overall if r["too_small"]),
        "audit": verdict.summary(),
    }


def log_runs(
    settings: Settings,
    as_of: date,
    run_id: str,
    plans: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    curves: pd.DataFrame,
) -> list[str]:
    """One MLflow run per campaign and night (experiment ``EXPERIMENT``; a rerun of the night
    logs into the same run): the overall figures as metrics, the rows as a table, and the plots
    (``models.plots``: uplift per segment, the groups' conversion curves, the funnel)."""
    client = registry.configure_tracking(settings)
    experiment_id = registry.use_experiment(settings, EXPERIMENT)
    logged = []
    for plan in plans:
        campaign_id = plan["campaign_id"]
        mine = [row for row in rows if row["campaign_id"] == campaign_id]
        overall = next(row for row in mine if row["segment_name"] == ALL)
        found = client.search_runs(
            [experiment_id],
            filter_string=(f"tags.campaign_id = '{campaign_id}' and tags.as_of_date = '{as_of}'"),
            max_results=1,
        )
        with mlflow.start_run(
            run_id=found[0].info.run_id if found else None,
            run_name=None if found else f"{campaign_id} {as_of}",
            tags={"campaign_id": campaign_id, "as_of_date": str(as_of), "pipeline_run_id": run_id},
        ) as run:
            if not found:  # a rerun keeps the plan it was first logged with (params are fixed)
                mlflow.log_params(
                    {
                        "channel": plan["channel"],
                        "audience": plan["audience"],
                        "holdout_share": plan["holdout_share"],
                        "conversion_window_days": plan["conversion_window_days"],
                        "start_date": plan["start_date"],
                        "end_date": plan["end_date"],
                    }
                )
            mlflow.log_metrics(
                {
                    name: float(overall[name])
                    for name in RUN_METRICS
                    if overall.get(name) is not None
                }
            )
            mlflow.set_tag("too_small", str(overall["too_small"]).lower())
            mlflow.log_table(pd.DataFrame(mine).astype({"as_of_date": str}), "readout.json")
            figures = {
                "uplift_by_segment": plots.uplift_by_segment(mine),
                "conversion_curves": plots.conversion_curves(
                    curves[curves["campaign_id"] == campaign_id],
                    campaign_id,
                    plan["conversion_window_days"],
                ),
                "engagement_funnel": plots.engagement_funnel(overall, ENGAGEMENT),
            }
            for name, figure in figures.items():
                mlflow.log_figure(figure, f"{PLOTS}/{name}.png")
                plt.close(figure)
            logged.append(run.info.run_id)
    return logged


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return build_readout(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("campaign_readout", _body, job_parser(__doc__.splitlines()[0]), argv, session)


if __name__ == "__main__":
    main()
