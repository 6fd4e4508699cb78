"""What every DAG of the project is built from: schedules, task defaults, dates, alerts, jobs.

Imported by the files in ``dags/`` at parse time, so it loads Airflow and the project's
settings only: no Spark, MLflow or Great Expectations (``tests/test_dags.py`` checks it).

Business dates: a scheduled nightly run processes the day that has just ended in
``OMNI_TIMEZONE``; a manual run (``airflow dags trigger`` or ``airflow dags test DAG DATE``)
processes its logical date; the ``start_date``/``end_date`` params override both, and a range
is a backfill done by one DAG run. The first task of each DAG resolves them once
(``business_dates``), and every job reads them from its XCom.
"""

from __future__ import annotations

import html
import logging
import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset, CronTriggerTimetable, Param, get_current_context, task

from omni import tables
from omni.config import REPO_ROOT, Settings, parse_date
from omni.redact import describe_error
from omni.sparkconf import job_jars, spark_conf
from omni.suites import suite_tables

log = logging.getLogger("omni.orchestration")

SPARK_CONN_ID = "spark_default"
# Under the embedded profile every Spark task of every DAG takes the one slot of this pool
# (tools/airflow_db.sh creates it): the embedded Derby catalog admits one JVM at a time, so the
# weekly maintenance or an erasure waits for a nightly job instead of failing on a locked
# catalog. The PostgreSQL profile's metastore serves many JVMs: its tasks run in Airflow's
# default pool, side by side where the DAG allows, and Delta's optimistic concurrency control
# guards two writes to one table (omni.lakehouse retries a conflicting commit).
CATALOG_POOL = "omni_spark_catalog"
# Tasks of one DAG run at a time under the PostgreSQL profile (the models' fan-out has two).
SHARED_CATALOG_ACTIVE_TASKS = 4
OWNER = "data-engineering"
DATES_TASK = "business_dates"
# The resolved range, for templated job arguments.
END_DATE = "{{ ti.xcom_pull(task_ids='" + DATES_TASK + "')['end_date'] }}"
START_DATE = "{{ ti.xcom_pull(task_ids='" + DATES_TASK + "')['start_date'] }}"
# The day a run is for, in DAGs without business dates (maintenance, erasure).
RUN_DAY = "{{ (logical_date or dag_run.run_after) | ds }}"
# The gold tables the lakehouse DAG publishes (once validated) and the model DAG consumes.
GOLD_PUBLISHED = tables.GOLD_PUBLISHED
# Environment the jobs need from Airflow's: the project's settings and the interpreter. On YARN
# and Kubernetes the provider passes these as --conf on the command line, so secrets (the hash
# key, passwords, tokens) are never among them: the driver, on Airflow's machine in client
# mode, inherits them from Airflow's own environment.
FORWARDED_PREFIXES = ("OMNI_", "MLFLOW_", "GX_", "JAVA_", "SPARK_", "HADOOP_", "YARN_", "PG")
SECRET_MARKERS = ("KEY", "SECRET", "PASSWORD", "TOKEN", "CREDENTIAL")


def daily_at(settings: Settings, at: str, weekday: str = "*") -> CronTriggerTimetable:
    """A timetable firing at ``at`` (HH:MM) local time in ``settings.timezone``."""
    hour, minute = (int(part) for part in at.split(":"))
    return CronTriggerTimetable(f"{minute} {hour} * * {weekday}", timezone=settings.timezone)


# The earliest business date any DAG run may have: the contract's oldest valid timestamp.
# A DAG whose start_date is after a run's logical date creates that run with no task at all,
# and Airflow marks it successful: a retailer backfilling its history got green, empty runs.
EARLIEST_DATE = datetime(2000, 1, 1)


def dag_defaults(settings: Settings) -> dict[str, Any]:
    """What every DAG of the project shares: no catch-up, one active run, the task defaults.

    ``start_date`` is ``EARLIEST_DATE``, so any date of a retailer's history can be run; with
    ``catchup`` off the scheduler never runs the years before today by itself.

    Embedded profile, one task at a time: every job opens the embedded Derby catalog, which
    admits one JVM at a time (two side by side under a scheduler failed with ``XJ040``). DAGs
    that may overlap (maintenance or erasure during the nightly run) still can; see the
    README. The PostgreSQL profile runs independent tasks side by side.
    """
    return {
        "start_date": EARLIEST_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "max_active_tasks": SHARED_CATALOG_ACTIVE_TASKS if settings.shared_catalog else 1,
        "default_args": default_args(settings),
    }


