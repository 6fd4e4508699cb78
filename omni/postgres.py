"""The PostgreSQL profile's server side: a local server, the three databases, the metastore schema.

``OMNI_PROFILE=postgresql`` keeps the Spark catalog (a Hive metastore), Airflow's metadata and
MLflow's tracking and registry in three databases of one PostgreSQL server, the one libpq's
``PGHOST``/``PGPORT``/``PGUSER``/``PGPASSWORD`` name. This module

* starts and stops a local server for development and tests (``start``/``stop``: a cluster
  in ``OMNI_POSTGRES_DIR``, default ``data/postgres``, on 127.0.0.1 only);
* creates what is missing, idempotently (``setup``): the databases, then the metastore's
  schema. Spark's Hive 2.3 client must find the whole schema in place: creating it lazily
  from a job deadlocks on its own connections (``../shared/STACK-NOTES.md``), so it is
  made here, once, by DataNucleus' SchemaTool from the metastore JAR's own ``package.jdo``;
* checks, before a job's Spark session starts, that the catalog's database answers and holds
  the schema (``require_catalog``), and before a model job touches the registry that MLflow's
  does (``require_tracking_store``), so a job fails in seconds, naming the database and the
  profile, instead of waiting in the Hive client's or MLflow's retries.

    python -m omni.postgres start|setup|status|stop|env      (or: make postgres)
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from omni.config import (
    AIRFLOW_DATABASE,
    POSTGRESQL,
    REPO_ROOT,
    PostgresServer,
    Settings,
    load_settings,
)
from omni.sparkconf import jdbc_driver_path

# The version Spark's built-in Hive client (hive-metastore 2.3.x) expects in "VERSION".
HIVE_SCHEMA_VERSION = "2.3.0"
SERVER_USER = "postgres"  # the server refuses to run as root: as root, it runs as this user
CONNECT_TIMEOUT_SECONDS = 5
LOCAL_HOSTS = ("127.0.0.1", "localhost")


class DatabaseUnavailable(RuntimeError):
    """A database of the PostgreSQL profile does not answer (or lacks what it must hold)."""


def connect(server: PostgresServer, database: str, timeout: int = CONNECT_TIMEOUT_SECONDS):
    """A psycopg connection (autocommit), or ``DatabaseUnavailable`` naming what failed."""
    import psycopg

    try:
        return psycopg.connect(
            host=server.host,
            port=server.port,
            user=server.user,
            password=server.password,
            dbname=database,
            connect_timeout=timeout,
            autocommit=True,
        )
    except psycopg.OperationalError as error:
        reason = " ".join(str(error).split())
        raise DatabaseUnavailable(
            f"OMNI_PROFILE={POSTGRESQL}: the {server.describe(database)} does not answer "
            f"({reason}); start it (make postgres) or set PGHOST/PGPORT/PGUSER to the server "
            "that holds it"
        ) from None


def tracking_database(settings: Settings) -> tuple[PostgresServer, str] | None:
    """MLflow's PostgreSQL server and database, from its tracking URI; None for another store."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.mlflow_tracking_uri)
    if url.get_backend_name() != "postgresql" or not url.database:
        return None
    server = settings.postgres
    return (
        PostgresServer(
            host=url.host or server.host,
            port=url.port or server.port,
            user=url.username or server.user,
            password=url.password or server.password,
        ),
        url.database,
    )


def require_catalog(settings: Settings) -> None:
    """Fail fast, naming the database and the profile, when the PostgreSQL profile's catalog
    cannot be reached or has no metastore schema (nothing to check for the embedded one)."""
    if not settings.shared_catalog:
        return
    with connect(settings.postgres, settings.metastore_database) as db:
        if not _has_metastore_schema(db):
            raise DatabaseUnavailable(
                f"OMNI_PROFILE={POSTGRESQL}: the "
                f"{settings.postgres.describe(settings.metastore_database)} has no Hive "
                "metastore schema; create it once with 'make postgres' (python -m omni.postgres "
                "setup)"
            )


def require_tracking_store(settings: Settings) -> None:
    """Fail fast when MLflow's store is a PostgreSQL database that does not answer (MLflow
    itself retries creating its engine ten times, about 100 s of back-off)."""
    found = tracking_database(settings)
    if found is not None:
        connect(*found).close()


def _has_metastore_schema(db) -> bool:
    """Whether the database holds a Hive metastore schema; one of another Hive version than
    Spark's client speaks is refused, naming both."""
    found = db.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'VERSION'"
    ).fetchone()[0]
    if not found:
        return False
    versions = {row[0] for row in db.execute('SELECT "SCHEMA_VERSION" FROM "VERSION"')}
    if versions and versions != {HIVE_SCHEMA_VERSION}:
        raise DatabaseUnavailable(
            f"OMNI_PROFILE={POSTGRESQL}: the metastore schema in {db.info.dbname!r} is Hive "
            f"{', '.join(sorted(versions))}; Spark's built-in Hive client expects "
            f"{HIVE_SCHEMA_VERSION}: use another OMNI_METASTORE_DATABASE"
        )
    return bool(versions)


