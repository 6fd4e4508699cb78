"""
### Omni-channel nightly run

Raw eCommerce and in-store logs to Delta (bronze, silver, gold), with a Great Expectations
gate after every layer, then customer segmentation and churn training (MLflow, champion
promotion), scoring of every customer into `gold.customer_scores`, the consented
personalization feed (`gold.personalization_feed`) and drift monitoring of the champions
(`gold.model_monitoring`, a retrain flag when a PSI passes `OMNI_PSI_THRESHOLD`).

Every task is a `spark-submit` of a job in `jobs/` or `models/` through the `spark_default`
connection (set `AIRFLOW_CONN_SPARK_DEFAULT`, or `OMNI_SPARK_MASTER` with `make`), with the
Delta JARs from the local cache. Each job takes the run's logical date (`ds`) and run id.

Each `validate_*` task checks its tables with their Great Expectations suites
(`expectations/`). A failed **blocking** expectation fails the task, and nothing downstream
runs: no training, no promotion, no scores. A failed **warning** is recorded and the run
goes on. Every result is in `quality.validation_results`; the Data Docs site is
`data/gx/data_docs/index.html`.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import dag

from omni.config import load_settings
from omni.sparkconf import spark_conf

REPO = Path(__file__).resolve().parent.parent
SETTINGS = load_settings()
CONF = spark_conf(SETTINGS)
JARS = CONF.pop("spark.jars")
# The jobs run on the same interpreter as Airflow (the project's virtual env).
ENV = {
    **{k: v for k, v in os.environ.items() if k.startswith(("OMNI_", "MLFLOW_", "GX_"))},
    "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    "PYSPARK_DRIVER_PYTHON": os.environ.get("PYSPARK_DRIVER_PYTHON", sys.executable),
    "PATH": os.environ.get("PATH", ""),
}
JOB_ARGS = ["--date", "{{ ds }}", "--run-id", "{{ run_id }}"]

default_args = {
    "owner": "data-engineering",
    "retries": int(os.environ.get("OMNI_TASK_RETRIES", "1")),
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=2),
}


def spark_job(task_id: str, script: str, *extra_args: str) -> SparkSubmitOperator:
    return SparkSubmitOperator(
        task_id=task_id,
        application=str(REPO / script),
        name=f"omni.{task_id}",
        conn_id="spark_default",
        jars=JARS,
        conf=CONF,
        env_vars=ENV,
        application_args=[*JOB_ARGS, *extra_args],
    )


@dag(
    dag_id="omni_nightly",
    schedule=os.environ.get("OMNI_NIGHTLY_SCHEDULE", "0 3 * * *"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    doc_md=__doc__,
    tags=["omnichannel", "nightly", "lakehouse", "models"],
)
def omni_nightly():
    bronze = spark_job("bronze_ingest", "jobs/bronze_ingest.py")
    check_bronze = spark_job("validate_bronze", "jobs/validate.py", "--layer", "bronze")
    silver = spark_job("silver", "jobs/silver.py")
    check_silver = spark_job(
        "validate_silver", "jobs/validate.py", "--layer", "silver", "--layer", "quarantine"
    )
    gold = spark_job("gold", "jobs/gold.py")
    check_gold = spark_job(
        "validate_gold",
        "jobs/validate.py",
        "--layer",
        "gold",
        "--table",
        "gold.customer_profile",
        "--table",
        "gold.customer_features",
        "--table",
        "gold.daily_channel_kpis",
    )
    train = spark_job("train_models", "models/train.py")
    score = spark_job("score_customers", "models/score.py")
    personalize = spark_job("personalize", "models/personalize.py")
    monitor = spark_job("monitor_models", "models/monitor.py")
    check_outputs = spark_job(
        "validate_model_outputs",
        "jobs/validate.py",
        "--layer",
        "gold",
        "--table",
        "gold.customer_scores",
        "--table",
        "gold.personalization_feed",
        "--table",
        "gold.model_monitoring",
    )
    bronze >> check_bronze >> silver >> check_silver >> gold >> check_gold >> train >> score
    score >> [personalize, monitor] >> check_outputs


omni_nightly()
