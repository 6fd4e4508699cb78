"""``get_spark``: the only place a SparkSession is built, Delta configured, the master chosen."""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from pathlib import Path

from pyspark.sql import SparkSession

from omni.config import REPO_ROOT, Settings
from omni.sparkconf import spark_conf

log = logging.getLogger("omni.spark")

# The project's packages that executors may need to import (UDFs, model classes).
SHIPPED_PACKAGES = ("omni", "models", "jobs")
SUBMITTED_BY_ENV = "PYSPARK_GATEWAY_PORT"


def get_spark(
    settings: Settings, app_name: str = "omnichannel", extra_conf: dict[str, str] | None = None
) -> SparkSession:
    """Return the Delta-enabled session for ``settings`` (plus ``extra_conf``, if any).

    Under ``spark-submit`` the master given on the command line (the Airflow connection)
    wins; in a plain Python process the session starts on ``settings.spark_master``. On a
    cluster the project's own Python code is shipped to the executors with the job.
    """
    conf = {**spark_conf(settings), **(extra_conf or {})}
    if settings.shared_catalog:
        from omni.postgres import require_catalog

        require_catalog(settings)  # in seconds, naming the database, not in the Hive client
        if settings.postgres.password:  # set in this process only, never on a command line
            conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] = settings.postgres.password
    else:
        settings.metastore_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(app_name)
    # spark-submit starts the JVM first and hands its gateway to this process.
    if not SparkSession.getActiveSession() and SUBMITTED_BY_ENV not in os.environ:
        builder = builder.master(settings.spark_master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if not spark.sparkContext.master.startswith("local"):
        ship_project_code(spark)
    return spark


def ship_project_code(spark: SparkSession) -> Path:
    """Zip the project's packages and add them to every executor's Python path."""
    folder = Path(tempfile.mkdtemp(prefix="omni-pyfiles-"))
    archive = folder / "omni_project.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for package in SHIPPED_PACKAGES:
            for source in sorted((REPO_ROOT / package).rglob("*.py")):
                zipped.write(source, source.relative_to(REPO_ROOT).as_posix())
    spark.sparkContext.addPyFile(str(archive))
    log.info("shipped %s to the executors of %s", archive, spark.sparkContext.master)
    return archive
