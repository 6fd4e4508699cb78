"""DAG integrity: every DAG imports cleanly, is wired in order with the settings operators
expect (retries, timeouts, alerts, tags), its business dates resolve right, and parsing the
folder imports nothing heavy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from omni import orchestration, tables
from omni.config import load_settings

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
DAG_IDS = {"omni_nightly", "omni_models", "omni_maintenance", "omni_erasure"}
LAKEHOUSE_ORDER = [
    "business_dates",
    "bronze_ingest",
    "validate_bronze",
    "silver",
    "validate_silver",
    "gold",
    "validate_gold",
]
MODEL_ORDER = ["business_dates", "train_models", "score_customers"]
# After scoring and its gate, the feed and monitoring run side by side, the campaigns' readout
# after the feed's assignments; one gate checks all three.
MODEL_OUTPUTS = ["personalize", "monitor_models"]
GOLD_PUBLISHED = {"gold.customer_profile", "gold.customer_features", "gold.daily_channel_kpis"}
# The gates: Python steps that read the audit the job before them recorded.
LAKEHOUSE_GATES = {"validate_bronze", "validate_silver", "validate_gold"}
MODEL_GATES = {"validate_scores", "validate_model_outputs"}
GATES = LAKEHOUSE_GATES | MODEL_GATES


@pytest.fixture(scope="module")
def dag_bag():
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.models import DagBag

    return DagBag(dag_folder=str(DAGS))


def _parse_in_subprocess(code: str, **env: str) -> dict:
    """Run ``code`` after filling a DagBag from the folder in a fresh interpreter."""
    prelude = (
        "import json, sys; from airflow.models import DagBag; "
        f"bag = DagBag(dag_folder={str(DAGS)!r}); "
    )
    full_env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **env}
    out = subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        env=full_env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert set(dag_bag.dag_ids) == DAG_IDS


def test_every_dag_has_the_operational_settings(dag_bag):
    for dag_id in DAG_IDS:
        dag = dag_bag.dags[dag_id]
        assert "omnichannel" in dag.tags, dag_id
        assert dag.catchup is False and dag.max_active_runs == 1, dag_id
        assert dag.max_active_tasks == 1, dag_id  # one JVM on the embedded Derby catalog
        assert dag.doc_md and dag.doc_md.lstrip().startswith("### Omni-channel"), dag_id
        for task in dag.tasks:
            assert task.owner == "data-engineering", task.task_id
            # A gate that failed on the data would fail again: it does not retry.
            assert task.retries == (0 if task.task_id in GATES else 1), task.task_id
            assert task.retry_exponential_backoff, task.task_id
            assert task.execution_timeout is not None and task.execution_timeout.seconds > 0
            assert orchestration.on_task_failure in task.on_failure_callback, task.task_id
            assert orchestration.on_task_retry in task.on_retry_callback, task.task_id


def test_the_lakehouse_dag_runs_in_order_and_publishes_the_gold_assets(dag_bag):
    dag = dag_bag.dags["omni_nightly"]
    assert dag.task_ids == LAKEHOUSE_ORDER or sorted(dag.task_ids) == sorted(LAKEHOUSE_ORDER)
    for upstream, downstream in zip(LAKEHOUSE_ORDER[:-1], LAKEHOUSE_ORDER[1:], strict=True):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    assert set(dag.params) == {"start_date", "end_date"}
    publisher = dag.get_task("validate_gold")
    assert {asset.name for asset in publisher.outlets} == GOLD_PUBLISHED
    # Only the validated gold tables are published, and the gate covers exactly them.
    assert [t for t in dag.tasks if t.outlets] == [publisher]
    assert publisher.python_callable.gate_tables == [t.name for t in tables.GOLD_PUBLISHED]
    assert publisher._post_execute_hook == orchestration.publish_dates
    # The gates are Python steps, no Spark job: the jobs validated their batches themselves.
    assert {t.task_id for t in dag.tasks if not hasattr(t, "_conn_id")} == {
        "business_dates",
        *LAKEHOUSE_GATES,
    }
    backfilled = {
        t.task_id for t in dag.tasks if "--start-date" in getattr(t, "application_args", [])
    }
    assert backfilled == {"gold"}


def test_the_model_dag_is_scheduled_on_the_published_gold_assets(dag_bag):
    lakehouse, models = dag_bag.dags["omni_nightly"], dag_bag.dags["omni_models"]
    condition = models.timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"
    assert set(condition.objects) == set(lakehouse.get_task("validate_gold").outlets)
    for upstream, downstream in zip(MODEL_ORDER[:-1], MODEL_ORDER[1:], strict=True):
        assert models.get_task(downstream).upstream_task_ids == {upstream}
    assert models.get_task("validate_scores").upstream_task_ids == {"score_customers"}
    for task in MODEL_OUTPUTS:
        assert models.get_task(task).upstream_task_ids == {"validate_scores"}
    assert models.get_task("campaign_readout").upstream_task_ids == {"personalize"}
    assert models.get_task("validate_model_outputs").upstream_task_ids == {
        "campaign_readout",
        "monitor_models",
    }
    # Each job audits its own output: the gates are Python steps reading what it recorded.
    gates = {
        t.task_id: getattr(t.python_callable, "gate_tables", None)
        for t in models.tasks
        if not hasattr(t, "_conn_id")
    }
    assert gates == {
        "business_dates": None,
        "validate_scores": ["gold.customer_scores"],
        "validate_model_outputs": [
            "gold.personalization_feed",
            "gold.campaign_assignments",
            "gold.campaign_readout",
            "gold.model_monitoring",
        ],
    }


def test_maintenance_is_weekly_and_erasure_takes_the_identifier_as_a_param(dag_bag):
    maintenance = dag_bag.dags["omni_maintenance"]
    assert maintenance.timetable.expression == "0 5 * * 0"
    [job] = maintenance.tasks
    assert job.application.endswith("jobs/maintenance.py")
    assert "--retention-hours" in job.application_args
    assert maintenance.params["retention_hours"] == 168
    erasure = dag_bag.dags["omni_erasure"]
    assert type(erasure.timetable).__name__ == "NullTimetable"
    assert set(erasure.params) == {"identifier_type", "identifier", "landing"}
    assert erasure.params["landing"] == "report"  # the landing zone is the source systems'
    [job] = erasure.tasks
    assert job.application_args[-2:] == ["--landing", "{{ params.landing }}"]
    # The identifier travels in the job's environment, never on the command line.
    assert job.env_vars["OMNI_ERASE_IDENTIFIER"] == "{{ params.identifier }}"
    assert not any("params.identifier }}" in arg for arg in job.application_args)


def test_every_job_is_a_delta_spark_submit_through_spark_default(dag_bag):
    jobs = [
        t
        for d in dag_bag.dags.values()
        for t in d.tasks
        if t.task_id != "business_dates" and t.task_id not in GATES
    ]
    # bronze, silver, gold; train, score, personalize, readout, monitor; maintenance; erasure
    assert len(jobs) == 10
    for task in jobs:
        assert task._conn_id == "spark_default"
        assert isinstance(task, orchestration.DeltaSparkSubmitOperator)
        assert task.jars is None  # found when the task runs, on the worker
        assert task.conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
        assert Path(task.application).exists()
        assert task.application_args[0] == "--date"
        assert task.application_args[2:4] == ["--run-id", "{{ run_id }}"]
        assert task.env_vars["PYSPARK_PYTHON"]


def test_the_nightly_hour_and_time_zone_come_from_the_environment():
    code = (
        "t = bag.dags['omni_nightly'].timetable; m = bag.dags['omni_maintenance'].timetable; "
        "print(json.dumps([t.expression, str(t.timezone), m.expression, "
        "bag.dags['omni_models'].tasks[0].retries]))"
    )
    got = _parse_in_subprocess(
        code,
        OMNI_NIGHTLY_AT="02:30",
        OMNI_MAINTENANCE_AT="23:15",
        OMNI_TIMEZONE="Europe/Paris",
        OMNI_TASK_RETRIES="3",
    )
    assert got == ["30 2 * * *", "Europe/Paris", "15 23 * * 0", 3]


def test_only_the_shared_catalog_runs_tasks_side_by_side():
    """The embedded profile: one task at a time, every Spark task in the one-slot catalog pool
    (Derby admits one JVM). The PostgreSQL profile: the models' fan-out (personalize beside
    monitoring) may run at once, in Airflow's default pool, across DAGs too."""
    code = (
        "print(json.dumps({d.dag_id: [d.max_active_tasks, sorted({t.pool for t in d.tasks "
        "if hasattr(t, '_conn_id')})] for d in bag.dags.values()}))"
    )
    embedded = _parse_in_subprocess(code)
    shared = _parse_in_subprocess(code, OMNI_PROFILE="postgresql")
    assert embedded == {dag_id: [1, [orchestration.CATALOG_POOL]] for dag_id in DAG_IDS}
    active = orchestration.SHARED_CATALOG_ACTIVE_TASKS
    assert shared == {dag_id: [active, ["default_pool"]] for dag_id in DAG_IDS}
    assert active >= 2


