"""History benchmark: a year of a retailer's past backfilled in one DAG run, then nightly runs.

In one run, in temp folders, through ``airflow dags test`` on ``local[*]`` (every task a real
``spark-submit``, as ``make run`` does):

* a generated year (``--days``, 365 by default) shaped like a real retailer's: a store closed on
  public holidays, a store that opens half-way, ``--channels`` (both, store or online);
* ``backfill``: ``omni_nightly`` over the whole year in one DAG run (``start_date`` the first
  day), then ``omni_models`` for its last day;
* ``night 1..N``: ``--nights`` more nights after it, each ``omni_nightly`` then ``omni_models``.

It prints a JSON report: wall seconds of each DAG run and task (from Airflow's database) and
the ratio ``backfill/night`` (the backfill's ``omni_nightly`` over the mean of the nights').

    python -m bench.history [--customers 200 --days 365 --nights 3 --channels both]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.orchestration import BIN, _environment
from omni.sample import CHANNELS, SampleSpec, generate_sample

DAGS = ("omni_nightly", "omni_models")


def _dag_run(root: Path, env: dict, dag_id: str, day: date, conf: dict | None = None) -> dict:
    """One ``airflow dags test``; its wall seconds and those of each of its tasks."""
    extra = ["-c", json.dumps(conf)] if conf else []
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", dag_id, str(day), *extra],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    log = root / f"{dag_id}-{day}.log"
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{dag_id} {day} failed; see {log}")
    with sqlite3.connect(root / "airflow" / "airflow.db") as db:
        tasks = db.execute(
            "SELECT t.task_id, (julianday(t.end_date) - julianday(t.start_date)) * 86400 "
            "FROM task_instance t JOIN dag_run r ON r.run_id = t.run_id AND r.dag_id = t.dag_id "
            "WHERE r.dag_id = ? AND r.id = (SELECT max(id) FROM dag_run WHERE dag_id = ?) "
            "ORDER BY t.start_date",
            (dag_id, dag_id),
        ).fetchall()
    return {"seconds": round(seconds, 1), "tasks": {t: round(s, 1) for t, s in tasks}}


def _night(root: Path, env: dict, day: date, conf: dict | None = None) -> dict:
    return {
        dag_id: _dag_run(root, env, dag_id, day, conf if dag_id == DAGS[0] else None)
        for dag_id in DAGS
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--days", type=int, default=365, help="days of history to backfill")
    parser.add_argument("--nights", type=int, default=3, help="nights run after the backfill")
    parser.add_argument("--channels", choices=CHANNELS, default="both")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="omni-bench-history-"))
    in_store = args.channels != "online"
    spec = SampleSpec(
        customers=args.customers,
        days=args.days + args.nights,
        channels=args.channels,
        holidays=in_store,
        new_store=in_store,
    )
    started = time.monotonic()
    generate_sample(work / "landing", spec)
    generated = time.monotonic() - started
    root = work / "run"
    env = {**_environment(root, "local[*]"), "OMNI_LANDING_DIR": str(work / "landing")}
    (root / "airflow").mkdir(parents=True)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True)
    backfill_end = spec.start_date + timedelta(days=args.days - 1)
    report: dict = {
        "customers": args.customers,
        "channels": args.channels,
        "history": f"{spec.start_date}..{backfill_end}",
        "sample_seconds": round(generated, 1),
        "backfill": _night(root, env, backfill_end, {"start_date": str(spec.start_date)}),
        "nights": {},
    }
    for night in range(1, args.nights + 1):
        day = backfill_end + timedelta(days=night)
        report["nights"][str(day)] = _night(root, env, day)
    nights = [run["omni_nightly"]["seconds"] for run in report["nights"].values()]
    if nights:
        report["ratios"] = {
            "backfill_over_night": round(
                report["backfill"]["omni_nightly"]["seconds"] / statistics.mean(nights), 2
            )
        }
    report["work_dir"] = str(work)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
