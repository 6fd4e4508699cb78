"""DAG integrity: imports cleanly, wires every job in order, and parses without heavy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
ORDER = [
    "bronze_ingest",
    "validate_bronze",
    "silver",
    "validate_silver",
    "gold",
    "validate_gold",
    "train_models",
    "score_customers",
]
# After scoring, the feed and monitoring run side by side; one validation checks all three.
MODEL_OUTPUTS = ["personalize", "monitor_models"]


@pytest.fixture(scope="module")
def dag_bag():
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.models import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert "omni_nightly" in dag_bag.dag_ids


def test_nightly_dag_settings(dag_bag):
    dag = dag_bag.dags["omni_nightly"]
    assert {"omnichannel", "nightly"} <= set(dag.tags)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert dag.doc_md and "Omni-channel nightly run" in dag.doc_md
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.owner == "data-engineering"
        assert task.execution_timeout is not None


def test_tasks_run_in_order_through_spark_submit(dag_bag):
    dag = dag_bag.dags["omni_nightly"]
    assert sorted(dag.task_ids) == sorted([*ORDER, *MODEL_OUTPUTS, "validate_model_outputs"])
    for upstream, downstream in zip(ORDER[:-1], ORDER[1:], strict=True):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    for task in MODEL_OUTPUTS:
        assert dag.get_task(task).upstream_task_ids == {"score_customers"}
    assert dag.get_task("validate_model_outputs").upstream_task_ids == set(MODEL_OUTPUTS)
    for task in dag.tasks:
        assert type(task).__name__ == "SparkSubmitOperator"
        assert task._conn_id == "spark_default"
        assert "delta-spark" in task.jars
        assert task.conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
        assert Path(task.application).exists()
        assert task.application_args[:4] == ["--date", "{{ ds }}", "--run-id", "{{ run_id }}"]


def test_parsing_the_dag_folder_imports_no_heavy_library():
    code = (
        "import json, sys; from airflow.models import DagBag; "
        f"bag = DagBag(dag_folder={str(DAGS)!r}); "
        "heavy = [m for m in ('pyspark', 'mlflow', 'great_expectations', 'sklearn', 'pandas') "
        "if m in sys.modules]; "
        "print(json.dumps({'errors': list(bag.import_errors), 'heavy': heavy}))"
    )
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["heavy"] == []
