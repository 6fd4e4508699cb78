"""
### Omni-channel models

Customer segmentation and churn: training with MLflow tracking and champion promotion, then
scoring of every customer into `gold.customer_scores`. Then come the consented
personalization feed (`gold.personalization_feed`, with the running campaigns' assignments to
treatment or control in `gold.campaign_assignments`), the campaigns' readout of what each
changed against its control group (`gold.campaign_readout`) and drift monitoring of the champions
(`gold.model_monitoring`, with a retrain flag when a PSI passes `OMNI_PSI_THRESHOLD`).

**Write, audit, publish**: each job validates its output with its Great Expectations suite
before any table shows it, as in `omni_nightly`; the `validate_scores` step (before the feed
and monitoring read the scores) and `validate_model_outputs` are the gates, read from the
recorded results. A failed blocking expectation fails the gate, the table keeps its Delta
version and the batch is held in `quarantine.held_batches`.

**When**: data-aware. The DAG runs when `omni_nightly` has published all three validated
gold tables (`gold.customer_profile`, `gold.customer_features`, `gold.daily_channel_kpis`).
It models the latest `end_date` the triggering asset events carry. A manual run models
the `date` param, or its logical date.

Tasks retry with back-off, time out and alert as in `omni_nightly`; each is a `spark-submit`
through `spark_default`. Promotion refuses a date whose data-quality gates did not pass.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from omni import orchestration as orc
from omni import tables
from omni.config import load_settings

SETTINGS = load_settings()


@task(task_id=orc.DATES_TASK)
def business_dates() -> dict[str, str]:
    """The date to model: from the triggering asset events, the param, or the run's date."""
    context = get_current_context()
    default = orc.triggering_end_date(context) or orc.run_date(context, SETTINGS)
    return orc.landing_range({"end_date": context["params"].get("date")}, default, SETTINGS)


@dag(
    dag_id="omni_models",
    schedule=orc.gold_assets(SETTINGS),
    **orc.dag_defaults(SETTINGS),
    params={
        "date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Business date to model, YYYY-MM-DD (default: from the trigger).",
        )
    },
    doc_md=__doc__,
    tags=["omnichannel", "nightly", "models"],
)
def omni_models():
    def job(task_id: str, script: str, *args: str):
        return orc.spark_job(SETTINGS, task_id, script, *args)

    dates = business_dates()
    train = job("train_models", "models/train.py")
    score = job("score_customers", "models/score.py")
    personalize = job("personalize", "models/personalize.py")
    readout = job("campaign_readout", "models/readout.py")
    monitor = job("monitor_models", "models/monitor.py")
    check_scores = orc.gate("validate_scores", ["gold"], [tables.GOLD_SCORES.name])
    check_outputs = orc.gate(
        "validate_model_outputs",
        ["gold"],
        [
            tables.GOLD_FEED.name,
            tables.GOLD_ASSIGNMENTS.name,
            tables.GOLD_READOUT.name,
            tables.GOLD_MONITORING.name,
        ],
    )
    dates >> train >> score >> check_scores >> [personalize, monitor]
    personalize >> readout
    [readout, monitor] >> check_outputs


omni_models()
