"""``get_spark``: the only place a SparkSession is built, Delta configured, the master chosen."""

from __future__ import annotations

from pyspark.sql import SparkSession

from omni.config import Settings
from omni.sparkconf import spark_conf


def get_spark(settings: Settings, app_name: str = "omnichannel") -> SparkSession:
    """Return the Delta-enabled session for ``settings``.

    Under ``spark-submit`` the master and JARs given on the command line win (they are already
    in the running JVM); in a plain Python process the session starts with the cached JARs.
    """
    settings.metastore_dir.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(app_name)
    if not SparkSession.getActiveSession():
        builder = builder.master(settings.spark_master)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
