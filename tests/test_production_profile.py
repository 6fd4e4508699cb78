"""The PostgreSQL profile end to end: the nightly and model DAGs under a real Airflow scheduler
with the LocalExecutor, Airflow's, MLflow's and the Spark catalog's databases on one
PostgreSQL server, a notebook session and the SQL server querying the catalog while the
nightly runs, and the tables equal to an embedded-profile run of the same sample.

``make airflow``'s Airflow standalone on PostgreSQL: the nightly is triggered through the API
as an operator would (a three-day backfill), its gold assets trigger ``omni_models``, whose
``personalize`` and ``monitor_models`` run side by side. The embedded run is the same DAGs'
jobs in-process (``tests/dag_runner.py``) on a Derby catalog and an SQLite registry. Part of
``make test-production`` (marker ``production``), which ``.ci/run`` no longer runs (README,
"Tests"): it does not fit in CI's 90 minutes beside the long histories.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable

from omni import postgres, tables
from omni.sample import SampleSpec, generate_sample
from tests.conftest import FIGURES, free_port, job_environment, settings_under, table_contents
from tests.dag_runner import run_dag
from tests.test_dags import LAKEHOUSE_ORDER, MODEL_GATES, MODEL_ORDER, MODEL_OUTPUTS
from tests.test_end_to_end import _airflow_standalone, _api, _beeline, _login, _serving
from tests.test_postgres_profile import _notebook

REPO = Path(__file__).resolve().parent.parent
RUN_DATE = date(2026, 10, 31)
BACKFILL_START = RUN_DATE - timedelta(days=2)
MODEL_KNOBS = {
    # 45 days of history: a 10-day churn horizon leaves a holdout and three weekly snapshots.
    "OMNI_CHURN_HORIZON_DAYS": "10",
    "OMNI_CHURN_SNAPSHOT_STEP_DAYS": "7",
    "OMNI_CHURN_TRAINING_SNAPSHOTS": "3",
    "OMNI_SHUFFLE_PARTITIONS": "2",
}
COMPARED = [
    t.name
    for t in tables.ALL_TABLES
    if t.layer in ("silver", "gold")
    or t.name in ("quarantine.records", "quarantine.reconciliation")
]
FAN_OUT = tuple(MODEL_OUTPUTS)
# Every task of each DAG ran once in the run, and succeeded.
DAG_TASKS = {
    "omni_nightly": set(LAKEHOUSE_ORDER),
    "omni_models": {*MODEL_ORDER, *MODEL_GATES, *MODEL_OUTPUTS},
}
pytestmark = pytest.mark.production


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("production-landing")
    generate_sample(
        folder, SampleSpec(customers=200, days=45, end_date=RUN_DATE, seed=5, bad_rate=0.002)
    )
    return folder


def _airflow_rows(server, sql: str, *args) -> list[tuple]:
    return server.query("prod_airflow", sql, *args)


def _task_states(server, dag_id: str, run_id: str) -> dict[str, str]:
    return dict(
        _airflow_rows(
            server,
            "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s",
            dag_id,
            run_id,
        )
    )


def _wait(what: str, done, timeout: float, every: float = 3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = done()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"{what} did not happen in {timeout:.0f} s")


@pytest.fixture(scope="module")
def production(landing, postgres_server, tmp_path_factory):
    """Both DAGs under the scheduler on PostgreSQL; what the notebook and the SQL server saw
    while the nightly ran."""
    root = tmp_path_factory.mktemp("production")
    profile = postgres_server.profile("prod")
    postgres.ensure_databases(postgres_server.server, ["prod_airflow"])
    # Unpaused, the nightly gets a scheduled run for its latest cron time, which fails in
    # business_dates (the landing zone holds nothing for today): the test follows its own run.
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%H:%M")
    env = job_environment(
        {
            **profile,
            **MODEL_KNOBS,
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **postgres.airflow_environment(postgres_server.server, "prod_airflow"),
            "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[2]"}',
            "OMNI_LANDING_DIR": str(landing),
            "OMNI_LAKEHOUSE_DIR": str(root / "lakehouse"),
            "OMNI_MLFLOW_ARTIFACTS_DIR": str(root / "mlflow-artifacts"),
            "OMNI_TASK_RETRIES": "0",
            "OMNI_NIGHTLY_AT": past,
        }
    )
    (root / "airflow").mkdir()
    seen: dict[str, object] = {}
    port = free_port()
    started = time.monotonic()
    with (
        _notebook(env, root / "notebook.log") as notebook,
        _serving(
            [sys.executable, "-m", "omni.sql_server", "--port", str(port)],
            env,
            root / "sql-server.out",
            "Ctrl-C stops the server",
        ),
        _airflow_standalone(env, root) as (api_port, banner),
    ):
        token = _login(api_port, banner)
        for dag_id in ("omni_nightly", "omni_models"):
            _api(api_port, f"/api/v2/dags/{dag_id}", token, "PATCH", {"is_paused": False})
        run = _api(
            api_port,
            "/api/v2/dags/omni_nightly/dagRuns",
            token,
            "POST",
            {
                "logical_date": f"{RUN_DATE}T00:00:00Z",
                "conf": {"start_date": str(BACKFILL_START)},
            },
        )
        # Bronze is done and the night goes on: the notebook and BI query the catalog.
        _wait(
            "bronze_ingest's success",
            lambda: (
                _task_states(postgres_server, "omni_nightly", run["dag_run_id"]).get(
                    "bronze_ingest"
                )
                in ("success", "failed")
            ),
            timeout=1200,
        )
        events = "bronze.ecommerce_events"
        seen["running"] = _airflow_rows(
            postgres_server,
            "SELECT state FROM dag_run WHERE dag_id = 'omni_nightly' AND run_id = %s",
            run["dag_run_id"],
        )
        seen["notebook"] = notebook.sql(f"SELECT count(*) AS n FROM {events}")
        seen["bi"] = _beeline(port, f"SELECT count(*) AS n FROM {events}")
        seen["rows"] = (
            DeltaTable(str(root / "lakehouse" / "bronze" / "ecommerce_events"))
            .to_pyarrow_table()
            .num_rows
        )
        seen["tables_mid_run"] = notebook.sql("SHOW TABLES IN bronze")

        def models_done():
            runs = _airflow_rows(
                postgres_server,
                "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = 'omni_models'",
            )
            nightly = _airflow_rows(
                postgres_server,
                "SELECT state FROM dag_run WHERE dag_id = 'omni_nightly' AND run_id = %s",
                run["dag_run_id"],
            )
            if nightly and nightly[0][0] == "failed":
                return ("nightly failed", "", "failed")
            return runs[0] if runs and runs[0][2] in ("success", "failed") else None

        seen["models"] = _wait("omni_models' end", models_done, timeout=2400, every=5)
        seen["nightly_run_id"] = run["dag_run_id"]
        seen["gold_tables_after"] = notebook.sql("SHOW TABLES IN gold")
    seen["seconds"] = round(time.monotonic() - started)
    return env, root, seen


def _failures(server, root: Path) -> str:
    failed = _airflow_rows(
        server, "SELECT dag_id, task_id FROM task_instance WHERE state = 'failed'"
    )
    logs = []
    for dag_id, task_id in failed:
        for log in (root / "airflow" / "logs").rglob(f"dag_id={dag_id}/**/task_id={task_id}/*.log"):
            logs.append(f"{log}:\n{log.read_text()[-3000:]}")
    standalone = root / "airflow" / "standalone.log"
    tail = standalone.read_text()[-3000:] if standalone.exists() else ""
    return f"failed: {failed}\n" + "\n".join(logs) + f"\nstandalone.log:\n{tail}"


def test_both_dags_succeed_under_the_scheduler_on_postgresql(
    production, postgres_server, record_property
):
    _, root, seen = production
    run_id, run_type, state = seen["models"]
    assert state == "success", _failures(postgres_server, root)
    assert run_type == "asset_triggered"
    record_property(FIGURES, {"production_nightly_and_models_seconds": seen["seconds"]})
    for dag_id, run in (("omni_nightly", seen["nightly_run_id"]), ("omni_models", run_id)):
        states = _task_states(postgres_server, dag_id, run)
        assert set(states) == DAG_TASKS[dag_id], (dag_id, states)
        assert set(states.values()) == {"success"}, (dag_id, states)


def test_personalize_and_monitoring_ran_at_the_same_time(production, postgres_server):
    spans = dict(
        (task, (start, end))
        for task, start, end in _airflow_rows(
            postgres_server,
            "SELECT task_id, start_date, end_date FROM task_instance WHERE run_id = %s",
            production[2]["models"][0],
        )
    )
    (a_start, a_end), (b_start, b_end) = (spans[task] for task in FAN_OUT)
    overlap = min(a_end, b_end) - max(a_start, b_start)
    assert overlap > timedelta(seconds=5), spans


def test_a_notebook_and_bi_query_the_catalog_while_the_nightly_runs(production):
    _, _, seen = production
    assert seen["running"] == [("running",)]
    assert seen["rows"] > 1000
    assert seen["notebook"] == [{"n": seen["rows"]}]
    assert seen["bi"] == [{"n": str(seen["rows"])}]
    listed = {f"{r['namespace']}.{r['tableName']}" for r in seen["gold_tables_after"]}
    assert {t.name for t in tables.layer_tables("gold")} <= listed


def test_the_tables_equal_an_embedded_profile_run(
    production, landing, spark, settings, tmp_path_factory
):
    """The same sample on the embedded profile: the DAGs' jobs in-process, a Derby catalog."""
    env, root, seen = production
    assert seen["models"][2] == "success"
    embedded = settings_under(
        settings.with_overrides(
            churn_horizon_days=10, churn_snapshot_step_days=7, churn_training_snapshots=3
        ),
        tmp_path_factory.mktemp("embedded-run"),
        landing=False,
    ).with_overrides(landing_dir=landing)
    run_id = "manual__embedded"
    params = {"start_date": str(BACKFILL_START)}
    run_dag("omni_nightly", spark, embedded, RUN_DATE, run_id, params)
    run_dag("omni_models", spark, embedded, RUN_DATE, f"{run_id}-models", {"date": str(RUN_DATE)})
    production_rows = {name: table_contents(spark, root / "lakehouse", name) for name in COMPARED}
    differ = [
        name
        for name in COMPARED
        if production_rows[name] != table_contents(spark, embedded.lakehouse_dir, name)
    ]
    assert differ == []
    empty = [name for name in COMPARED if not production_rows[name]]
    assert not set(empty) & {t.name for t in tables.layer_tables("gold")}, empty
