"""Orchestration benchmark: the nightly DAGs in local mode and on a standalone cluster, and what
``spark-submit`` costs per task.

In one run, on the default sample (``make sample``'s 2,000 customers and 120 days, unless
``--customers``/``--days`` say otherwise), in temp folders:

* ``spark-submit overhead``: the median wall time of ``--repeat`` submissions of a job that
  does nothing but what every job does: start the JVM and Python, build the Delta session,
  count one row, stop (``bench/noop_job.py``). Every task pays it; a task's own work, from
  opening the catalog on, is the rest.
* ``nightly local`` and ``nightly standalone``: ``airflow dags test`` of ``omni_nightly`` then
  ``omni_models`` for the sample's last date with ``spark_default`` on ``local[*]``, then on
  a master and a worker started on 127.0.0.1 (``omni.standalone``), each from an empty
  lakehouse and registry. The times per task come from Airflow's database.
* ``nightly production``: the same on ``local[*]`` under the PostgreSQL profile, on a local
  server this benchmark starts: the Spark catalog, Airflow and MLflow in PostgreSQL.

Each column also has every job's ``fixed_costs`` (``omni.costs``): the seconds from its JVM's
start to the job's, the Spark session, the catalog look-ups, the Great Expectations import and
context, and the job's own seconds.

It prints a JSON report with the ratios standalone/local and production/local:

    python -m bench.orchestration [--customers 2000 --days 120] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from omni import postgres
from omni.config import REPO_ROOT, PostgresServer, load_settings
from omni.sample import SampleSpec, generate_sample, latest_ready_date
from omni.sparkconf import spark_submit_command
from omni.standalone import standalone_cluster

BIN = Path(sys.executable).parent
NOOP_JOB = "bench/noop_job.py"


def _environment(root: Path, master: str, profile: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": master}),
        "OMNI_LANDING_DIR": str(root.parent / "landing"),
        "OMNI_LAKEHOUSE_DIR": str(root / "lakehouse"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
        "OMNI_MLFLOW_ARTIFACTS_DIR": str(root / "mlflow" / "artifacts"),
        "OMNI_TASK_RETRIES": "0",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        **(profile or {}),
    }


@contextmanager
def postgres_profile(root: Path):
    """A local PostgreSQL server in ``root`` and the PostgreSQL profile's variables on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = PostgresServer(host="127.0.0.1", port=port, user="omni")
    folder = Path(tempfile.mkdtemp(prefix="omni-bench-pg-"))  # the server's user must enter it
    folder.chmod(0o755)
    postgres.start_local(folder / "data", server, durable=False)
    try:
        postgres.wait_until_answering(server)
        settings = load_settings(
            {"OMNI_PROFILE": "postgresql", "PGHOST": server.host, "PGPORT": str(port)}
        )
        postgres.setup(settings)
        yield postgres.profile_environment(settings)
    finally:
        postgres.stop_local(folder / "data", "immediate")
        shutil.rmtree(folder, ignore_errors=True)


def _task_seconds(env: dict[str, str]) -> dict[str, float]:
    """Each task's wall seconds, by DAG and task, from Airflow's database (SQLite or not)."""
    engine = create_engine(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    with engine.connect() as db:
        found = db.execute(
            text(
                "SELECT dag_id, task_id, start_date, end_date FROM task_instance "
                "ORDER BY start_date"
            )
        ).fetchall()
    engine.dispose()

    def moment(value) -> datetime:
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))

    # Keyed by DAG and task: both DAGs have a ``business_dates`` task.
    return {
        f"{dag}.{task}": round((moment(end) - moment(start)).total_seconds(), 1)
        for dag, task, start, end in found
    }


def submit_overhead(root: Path, master: str, repeat: int) -> list[float]:
    """Wall seconds of each submission of the no-op job."""
    settings = load_settings().with_local_lakehouse(root / "noop-lakehouse")
    command = spark_submit_command(
        settings, NOOP_JOB, "--date", "2026-11-01", "--run-id", "bench", master=master
    )
    env = {**_environment(root, master), "OMNI_LAKEHOUSE_DIR": str(settings.lakehouse_dir)}
    seconds = []
    for _ in range(repeat):
        started = time.monotonic()
        subprocess.run(command, env=env, check=True, capture_output=True)
        seconds.append(round(time.monotonic() - started, 1))
    return seconds


def fixed_costs(log: str) -> dict[str, dict]:
    """Each job's ``fixed_costs`` (``omni.costs``), by job, from the counts it printed."""
    decoder = json.JSONDecoder()
    found = {}
    for line in log.splitlines():
        if '"fixed_costs"' in line and '{"' in line:
            counts, _ = decoder.raw_decode(line[line.index('{"') :])
            found[counts["job"]] = {**counts["fixed_costs"], "job_seconds": counts["seconds"]}
    return found


def nightly(root: Path, master: str, day: str, profile: dict[str, str] | None = None) -> dict:
    """Both DAGs through ``airflow dags test``; wall seconds in all and per task, and what
    each job paid before and besides its data work."""
    env = _environment(root, master, profile)
    (root / "airflow").mkdir(parents=True)
    airflow = str(BIN / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    started = time.monotonic()
    costs: dict[str, dict] = {}
    for dag_id in ("omni_nightly", "omni_models"):
        result = subprocess.run(
            [airflow, "dags", "test", dag_id, day], env=env, capture_output=True, text=True
        )
        (root / f"{dag_id}.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"{dag_id} failed on {master}; see {root / f'{dag_id}.log'}")
        costs.update(fixed_costs(result.stdout + result.stderr))
    total = time.monotonic() - started
    return {"seconds": round(total, 1), "tasks": _task_seconds(env), "fixed_costs": costs}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=SampleSpec.customers)
    parser.add_argument("--days", type=int, default=SampleSpec.days)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--memory", default="6g", help="the worker's memory for executors")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="omni-bench-orchestration-"))
    landing = work / "landing"
    generate_sample(landing, SampleSpec(customers=args.customers, days=args.days))
    day = str(latest_ready_date(landing))
    report: dict = {"customers": args.customers, "days": args.days, "date": day}
    overhead = {"local": submit_overhead(work / "local", "local[*]", args.repeat)}
    report["local"] = nightly(work / "local", "local[*]", day)
    with standalone_cluster(work / "spark", cores=args.cores, memory=args.memory) as cluster:
        overhead["standalone"] = submit_overhead(
            work / "standalone", cluster.master_url, args.repeat
        )
        report["standalone"] = nightly(work / "standalone", cluster.master_url, day)
    with postgres_profile(work / "postgres") as profile:
        report["production"] = nightly(work / "production", "local[*]", day, profile)
    report["spark_submit_overhead_seconds"] = {
        mode: {"runs": runs, "median": statistics.median(runs)} for mode, runs in overhead.items()
    }
    # The business_dates tasks submit nothing; every other task is a spark-submit.
    tasks = sum(not task.endswith(".business_dates") for task in report["local"]["tasks"])
    local_overhead = report["spark_submit_overhead_seconds"]["local"]["median"]
    report["ratios"] = {
        "nightly_standalone_over_local": round(
            report["standalone"]["seconds"] / report["local"]["seconds"], 2
        ),
        "nightly_production_over_local": round(
            report["production"]["seconds"] / report["local"]["seconds"], 2
        ),
        "local_overhead_share_of_nightly": round(
            tasks * local_overhead / report["local"]["seconds"], 2
        ),
    }
    report["work_dir"] = str(work)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
