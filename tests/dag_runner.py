"""A DAG's tasks in its order, in this process, on one Spark session: what a run does, fast.

Each Spark task's job runs with the arguments its operator renders (the run's dates and id,
the layers, the published tables), through the job's own ``main``; ``business_dates`` resolves
the range as the DAG's first task does and each gate reads the recorded audit as it does, and
both fail the same way. Airflow's scheduling and the
``spark-submit`` of each task are what it leaves out: ``tests/test_end_to_end.py`` runs those.
"""

from __future__ import annotations

import importlib
import os
from datetime import date
from pathlib import Path

from omni import gates
from omni import orchestration as orc
from omni.config import REPO_ROOT, Settings, parse_date

DAGS = REPO_ROOT / "dags"
_BAG = {}


def dag(dag_id: str):
    """The DAG as Airflow parses it from ``dags/`` (once per process)."""
    if not _BAG:
        os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        from airflow.models import DagBag

        bag = DagBag(dag_folder=str(DAGS))
        assert not bag.import_errors, bag.import_errors
        _BAG.update(bag.dags)
    return _BAG[dag_id]


def _rendered(args: list[str], dates: dict[str, str], run_id: str) -> list[str]:
    values = {orc.END_DATE: dates["end_date"], orc.START_DATE: dates["start_date"]}
    values["{{ run_id }}"] = run_id
    return [values.get(arg, arg) for arg in args]


def run_dag(
    dag_id: str,
    spark,
    settings: Settings,
    day: date,
    run_id: str,
    params: dict | None = None,
) -> dict[str, dict]:
    """Run ``dag_id`` for ``day`` (``params``: the DAG's, e.g. a backfill's ``start_date``);
    returns each task's printed counts, by task id. A failing task raises, as it fails the run.
    """
    params = dict(params or {})
    if dag_id == "omni_models":  # the date param, as a manual run gives it
        params = {"end_date": params.get("date")}
    results: dict[str, dict] = {}
    dates: dict[str, str] = {}
    for task in dag(dag_id).task_group.topological_sort():
        if task.task_id == orc.DATES_TASK:
            dates = orc.landing_range(params, day, settings)
            results[task.task_id] = dates
            continue
        gate_tables = getattr(getattr(task, "python_callable", None), "gate_tables", None)
        if gate_tables is not None:  # a gate: it reads what the job before it recorded
            status = gates.layer_gate(settings, gate_tables, run_id, parse_date(dates["end_date"]))
            if not status.passed:
                raise gates.DataQualityError(status.reason)
            results[task.task_id] = {"gate": status.reason}
            continue
        script = Path(task.application).relative_to(REPO_ROOT)
        module = importlib.import_module(".".join(script.with_suffix("").parts))
        argv = _rendered(list(task.application_args), dates, run_id)
        results[task.task_id] = module.main(argv, session=(spark, settings))
    return results
