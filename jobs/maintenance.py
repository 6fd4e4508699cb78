"""Maintenance: OPTIMIZE (compact small files) and VACUUM every registered Delta table.

VACUUM keeps the files that time travel needs for ``--retention-hours`` (default from
``OMNI_VACUUM_RETENTION_HOURS``, 168 hours = 7 days, Delta's own default).
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings


def maintain_tables(spark: SparkSession, settings: Settings, retention_hours: int) -> dict:
    if retention_hours < 0:
        raise ValueError(f"retention_hours={retention_hours}: expected 0 or more")
    done = {}
    for table in tables.ALL_TABLES:
        lakehouse.ensure_table(spark, settings, table)
        path = lakehouse.table_path(settings, table)
        optimized = spark.sql(f"OPTIMIZE delta.`{path}`").first()
        metrics = optimized["metrics"] if optimized else None
        lakehouse.vacuum(spark, settings, table, retention_hours)
        done[table.name] = {
            "files_removed": metrics["numFilesRemoved"] if metrics else 0,
            "files_added": metrics["numFilesAdded"] if metrics else 0,
        }
    return done


def _parser():
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--retention-hours", type=int, default=None)
    return parser


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    hours = (
        settings.vacuum_retention_hours if args.retention_hours is None else args.retention_hours
    )
    return {"tables": maintain_tables(spark, settings, hours), "retention_hours": hours}


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("maintenance", _body, _parser(), argv, session)


if __name__ == "__main__":
    main()
