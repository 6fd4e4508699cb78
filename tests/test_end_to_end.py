"""The nightly DAGs through real Airflow on a small generated sample.

``omni_nightly`` runs with ``airflow dags test`` as a backfill of three days in one DAG run;
its gold assets then trigger ``omni_models`` under a real scheduler (``make airflow``'s
Airflow standalone). Real spark-submit, Delta, Great Expectations and an MLflow SQLite store,
all in a temp folder; the assertions read the resulting tables, the registry and Airflow's
own database.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import deltalake
import pyspark
import pytest
from mlflow import MlflowClient
from pyspark.sql import functions as F

from models import value
from omni import quality, quality_report, suites, tables
from omni.config import load_settings
from omni.sample import EVENT_BAD_KINDS, SampleSpec, generate_sample
from omni.sources import CRM
from omni.transforms.silver import parse_records
from tests.browser import open_offline
from tests.conftest import notebook_images, notebook_text, readers_rows

REPO = Path(__file__).resolve().parent.parent
RUN_DATE = date(2026, 10, 31)
# The first night is a backfill: features for each of these days, in one DAG run.
BACKFILL_START = RUN_DATE - timedelta(days=2)
# A day of the sample whose clickstream file gets 40 lines of garbage: over 15% of the day's
# records quarantined, a warning-only problem.
WARNING_DAY = RUN_DATE - timedelta(days=5)
PLANTED_LINES = 40
BROKEN_DATE = RUN_DATE + timedelta(days=1)
SAMPLE_DAYS = 46  # 45 days up to RUN_DATE, then the broken day
GOLD_ASSETS = {"gold.customer_profile", "gold.customer_features", "gold.daily_channel_kpis"}
pytestmark = pytest.mark.e2e

# Generator bad kinds whose quarantine reason code differs from the kind's name.
EVENT_REASONS = {"truncated_json": "malformed_json", "not_json": "malformed_json"}


def _airflow(env: dict, *args: str) -> subprocess.CompletedProcess:
    airflow = str(Path(sys.executable).parent / "airflow")
    return subprocess.run([airflow, *args], env=env, check=True, capture_output=True, text=True)


def _dags_test(
    env: dict, day: date, root: Path, conf: dict | None = None
) -> subprocess.CompletedProcess:
    airflow = str(Path(sys.executable).parent / "airflow")
    extra = ["-c", json.dumps(conf)] if conf else []
    result = subprocess.run(
        [airflow, "dags", "test", "omni_nightly", str(day), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    (root / f"dags-test-{day}.log").write_text(result.stdout + result.stderr)
    return result


def _query(root: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(root / "airflow" / "airflow.db") as db:
        return db.execute(sql, args).fetchall()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _serving(command: list[str], env: dict, log: Path, ready: str, linger: float = 0):
    """Start a server in a process group of its own; yield its output once ``ready`` shows.
    Afterwards the group gets SIGTERM (Ctrl-C's effect), then, ``linger`` s later, SIGKILL."""
    out = log.open("w+")
    process = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while ready not in (banner := log.read_text()):
            assert process.poll() is None, f"{command[0]} stopped:\n{banner[-3000:]}"
            assert time.monotonic() < deadline, f"{command[0]} not up in 300 s:\n{banner[-3000:]}"
            time.sleep(1)
        yield banner
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            time.sleep(linger)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out.close()


@contextmanager
def _airflow_standalone(env: dict, root: Path):
    """``make airflow``'s script: Airflow standalone on a free port; yields (port, banner)."""
    port = _free_port()
    with _serving(
        [str(REPO / "tools" / "airflow_standalone.sh")],
        {**env, "AIRFLOW_PORT": str(port)},
        root / "standalone.out",
        "Ctrl-C stops Airflow",
        linger=5,  # then nothing of it may outlive the test
    ) as banner:
        yield port, banner


def _wait_for_models(root: Path, timeout: float) -> tuple[str, str, str]:
    """The first ``omni_models`` run, once it has finished: (run id, run type, state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _query(
            root, "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = ?", "omni_models"
        )
        if runs and runs[0][2] in ("success", "failed"):
            return runs[0]
        time.sleep(5)
    pytest.fail(f"omni_models did not finish in {timeout:.0f} s: {runs}")


def _api(port: int, path: str, token: str | None = None, method: str = "GET", body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def _login(port: int, banner: str) -> str:
    """Log in with the user and password ``make airflow`` printed: an API token."""
    password = re.search(r"password:\s+(\S+)", banner).group(1)
    credentials = {"username": "admin", "password": password}
    return _api(port, "/auth/token", method="POST", body=credentials)["access_token"]


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    """The sample's first night: a backfill of the last three days up to RUN_DATE in one
    ``omni_nightly`` run (every landed day is ingested), then ``omni_models`` as the scheduler
    triggers it from the gold assets.

    One day carries a planted warning-only problem; the landing zone also holds the next day,
    for the broken night.
    """
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
        # 45 days of history: a 10-day churn horizon leaves a holdout and three weekly
        # training snapshots before it.
        "OMNI_CHURN_HORIZON_DAYS": "10",
        "OMNI_CHURN_SNAPSHOT_STEP_DAYS": "7",
        "OMNI_CHURN_TRAINING_SNAPSHOTS": "3",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    generate_sample(
        root / "landing",
        # The campaigns start on the night the models run: their audiences are assigned then.
        SampleSpec(
            customers=200,
            days=SAMPLE_DAYS,
            end_date=BROKEN_DATE,
            seed=5,
            bad_rate=0.002,
            campaign_launch=RUN_DATE,
        ),
    )
    _plant_garbage(root / "landing" / "ecommerce" / "events" / f"dt={WARNING_DAY}")
    (root / "airflow").mkdir()
    _airflow(env, "db", "migrate")
    # The model DAG must be known and unpaused for the gold assets' events to queue a run.
    _airflow(env, "dags", "reserialize")
    _airflow(env, "dags", "unpause", "omni_models")
    result = _dags_test(env, RUN_DATE, root, {"start_date": str(BACKFILL_START)})
    assert result.returncode == 0, f"airflow dags test failed:\n{result.stderr[-4000:]}"
    # Paused until Airflow is up, as an operator would leave it; the queued events wait.
    _airflow(env, "dags", "pause", "omni_models")
    with _airflow_standalone(env, root) as (port, banner):
        token = _login(port, banner)
        dags = _api(port, "/api/v2/dags", token)
        _api(port, "/api/v2/dags/omni_models", token, "PATCH", {"is_paused": False})
        run_id, run_type, state = _wait_for_models(root, timeout=1500)
    assert state == "success", _failed_task_logs(root, run_id)
    settings = load_settings({k: v for k, v in env.items() if k.startswith(("OMNI_", "MLFLOW_"))})
    return settings, env, root, {"run_id": run_id, "run_type": run_type, "dags": dags}


def _failed_task_logs(root: Path, run_id: str) -> str:
    logs = sorted((root / "airflow" / "logs" / "dag_id=omni_models").rglob("*.log"))
    tasks = "\n".join(f"{p}:\n{p.read_text()[-2500:]}" for p in logs if run_id in str(p))
    standalone = (root / "airflow" / "standalone.log").read_text()[-3000:]
    return f"{tasks}\nstandalone.log:\n{standalone}"


@pytest.fixture(scope="module")
def nightly_run(nightly):
    return nightly[0]


def test_the_gold_assets_triggered_the_model_dag_for_the_backfills_last_day(nightly):
    _, _, root, models = nightly
    assert models["run_type"] == "asset_triggered"
    [(logical_date,)] = _query(
        root, "SELECT logical_date FROM dag_run WHERE run_id = ?", models["run_id"]
    )
    assert logical_date is None  # the date comes with the assets' events
    consumed = _query(
        root,
        "SELECT a.name, e.extra, e.source_dag_id, e.source_task_id FROM asset_event e "
        "JOIN asset a ON a.id = e.asset_id JOIN dagrun_asset_event d ON d.event_id = e.id "
        "JOIN dag_run r ON r.id = d.dag_run_id WHERE r.run_id = ?",
        models["run_id"],
    )
    assert {name for name, *_ in consumed} == GOLD_ASSETS
    for _, extra, dag_id, task_id in consumed:
        assert (dag_id, task_id) == ("omni_nightly", "validate_gold")
        dates = json.loads(extra)
        assert (dates["start_date"], dates["end_date"]) == (str(BACKFILL_START), str(RUN_DATE))
    [(value,)] = _query(
        root,
        "SELECT value FROM xcom WHERE dag_id = 'omni_models' AND task_id = 'business_dates' "
        "AND key = 'return_value'",
    )
    assert json.loads(value) == {"start_date": str(RUN_DATE), "end_date": str(RUN_DATE)}


def test_make_airflow_prints_a_login_that_works(nightly):
    dags = {d["dag_id"]: d for d in nightly[3]["dags"]["dags"]}
    assert set(dags) == {"omni_nightly", "omni_models", "omni_maintenance", "omni_erasure"}
    assert dags["omni_models"]["is_paused"] is True  # until the test unpaused it
    assert dags["omni_nightly"]["owners"] == ["data-engineering"]


def _plant_garbage(folder: Path) -> None:
    part = sorted(folder.glob("part-*"))[0]
    opener = gzip.open if part.suffix == ".gz" else open
    with opener(part, "at", encoding="utf-8") as handle:
        handle.writelines(f"garbage line {i} {{\n" for i in range(PLANTED_LINES))


@pytest.fixture(scope="module")
def broken_night(nightly, sql_server):
    """The day after, the clickstream export never arrives: freshness, a blocking check.

    The SQL server is up all the while, as BI tools would be: the jobs still open their
    catalog, and the server reads what they write."""
    settings, env, root, _ = nightly
    shutil.rmtree(settings.landing_dir / "ecommerce" / "events" / f"dt={BROKEN_DATE}")
    client = _client(settings)
    versions = {m: _versions(client, m) for m in ("customer_segmentation", "customer_churn")}
    versions["tables"] = _published_versions(settings)
    result = _dags_test(env, BROKEN_DATE, root)
    return settings, result, versions, root


# Written whatever the audit says: the hold itself, and the deliveries seen (freshness reads it).
BOOKKEEPING = {tables.HELD_BATCHES.name, tables.LANDING_FOLDERS.name, tables.ERASURE_AUDIT.name}


def _published_versions(settings) -> dict[str, int]:
    """The Delta version of every table of the nightly layers (delta-rs: no Spark session)."""
    found = {}
    for table in tables.ALL_TABLES:
        path = settings.lakehouse_dir / table.layer / table.short_name
        if table.layer != "quality" and table.name not in BOOKKEEPING and path.exists():
            found[table.name] = deltalake.DeltaTable(str(path)).version()
    return found


def _client(settings):
    return MlflowClient(
        tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri
    )


def _versions(client, name):
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))


def _results(spark, settings, day):
    return _table(spark, settings, "quality.validation_results").where(
        F.col("business_date") == F.lit(str(day)).cast("date")
    )


def _table(spark, settings, name):
    layer, table = name.split(".")
    return spark.read.format("delta").load(str(settings.lakehouse_dir / layer / table))


def test_one_score_row_per_customer(spark, nightly_run):
    scores = _table(spark, nightly_run, "gold.customer_scores").where(
        F.col("as_of_date") == F.lit(str(RUN_DATE)).cast("date")
    )
    profile = _table(spark, nightly_run, "gold.customer_profile")
    assert scores.count() == scores.select("customer_key").distinct().count() == profile.count()
    assert scores.count() >= 190
    assert set(r["customer_key"] for r in scores.select("customer_key").collect()) == set(
        r["customer_key"] for r in profile.select("customer_key").collect()
    )
    bad = scores.where(~F.col("churn_probability").between(0, 1) | F.col("segment_name").isNull())
    assert bad.count() == 0
    bands = {r["churn_risk_band"] for r in scores.collect()}
    assert "no_purchase_yet" in bands and bands <= {"low", "medium", "high", "no_purchase_yet"}
    # Customers who never bought: their own segment, no probability, the band that says so.
    features = _table(spark, nightly_run, "gold.customer_features").where(
        F.col("as_of_date") == F.lit(str(RUN_DATE)).cast("date")
    )
    never = scores.join(features.where(~F.col("has_purchase")), "customer_key", "left_semi")
    assert never.count() > 0
    assert {
        (r["segment_id"], r["segment_name"], r["churn_probability"], r["churn_risk_band"])
        for r in never.collect()
    } == {(0, "no purchase yet", None, "no_purchase_yet")}
    unscored = scores.where(F.col("churn_probability").isNull()).count()
    assert unscored == never.count()
    assert {r["churn_model"] for r in scores.select("churn_model").distinct().collect()} == {
        "customer_churn/1"
    }


def test_every_buyer_has_an_expected_value_and_value_at_risk_is_value_times_churn(
    spark, nightly_run
):
    scores = _table(spark, nightly_run, "gold.customer_scores").where(
        F.col("as_of_date") == F.lit(str(RUN_DATE)).cast("date")
    )
    buyers = scores.where(F.col("churn_probability").isNotNull())
    assert buyers.count() > 100
    # Every scored buyer of the sample has a purchase day, so every one of them has a value.
    unvalued = buyers.where(
        F.col("expected_purchases_365d").isNull() | ~(F.col("expected_value_365d") > 0)
    )
    assert unvalued.count() == 0
    wrong = buyers.where(
        F.abs(F.col("value_at_risk") - F.col("expected_value_365d") * F.col("churn_probability"))
        > 1e-9
    )
    assert wrong.count() == 0
    never = scores.where(F.col("churn_probability").isNull())
    assert (
        never.where(
            F.coalesce(
                "expected_purchases_365d", "expected_value_365d", "value_at_risk"
            ).isNotNull()
        ).count()
        == 0
    )
    # The values come from the value model the churn champion carries; its fit is logged.
    client = _client(nightly_run)
    churn = client.get_model_version_by_alias("customer_churn", "champion")
    model, status = value.from_tag(churn.tags[value.VALUE_MODEL_TAG])
    assert status == "fitted" and model.repeat_buyers > 10
    run = client.get_run(churn.run_id)
    assert float(run.data.params["gamma_gamma_p"]) == pytest.approx(model.spend.p, rel=1e-5)
    assert -1 <= run.data.metrics["spend_frequency_correlation"] <= 1
    # Frequent buyers are worth more: the value follows the expected purchases.
    ranked = buyers.select("expected_purchases_365d", "expected_value_365d").toPandas()
    assert ranked.corr(method="spearman").iloc[0, 1] > 0.5


def test_the_feed_holds_every_consented_channel_and_nobody_else(spark, nightly_run):
    day = F.lit(str(RUN_DATE)).cast("date")
    feed = _table(spark, nightly_run, "gold.personalization_feed").where(F.col("as_of_date") == day)
    scored = _table(spark, nightly_run, "gold.customer_scores").where(F.col("as_of_date") == day)
    crm = _table(spark, nightly_run, "silver.customers")
    unsubscribed = _table(spark, nightly_run, "silver.campaign_messages").where(
        (F.col("event_type") == "unsubscribed") & (F.col("event_date") <= day)
    )
    withdrawn = {(r["customer_id"], r["channel"]) for r in unsubscribed.collect()}
    # Consent as the CRM records it, less the providers' unsubscribes, for every scored
    # customer with a CRM id.
    expected = set()
    for row in scored.join(crm, "customer_id").collect():
        for channel in ("email", "push"):
            if row[f"{channel}_opt_in"] and (row["customer_id"], channel) not in withdrawn:
                expected.add((row["customer_key"], channel))
    got = {(r["customer_key"], r["channel"]) for r in feed.collect()}
    assert got == expected and len(got) > 50
    channels = {channel for _, channel in got}
    assert channels == {"email", "push"}
    rows = feed.collect()
    catalogue = {r["sku"] for r in _table(spark, nightly_run, "silver.products").collect()}
    assert all(r["recommended_skus"] and set(r["recommended_skus"]) <= catalogue for r in rows)
    assert sum(len(r["recommended_skus"]) == 5 for r in rows) > 0.9 * len(rows)
    reasons = [r["reason"] for r in rows]
    assert sum(x.startswith("because you bought") for x in reasons) > len(rows) / 2
    assert any('you searched "' in x for x in reasons)


def test_monitoring_compares_the_night_with_each_champions_reference(spark, nightly_run):
    monitoring = _table(spark, nightly_run, "gold.model_monitoring").where(
        F.col("as_of_date") == F.lit(str(RUN_DATE)).cast("date")
    )
    rows = {(r["model_name"], r["column_name"]): r for r in monitoring.collect()}
    assert ("customer_churn", "churn_probability") in rows
    assert ("customer_segmentation", "segment_id") in rows
    assert ("customer_churn", "recency_days") in rows
    # Both models trained tonight: their reference is tonight's buyers, scored by the model
    # itself, binned the same way in pandas (training) and Spark (monitoring): like with like.
    buyers = (
        _table(spark, nightly_run, "gold.customer_features")
        .where((F.col("as_of_date") == F.lit(str(RUN_DATE)).cast("date")) & F.col("has_purchase"))
        .count()
    )
    # The champions learned from buyers, and are judged on buyers only.
    for (model, column), row in rows.items():
        assert row["rows"] == buyers and row["model_version"] == "1"
        assert row["psi"] == pytest.approx(0, abs=1e-9), (model, column)
    client = _client(nightly_run)
    [run] = client.search_runs(
        [client.get_experiment_by_name("model_monitoring").experiment_id],
        filter_string=f"tags.as_of_date = '{RUN_DATE}'",
    )
    assert run.data.tags["retrain_recommended"] == "false"
    churn = client.get_model_version_by_alias("customer_churn", "champion")
    assert churn.tags["last_monitored"] == str(RUN_DATE)
    assert churn.tags["retrain_recommended"] == "false"


def test_registry_has_both_models_with_a_champion(nightly_run):
    client = _client(nightly_run)
    for name in ("customer_segmentation", "customer_churn"):
        champion = client.get_model_version_by_alias(name, "champion")
        assert str(champion.version) == "1"
        run = client.get_run(champion.run_id)
        assert run.data.tags["as_of_date"] == str(RUN_DATE)
        assert run.data.tags["git_commit"] and run.data.tags["pipeline_run_id"]
        assert run.data.tags["promotion_decision"].startswith("promoted: no champion yet")
        assert champion.tags["promotion_decision"] == run.data.tags["promotion_decision"]
    churn_run = client.get_run(
        client.get_model_version_by_alias("customer_churn", "champion").run_id
    )
    metrics = {"roc_auc", "pr_auc", "brier", "lift_top_decile", "calibration_error"}
    assert metrics | {f"baseline_{m}" for m in metrics} <= set(churn_run.data.metrics)
    assert churn_run.data.params["holdout_cutoff"] == str(RUN_DATE - timedelta(days=10))
    # The tables read, with their Delta versions, are the run's dataset inputs.
    inputs = {d.dataset.name: d.dataset for d in churn_run.inputs.dataset_inputs}
    assert {"silver.order_lines", "silver.pos_lines", "silver.customer_identity"} <= set(inputs)
    source = json.loads(inputs["silver.pos_lines"].source)
    assert source["path"].endswith("silver/pos_lines") and int(source["delta_table_version"]) >= 1
    plots = {f.path for f in client.list_artifacts(churn_run.info.run_id, "plots")}
    assert plots == {
        f"plots/{n}.png"
        for n in ("roc", "precision_recall", "calibration", "lift", "feature_importance")
    }
    segmentation = client.get_model_version_by_alias("customer_segmentation", "champion")
    seg_plots = client.list_artifacts(segmentation.run_id, "plots")
    assert [f.path for f in seg_plots] == ["plots/segment_profiles.png"]
    assert set(json.loads(segmentation.tags["segment_ids"]).values()) == {
        int(k) for k in json.loads(segmentation.tags["segment_names"])
    }
    artifacts = Path(nightly_run.mlflow_artifacts_dir)
    assert any(artifacts.rglob("MLmodel"))


def test_the_recommendations_are_evaluated_on_the_last_four_weeks(nightly_run):
    client = _client(nightly_run)
    [run] = client.search_runs([client.get_experiment_by_name("recommendations").experiment_id])
    assert run.data.tags["as_of_date"] == str(RUN_DATE)
    assert run.data.params["cutoff"] == str(RUN_DATE - timedelta(days=28))
    assert run.data.params["segmented_by"] == "customer_segmentation/1"
    metrics = run.data.metrics
    mixes = ("store_only", "online_only", "both", "new")
    assert metrics["customers"] == sum(metrics.get(f"customers.{m}", 0) for m in mixes) > 0
    for method in ("recommender", "segment_popularity", "popularity"):
        assert 0 <= metrics[f"{method}_recall_at_5"] <= metrics[f"{method}_hit_rate"] <= 1
    assert metrics["recall_lift_over_popularity"] == pytest.approx(
        metrics["recommender_recall_at_5"] / metrics["popularity_recall_at_5"]
    )
    plots = {f.path for f in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/recommendation_recall.png"}


def test_the_report_says_what_marketing_and_data_science_look_for_first(spark, nightly_run):
    from omni import report

    client = _client(nightly_run)
    scores = _table(spark, nightly_run, "gold.customer_scores").where(
        F.col("as_of_date") == F.lit(str(RUN_DATE)).cast("date")
    )
    customers = report.customer_lines(spark, nightly_run, RUN_DATE)
    for row in scores.groupBy("segment_name", "segment_description").count().collect():
        assert any(
            line.split()[: len(row["segment_name"].split()) + 1]
            == [*row["segment_name"].split(), str(row["count"])]
            and line.endswith(row["segment_description"] or "")
            for line in customers
        ), (row, customers)
    bands = scores.groupBy("churn_risk_band").agg(
        F.count("*").alias("n"), F.sum("value_at_risk").alias("at_risk")
    )
    for row in bands.collect():
        expected = [row["churn_risk_band"], str(row["n"])]
        at_risk = "-" if row["at_risk"] is None else f"{row['at_risk']:,.0f}"
        assert any(
            line.split()[:2] == expected and line.split()[-1] == at_risk for line in customers
        ), (row, customers)

    models = "\n".join(report.model_lines(client, RUN_DATE))
    churn = client.get_run(client.get_model_version_by_alias("customer_churn", "champion").run_id)
    roc, baseline = churn.data.metrics["roc_auc"], churn.data.metrics["baseline_roc_auc"]
    assert f"{'roc_auc':<17} {roc:.3f}  (BG/NBD baseline {baseline:.3f}" in models
    [evaluation] = client.search_runs(
        [client.get_experiment_by_name("recommendations").experiment_id]
    )
    recall = evaluation.data.metrics["popularity_recall_at_5"]
    assert f"popularity          recall@5 {recall:.3f}" in models
    assert "customer_segmentation    champion version 1" in models
    page = quality_report.write(spark, nightly_run, RUN_DATE)
    where = "\n".join(report.next_lines(nightly_run, page))
    assert nightly_run.mlflow_tracking_uri in where and f"open {page}" in where
    assert f"Data quality of {RUN_DATE}: passed" in page.read_text()
    assert "gold.customer_scores" in page.read_text()
    # A date nothing scored says so rather than printing empty tables.
    assert report.customer_lines(spark, nightly_run, RUN_DATE + timedelta(days=9)) == [
        f"Customers: gold.customer_scores holds no scores for {RUN_DATE + timedelta(days=9)}"
    ]


def test_the_churn_champions_run_page_shows_its_plots_in_chromium(nightly_run, tmp_path):
    """The MLflow UI (its own server, on this machine) as a data scientist opens it: the
    champion's run, its ROC plot. Screenshot: test-artifacts/screenshots/mlflow_churn_run.png."""
    client = _client(nightly_run)
    version = client.get_model_version_by_alias("customer_churn", "champion")
    run = client.get_run(version.run_id)
    port = _free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--workers", "1"]
    command += ["--backend-store-uri", nightly_run.mlflow_tracking_uri]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with _serving(command, dict(os.environ), tmp_path / "mlflow.out", "Uvicorn running on"):
        page = (
            f"http://127.0.0.1:{port}/#/experiments/{run.info.experiment_id}/runs/"
            f"{run.info.run_id}/artifacts/plots/roc.png"
        )
        dom = open_offline(page, "mlflow_churn_run", (1400, 1000), offline=False)
    assert re.search(r'<img alt="plots/roc\.png" src="blob:', dom), dom[-2000:]
    assert run.info.run_name in dom


def test_counts_reconcile_and_every_bad_kind_is_quarantined(spark, nightly_run):
    counts = _table(spark, nightly_run, "quarantine.reconciliation").collect()
    assert counts
    for row in counts:
        placed = row["accepted"] + row["quarantined"] + row["duplicates"] + row["suppressed"]
        assert row["read"] == placed, row
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
    crm = parse_records(_table(spark, nightly_run, "bronze.crm_customers"), CRM)
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
    assert kpis.select("date").distinct().count() >= 40
    assert kpis.where((F.col("channel") == "online") & F.col("sessions").isNull()).count() == 0
    features = _table(spark, nightly_run, "gold.customer_features")
    days = {r["as_of_date"] for r in features.select("as_of_date").distinct().collect()}
    assert days == {BACKFILL_START + timedelta(days=n) for n in range(3)}
    per_day = features.groupBy("as_of_date").count().collect()
    assert min(r["count"] for r in per_day) >= 190
    page = quality.data_docs_index(nightly_run).read_text()
    for path in sorted(suites.EXPECTATIONS_DIR.glob("*/*.json")):
        suite = f"{path.parent.name}.{path.stem}"
        assert f"{suite}.html" in page or suite in page, f"Data Docs index lacks {suite}"


def test_the_sample_passes_every_suite_but_the_planted_warning(spark, nightly_run):
    """The run finished (the fixture asserts it) with one warning recorded, and only that."""
    results = _results(spark, nightly_run, RUN_DATE)
    validated = {r["table_name"] for r in results.select("table_name").distinct().collect()}
    every = {f"{p.parent.name}.{p.stem}" for p in suites.EXPECTATIONS_DIR.glob("*/*.json")}
    assert validated == every
    failed = results.where(~F.col("success")).collect()
    assert [
        (r["table_name"], r["expectation_type"], r["severity"], r["observed_value"]) for r in failed
    ] == [("quarantine.reconciliation", suites.SQL_RULE, "warning", "1")]
    [bad_day] = json.loads(failed[0]["unexpected_sample"])
    assert (bad_day["source"], bad_day["business_date"]) == ("ecommerce_events", str(WARNING_DAY))
    assert bad_day["quarantined"] >= PLANTED_LINES
    assert results.where(F.col("success")).count() > 400
    kinds = {r["check_kind"] for r in results.select("check_kind").distinct().collect()}
    assert {"schema", "rule", "freshness", "volume"} <= kinds


@pytest.fixture(scope="module")
def sql_server(nightly):
    """``make sql-server`` on the night's lakehouse, on a free port; yields (port, banner)."""
    _, env, root, _ = nightly
    port = _free_port()
    with _serving(
        # The default refresh (60 s): the night's tables are there when it starts, and a look
        # every 2 s cost a sixth of a core all the while.
        [sys.executable, "-m", "omni.sql_server", "--port", str(port)],
        env,
        root / "sql-server.out",
        "Ctrl-C stops the server",
    ) as banner:
        yield port, banner


def _beeline(port: int, sql: str) -> list[dict[str, str]]:
    """One query through beeline, the JDBC client of the pip-installed Spark: its rows."""
    beeline = Path(pyspark.__file__).parent / "bin" / "beeline"
    result = subprocess.run(
        [str(beeline), "-u", f"jdbc:hive2://127.0.0.1:{port}/default", "--silent=true"]
        + ["--outputformat=tsv2", "--showHeader=true", "-e", sql],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "Error" not in result.stderr, result.stderr[-3000:]
    # Beeline echoes its prompt before the first line of output.
    text = re.sub(r"^\d+: jdbc:hive2://\S+> ", "", result.stdout)
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


def test_bi_tools_query_the_gold_tables_by_name_over_jdbc(spark, nightly_run, sql_server):
    port, banner = sql_server
    assert f"jdbc:hive2://127.0.0.1:{port}/default" in banner
    # Every table the night wrote is named; the erasure audit has no table until an erasure.
    listed = {f"{r['namespace']}.{r['tableName']}" for r in _beeline(port, "SHOW TABLES IN gold")}
    assert listed == {t.name for t in tables.layer_tables("gold")}
    # Every table but those a good night never writes: no erasure, no batch held.
    count = len(tables.ALL_TABLES)
    unwritten = (tables.ERASURE_AUDIT.name, tables.HELD_BATCHES.name)
    assert f"tables: {count - len(unwritten)} of {count}" in banner
    assert not any(name in banner for name in unwritten)

    day = f"DATE'{RUN_DATE}'"
    got = _beeline(
        port,
        "SELECT customer_key, segment_id, segment_name, churn_probability, churn_risk_band "
        f"FROM gold.customer_scores WHERE as_of_date = {day}",
    )
    scores = _table(spark, nightly_run, "gold.customer_scores").where(f"as_of_date = {day}")
    expected = scores.select(
        "customer_key", "segment_id", "segment_name", "churn_probability", "churn_risk_band"
    ).collect()
    assert len(got) == len(expected) >= 190
    assert sorted(
        (r["customer_key"], int(r["segment_id"]), r["segment_name"])
        # beeline prints NULL for the probability of a customer with no purchase yet
        + (None if r["churn_probability"] == "NULL" else float(r["churn_probability"]),)
        + (r["churn_risk_band"],)
        for r in got
    ) == sorted(tuple(r) for r in expected)

    got = _beeline(
        port,
        "SELECT p.customer_key, p.customer_id, p.frequency_365d, CAST(p.monetary_365d AS STRING) "
        "AS monetary_365d, s.churn_risk_band FROM gold.customer_profile p "
        f"JOIN gold.customer_scores s ON s.customer_key = p.customer_key AND s.as_of_date = {day}",
    )
    profile = _table(spark, nightly_run, "gold.customer_profile").alias("p")
    expected = profile.join(scores.alias("s"), "customer_key").select(
        "customer_key", "p.customer_id", "frequency_365d", "monetary_365d", "churn_risk_band"
    )
    assert sorted(
        (r["customer_key"], r["customer_id"] or None, int(r["frequency_365d"]))
        + (r["monetary_365d"], r["churn_risk_band"])
        for r in got
    ) == sorted((r[0], r[1], r[2], str(r[3]), r[4]) for r in expected.collect())
    assert len(got) == profile.count()
    # The README's example for BI users: a date from a subquery (answered from Delta's file
    # statistics unless the server turns that off) and a join, by name.
    readme = (REPO / "README.md").read_text()
    example = readme.split("```sql\n", 1)[1].split(";", 1)[0].splitlines()
    by_band = _beeline(port, " ".join(line for line in example if not line.startswith("--")))
    assert sum(int(r["customers"]) for r in by_band) == len(got) == scores.count()
    assert {(r["segment_name"], r["churn_risk_band"]) for r in by_band} == {
        (r["segment_name"], r["churn_risk_band"]) for r in scores.collect()
    }
    # Column comments reach the client, as BI tools show them.
    described = {
        r["col_name"]: r["comment"] for r in _beeline(port, "DESCRIBE gold.customer_scores")
    }
    registered = {c.name: c.comment for c in tables.GOLD_SCORES.columns}
    assert described["churn_probability"] == registered["churn_probability"]
    assert described["churn_probability"].startswith("P(no purchase within the horizon)")


def test_delta_rs_reads_every_gold_table(spark, nightly_run):
    """The gold tables as Polars, pandas or DuckDB users open them, with delta-rs."""
    for table in tables.layer_tables("gold"):
        location = str(nightly_run.lakehouse_dir / table.layer / table.short_name)
        opened = deltalake.DeltaTable(location)
        assert opened.protocol().min_reader_version == 1 and not opened.protocol().reader_features
        delta_rs, via_spark = readers_rows(spark, location, table)
        assert delta_rs == via_spark and delta_rs, table.name
    features = deltalake.DeltaTable(str(nightly_run.lakehouse_dir / "gold" / "customer_features"))
    frame = features.to_pandas(filters=[("as_of_date", "=", RUN_DATE)])
    assert len(frame) >= 190 and frame["customer_key"].is_unique


def test_a_blocking_failure_stops_everything_downstream(spark, broken_night):
    settings, result, versions_before, root = broken_night
    assert result.returncode != 0
    with sqlite3.connect(root / "airflow" / "airflow.db") as db:
        states = dict(
            db.execute(
                "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr "
                "ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id "
                "WHERE dr.dag_id = 'omni_nightly' AND date(dr.logical_date) = ?",
                (str(BROKEN_DATE),),
            ).fetchall()
        )
    assert states["bronze_ingest"] == "success"
    assert states["validate_bronze"] == "failed"
    for task in ("silver", "validate_silver", "gold", "validate_gold"):
        assert states[task] == "upstream_failed", (task, states[task])
    # No gold assets published, so the model DAG was not queued again.
    events = _query(root, "SELECT extra FROM asset_event")
    assert len(events) == 3 and all(str(BROKEN_DATE) not in extra for (extra,) in events)
    assert _query(root, "SELECT * FROM asset_dag_run_queue") == []
    failed = _results(spark, settings, BROKEN_DATE).where(~F.col("success")).collect()
    assert ("bronze.ecommerce_events", "freshness", "blocking") in {
        (r["table_name"], r["check_kind"], r["severity"]) for r in failed
    }
    scores = _table(spark, settings, "gold.customer_scores").where(
        F.col("as_of_date") == F.lit(str(BROKEN_DATE)).cast("date")
    )
    assert scores.count() == 0
    client = _client(settings)
    for name in ("customer_segmentation", "customer_churn"):
        assert _versions(client, name) == versions_before[name]
    # Write, audit, publish: the bronze job audited its batch and published none of it.
    assert _published_versions(settings) == versions_before["tables"]
    held = _table(spark, settings, "quarantine.held_batches").where(
        F.col("business_date") == F.lit(str(BROKEN_DATE)).cast("date")
    )
    assert {r["table_name"] for r in held.select("table_name").distinct().collect()} >= {
        "bronze.pos_lines",
        "bronze.ingested_files",
    }


def test_the_sql_server_reads_what_a_night_writes_while_it_runs(spark, sql_server, broken_night):
    """The broken night's bronze job wrote while the server was up (it opened its own
    catalog), and the server, started before, reads the new rows without a restart: the
    deliveries it saw, which it records whatever its audit says."""
    port, _ = sql_server
    settings = broken_night[0]
    day = f"DATE'{BROKEN_DATE}'"
    [got] = _beeline(
        port, f"SELECT COUNT(*) AS n FROM bronze.landing_folders WHERE business_date = {day}"
    )
    written = (
        _table(spark, settings, "bronze.landing_folders").where(f"business_date = {day}").count()
    )
    assert int(got["n"]) == written > 0


def test_notebooks_run_on_the_sample(nightly):
    """Both notebooks execute top to bottom on the night's tables and registry."""
    import nbformat
    from nbclient import NotebookClient

    settings, env, root, _ = nightly
    executed = {}
    for name in ("customer_profiles_and_segments", "model_runs_review"):
        book = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
        NotebookClient(
            book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
        ).execute(env=env)
        nbformat.write(book, root / f"{name}.ipynb")  # kept with the run, for a look
        executed[name] = book
    client = _client(settings)
    segmentation = client.get_model_version_by_alias("customer_segmentation", "champion")
    profiles = notebook_text(executed["customer_profiles_and_segments"])
    for segment in json.loads(segmentation.tags["segment_names"]).values():
        assert segment in profiles
    # The bar chart and the champion's segment profile plot.
    assert notebook_images(executed["customer_profiles_and_segments"]) == 2
    runs = notebook_text(executed["model_runs_review"])
    assert "promoted: no champion yet" in runs and "baseline_roc_auc" in runs
    assert "retrain_recommended" in runs and "churn_probability" in runs  # the drift table
    assert notebook_images(executed["model_runs_review"]) == 5  # the churn champion's plots