def default_args(settings: Settings) -> dict[str, Any]:
    """Retries with exponential back-off, a timeout per task, and the failure alert."""
    return {
        "owner": OWNER,
        "retries": settings.task_retries,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(minutes=settings.task_timeout_minutes),
        "on_failure_callback": on_task_failure,
        "on_retry_callback": on_task_retry,
    }


def gold_assets(settings: Settings) -> list[Asset]:
    """One Airflow asset per published gold table: its registered name and Delta location."""
    return [
        Asset(name=table.name, uri=table.uri(settings.lakehouse_location), group="gold")
        for table in GOLD_PUBLISHED
    ]


def date_range_params() -> dict[str, Param]:
    return {
        "start_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="First business date of a backfill, YYYY-MM-DD (default: end_date).",
        ),
        "end_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last business date, YYYY-MM-DD (default: the run's date).",
        ),
    }


def run_date(context: dict[str, Any], settings: Settings) -> date:
    """The business date of a run without params: see the module's docstring."""
    dag_run = context["dag_run"]
    logical = context.get("logical_date")
    if dag_run.run_type == "scheduled" and logical is not None:
        local = logical.astimezone(_zone(settings))
        return local.date() - timedelta(days=1)
    moment = logical if logical is not None else dag_run.run_after
    return moment.date()


def date_range(params: dict[str, Any], default_end: date) -> dict[str, str]:
    """``start_date``..``end_date`` from the params, validated, as ISO strings."""
    end = _param_date(params, "end_date") or default_end
    start = _param_date(params, "start_date") or end
    if start > end:
        raise ValueError(
            f"start_date {start} is after end_date {end}: expected a range with start <= end"
        )
    return {"start_date": start.isoformat(), "end_date": end.isoformat()}


def landing_range(params: dict[str, Any], default_end: date, settings: Settings) -> dict[str, str]:
    """``date_range``, checked against the landing zone: a date it holds nothing for fails the
    run here, with the reason, instead of every job doing nothing and the run turning green."""
    from omni.landing import check_dates

    dates = date_range(params, default_end)
    last = check_dates(
        settings.landing_dir, parse_date(dates["start_date"]), parse_date(dates["end_date"])
    )
    log.info(
        "business dates %s to %s; last complete delivery per source: %s", *dates.values(), last
    )
    return dates


def triggering_end_date(context: dict[str, Any]) -> date | None:
    """The latest ``end_date`` carried by the asset events that triggered this run."""
    events = context.get("triggering_asset_events") or {}
    dates = [
        parse_date(event.extra["end_date"])
        for asset_events in events.values()
        for event in asset_events
        if (event.extra or {}).get("end_date")
    ]
    return max(dates) if dates else None


def publish_dates(context: dict[str, Any], result: Any) -> None:
    """``post_execute`` of the task that publishes the gold assets: the dates go with them."""
    dates = context["ti"].xcom_pull(task_ids=DATES_TASK)
    extra = {**dates, "run_id": context["run_id"]}
    for asset in context["task"].outlets:
        context["outlet_events"][asset].extra = extra


class DeltaSparkSubmitOperator(SparkSubmitOperator):
    """``spark-submit`` whose Delta JARs are found when the task runs, on the worker.

    Parsing the DAG folder needs neither the JAR cache nor the lakehouse: a DAG processor on
    another host parses the same files. A worker without the cache fails the task, naming it.
    """

    def execute(self, context: Any) -> None:
        from omni.config import load_settings

        self.jars = job_jars(load_settings())
        return super().execute(context)


def spark_job(
    settings: Settings,
    task_id: str,
    script: str,
    *args: str,
    date_arg: str = END_DATE,
    env: dict[str, str] | None = None,
    **operator_args: Any,
) -> SparkSubmitOperator:
    """``spark-submit`` of a job of the repository through the ``spark_default`` connection.

    Delta and the catalog are configured and the cached Delta JARs are shipped with the job
    (``--jars``, found when the task runs), so the same task runs on ``local[*]``, a
    standalone cluster, YARN or Kubernetes: only the connection changes. Jobs get the run's
    dates and id as arguments.
    """
    conf = spark_conf(settings, with_jars=False)
    return DeltaSparkSubmitOperator(
        task_id=task_id,
        application=str(REPO_ROOT / script),
        name=f"omni.{task_id}",
        conn_id=SPARK_CONN_ID,
        conf=conf,
        env_vars={**job_environment(), **(env or {})},
        application_args=["--date", date_arg, "--run-id", "{{ run_id }}", *args],
        **({} if settings.shared_catalog else {"pool": CATALOG_POOL}),
        **operator_args,
    )


