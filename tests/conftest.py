"""Shared fixtures: one Delta-enabled local Spark session for the whole run, on temp folders."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from omni.config import REPO_ROOT, load_settings

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# The jobs the tests start as processes (spark-submit, Airflow's tasks) live a minute or two on
# tiny data, where the JIT's optimising compiler (C2) costs more CPU than it saves: C1 only, with
# room for its code (C1 alone gets a 48 MB code cache, full after 30 s of a bronze job, and the
# JVM then stops compiling: "CodeCache is full. Compiler has been disabled"), and the serial
# collector. A bronze job of the spark-submit test's sample: 71 s of CPU with the JVM's defaults,
# 53 s with C1 alone, 43-46 s with these. Not the in-process session below: it lives the whole
# run, where C2 pays (test_lakehouse_jobs.py: the same CPU, 237 s instead of 311 s of wall
# time). Production keeps the JVM's defaults.
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=512m -XX:+UseSerialGC"
CLASS_ARCHIVES = REPO_ROOT / ".cache" / "class-archives"


def _class_archive(options: str) -> str:
    """JVM options that map a class data sharing archive of what every job loads (Spark, Delta,
    Hive, Derby), made once per JDK, Spark and JVM options under ``.cache/``: a JVM then starts
    without loading and verifying those classes again (a bronze job: 35 s of CPU instead of
    46 s). An archive that does not match is ignored by the JVM; "" when none can be made."""
    import fcntl
    import hashlib
    import shutil
    import subprocess

    import pyspark

    from omni.sparkconf import delta_jars, spark_submit_command

    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else Path(shutil.which("java") or "java")
    try:
        real = java.resolve(strict=True)
        jars = [jar.name for jar in delta_jars(load_settings({}))]
    except OSError:  # no JVM, or no Delta JARs yet: the tests say what is missing
        return ""
    stat = real.stat()
    key = f"{real} {stat.st_size} {stat.st_mtime_ns} {pyspark.__version__} {options} {jars}"
    archive = CLASS_ARCHIVES / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"
    CLASS_ARCHIVES.mkdir(parents=True, exist_ok=True)
    with (CLASS_ARCHIVES / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be making it
        if not archive.exists():
            root = CLASS_ARCHIVES / f"work-{os.getpid()}"
            partial = root / "archive.jsa"
            settings = {
                "OMNI_LANDING_DIR": str(root / "landing"),
                "OMNI_LAKEHOUSE_DIR": str(root / "lakehouse"),
                "OMNI_SPARK_JAVA_OPTIONS": f"{options} -XX:ArchiveClassesAtExit={partial}",
            }
            command = spark_submit_command(
                load_settings(settings),
                "tests/class_archive_job.py",
                "--date",
                "2026-01-01",
                master="local[2]",
            )
            env = job_environment(settings)
            made = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
            if made.returncode == 0 and partial.exists():
                for stale in CLASS_ARCHIVES.glob("*.jsa"):
                    stale.unlink()
                partial.replace(archive)
            else:
                logging.getLogger(__name__).warning(
                    "no class data sharing archive for the tests' JVMs:\n%s", made.stderr[-2000:]
                )
            shutil.rmtree(root, ignore_errors=True)
    if not archive.exists():
        return ""
    # The JVM's own messages go to stderr: an archive it cannot use must not change stdout.
    return f"-XX:SharedArchiveFile={archive} -Xlog:disable -Xlog:all=warning:stderr"


# Generating and compiling Java code for each query plan costs more than interpreting the plan
# does on tiny data: bronze took 51 s instead of 67-73 s, silver 98 s instead of 128-155 s
# (gold the same); test_lakehouse_jobs.py in-process 569 s instead of 640 s, side by side.
# Results are the same: Spark tests both modes. The in-process session uses it too.
os.environ.setdefault(
    "OMNI_SPARK_CONF",
    "spark.sql.codegen.wholeStage=false,spark.sql.codegen.factoryMode=NO_CODEGEN",
)
# py4j logs "Closing down clientserver connection" from __del__ after pytest closed its streams.
logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("omni")
    return load_settings(
        {
            "OMNI_LANDING_DIR": str(root / "landing"),
            "OMNI_LAKEHOUSE_DIR": str(root / "lakehouse"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            "OMNI_MLFLOW_ARTIFACTS_DIR": str(root / "mlflow" / "artifacts"),
            "OMNI_SPARK_MASTER": "local[2]",
            "OMNI_SHUFFLE_PARTITIONS": "2",
            "OMNI_SPARK_CONF": os.environ["OMNI_SPARK_CONF"],
        }
    )


@pytest.fixture(scope="session")
def spark(settings):
    from omni.spark import get_spark

    session = get_spark(settings, app_name="omni-tests")
    session.sparkContext.setLogLevel("ERROR")
    session.sparkContext.setCheckpointDir(str(Path(settings.lakehouse_dir) / "_checkpoints"))
    yield session
    session.stop()


def settings_under(settings, root: Path, *, landing: bool = True):
    """``settings`` with a lakehouse, an MLflow store (SQLite, artifacts) and, unless
    ``landing`` is False, a landing zone of their own under ``root``."""
    from dataclasses import replace

    return replace(
        settings,
        **({"landing_dir": root / "landing"} if landing else {}),
        lakehouse_dir=root / "lakehouse",
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        mlflow_artifacts_dir=root / "artifacts",
    )


def rows(df, *columns, order_by=None):
    """A frame's rows as sorted tuples, for whole-content comparisons."""
    selected = df.select(*columns) if columns else df
    return (
        sorted(tuple(r) for r in selected.collect())
        if order_by is None
        else [tuple(r) for r in selected.orderBy(*order_by).collect()]
    )


