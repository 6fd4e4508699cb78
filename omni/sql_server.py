"""The SQL endpoint for BI tools: Spark's Thrift server (HiveServer2 protocol, JDBC and ODBC).

Under the PostgreSQL profile (``OMNI_PROFILE=postgresql``) the server opens the jobs' own
metastore: a table a job creates or re-points is visible to the next query, with no copy and
no refresh.

Under the embedded profile the jobs register every table in an embedded Derby metastore,
which admits one JVM at a time, so a server holding it open would make the nightly fail (and
a nightly would keep the server from starting). The server therefore keeps a catalog of its
own, new at each start and filled from the table registry: every registered table that
exists gets its ``<layer>.<table>`` name at the location the jobs write to, at start and
again every ``--refresh`` seconds for tables a later night creates.

Queries read the Delta log afresh, so each sees the latest committed version while a nightly
run writes, never a partial one.

    python -m omni.sql_server --port 10000         (or: make sql-server)
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

from pyspark.sql import SparkSession

from omni.catalog import register_lakehouse
from omni.config import Settings, load_settings
from omni.sparkconf import delta_jars
from omni.standalone import spark_home
from omni.tables import ALL_TABLES

log = logging.getLogger("omni.sql_server")

THRIFT_SERVER = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


def jdbc_url(host: str, port: int) -> str:
    return f"jdbc:hive2://{host}:{port}/default"


def register_tables(spark: SparkSession, settings: Settings) -> list[str]:
    """Name every registry table that exists and is not named yet; the names added."""
    return register_lakehouse(spark, settings, repoint=False)["added"]


def start_session(settings: Settings, catalog_dir: Path) -> SparkSession:
    """The server's Delta session: on the shared metastore of the PostgreSQL profile, or with
    an embedded catalog in ``catalog_dir`` (never the jobs' Derby one)."""
    from omni.spark import get_spark
    from omni.sparkconf import spark_conf

    if not settings.shared_catalog:
        settings = settings.with_overrides(metastore_override=catalog_dir)
    # The Thrift server's session threads load the Delta catalog through Hive's class loader,
    # which sees only the JVM's class path, not the JARs added at launch.
    jars = [*delta_jars(settings), *settings.extra_jars]
    base = spark_conf(settings, with_jars=False).get("spark.driver.extraClassPath")
    class_path = os.pathsep.join([*(str(jar) for jar in jars), *([base] if base else [])])
    extra = {
        "spark.driver.extraClassPath": class_path,
        # Delta answers MIN, MAX and COUNT from its file statistics where it can, but under
        # the Thrift server (which turns on the java.time API) a date answered that way fails
        # (ClassCastException: LocalDate to java.sql.Date), e.g. MAX(as_of_date) in a subquery.
        "spark.databricks.delta.optimizeMetadataQuery.enabled": "false",
    }
    return get_spark(settings, "omni.sql_server", extra)


def start_thrift_server(spark: SparkSession):
    """Start HiveServer2 inside the session's JVM; returns the Java server."""
    server_class = getattr(spark.sparkContext._jvm, THRIFT_SERVER)
    return server_class.startWithContext(spark._jsparkSession.sqlContext())


def wait_for_port(host: str, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the Thrift server did not listen on {host}:{port} in {timeout:.0f} s")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a port from 1 to 65535")
    return port


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a positive number of seconds")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=10000, help="HiveServer2 port")
    parser.add_argument(
        "--refresh",
        type=_seconds,
        default=60.0,
        help="seconds between looks for tables created since the last one (default 60)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    # A new catalog at each start, filled from the registry, gone when the server stops.
    catalog_dir = Path(tempfile.mkdtemp(prefix="omni-sql-catalog-"))
    try:
        serve(settings, catalog_dir, args.host, args.port, args.refresh)
    finally:
        shutil.rmtree(catalog_dir, ignore_errors=True)


def serve(settings: Settings, catalog_dir: Path, host: str, port: int, refresh: float) -> None:
    # HiveServer2 reads its address from these first; the JVM inherits them at launch.
    os.environ["HIVE_SERVER2_THRIFT_BIND_HOST"] = host
    os.environ["HIVE_SERVER2_THRIFT_PORT"] = str(port)
    spark = start_session(settings, catalog_dir)
    spark.sparkContext.setLogLevel("WARN")
    # The shared metastore already names what the jobs made: nothing to copy or refresh.
    shared = settings.shared_catalog
    named = (
        [t.name for t in ALL_TABLES if spark.catalog.tableExists(t.name)]
        if shared
        else register_tables(spark, settings)
    )
    server = start_thrift_server(spark)
    wait_for_port(host, port)
    url = jdbc_url(host, port)
    print(
        f"Spark Thrift server (HiveServer2) on {url}\n"
        f"  lakehouse: {settings.lakehouse_location}\n"
        f"  catalog: {_catalog(settings)}\n"
        f"  tables: {len(named)} of {len(ALL_TABLES)} registered ({', '.join(named) or 'none'})\n"
        f"  connect: {spark_home() / 'bin' / 'beeline'} -u {url}  (no user or password)\n"
        "Ctrl-C stops the server.",
        flush=True,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(refresh):
        if shared:
            continue
        added = register_tables(spark, settings)
        if added:
            log.info("named tables created since the last look: %s", ", ".join(added))
    server.stop()
    spark.stop()


def _catalog(settings: Settings) -> str:
    if settings.shared_catalog:
        return f"the jobs' metastore, {settings.postgres.describe(settings.metastore_database)}"
    return "a copy of the table registry's names, refreshed (embedded profile)"


if __name__ == "__main__":
    main()