def test_parsing_the_dag_folder_needs_neither_the_jar_cache_nor_the_lakehouse(tmp_path):
    """A DAG processor on another host has the repository but not the JARs or the data."""
    code = "print(json.dumps({'errors': list(bag.import_errors), 'dags': sorted(bag.dag_ids)}))"
    result = _parse_in_subprocess(
        code,
        OMNI_JAR_DIR=str(tmp_path / "no-jars"),
        OMNI_LAKEHOUSE_DIR=str(tmp_path / "no-lakehouse"),
        OMNI_LANDING_DIR=str(tmp_path / "no-landing"),
    )
    assert result == {"errors": [], "dags": sorted(DAG_IDS)}
    assert not (tmp_path / "no-lakehouse").exists()
    # When the task runs, the worker's JARs are named; without them, the cache is.
    jars = orchestration.job_jars(load_settings({}))
    assert "delta-spark" in jars and "delta-storage" in jars
    with pytest.raises(FileNotFoundError, match="no Delta JARs under .*no-jars: run 'make setup'"):
        orchestration.job_jars(load_settings({"OMNI_JAR_DIR": str(tmp_path / "no-jars")}))


def test_parsing_the_dag_folder_imports_no_heavy_library():
    code = (
        "heavy = [m for m in ('pyspark', 'mlflow', 'great_expectations', 'sklearn', 'pandas') "
        "if m in sys.modules]; "
        "print(json.dumps({'errors': list(bag.import_errors), 'heavy': heavy, "
        "'dags': sorted(bag.dag_ids)}))"
    )
    result = _parse_in_subprocess(code)
    assert result == {"errors": [], "heavy": [], "dags": sorted(DAG_IDS)}


