"""
### Omni-channel nightly lakehouse run

Raw eCommerce and in-store logs to Delta: bronze, silver, gold. A Great Expectations gate
checks every layer. When the gold gate passes, the run publishes the gold tables as Airflow
**assets** (`gold.customer_profile`, `gold.customer_features`, `gold.daily_channel_kpis`).
Those events schedule **`omni_models`**: training, promotion, scoring, feed and monitoring.

**When**: every day at `OMNI_NIGHTLY_AT` (03:00) in `OMNI_TIMEZONE` (UTC). A scheduled run
processes the day that has just ended there. A manual run processes its logical date.
`catchup` is off and one run is active at a time.

**Backfill**: trigger with the params `start_date` and `end_date`. One DAG run ingests every
complete landing folder up to `end_date`, builds features for each day of the range and
validates them all. `business_dates`, the first task, shows the range it resolved.

**Retries**: every task retries (`OMNI_TASK_RETRIES`, back-off from 2 minutes) and has a
timeout (`OMNI_TASK_TIMEOUT_MINUTES`). A retried job leaves the tables as one uninterrupted
run would: every write is one Delta commit, keyed by the run. A task that fails for good
logs a summary. It also mails `OMNI_ALERT_EMAIL` through the `smtp_default` connection
when that is set.

**Spark**: each job is a `spark-submit` through the `spark_default` connection
(`AIRFLOW_CONN_SPARK_DEFAULT`). Delta is configured and the cached JARs are shipped with the
job, so `local[*]`, a standalone cluster, YARN or Kubernetes is a matter of the connection.

**Write, audit, publish**: each job validates its own batches before any table shows them,
in its own Spark session. The `validate_*` step after it is the gate, read from the recorded
results: a failed **blocking** expectation fails it, and nothing downstream runs (no assets,
so no training and no scores). The job then published nothing: every table of its layer keeps
its Delta version, and the batch is held in `quarantine.held_batches` (query it by `run_id`).
Failed warnings are recorded and the run goes on. Every result is in
`quality.validation_results`; the Data Docs site is `data/gx/data_docs/index.html`.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from omni import orchestration as orc
from omni.config import load_settings

SETTINGS = load_settings()


@task(task_id=orc.DATES_TASK)
def business_dates() -> dict[str, str]:
    """The range of business dates this run processes (see the DAG's notes)."""
    context = get_current_context()
    return orc.landing_range(context["params"], orc.run_date(context, SETTINGS), SETTINGS)


@dag(
    dag_id="omni_nightly",
    schedule=orc.daily_at(SETTINGS, SETTINGS.nightly_at),
    **orc.dag_defaults(SETTINGS),
    params=orc.date_range_params(),
    doc_md=__doc__,
    tags=["omnichannel", "nightly", "lakehouse"],
)
def omni_nightly():
    def job(task_id: str, script: str, *args: str, **kwargs):
        return orc.spark_job(SETTINGS, task_id, script, *args, **kwargs)

    dates = business_dates()
    bronze = job("bronze_ingest", "jobs/bronze_ingest.py")
    check_bronze = orc.gate("validate_bronze", ["bronze"])
    silver = job("silver", "jobs/silver.py")
    check_silver = orc.gate("validate_silver", ["silver", "quarantine"])
    gold = job("gold", "jobs/gold.py", "--start-date", orc.START_DATE)
    check_gold = orc.gate(
        "validate_gold",
        ["gold"],
        [table.name for table in orc.GOLD_PUBLISHED],
        outlets=orc.gold_assets(SETTINGS),
        post_execute=orc.publish_dates,
    )
    dates >> bronze >> check_bronze >> silver >> check_silver >> gold >> check_gold


omni_nightly()