def gate(
    task_id: str,
    layers: list[str],
    table_names: list[str] | None = None,
    **operator_args: Any,
):
    """The gate step of the layers the job before it wrote: it passes when that job's audit
    (``omni.publish``) validated every table of theirs with a suite and none failed a blocking
    expectation, which is when the job published its batches.

    It reads the recorded results (``omni.gates.layer_gate``) in the Airflow worker, with no
    Spark. A failure fails the task at once, without retries (the data would not change); the
    message says what failed and where the held batch is.
    """
    names = [table.name for table in suite_tables(layers, table_names)]

    def check() -> str:
        from airflow.sdk.exceptions import AirflowFailException

        from omni.config import load_settings
        from omni.gates import layer_gate

        context = get_current_context()
        dates = context["ti"].xcom_pull(task_ids=DATES_TASK)
        status = layer_gate(
            load_settings(), names, context["run_id"], parse_date(dates["end_date"])
        )
        if not status.passed:
            raise AirflowFailException(status.reason)
        log.info("%s", status.reason)
        return status.reason

    check.__doc__ = f"Gate of {', '.join(layers)}: {', '.join(names)}"
    check.gate_tables = names  # what it reads, for tests and tools that run the DAG's steps
    return task(task_id=task_id, retries=0, **operator_args)(check)()


def job_environment() -> dict[str, str]:
    """The jobs run on the interpreter Airflow runs on (the project's virtual env)."""
    python = os.environ.get("PYSPARK_PYTHON", sys.executable)
    return {
        **{
            k: v
            for k, v in os.environ.items()
            if (k.startswith(FORWARDED_PREFIXES) or k == "PYTHONPATH")
            and not any(marker in k.upper() for marker in SECRET_MARKERS)
        },
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": os.environ.get("PYSPARK_DRIVER_PYTHON", python),
        # spark-submit and its find-spark-home come from this interpreter's folder first.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def failure_summary(context: dict[str, Any]) -> str:
    ti = context["ti"]
    dates = _pulled_dates(ti)
    lines = [
        f"Task {ti.task_id} of DAG {ti.dag_id} failed for good",
        f"run: {context['run_id']}",
        f"business dates: {dates.get('start_date', '?')} to {dates.get('end_date', '?')}",
        f"try: {ti.try_number} of {ti.max_tries + 1}",
        f"error: {describe_error(context.get('exception'))}",
    ]
    return "\n".join(lines)


def on_task_failure(context: dict[str, Any]) -> None:
    """Log a clear summary of the failure; mail it to ``OMNI_ALERT_EMAIL`` when set.

    Mail goes through the Airflow connection ``smtp_default`` (``AIRFLOW_CONN_SMTP_DEFAULT``).
    """
    from omni.config import load_settings

    summary = failure_summary(context)
    log.error("OMNI TASK FAILED\n%s", summary)
    recipients = load_settings().alert_emails
    if not recipients:
        return
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    ti = context["ti"]
    notifier = SmtpNotifier(
        to=list(recipients),
        from_email=os.environ.get("OMNI_ALERT_FROM", "omni-airflow@localhost"),
        subject=f"[omni] {ti.dag_id}.{ti.task_id} failed ({context['run_id']})",
        html_content="<pre>" + html.escape(summary, quote=False) + "</pre>",
    )
    notifier.notify(context)
    log.info("failure alert mailed to %s", ", ".join(recipients))


def on_task_retry(context: dict[str, Any]) -> None:
    ti = context["ti"]
    log.warning(
        "OMNI TASK RETRY: %s.%s try %s of %s failed: %s",
        ti.dag_id,
        ti.task_id,
        ti.try_number,
        ti.max_tries + 1,
        describe_error(context.get("exception")),
    )


def _pulled_dates(ti) -> dict[str, str]:
    try:
        return ti.xcom_pull(task_ids=DATES_TASK) or {}
    except Exception:  # the failure report must not fail on a missing XCom
        return {}


def _param_date(params: dict[str, Any], name: str) -> date | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        return parse_date(str(value))
    except ValueError:
        raise ValueError(f"param {name}={value!r}: expected a date YYYY-MM-DD") from None


def _zone(settings: Settings):
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.timezone)