def _context(run_type: str, logical: datetime | None, run_after: datetime | None = None):
    dag_run = SimpleNamespace(run_type=run_type, run_after=run_after or logical)
    return {"dag_run": dag_run, "logical_date": logical}


@pytest.mark.parametrize(
    "zone, logical, expected",
    [
        # 03:00 in Tokyo is 18:00 UTC the day before: the day that ended is the 23rd.
        ("Asia/Tokyo", datetime(2026, 11, 23, 18, 0, tzinfo=UTC), date(2026, 11, 23)),
        ("UTC", datetime(2026, 11, 24, 3, 0, tzinfo=UTC), date(2026, 11, 23)),
        ("America/New_York", datetime(2026, 11, 24, 8, 0, tzinfo=UTC), date(2026, 11, 23)),
    ],
)
def test_a_scheduled_run_processes_the_day_that_ended_in_its_time_zone(zone, logical, expected):
    settings = load_settings({"OMNI_TIMEZONE": zone})
    assert orchestration.run_date(_context("scheduled", logical), settings) == expected


def test_a_manual_run_processes_its_logical_date_or_the_day_it_was_triggered():
    settings = load_settings({"OMNI_TIMEZONE": "Asia/Tokyo"})
    logical = datetime(2026, 10, 31, tzinfo=UTC)
    assert orchestration.run_date(_context("manual", logical), settings) == date(2026, 10, 31)
    later = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    assert orchestration.run_date(_context("manual", None, later), settings) == date(2026, 11, 2)


def test_params_give_a_backfill_range_and_bad_ones_are_named():
    default = date(2026, 10, 31)
    assert orchestration.date_range({}, default) == {
        "start_date": "2026-10-31",
        "end_date": "2026-10-31",
    }
    assert orchestration.date_range({"start_date": "2026-10-01", "end_date": None}, default) == {
        "start_date": "2026-10-01",
        "end_date": "2026-10-31",
    }
    with pytest.raises(ValueError, match="start_date 2026-11-05 is after end_date 2026-10-31"):
        orchestration.date_range({"start_date": "2026-11-05"}, default)
    with pytest.raises(ValueError, match=r"param end_date='31/10/2026': expected a date"):
        orchestration.date_range({"end_date": "31/10/2026"}, default)


def test_erasure_identifier_types_match_the_identity_graph():
    from omni.transforms.identity import TYPE_ORDER

    assert set(TYPE_ORDER) < set(tables.ERASURE_IDENTIFIER_TYPES)


@pytest.fixture
def mailbox():
    """A real SMTP server on 127.0.0.1 that keeps every message it receives."""
    from email import message_from_bytes

    from aiosmtpd.controller import Controller

    received = []

    class Keep:
        async def handle_DATA(self, server, session, envelope):
            received.append(message_from_bytes(envelope.content))
            return "250 OK"

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


AIRFLOW = str(Path(sys.executable).parent / "airflow")


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    """An Airflow home whose database ``tools/airflow_db.sh`` made, as ``make`` does."""
    root = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(root / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow.db'}",
        "OMNI_LAKEHOUSE_DIR": str(root / "lakehouse"),
    }
    subprocess.run([str(REPO / "tools" / "airflow_db.sh")], env=env, check=True)
    return env


