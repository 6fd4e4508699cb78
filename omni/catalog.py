"""Names of the lakehouse's tables in a Spark catalog, and moving them between profiles.

The tables are Delta folders on disk (or object storage) at the registry's locations; a
catalog only maps ``<layer>.<table>`` to them. So a lakehouse built under one profile is
registered in the other one's catalog without copying a byte:

    python -m omni.catalog register --profile postgresql   (the embedded lakehouse, on PostgreSQL)
    python -m omni.catalog register --profile embedded     (and back, into the Derby catalog)

(``make catalog-register PROFILE=postgresql``). Only tables that exist on disk are named; a
name already at another location is re-pointed, one at the same location is left alone. The
other catalog is not touched: its names go on pointing at the same folders.

``python -m omni.catalog shell`` (``make spark-sql``) opens a ``spark-sql`` shell on the
profile's catalog.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from pyspark.sql import SparkSession

from omni.config import PROFILES, Settings, load_settings
from omni.lakehouse import (
    ensure_database,
    forget_registration,
    registered_location,
    same_location,
    table_path,
)
from omni.tables import ALL_TABLES


def register_lakehouse(
    spark: SparkSession, settings: Settings, *, repoint: bool = True
) -> dict[str, list[str]]:
    """Name every registry table that exists on disk; what was added, re-pointed, kept, absent.

    A table no job has written yet is left out (creating it here would race the job that
    creates it). ``repoint=False`` keeps a name that points elsewhere.
    """
    from delta.tables import DeltaTable

    found: dict[str, list[str]] = {"added": [], "repointed": [], "kept": [], "absent": []}
    for table in ALL_TABLES:
        path = table_path(settings, table)
        # The metastore first: cheap, where reading a Delta log is not (the embedded SQL
        # server looks every minute).
        location = registered_location(spark, table)
        if location is not None and (same_location(location, path) or not repoint):
            found["kept"].append(table.name)
            continue
        if not DeltaTable.isDeltaTable(spark, path):
            found["absent"].append(table.name)
            continue
        forget_registration(spark, table)
        if location is not None:
            spark.sql(f"DROP TABLE {table.name}")  # external: the files stay
            found["repointed"].append(table.name)
        else:
            found["added"].append(table.name)
        ensure_database(spark, table.layer)
        # No column list: the schema, comments and partitioning come from the Delta log.
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS `{table.layer}`.`{table.short_name}` "
            f"USING DELTA LOCATION '{path}'"
        )
    return found


def shell(settings: Settings, args: list[str]) -> None:
    """Replace this process with a ``spark-sql`` shell on the profile's catalog (``args``
    go to spark-sql: ``-e "SHOW TABLES IN gold"`` runs one statement and ends)."""
    from omni.postgres import require_catalog
    from omni.sparkconf import spark_sql_command

    require_catalog(settings)
    folder = Path(tempfile.mkdtemp(prefix="omni-spark-sql-"))
    command = spark_sql_command(settings, folder / "spark-sql.properties")
    os.execv(command[0], [*command, *args])


def main(argv: list[str] | None = None) -> dict[str, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["register", "shell"])
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=None,
        help="the catalog to register the tables in (default: OMNI_PROFILE's)",
    )
    # After ``shell``, what spark-sql takes: -e "SQL", -f file.sql...
    args, shell_args = parser.parse_known_args(argv)
    if shell_args and args.action != "shell":
        parser.error(f"unrecognized arguments: {' '.join(shell_args)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    if args.profile and args.profile != settings.profile:
        settings = replace(settings, profile=args.profile)
    if args.action == "shell":
        shell(settings, shell_args)
        return {}
    from omni.spark import get_spark

    spark = get_spark(settings, "omni.catalog")
    try:
        found = register_lakehouse(spark, settings)
    finally:
        spark.stop()
    print(json.dumps({"profile": settings.profile, **found}, indent=2))
    return found


if __name__ == "__main__":
    main()
