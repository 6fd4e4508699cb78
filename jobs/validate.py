"""Validate every table of a layer with its Great Expectations suite; fail when one fails.

Which rows form the batch is the suite's ``scope``: this run's rows, the as-of date's rows or
the whole table. The Data Docs site under ``data/gx`` is updated on every run.
"""

from __future__ import annotations

import json
import logging

from pyspark.sql import SparkSession

from omni import lakehouse, quality, tables
from omni.cli import job_parser, run_job
from omni.config import Settings

log = logging.getLogger("omni.validate")


class DataQualityError(RuntimeError):
    """A blocking expectation failed: nothing downstream may run on this data."""


def validate_layer(
    spark: SparkSession, settings: Settings, layer: str, run_id: str, as_of, table_names=None
) -> dict:
    frames = {}
    for table in tables.layer_tables(layer):
        if table_names and table.name not in table_names:
            continue
        if not quality.suite_path(table.name).exists():
            continue
        spec = quality.load_suite(table.name)
        df = lakehouse.read_table(spark, settings, table)
        condition = quality.scope_filter(spec.scope, run_id, as_of)
        frames[table.name] = df.where(condition) if condition else df
    if not frames:
        raise ValueError(
            f"layer {layer!r} has no expectation suites under {quality.EXPECTATIONS_DIR}"
        )
    outcomes = quality.validate_frames(frames, settings.gx_dir, f"{run_id}__{layer}")
    summary = {
        o.table: {
            "success": o.success,
            "evaluated": o.evaluated,
            "failed": len(o.failed),
            "rows": o.rows,
        }
        for o in outcomes
    }
    log.info("validation of %s: %s", layer, json.dumps(summary))
    if not all(o.success for o in outcomes):
        raise DataQualityError(
            f"data quality gate failed for layer {layer}:\n{quality.describe_failures(outcomes)}"
        )
    return summary


def _parser():
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--layer", required=True, choices=("bronze", "silver", "gold"))
    parser.add_argument("--table", action="append", help="only these tables (repeatable)")
    return parser


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return {
        "tables": validate_layer(spark, settings, args.layer, args.run_id, args.date, args.table)
    }


def main(argv: list[str] | None = None) -> dict:
    return run_job("validate", _body, _parser(), argv)


if __name__ == "__main__":
    main()
