"""The nightly DAG through real Airflow (`airflow dags test`) on a small generated sample.

Real spark-submit, Delta, Great Expectations and an MLflow SQLite store, all in a temp folder;
the assertions read the resulting tables and the registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pyspark.sql import functions as F

from omni.config import load_settings
from omni.sample import EVENT_BAD_KINDS, SampleSpec, generate_sample

REPO = Path(__file__).resolve().parent.parent
RUN_DATE = date(2026, 10, 31)
pytestmark = pytest.mark.e2e

# Generator bad kinds whose quarantine reason code differs from the kind's name.
EVENT_REASONS = {"truncated_json": "malformed_json", "not_json": "malformed_json"}


@pytest.fixture(scope="module")
def nightly_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "OMNI_LANDING_DIR": str(root / "landing"),
        "OMNI_LAKEHOUSE_DIR": str(root / "lakehouse"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
        "OMNI_MLFLOW_ARTIFACTS_DIR": str(root / "mlflow" / "artifacts"),
        "OMNI_SHUFFLE_PARTITIONS": "2",
        "OMNI_TASK_RETRIES": "0",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    generate_sample(
        root / "landing",
        SampleSpec(customers=250, days=75, end_date=RUN_DATE, seed=5, bad_rate=0.002),
    )
    airflow = str(bin_dir / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    result = subprocess.run(
        [airflow, "dags", "test", "omni_nightly", RUN_DATE.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = root / "dags-test.log"
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"airflow dags test failed; see {log}:\n{result.stderr[-4000:]}"
    settings = load_settings({k: v for k, v in env.items() if k.startswith(("OMNI_", "MLFLOW_"))})
    return settings


def _table(spark, settings, name):
    layer, table = name.split(".")
    return spark.read.format("delta").load(str(settings.lakehouse_dir / layer / table))


def test_one_score_row_per_customer(spark, nightly_run):
    scores = _table(spark, nightly_run, "gold.customer_scores").where(
        F.col("as_of_date") == F.lit(str(RUN_DATE)).cast("date")
    )
    profile = _table(spark, nightly_run, "gold.customer_profile")
    assert scores.count() == scores.select("customer_key").distinct().count() == profile.count()
    assert scores.count() >= 250
    assert set(r["customer_key"] for r in scores.select("customer_key").collect()) == set(
        r["customer_key"] for r in profile.select("customer_key").collect()
    )
    bad = scores.where(~F.col("churn_probability").between(0, 1) | F.col("segment_name").isNull())
    assert bad.count() == 0
    assert {r["churn_risk_band"] for r in scores.collect()} <= {"low", "medium", "high"}
    assert {r["churn_model"] for r in scores.select("churn_model").distinct().collect()} == {
        "customer_churn/1"
    }


def test_registry_has_both_models_with_a_champion(nightly_run):
    client = MlflowClient(
        tracking_uri=nightly_run.mlflow_tracking_uri, registry_uri=nightly_run.mlflow_tracking_uri
    )
    for name in ("customer_segmentation", "customer_churn"):
        champion = client.get_model_version_by_alias(name, "champion")
        assert str(champion.version) == "1"
        run = client.get_run(champion.run_id)
        assert run.data.tags["as_of_date"] == str(RUN_DATE)
    churn_run = client.get_run(
        client.get_model_version_by_alias("customer_churn", "champion").run_id
    )
    assert {"roc_auc", "pr_auc", "brier", "lift_top_decile"} <= set(churn_run.data.metrics)
    artifacts = Path(nightly_run.mlflow_artifacts_dir)
    assert any(artifacts.rglob("MLmodel"))


def test_counts_reconcile_and_every_bad_kind_is_quarantined(spark, nightly_run):
    counts = _table(spark, nightly_run, "quarantine.reconciliation").collect()
    assert counts
    for row in counts:
        assert row["read"] == row["accepted"] + row["quarantined"] + row["duplicates"], row
    totals = {}
    for row in counts:
        totals[row["source"]] = totals.get(row["source"], 0) + row["read"]
    bronze_events = _table(spark, nightly_run, "bronze.ecommerce_events").count()
    assert totals["ecommerce_events"] == bronze_events
    quarantine = _table(spark, nightly_run, "quarantine.records")
    reasons = {
        (r["source"], r["reason"])
        for r in quarantine.select("source", "reason").distinct().collect()
    }
    for kind in EVENT_BAD_KINDS:
        assert ("ecommerce_events", EVENT_REASONS.get(kind, kind)) in reasons
    for reason in ("wrong_column_count", "unknown_store", "negative_price", "unknown_sku"):
        assert ("pos_lines", reason) in reasons
    assert quarantine.where(F.col("raw_text").isNull() | F.col("source_file").isNull()).count() == 0
    duplicates = sum(r["duplicates"] for r in counts if r["source"] == "ecommerce_events")
    assert duplicates > 0


def test_no_clear_text_personal_data_outside_bronze(spark, nightly_run):
    """No e-mail, phone or name delivered by the CRM is a value of any silver or gold column."""
    crm = _table(spark, nightly_run, "bronze.crm_customers")
    personal = (
        crm.select(F.explode(F.array("email", "phone", "first_name", "last_name")).alias("v"))
        .select(F.lower(F.trim("v")).alias("v"))
        .where(F.length("v") >= 3)
        .distinct()
        .cache()
    )
    assert personal.where(F.col("v").contains("@")).count() > 100
    for layer in ("silver", "gold"):
        for folder in (nightly_run.lakehouse_dir / layer).iterdir():
            df = spark.read.format("delta").load(str(folder))
            assert not {"email", "phone", "first_name", "last_name"} & set(df.columns)
            text = [c for c, t in df.dtypes if t == "string"]
            if not text:
                continue
            values = df.select(F.explode(F.array(*text)).alias("v")).select(
                F.lower(F.trim("v")).alias("v")
            )
            leaked = [r["v"] for r in values.join(personal, "v").limit(5).collect()]
            assert leaked == [], f"{layer}.{folder.name} holds personal data: {leaked}"
            emails = df.where(F.concat_ws(" ", *text).rlike("@example\\.com"))
            assert emails.count() == 0, f"{layer}.{folder.name} holds e-mail addresses"


def test_gold_tables_and_data_docs(spark, nightly_run):
    kpis = _table(spark, nightly_run, "gold.daily_channel_kpis")
    assert kpis.select("date").distinct().count() >= 70
    assert kpis.where((F.col("channel") == "online") & F.col("sessions").isNull()).count() == 0
    features = _table(spark, nightly_run, "gold.customer_features")
    assert features.where(F.col("as_of_date") != F.lit(str(RUN_DATE)).cast("date")).count() == 0
    docs = nightly_run.gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert docs.exists()
    page = docs.read_text()
    for suite in ("silver.pos_lines", "gold.customer_scores", "bronze.ecommerce_events"):
        assert suite in page
