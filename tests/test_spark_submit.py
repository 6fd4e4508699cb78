"""The jobs as the DAGs submit them: on a real Spark standalone cluster, and killed mid-write.

Both compare with one uninterrupted local-mode run of the same sample, in-process.

* **Cluster**: a master and a worker start on 127.0.0.1 from the pip-installed Spark, and
  ``airflow dags test`` runs ``omni_nightly`` with nothing changed but the ``spark_default``
  connection (``spark://127.0.0.1:7077``). Bronze, silver and gold are each a ``spark-submit``
  whose executors run in the worker's JVMs, with the Delta JARs and the project's code shipped
  with the job. The validation tasks are marked done without running, to keep the test short
  (the end-to-end test runs them). The cluster's lakehouse is given as a ``file://`` URI, the
  way a lakehouse on object storage is (``s3a://...``), with the embedded catalog in a folder
  of its own (``OMNI_METASTORE_DIR``).
* **Safe retries**: bronze, then silver, run with ``spark-submit`` on ``local[2]``. The
  spark-submit process (the driver's JVM) gets SIGKILL as soon as the job's first data file
  appears in the lakehouse: its write is cut off before or just after that file's commit, and
  the job's other tables are not written at all. Then the job runs again, as Airflow retries a
  task, with the same run id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from jobs.bronze_ingest import ingest_all
from jobs.gold import build_gold
from jobs.silver import run_silver
from omni import tables
from omni.sample import SampleSpec, generate_sample
from omni.sparkconf import spark_submit_command
from omni.standalone import standalone_cluster
from tests.conftest import job_environment, table_contents

REPO = Path(__file__).resolve().parent.parent
RUN_DATE = date(2026, 5, 10)
START_DATE = date(2026, 5, 8)
RUN_ID = "scheduled__2026-05-11T03:00:00+00:00"
CLUSTER_JOBS = {"omni.bronze_ingest", "omni.silver", "omni.gold"}


def _names(*layers: str) -> list[str]:
    return [t.name for t in tables.ALL_TABLES if t.layer in layers]


@pytest.fixture(scope="module")
def uninterrupted(spark, settings, tmp_path_factory):
    """The sample and its local-mode night (a three-day backfill of gold), in-process."""
    root = tmp_path_factory.mktemp("submitted")
    generate_sample(
        root / "landing",
        SampleSpec(customers=40, days=12, end_date=RUN_DATE, seed=21, bad_rate=0.01),
    )
    local = replace(settings, landing_dir=root / "landing", lakehouse_dir=root / "local")
    ingest_all(spark, local, RUN_DATE, RUN_ID)
    run_silver(spark, local, RUN_ID, RUN_DATE)
    build_gold(spark, local, RUN_DATE, RUN_ID, START_DATE)
    return root, local


def _environment(settings, **extra: str) -> dict[str, str]:
    return job_environment(
        {
            "OMNI_LANDING_DIR": str(settings.landing_dir),
            "OMNI_LAKEHOUSE_DIR": settings.lakehouse_location,
            "OMNI_SHUFFLE_PARTITIONS": str(settings.spark_shuffle_partitions),
            **extra,
        }
    )


@pytest.fixture(scope="module")
def on_cluster(uninterrupted):
    root, local = uninterrupted
    lake = replace(local, lakehouse_dir=root / "on-cluster")
    airflow = str(Path(sys.executable).parent / "airflow")
    with standalone_cluster(root / "spark", cores=2, memory="3g") as cluster:
        env = _environment(
            replace(lake, lakehouse_uri=lake.lakehouse_dir.as_uri()),
            OMNI_METASTORE_DIR=str(root / "on-cluster-catalog"),
            AIRFLOW_HOME=str(root / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{root / 'airflow.db'}",
            AIRFLOW_CONN_SPARK_DEFAULT=json.dumps(
                {"conn_type": "spark", "host": cluster.master_url}
            ),
            OMNI_TASK_RETRIES="0",
        )
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        conf = json.dumps({"start_date": str(START_DATE)})
        result = subprocess.run(
            [airflow, "dags", "test", "omni_nightly", str(RUN_DATE), "-c", conf],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        (root / "dags-test.log").write_text(result.stdout + result.stderr)
        with urllib.request.urlopen(f"{cluster.ui_url}/json/", timeout=5) as page:
            master_state = json.load(page)
    assert result.returncode == 0, f"airflow dags test failed:\n{result.stderr[-4000:]}"
    return lake, master_state, result.stdout + result.stderr


def test_the_nightly_jobs_ran_on_the_cluster(on_cluster):
    _, master, log = on_cluster
    finished = {app["name"]: app for app in master["completedapps"]}
    assert set(finished) == CLUSTER_JOBS  # the gates read the jobs' audits: no Spark app
    for name in CLUSTER_JOBS:
        assert finished[name]["cores"] >= 1 and finished[name]["state"] == "FINISHED"
    # Each job shipped the project's code to its executors, and submitted with Delta's JARs.
    assert log.count("to the executors of spark://127.0.0.1:7077") == len(CLUSTER_JOBS)
    assert log.count("--master spark://127.0.0.1:7077") == len(CLUSTER_JOBS)


def test_a_lakehouse_given_as_a_uri_keeps_tables_there_and_the_catalog_local(
    spark, uninterrupted, on_cluster
):
    root, _ = uninterrupted
    lake, _, _ = on_cluster
    catalog = root / "on-cluster-catalog"
    assert (catalog / "metastore_db").is_dir()  # the catalog went where OMNI_METASTORE_DIR said
    assert not (lake.lakehouse_dir / "_metastore").exists()
    assert (lake.lakehouse_dir / "gold" / "customer_profile" / "_delta_log").is_dir()
    assert (lake.lakehouse_dir / "_checkpoints").is_dir()  # silver's, beside the tables
    # The catalog the jobs wrote registers every table they wrote at its place under the URI.
    registered = _catalog_locations(catalog / "metastore_db")
    published = {table.name for table in tables.GOLD_PUBLISHED}
    assert {*_names("bronze", "silver"), tables.QUARANTINE_RECORDS.name, *published} <= set(
        registered
    )
    for name, location in registered.items():
        layer, table = name.split(".")
        assert location == f"file:{lake.lakehouse_dir / layer / table}", name


def _catalog_locations(metastore_db: Path) -> dict[str, str]:
    """``<layer>.<table>`` -> location, read from the Derby catalog with Derby's own ``ij``."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    classpath = ":".join(str(jar) for jar in jars.glob("derby*.jar"))
    script = (
        f"connect 'jdbc:derby:{metastore_db}';\n"
        # A Spark data source table keeps its location in the storage properties.
        "select d.NAME || '.' || t.TBL_NAME || '|' || cast(p.PARAM_VALUE as varchar(2000)) "
        "from TBLS t join DBS d on t.DB_ID = d.DB_ID join SDS s on t.SD_ID = s.SD_ID "
        "join SERDE_PARAMS p on p.SERDE_ID = s.SERDE_ID where p.PARAM_KEY = 'path';\n"
    )
    result = subprocess.run(
        ["java", "-Dij.maximumDisplayWidth=2000", "-cp", classpath, "org.apache.derby.tools.ij"],
        input=script,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.strip().split("|") for line in result.stdout.splitlines() if "|" in line]
    return {name: location.strip() for name, location in rows}


