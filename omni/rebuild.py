"""Clear the lakehouse for a rebuild from the landing zone.

Every table is deleted, files and all, except those the registry marks ``kept_on_rebuild``:
the erasure audit and the suppression list, which no landing file can give back and which
keep erased customers out of the rebuilt tables. A backfill then builds everything again::

    python -m omni.rebuild --yes
    airflow dags trigger omni_nightly -c '{"start_date": "2026-01-01", "end_date": "2026-10-31"}'
"""

from __future__ import annotations

import argparse
import logging

from pyspark.sql import SparkSession

from omni import lakehouse, tables
from omni.config import Settings, load_settings

log = logging.getLogger("omni.rebuild")


def clear_for_rebuild(spark: SparkSession, settings: Settings) -> list[str]:
    """Delete every table not ``kept_on_rebuild`` (its folder, through Hadoop's file system:
    a path or an object store's URI); return their names. The names stay registered and are
    created again, empty, by the next write."""
    hadoop = spark.sparkContext._jvm.org.apache.hadoop.fs.Path
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    cleared = []
    for table in tables.ALL_TABLES:
        if table.kept_on_rebuild:
            continue
        path = hadoop(lakehouse.table_path(settings, table))
        path.getFileSystem(conf).delete(path, True)
        lakehouse.forget_registration(spark, table)
        cleared.append(table.name)
    spark.catalog.clearCache()
    return cleared


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--yes", action="store_true", help="really delete the tables (required: nothing is kept)"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    kept = [t.name for t in tables.ALL_TABLES if t.kept_on_rebuild]
    if not args.yes:
        parser.error(
            f"--yes is required: every table under {settings.lakehouse_location} but "
            f"{', '.join(kept)} is deleted"
        )
    from omni.spark import get_spark

    cleared = clear_for_rebuild(get_spark(settings, "rebuild"), settings)
    print(f"cleared {len(cleared)} tables; kept {', '.join(kept)}; now backfill omni_nightly")
    return cleared


if __name__ == "__main__":
    main()