def ensure_databases(server: PostgresServer, databases: list[str]) -> list[str]:
    """Create the databases that do not exist yet; the ones created."""
    created = []
    with connect(server, "postgres") as db:
        for name in databases:
            exists = db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                db.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
    return created


def _hive_metastore_jar() -> Path:
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("hive-metastore-*.jar"))
    if not jars:
        raise FileNotFoundError("pyspark ships no hive-metastore JAR: is pyspark installed?")
    return jars[-1]


def jdbc_driver(settings: Settings) -> Path:
    """The cached PostgreSQL JDBC driver (``make setup`` fetches it)."""
    driver = jdbc_driver_path(settings)
    if not driver.exists():
        raise FileNotFoundError(f"no PostgreSQL JDBC driver at {driver}: run 'make setup'")
    return driver


def ensure_metastore_schema(settings: Settings) -> bool:
    """Create the Hive metastore schema in its database unless it is there; whether it made it.

    DataNucleus' SchemaTool creates only the tables, columns and constraints that are
    missing, so a schema left half-made by an interrupted set-up is completed by the next.
    """
    server, database = settings.postgres, settings.metastore_database
    with connect(server, database) as db:
        if _has_metastore_schema(db):
            return False
    import pyspark

    with tempfile.TemporaryDirectory(prefix="omni-metastore-schema-") as work:
        folder = Path(work)
        with zipfile.ZipFile(_hive_metastore_jar()) as jar:
            (folder / "package.jdo").write_bytes(jar.read("package.jdo"))
        properties = {
            "javax.jdo.option.ConnectionURL": server.jdbc_url(database),
            "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
            "javax.jdo.option.ConnectionUserName": server.user,
            "javax.jdo.option.ConnectionPassword": server.password or "",
            "datanucleus.storeManagerType": "rdbms",
            "datanucleus.schema.autoCreateAll": "false",
            "datanucleus.identifierFactory": "datanucleus1",
            "datanucleus.rdbms.useLegacyNativeValueStrategy": "true",
        }
        props = folder / "datanucleus.properties"
        props.touch(mode=0o600)  # the password, if any: for this user's eyes only
        props.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        class_path = os.pathsep.join(
            [
                str(folder),
                str(Path(pyspark.__file__).parent / "jars" / "*"),
                str(jdbc_driver(settings)),
            ]
        )
        command = [
            _java(),
            "-cp",
            class_path,
            "org.datanucleus.store.schema.SchemaTool",
            "-create",
            "-api",
            "JDO",
            "-props",
            str(props),
            str(folder / "package.jdo"),
        ]
        result = subprocess.run(command, capture_output=True, text=True, cwd=folder)
    with connect(server, database) as db:
        tables = db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('DBS', 'TBLS')"
        ).fetchone()[0]
        if result.returncode != 0 or tables != 2:
            raise RuntimeError(
                f"SchemaTool could not create the Hive metastore schema in the "
                f"{server.describe(database)} (exit {result.returncode}):\n"
                f"{(result.stdout + result.stderr)[-3000:]}"
            )
        db.execute(
            'INSERT INTO "VERSION" ("VER_ID", "SCHEMA_VERSION", "VERSION_COMMENT") '
            "VALUES (1, %s, 'omni.postgres') ON CONFLICT DO NOTHING",
            (HIVE_SCHEMA_VERSION,),
        )
    return True


def setup(settings: Settings) -> dict[str, object]:
    """The databases and the metastore schema of the profile, created where missing."""
    databases = [settings.metastore_database, AIRFLOW_DATABASE]
    created = ensure_databases(settings.postgres, databases)
    tracking = tracking_database(settings)
    if tracking is not None:
        created += ensure_databases(tracking[0], [tracking[1]])
    return {
        "databases_created": created,
        "metastore_schema_created": ensure_metastore_schema(settings),
    }


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = Path(home) / "bin" / "java" if home else shutil.which("java")
    if not java:
        raise FileNotFoundError("no 'java' on PATH and JAVA_HOME is not set")
    return str(java)


# A local server for development and tests.