def test_the_airflow_database_has_the_one_slot_pool_of_every_spark_task(airflow_env, dag_bag):
    got = subprocess.run(
        [AIRFLOW, "pools", "get", orchestration.CATALOG_POOL, "--output", "json"],
        env=airflow_env,
        capture_output=True,
        text=True,
        check=True,
    )
    [pool] = json.loads(got.stdout)
    assert int(pool["slots"]) == 1
    spark_tasks = [t for d in dag_bag.dags.values() for t in d.tasks if hasattr(t, "_conn_id")]
    assert spark_tasks and {t.pool for t in spark_tasks} == {orchestration.CATALOG_POOL}


def test_a_failed_run_logs_a_summary_and_mails_it(airflow_env, mailbox):
    """A backfill range that ends before it starts fails the first task, for good: the
    failure callback logs the summary and mails ``OMNI_ALERT_EMAIL``; nothing else runs."""
    port, received = mailbox
    env = {
        **airflow_env,
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_ssl": True, "disable_tls": True},
            }
        ),
        "OMNI_ALERT_EMAIL": "ops@shop.example",
        "OMNI_TASK_RETRIES": "0",
    }
    conf = json.dumps({"start_date": "2026-11-05", "end_date": "2026-10-31"})
    result = subprocess.run(
        [AIRFLOW, "dags", "test", "omni_nightly", "2026-10-31", "-c", conf],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "OMNI TASK FAILED\nTask business_dates of DAG omni_nightly failed for good" in output
    assert "start_date 2026-11-05 is after end_date 2026-10-31" in output
    assert "Spark-Submit cmd" not in output  # nothing downstream ran
    [mail] = received
    assert mail["To"] == "ops@shop.example"
    assert mail["Subject"].startswith("[omni] omni_nightly.business_dates failed (manual__")
    [body] = [part for part in mail.walk() if part.get_content_type() == "text/html"]
    text = body.get_payload(decode=True).decode()
    assert "start_date 2026-11-05 is after end_date 2026-10-31" in text
    assert "try: 1 of 1" in text


def test_a_date_the_landing_zone_does_not_hold_fails_the_run_with_the_reason(airflow_env, tmp_path):
    """A history date before 2026 used to create a DAG run with no task (before the DAGs'
    start_date), marked successful in a second. Now the run has its tasks, and the first one
    fails: the landing zone holds nothing for the date, and it says what it does hold."""
    landing = tmp_path / "landing"
    day = landing / "ecommerce" / "events" / "dt=2026-01-05"
    day.mkdir(parents=True)
    (day / "part-00000.jsonl").write_text("{}\n")
    (day / "_SUCCESS").touch()
    env = {**airflow_env, "OMNI_LANDING_DIR": str(landing), "OMNI_TASK_RETRIES": "0"}
    for dag_id in ("omni_nightly", "omni_models"):
        result = subprocess.run(
            [AIRFLOW, "dags", "test", dag_id, "2024-09-30"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert f"Task business_dates of DAG {dag_id} failed for good" in output
        assert (
            "business date 2024-09-30: no source has a complete delivery folder for it in "
            f"{landing}; complete deliveries run from 2026-01-05 to 2026-01-05"
        ) in output
        assert "Spark-Submit cmd" not in output


def test_every_dag_accepts_any_date_of_a_retailers_history(dag_bag):
    for dag_id in DAG_IDS:
        assert dag_bag.dags[dag_id].start_date <= datetime(2000, 1, 1, tzinfo=UTC), dag_id


def test_secrets_stay_out_of_the_jobs_rendered_environment():
    """Job environments are rendered into Airflow's database and, on YARN and Kubernetes,
    onto the spark-submit command line: settings go there, secrets do not."""
    code = (
        "envs = [t.env_vars for d in bag.dags.values() for t in d.tasks "
        "if hasattr(t, 'env_vars')]; "
        "print(json.dumps(sorted({k for e in envs for k in e})))"
    )
    names = _parse_in_subprocess(
        code,
        OMNI_HASH_KEY="a-real-secret",
        OMNI_CHURN_HORIZON_DAYS="21",
        AWS_SECRET_ACCESS_KEY="x",
        HADOOP_CONF_DIR="/etc/hadoop",
    )
    assert {"OMNI_CHURN_HORIZON_DAYS", "HADOOP_CONF_DIR", "PYSPARK_PYTHON", "PATH"} <= set(names)
    assert "OMNI_HASH_KEY" not in names and "AWS_SECRET_ACCESS_KEY" not in names
