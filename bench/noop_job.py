"""A job that does only what every job does: start the JVM and Python, build the Delta
session, count one row, stop. It does not open the table catalog, which a real job opens on
its first table (Hive and Derby start-up: several seconds more). ``bench/orchestration.py``
times it under ``spark-submit``."""

from __future__ import annotations

from omni.cli import job_parser, run_job


def _body(spark, settings, args) -> dict:
    return {"rows": spark.range(1).count()}


def main(argv: list[str] | None = None) -> dict:
    return run_job("noop", _body, job_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    main()
