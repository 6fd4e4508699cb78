"""The command line shared by every job: ``--date``, ``--run-id``, counts printed as JSON."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from omni.config import Settings, load_settings, parse_date
from omni.redact import describe_error, redact

log = logging.getLogger("omni")


class JobFailedError(RuntimeError):
    """A job failed; its message is the original error's, with identifiers redacted."""


def job_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--date", required=True, type=date_arg, help="business date YYYY-MM-DD")
    parser.add_argument(
        "--run-id",
        default=None,
        help="pipeline run id recorded on every row (default: a new one)",
    )
    return parser


def date_arg(value: str) -> date:
    try:
        return parse_date(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_job(
    name: str,
    body: Callable[[Any, Settings, argparse.Namespace], dict[str, Any]],
    parser: argparse.ArgumentParser,
    argv: list[str] | None = None,
    session: tuple[Any, Settings] | None = None,
) -> dict[str, Any]:
    """Parse arguments, build settings and the Spark session, run ``body``, print its counts.

    With ``session`` (a Spark session and its settings) the job runs in it and leaves it open:
    a DAG's tasks one after the other in one process (``tests/dag_runner.py``)."""
    from omni import costs
    from omni.spark import SUBMITTED_BY_ENV, get_spark

    # Before the job: the JVM's start to here under spark-submit (it starts the Python
    # driver), else the interpreter's (its start and the imports); nothing in a process that
    # runs jobs one after the other (a session given).
    pid = os.getppid() if SUBMITTED_BY_ENV in os.environ else os.getpid()
    before = {"process_start_to_job": None if session is not None else costs.since_start(pid)}
    costs.reset()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # GX logs every function it registers at import, at INFO: hundreds of lines per task.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # PySpark logs every failed query with its full, unredacted message as JSON: the job logs
    # the error itself, redacted (below).
    logging.getLogger("SQLQueryContextLogger").disabled = True
    args = parser.parse_args(argv)
    args.run_id = args.run_id or f"manual__{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    if session is None:
        settings = load_settings()
        with costs.spent("spark_session"):
            spark = get_spark(settings, app_name=f"omni.{name}")
        spark.sparkContext.setLogLevel("WARN")
    else:
        spark, settings = session
    try:
        counts = body(spark, settings, args)
    except Exception as error:
        # The message may quote the data it failed on: the log gets it redacted, with the
        # stack (files and lines, no values), and the job fails with the redacted message.
        stack = redact("".join(traceback.format_tb(error.__traceback__)))
        message = describe_error(error)
        log.error("job %s failed: %s\n%s", name, message, stack)
        raise JobFailedError(f"job {name} failed: {message}") from None
    finally:
        if session is None:
            spark.stop()
    counts = {"job": name, "date": str(args.date), "run_id": args.run_id, **counts}
    counts["seconds"] = round(time.monotonic() - started, 1)
    counts["fixed_costs"] = costs.report(before)
    log.info("job %s fixed costs (seconds): %s", name, json.dumps(counts["fixed_costs"]))
    print(json.dumps(counts, default=str, sort_keys=True), file=sys.stdout, flush=True)
    return counts


def print_for_date(
    description: str,
    app_name: str,
    text: Callable[[Any, Settings, date], object],
    argv: list[str] | None = None,
) -> int:
    """A reader's command (``--date`` only): print ``text(spark, settings, date)`` from a
    Spark session of its own, quiet below errors."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--date", required=True, type=date_arg, help="business date YYYY-MM-DD")
    args = parser.parse_args(argv)
    settings = load_settings()
    from omni.spark import get_spark

    spark = get_spark(settings, app_name)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        print(text(spark, settings, args.date))
    finally:
        spark.stop()
    return 0