def test_silver_and_gold_on_the_cluster_equal_local_mode(spark, uninterrupted, on_cluster):
    _, local = uninterrupted
    lake, _, _ = on_cluster
    for name in _names("silver", "gold", "quarantine"):
        expected = table_contents(spark, local.lakehouse_dir, name)
        assert table_contents(spark, lake.lakehouse_dir, name) == expected, name
    features = table_contents(spark, lake.lakehouse_dir, "gold.customer_features")
    assert len(features) > 3 * 30  # three backfilled days of some 40 customers


def _data_files(lakehouse: Path, layers: tuple[str, ...]) -> set[Path]:
    return {p for layer in layers for p in (lakehouse / layer).rglob("*.parquet")}


def _kill_when_writing(command, env, lakehouse: Path, layers, log: Path) -> None:
    """Start the job; SIGKILL its spark-submit process once it writes its first data file."""
    before = _data_files(lakehouse, layers)
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 600
        while not _data_files(lakehouse, layers) - before:
            if process.poll() is not None:
                pytest.fail(f"the job ended before it wrote anything (see {log})")
            if time.monotonic() > deadline:
                pytest.fail(f"the job wrote nothing in 10 minutes (see {log})")
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)  # kill -9 of spark-submit
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        # The driver's Python process loses its JVM and exits; make sure nothing lingers.
        time.sleep(2)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_job_killed_mid_write_and_run_again_leaves_the_tables_of_an_uninterrupted_run(
    spark, uninterrupted
):
    root, local = uninterrupted
    # Submitted with the JVM options of the tests' jobs (tests/conftest.py), as the DAGs do.
    killed = replace(
        local,
        lakehouse_dir=root / "killed",
        spark_java_options=os.environ.get("OMNI_SPARK_JAVA_OPTIONS", ""),
    )
    env = _environment(killed)
    wanted = {
        t: table_contents(spark, local.lakehouse_dir, t, keep_run_ids=True)
        for t in _names("bronze", "silver", "quarantine")
    }
    for job, layers in (
        ("jobs/bronze_ingest.py", ("bronze",)),
        ("jobs/silver.py", ("silver", "quarantine")),
    ):
        command = spark_submit_command(
            killed, job, "--date", str(RUN_DATE), "--run-id", RUN_ID, master="local[2]"
        )
        name = Path(job).stem
        _kill_when_writing(command, env, killed.lakehouse_dir, layers, root / f"{name}-kill.log")
        cut_off = {
            t: table_contents(spark, killed.lakehouse_dir, t, keep_run_ids=True)
            for t in _names(*layers)
        }
        assert cut_off != {t: wanted[t] for t in cut_off}, (
            f"{name} finished before the kill: nothing was cut off"
        )
        with (root / f"{name}-retry.log").open("w") as out:  # the retry
            retried = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        assert retried.returncode == 0, (root / f"{name}-retry.log").read_text()[-3000:]
    for name, expected in wanted.items():
        got = table_contents(spark, killed.lakehouse_dir, name, keep_run_ids=True)
        assert got == expected, name
    assert table_contents(spark, local.lakehouse_dir, "silver.pos_lines")


def test_a_job_reports_what_it_paid_before_its_data(settings, tmp_path):
    """Under spark-submit the JVM starts first, then the Python driver: a job's report counts
    the seconds from the JVM's start to the job's, and the Spark session's."""
    lake = settings.with_local_lakehouse(tmp_path / "lake")
    command = spark_submit_command(
        lake, "bench/noop_job.py", "--date", "2026-11-01", "--run-id", "costs", master="local[2]"
    )
    started = time.monotonic()
    result = subprocess.run(
        command,
        env=_environment(lake),
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [report] = [json.loads(line) for line in result.stdout.splitlines() if '"fixed_costs"' in line]
    costs = report["fixed_costs"]
    # The JVM and Python start-up come before the job, the session and the work after it.
    assert 1 < costs["process_start_to_job"] < wall - report["seconds"] + 1
    assert 0 < costs["spark_session"] < report["seconds"]