def _sort_key(row: tuple) -> tuple:
    return tuple((value is not None, value) for value in row)


def assert_frame_equal(actual, expected, *, order_by=None) -> None:
    """``actual`` equals ``expected`` (chispa style): the same column names and types, in
    order, then the same rows, order-free unless ``order_by``; a failure prints both schemas or
    the rows that differ, marked ``-`` (expected only) and ``+`` (actual only)."""
    types = lambda df: [(f.name, f.dataType.simpleString()) for f in df.schema.fields]  # noqa: E731
    assert types(actual) == types(expected), (
        f"schemas differ:\n  actual:   {types(actual)}\n  expected: {types(expected)}"
    )

    def collected(df):
        found = [tuple(r) for r in (df.orderBy(*order_by) if order_by else df).collect()]
        return found if order_by else sorted(found, key=_sort_key)

    got, want = collected(actual), collected(expected)
    if got != want:
        header = " | ".join(actual.columns)
        lines = [f"- {row}" for row in want if row not in got]
        lines += [f"+ {row}" for row in got if row not in want]
        if not lines:  # the same rows in another order, or a row twice
            lines = [f"- {row}" for row in want] + [f"+ {row}" for row in got]
        raise AssertionError(
            f"rows differ ({len(got)} actual, {len(want)} expected):\n  {header}\n"
            + "\n".join(lines)
        )


# The modules that take longest, longest first; the rest follow in file order. ``make test``
# hands whole files to two xdist workers in this order, one file at a time as a worker runs
# low: the end-to-end module (17-18 min) then keeps one worker, the cluster module (8-11 min)
# starts at once on the other, and the short files fill in around them. In file order the
# cluster module came last, and the end-to-end worker sat idle for the last 3 minutes; now
# both end within seconds of each other. On 2 cores that saves no time (1,271 s against
# 1,242 s): the cores are 90% busy either way. Where cores are to spare, those 3 minutes are not.
LONGEST_FIRST = ("test_end_to_end.py", "test_spark_submit.py", "test_lakehouse_jobs.py")


def pytest_collection_modifyitems(config, items):
    """Longest modules first (``LONGEST_FIRST``), so the workers end close together."""
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


FIGURES = "figures"  # a user property: what a test measured, printed after the run


def pytest_terminal_summary(terminalreporter):
    """The figures tests recorded (``record_property(FIGURES, ...)``), from every worker."""
    figures = [
        (report.nodeid, value)
        for report in terminalreporter.stats.get("passed", [])
        + terminalreporter.stats.get("failed", [])
        for name, value in report.user_properties
        if name == FIGURES
    ]
    if figures:
        terminalreporter.section("figures")
        for nodeid, value in figures:
            terminalreporter.write_line(f"{nodeid}: {value}")


# Columns that stamp when or by which run a row was written: they differ between two runs that
# write the same data, so table comparisons across runs leave them out.
RUN_STAMPS = {"_run_id", "run_id", "updated_run_id", "_ingested_at", "ingested_at"}


