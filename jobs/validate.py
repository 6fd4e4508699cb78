"""Validate tables with their Great Expectations suites; fail the task on a blocking failure.

Which rows form a table's batch is its suite's ``scope``: this run's rows, the as-of date's
rows or the whole table. Every result, warnings included, goes to
``quality.validation_results`` and the Data Docs site (``data/gx/data_docs/index.html``).
A failed blocking expectation raises ``DataQualityError`` after the results are recorded, so
the task fails and nothing downstream of it runs; failed warnings are logged and reported.
"""

from __future__ import annotations

import json
import logging
from datetime import date

from pyspark.sql import SparkSession

from omni import lakehouse, quality, suites, tables
from omni.cli import date_arg, job_parser, run_job
from omni.config import Settings
from omni.gates import DataQualityError

log = logging.getLogger("omni.validate")


def validate(
    spark: SparkSession,
    settings: Settings,
    layers: list[str],
    run_id: str,
    business_date: date,
    table_names: list[str] | None = None,
    start_date: date | None = None,
) -> dict:
    """Validate the tables; with ``start_date`` (a backfill) dated batches span the range."""
    if start_date is not None and start_date > business_date:
        raise ValueError(f"--start-date {start_date} is after --date {business_date}")
    frames = {}
    for table in suites.suite_tables(layers, table_names):
        spec = suites.load_suite(table.name)
        df = lakehouse.read_table(spark, settings, table)
        condition = suites.scope_filter(spec.scope, run_id, business_date, df.columns, start_date)
        frames[table.name] = df.where(condition) if condition else df
    validations = quality.validate_tables(spark, settings, frames, run_id, business_date)
    summary = {v.table: v.summary() for v in validations}
    log.info("validation of %s: %s", ", ".join(layers), json.dumps(summary))
    blocking = [(v.table, r) for v in validations for r in v.blocking_failures]
    if blocking:
        raise DataQualityError(
            f"data-quality gate failed ({len(blocking)} blocking expectation(s)); results in "
            f"{tables.VALIDATION_RESULTS.name}, report at {quality.data_docs_index(settings)}:\n"
            + quality.describe(blocking)
        )
    warnings = [(v.table, r) for v in validations for r in v.warnings]
    return {
        "tables": summary,
        "warnings": len(warnings),
        "data_docs": str(quality.data_docs_index(settings)),
    }


def _parser():
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--layer",
        required=True,
        action="append",
        choices=("bronze", "quarantine", "silver", "gold"),
        help="validate this layer's tables (repeatable)",
    )
    parser.add_argument("--table", action="append", help="only these tables (repeatable)")
    parser.add_argument(
        "--start-date",
        type=date_arg,
        default=None,
        help="backfill: dated batches (scope as_of) hold every date from this one to --date",
    )
    return parser


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return validate(
        spark, settings, args.layer, args.run_id, args.date, args.table, args.start_date
    )


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("validate", _body, _parser(), argv, session)


if __name__ == "__main__":
    main()
