"""The Spark configuration that makes a session Delta-enabled and offline.

Kept free of pyspark imports, so Airflow DAG files can read it at parse time to configure
``SparkSubmitOperator`` without loading Spark.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omni.config import REPO_ROOT, Settings

MANIFEST = "jars.txt"
# The JDBC driver of the PostgreSQL profile's metastore, fetched by tools/fetch_delta_jars.py.
POSTGRESQL_JDBC = ("org.postgresql", "postgresql", "42.7.14")
JDBC_FOLDER = "jdbc"
LOG_CONFIG = REPO_ROOT / "conf" / "log4j2.properties"


def delta_jars(settings: Settings) -> list[Path]:
    """The cached Delta JARs (see ``tools/fetch_delta_jars.py``), failing loudly when absent."""
    manifests = sorted(settings.jar_dir.glob(f"*/{MANIFEST}"))
    if not manifests:
        raise FileNotFoundError(
            f"no Delta JARs under {settings.jar_dir}: run 'make setup' to fetch them once"
        )
    # One delta-spark version is pinned; the newest folder is the one matching it.
    manifest = manifests[-1]
    names = [line.strip() for line in manifest.read_text().splitlines() if line.strip()]
    jars = [manifest.parent / name for name in names]
    missing = [str(jar) for jar in jars if not jar.exists()]
    if missing:
        raise FileNotFoundError(f"Delta JARs listed in {manifest} are missing: {missing}")
    return jars


def jdbc_driver_path(settings: Settings) -> Path:
    """Where the cached PostgreSQL JDBC driver is (it may not be there yet: see ``make setup``)."""
    _, artifact, version = POSTGRESQL_JDBC
    return settings.jar_dir / JDBC_FOLDER / f"{artifact}-{version}.jar"


def metastore_conf(settings: Settings) -> dict[str, str]:
    """The Hive client's settings for the PostgreSQL profile's metastore, without the password
    (``omni.spark`` adds it in the driver's process, never on a command line)."""
    server = settings.postgres
    return {
        "spark.hadoop.javax.jdo.option.ConnectionURL": server.jdbc_url(settings.metastore_database),
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "spark.hadoop.javax.jdo.option.ConnectionUserName": server.user,
        # The schema is made once by omni.postgres setup: made lazily, a job deadlocks on it.
        "spark.hadoop.datanucleus.schema.autoCreateAll": "false",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        # The metastore client talks to PostgreSQL from the driver: only it needs the driver.
        "spark.driver.extraClassPath": str(jdbc_driver_path(settings)),
    }


def job_jars(settings: Settings) -> str:
    """Every JAR a job ships, comma-separated: Delta's from the cache, then the extra ones."""
    return ",".join(str(jar) for jar in (*delta_jars(settings), *settings.extra_jars))


def spark_conf(
    settings: Settings, *, hive_catalog: bool = True, with_jars: bool = True
) -> dict[str, str]:
    """Spark properties for a Delta session whose tables are registered by name.

    ``with_jars=False`` leaves out ``spark.jars``, which needs the JAR cache (the DAGs find
    the JARs when a task runs, not when the files are parsed).
    """
    conf = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        # Local mode runs the executors in the driver's JVM: this is the heap of all of them.
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        # Listing a table's folders (VACUUM, partition discovery) runs as one task per folder
        # up to this bound; Spark's default of 10,000 tasks makes VACUUM take 20-40 s per table.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(
            2 * settings.spark_shuffle_partitions
        ),
        "spark.sql.warehouse.dir": f"{settings.lakehouse_location}/_warehouse",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Small tables: the default 50 partitions make every Delta log replay slow.
        "spark.databricks.delta.snapshotPartitions": "2",
        # Keep Ivy away from the home folder: nothing is resolved at run time.
        "spark.jars.ivy": str(settings.jar_dir.parent / "ivy"),
        "spark.driver.extraJavaOptions": (
            f"-Dderby.system.home={settings.metastore_dir} "
            f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()} {settings.spark_java_options}"
        ).strip(),
    }
    if settings.spark_java_options:  # executors of a cluster (in local mode, the driver's JVM)
        conf["spark.executor.extraJavaOptions"] = settings.spark_java_options
    if hive_catalog:
        conf["spark.sql.catalogImplementation"] = "hive"
        if settings.shared_catalog:
            conf.update(metastore_conf(settings))
        else:
            conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
                f"jdbc:derby:;databaseName={settings.metastore_dir / 'metastore_db'};create=true"
            )
    if with_jars:
        conf["spark.jars"] = job_jars(settings)
    conf.update(settings.spark_properties)  # last: an operator's word wins over the defaults
    return conf


def spark_sql_command(settings: Settings, properties_file: Path) -> list[str]:
    """A ``spark-sql`` shell on the profile's catalog; its properties go to ``properties_file``
    (the password too, where there is one: a file only its owner reads, not the command line)."""
    conf = spark_conf(settings)
    jars = conf.pop("spark.jars")
    if settings.shared_catalog and settings.postgres.password:
        conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] = settings.postgres.password
    properties_file.touch(mode=0o600)
    properties_file.write_text("".join(f"{key} {value}\n" for key, value in conf.items()))
    binary = Path(sys.executable).parent / "spark-sql"
    return [
        str(binary),
        "--master",
        settings.spark_master,
        "--properties-file",
        str(properties_file),
        "--jars",
        jars,
    ]


def spark_submit_command(settings: Settings, script: str, *args: str, master: str) -> list[str]:
    """The ``spark-submit`` command line of a job of the repository, as the DAGs submit it:
    Delta and the catalog configured, the cached Delta JARs shipped with ``--jars``."""
    conf = spark_conf(settings)
    jars = conf.pop("spark.jars")
    command = [str(Path(sys.executable).parent / "spark-submit"), "--master", master]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, "--jars", jars, str(REPO_ROOT / script), *args]