def table_contents(spark, lakehouse_dir: Path, name: str, *, keep_run_ids: bool = False):
    """A Delta table's rows as a sorted list, without run stamps, doubles to 9 places; [] when
    there is no table.

    Timestamps ending in ``_at`` record when a row was written (``updated_at`` is the source's
    own time and stays); sums of doubles may differ in the last bits between engines that add
    in a different order.
    """
    from pyspark.sql import functions as F

    layer, table = name.split(".")
    path = Path(lakehouse_dir) / layer / table
    if not path.exists():  # a table no job of the run created holds no rows
        return []
    df = spark.read.format("delta").load(str(path))
    dropped = {
        c
        for c, kind in df.dtypes
        if (c in RUN_STAMPS and not (keep_run_ids and "run_id" in c))
        or (kind == "timestamp" and c.endswith("_at") and c != "updated_at")
    }
    columns = [
        F.round(c, 9).alias(c) if kind in ("double", "float") else F.col(c)
        for c, kind in df.dtypes
        if c not in dropped
    ]
    return sorted((tuple(r) for r in df.select(*columns).collect()), key=repr)


def job_environment(settings_env: dict[str, str]) -> dict[str, str]:
    """The environment a job runs in under the DAGs: the settings plus the interpreter."""
    import sys

    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        **settings_env,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


def readers_rows(spark, location: str, table) -> tuple[list[tuple], list[tuple]]:
    """A Delta table's rows as delta-rs (``deltalake``, under Polars and pandas) and as Spark
    read them, sorted, timestamps as microseconds since the epoch (UTC) in both."""
    import pyarrow as pa
    from deltalake import DeltaTable
    from pyspark.sql import functions as F

    names = table.column_names
    stamps = {c.name for c in table.columns if c.type == "timestamp"}
    arrow = DeltaTable(location).to_pyarrow_table(columns=names)
    for name in stamps:
        position = arrow.schema.get_field_index(name)
        column = arrow[name].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        arrow = arrow.set_column(position, name, column)
    delta_rs = [tuple(row[n] for n in names) for row in arrow.to_pylist()]
    frame = spark.read.format("delta").load(location)
    selected = frame.select(
        *[F.unix_micros(n).alias(n) if n in stamps else F.col(n) for n in names]
    )
    return sorted(delta_rs, key=repr), sorted((tuple(r) for r in selected.collect()), key=repr)


# Under xdist, the controller imports this file before it starts the workers, which inherit it.
if "OMNI_SPARK_JAVA_OPTIONS" not in os.environ:
    os.environ["OMNI_SPARK_JAVA_OPTIONS"] = f"{JVM_OPTIONS} {_class_archive(JVM_OPTIONS)}".strip()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresForTests:
    """A PostgreSQL server of the tests' own (``postgres`` fixture): where it runs, and the
    environment of the PostgreSQL profile on a set of databases of its own per test."""

    def __init__(self, folder: Path, port: int):
        from omni.config import PostgresServer

        self.folder = folder
        self.server = PostgresServer(host="127.0.0.1", port=port, user="omni")

    def start(self) -> None:
        from omni import postgres

        postgres.start_local(self.folder, self.server, durable=False)
        postgres.wait_until_answering(self.server)

    def stop(self, mode: str = "fast") -> None:
        from omni import postgres

        postgres.stop_local(self.folder, mode)

    def profile(self, name: str, **extra: str) -> dict[str, str]:
        """The PostgreSQL profile's variables on databases ``<name>_metastore`` and
        ``<name>_mlflow``, created with the metastore schema (as ``make postgres`` does)."""
        from omni import postgres

        env = {
            "OMNI_PROFILE": "postgresql",
            "PGHOST": self.server.host,
            "PGPORT": str(self.server.port),
            "PGUSER": self.server.user,
            "OMNI_METASTORE_DATABASE": f"{name}_metastore",
            "MLFLOW_TRACKING_URI": self.server.sqlalchemy_url(f"{name}_mlflow"),
            **extra,
        }
        postgres.setup(load_settings(env))
        return env

    def query(self, database: str, sql: str, *args) -> list[tuple]:
        from omni import postgres

        with postgres.connect(self.server, database) as db:
            return db.execute(sql, args).fetchall()

    def query_none(self, database: str, sql: str) -> None:
        """A statement that returns no rows (DDL, INSERT)."""
        from omni import postgres

        with postgres.connect(self.server, database) as db:
            db.execute(sql)


@contextmanager
def local_postgres(prefix: str = "omni-tests-pg-"):
    """A local PostgreSQL server on a free port, stopped and removed afterwards.

    Its folder is under /tmp, not pytest's temp folder: as root, the server runs as the
    ``postgres`` user, who cannot enter root's private pytest folders."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    server = PostgresForTests(root / "data", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    """The tests' PostgreSQL server for the whole run (of this xdist worker)."""
    with local_postgres() as server:
        yield server


def notebook_text(book) -> str:
    """Every text and HTML output of an executed notebook, as one string."""
    parts = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            parts += [output.get("text", ""), data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(parts)


def notebook_images(book) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in book.cells
        for output in cell.get("outputs", [])
    )