def server_bin() -> Path:
    """The PostgreSQL server's programs: ``OMNI_POSTGRES_BIN``, else Debian's newest."""
    configured = os.environ.get("OMNI_POSTGRES_BIN")
    candidates = (
        [Path(configured)]
        if configured
        else sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    )
    for folder in reversed(candidates):
        if (folder / "postgres").exists():
            return folder
    raise FileNotFoundError(
        "no PostgreSQL server programs (/usr/lib/postgresql/*/bin/postgres): install them with "
        "'apt-get install -y postgresql' or set OMNI_POSTGRES_BIN"
    )


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


def _own(folder: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(folder, user.pw_uid, user.pw_gid)


def is_running(folder: Path) -> bool:
    result = subprocess.run(
        _as_server_user([str(server_bin() / "pg_ctl"), "-D", str(folder), "status"]),
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


def start_local(folder: Path, server: PostgresServer, *, durable: bool = True) -> bool:
    """Start a local server in ``folder`` (made on first use) on 127.0.0.1:``server.port``,
    superuser ``server.user``, trusted on that address only; whether it was started now.

    ``durable=False`` (the tests' throw-away servers) turns off fsync."""
    folder = folder.resolve()
    if server.host not in LOCAL_HOSTS:
        raise ValueError(
            f"PGHOST={server.host!r}: a local server listens on 127.0.0.1; for a server "
            "elsewhere, create its databases with 'python -m omni.postgres setup' only"
        )
    binaries = server_bin()
    if not (folder / "PG_VERSION").exists():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        _own(folder)
        _run(
            _as_server_user(
                [str(binaries / "initdb"), "-D", str(folder), "-A", "trust", "-U", server.user]
            ),
            "initdb",
        )
    if is_running(folder):
        return False
    options = (
        f"-p {server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
        "-c max_connections=200" + ("" if durable else " -c fsync=off")
    )
    _run(
        _as_server_user(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(folder),
                "-o",
                options,
                "-l",
                str(folder / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        "pg_ctl start",
        log=folder / "server.log",
    )
    return True


def stop_local(folder: Path, mode: str = "fast") -> bool:
    """Stop the local server in ``folder``; whether one was running."""
    if not (folder / "PG_VERSION").exists() or not is_running(folder):
        return False
    _run(
        _as_server_user(
            [str(server_bin() / "pg_ctl"), "-D", str(folder), "-m", mode, "-w", "stop"]
        ),
        "pg_ctl stop",
    )
    return True


def wait_until_answering(server: PostgresServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            connect(server, "postgres", timeout=2).close()
            return
        except DatabaseUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = log.read_text()[-2000:] if log and log.exists() else ""
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}): {result.stdout}{result.stderr}{tail}"
        )


def local_folder(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    value = env.get("OMNI_POSTGRES_DIR")
    if not value:
        return REPO_ROOT / "data" / "postgres"
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


def airflow_environment(server: PostgresServer, database: str = AIRFLOW_DATABASE) -> dict[str, str]:
    """Airflow on ``database``: its connection, the async one (Airflow would otherwise derive
    ``postgresql+asyncpg``, a driver not installed: psycopg 3 does both), the LocalExecutor."""
    url = server.sqlalchemy_url(database)
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": url,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    }


def profile_environment(settings: Settings) -> dict[str, str]:
    """The variables that put Airflow and MLflow on the profile's server (``env`` prints them)."""
    server = settings.postgres
    return {
        "OMNI_PROFILE": POSTGRESQL,
        "PGHOST": server.host,
        "PGPORT": str(server.port),
        "PGUSER": server.user,
        **airflow_environment(server),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "setup", "status", "stop", "env"])
    args = parser.parse_args(argv)
    # This module is the profile's, whatever OMNI_PROFILE says: its defaults (MLflow's too).
    settings = load_settings({**os.environ, "OMNI_PROFILE": POSTGRESQL})
    folder = local_folder()
    try:
        if args.action == "env":
            for key, value in profile_environment(settings).items():
                print(f"export {key}='{value}'")
        elif args.action == "stop":
            print("stopped" if stop_local(folder) else f"no server running in {folder}")
        elif args.action == "status":
            require_catalog(settings)
            require_tracking_store(settings)
            print(f"{settings.postgres.describe(settings.metastore_database)}: metastore ready")
        else:
            if args.action == "start" and settings.postgres.host in LOCAL_HOSTS:
                started = start_local(folder, settings.postgres)
                state = "started" if started else "already running"
                print(f"PostgreSQL {state} in {folder} on 127.0.0.1:{settings.postgres.port}")
                wait_until_answering(settings.postgres)
            elif args.action == "start":
                print(f"PGHOST={settings.postgres.host}: a server elsewhere, not started here")
            print(f"set up: {setup(settings)}")
    except (DatabaseUnavailable, FileNotFoundError, RuntimeError, ValueError) as error:
        print(f"omni.postgres {args.action}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
