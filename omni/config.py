"""One typed, frozen configuration object, built from defaults plus environment variables.

The defaults are the embedded set-up of ``serving-tables.md``: everything under ``data/`` in
the repository, SQLite for MLflow, Spark ``local[*]``. Secrets come only from the environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent

# A clearly named development key: good for the generated sample, refused in production.
DEVELOPMENT_HASH_KEY = "omni-development-only-hash-key"


def _path(value: str | None, default: Path) -> Path:
    """A path from the environment, relative ones taken from the repository root."""
    if not value:
        return default
    path = Path(value)
    return path if path.is_absolute() else (REPO_ROOT / path)


# A URI such as s3a://bucket/lakehouse or abfss://container@account.dfs.core.windows.net/x.
_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")


def _lakehouse_location(value: str | None, local: Path) -> tuple[Path, str | None]:
    """The lakehouse's local folder and, when ``value`` is a URI, the URI its tables live under.

    A path (or no value) puts everything in one local folder. A URI puts the tables, the
    Spark warehouse and the checkpoints there (object storage, HDFS...), while the embedded
    metastore, which must be on a local disk, stays in ``local``.
    """
    match = _URI.match(value or "")
    if match is None:
        return _path(value, local), None
    if not match.group("rest").strip("/"):
        raise ValueError(
            f"OMNI_LAKEHOUSE_DIR={value!r}: expected a path or a URI with a location after "
            f"'{match.group('scheme')}://', such as s3a://bucket/lakehouse"
        )
    return local, value.rstrip("/")


def _jars(env: dict[str, str], name: str) -> tuple[Path, ...]:
    """Comma-separated JAR files (relative ones from the repository root), each checked."""
    items = [item.strip() for item in (env.get(name) or "").split(",") if item.strip()]
    jars = tuple(_path(item, REPO_ROOT) for item in items)
    for jar in jars:
        if jar.suffix != ".jar" or not jar.is_file():
            raise ValueError(f"{name}: {str(jar)!r} is not a JAR file; expected a.jar,b.jar")
    return jars


def _spark_properties(env: dict[str, str], name: str) -> tuple[tuple[str, str], ...]:
    """Comma-separated ``spark.key=value`` pairs, each checked."""
    pairs = []
    for item in (env.get(name) or "").split(","):
        if not item.strip():
            continue
        key, equals, value = item.partition("=")
        if not (equals and key.strip().startswith("spark.") and value.strip()):
            raise ValueError(
                f"{name}: {item.strip()!r} is not a Spark property; expected "
                "spark.key=value[,spark.key=value...]"
            )
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _positive_int(env: dict[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r}: expected a number of at least {minimum}")
    return value


def _time_of_day(env: dict[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if not match:
        raise ValueError(f"{name}={value!r}: expected a time of day HH:MM, such as 03:00")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def _timezone(env: dict[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name}={value!r}: expected an IANA time zone such as UTC or Europe/Paris"
        ) from None
    return value


def _emails(env: dict[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name) or ""
    found = tuple(part.strip() for part in raw.split(",") if part.strip())
    for address in found:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
            raise ValueError(
                f"{name}={raw!r}: {address!r} is not an e-mail address; expected "
                "comma-separated addresses"
            )
    return found


def _fraction(env: dict[str, str], name: str, default: float, *, zero: bool = False) -> float:
    """A number below 1 and above 0 (or from 0, with ``zero``) from ``env[name]``."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    expected = f"expected a number {'from 0 up to' if zero else 'between 0 and'} 1"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: {expected}") from None
    if not (0 <= value < 1 if zero else 0 < value < 1):
        raise ValueError(f"{name}={raw!r}: {expected}")
    return value


def _sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


def _absolute_tracking_uri(uri: str) -> str:
    """Make a relative ``sqlite:///`` URI absolute (from the repository root).

    MLflow resolves a relative SQLite path from the working directory, which differs between
    ``make run``, the Airflow task and a notebook; anchoring it keeps one store.
    """
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return _sqlite_uri(REPO_ROOT / uri[len(prefix) :])
    return uri


# The two ways to run the project (OMNI_PROFILE): the embedded stores of the serving contract,
# or one PostgreSQL server for the Spark catalog (a Hive metastore), Airflow and MLflow.
EMBEDDED = "embedded"
POSTGRESQL = "postgresql"
PROFILES = (EMBEDDED, POSTGRESQL)
# The databases of the PostgreSQL profile, one per store, on the server PGHOST/PGPORT name.
METASTORE_DATABASE = "omni_metastore"
MLFLOW_DATABASE = "omni_mlflow"
AIRFLOW_DATABASE = "omni_airflow"


@dataclass(frozen=True)
class PostgresServer:
    """Where the PostgreSQL profile's databases live: libpq's standard variables.

    ``PGHOST`` (127.0.0.1), ``PGPORT`` (5432), ``PGUSER`` (omni) and ``PGPASSWORD`` (none:
    libpq then reads ``~/.pgpass``). The password is never part of a URL or a command line.
    """

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "omni"
    password: str | None = field(default=None, repr=False)

    def jdbc_url(self, database: str) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{database}"

    def sqlalchemy_url(self, database: str) -> str:
        """A URL without the password: psycopg (libpq) takes it from PGPASSWORD or .pgpass."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def describe(self, database: str) -> str:
        return f"PostgreSQL database {database!r} at {self.host}:{self.port} as {self.user!r}"


def _postgres_server(env: dict[str, str]) -> PostgresServer:
    return PostgresServer(
        host=(env.get("PGHOST") or "127.0.0.1").strip(),
        port=_positive_int(env, "PGPORT", 5432),
        user=(env.get("PGUSER") or "omni").strip(),
        password=env.get("PGPASSWORD") or None,
    )


def _profile(env: dict[str, str]) -> str:
    value = (env.get("OMNI_PROFILE") or EMBEDDED).strip().lower()
    if value not in PROFILES:
        raise ValueError(f"OMNI_PROFILE={value!r}: expected one of {', '.join(PROFILES)}")
    return value


@dataclass(frozen=True)
class Settings:
    """Where things live and how the pipeline behaves; see ``serving-tables.md``."""

    landing_dir: Path
    # The local lakehouse folder: the tables, unless ``lakehouse_uri`` puts them elsewhere,
    # and always the embedded metastore.
    lakehouse_dir: Path
    mlflow_tracking_uri: str
    mlflow_artifacts_dir: Path
    spark_master: str
    jar_dir: Path
    hash_key: str = field(repr=False)
    production: bool = False
    churn_horizon_days: int = 30
    profile_window_days: int = 365
    activity_window_days: int = 30
    spark_shuffle_partitions: int = 4
    spark_driver_memory: str = "4g"
    max_customers_per_device: int = 3
    churn_medium_threshold: float = 0.3
    vacuum_retention_hours: int = 168
    churn_high_threshold: float = 0.6
    churn_training_snapshots: int = 6
    churn_snapshot_step_days: int = 7
    # A challenger replaces the champion only when it beats it on the same data by this much:
    # ROC-AUC on the churn holdout, silhouette on the day's features for segmentation.
    churn_promotion_margin: float = 0.005
    segmentation_promotion_margin: float = 0.01
    # Skus per customer and channel in gold.personalization_feed.
    recommendation_count: int = 5
    # Days held out at training time to evaluate the recommendations (0: not evaluated).
    recommendation_holdout_days: int = 28
    # Population stability index above which monitoring flags a retrain (0.1 to 0.25 is
    # the usual "moderate shift" band; 0.2 its middle).
    psi_threshold: float = 0.2
    # Orchestration: when the nightly run starts (local time in ``timezone``), how tasks
    # retry and time out, and who gets mail when a task fails for good.
    nightly_at: str = "03:00"
    maintenance_at: str = "05:00"
    timezone: str = "UTC"
    task_retries: int = 1
    task_timeout_minutes: int = 120
    alert_emails: tuple[str, ...] = ()
    # Tables on object storage or HDFS (OMNI_LAKEHOUSE_DIR set to a URI), and the JARs of
    # its file system (OMNI_EXTRA_JARS: hadoop-aws and the AWS SDK bundle, say).
    lakehouse_uri: str | None = None
    extra_jars: tuple[Path, ...] = ()
    # The embedded catalog's folder when not the default (OMNI_METASTORE_DIR).
    metastore_override: Path | None = None
    # Extra options of the Spark JVMs (OMNI_SPARK_JAVA_OPTIONS), e.g. GC or JIT settings.
    spark_java_options: str = ""
    # Extra Spark properties of every session and job (OMNI_SPARK_CONF), applied last.
    spark_properties: tuple[tuple[str, str], ...] = ()
    # OMNI_PROFILE: embedded (Derby catalog, SQLite stores) or postgresql (see PostgresServer).
    profile: str = EMBEDDED
    postgres: PostgresServer = field(default_factory=PostgresServer)
    # The metastore's database on that server (OMNI_METASTORE_DATABASE).
    metastore_database: str = METASTORE_DATABASE

    @property
    def shared_catalog(self) -> bool:
        """Whether the Spark catalog is a metastore many processes share (not Derby's)."""
        return self.profile == POSTGRESQL

    @property
    def lakehouse_location(self) -> str:
        """Where the tables live: a local path or a URI, without a trailing slash."""
        return self.lakehouse_uri or str(self.lakehouse_dir)

    @property
    def metastore_dir(self) -> Path:
        """Embedded Derby metastore that registers every table by ``<layer>.<table>``.

        It must be on a local disk: in the lakehouse folder by default, or where
        ``OMNI_METASTORE_DIR`` says (needed when the tables are on object storage).
        """
        return self.metastore_override or self.lakehouse_dir / "_metastore"

    @property
    def gx_dir(self) -> Path:
        return self.lakehouse_dir.parent / "gx"

    def with_local_lakehouse(self, folder: Path) -> Settings:
        """These settings with every table, and the catalog, in the local ``folder``."""
        return replace(self, lakehouse_dir=folder, lakehouse_uri=None)

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    data = REPO_ROOT / "data"
    profile = _profile(env)
    postgres = _postgres_server(env)
    default_tracking = (
        postgres.sqlalchemy_url(MLFLOW_DATABASE)
        if profile == POSTGRESQL
        else _sqlite_uri(data / "mlflow" / "mlflow.db")
    )
    tracking = _absolute_tracking_uri(env.get("MLFLOW_TRACKING_URI") or default_tracking)
    production = env.get("OMNI_PRODUCTION", "false").strip().lower()
    if production not in {"true", "false", "1", "0", ""}:
        raise ValueError(f"OMNI_PRODUCTION={production!r}: expected true or false")
    is_production = production in {"true", "1"}
    hash_key = env.get("OMNI_HASH_KEY") or DEVELOPMENT_HASH_KEY
    if is_production and hash_key == DEVELOPMENT_HASH_KEY:
        raise ValueError(
            "OMNI_PRODUCTION is set but OMNI_HASH_KEY is missing or is the development key: "
            "set OMNI_HASH_KEY to a secret of your own"
        )
    lakehouse_dir, lakehouse_uri = _lakehouse_location(
        env.get("OMNI_LAKEHOUSE_DIR"), data / "lakehouse"
    )
    return Settings(
        profile=profile,
        postgres=postgres,
        metastore_database=(env.get("OMNI_METASTORE_DATABASE") or METASTORE_DATABASE).strip(),
        landing_dir=_path(env.get("OMNI_LANDING_DIR"), data / "landing"),
        lakehouse_dir=lakehouse_dir,
        lakehouse_uri=lakehouse_uri,
        extra_jars=_jars(env, "OMNI_EXTRA_JARS"),
        spark_java_options=(env.get("OMNI_SPARK_JAVA_OPTIONS") or "").strip(),
        spark_properties=_spark_properties(env, "OMNI_SPARK_CONF"),
        metastore_override=(
            _path(env["OMNI_METASTORE_DIR"], REPO_ROOT) if env.get("OMNI_METASTORE_DIR") else None
        ),
        mlflow_tracking_uri=tracking,
        mlflow_artifacts_dir=_path(
            env.get("OMNI_MLFLOW_ARTIFACTS_DIR"), data / "mlflow" / "artifacts"
        ),
        spark_master=env.get("OMNI_SPARK_MASTER") or "local[*]",
        jar_dir=_path(env.get("OMNI_JAR_DIR"), REPO_ROOT / ".cache" / "jars"),
        hash_key=hash_key,
        production=is_production,
        churn_horizon_days=_positive_int(env, "OMNI_CHURN_HORIZON_DAYS", 30),
        spark_shuffle_partitions=_positive_int(env, "OMNI_SHUFFLE_PARTITIONS", 4),
        spark_driver_memory=_memory(env, "OMNI_SPARK_DRIVER_MEMORY", "4g"),
        max_customers_per_device=_positive_int(env, "OMNI_MAX_CUSTOMERS_PER_DEVICE", 3),
        churn_medium_threshold=_fraction(env, "OMNI_CHURN_MEDIUM_THRESHOLD", 0.3),
        vacuum_retention_hours=_positive_int(env, "OMNI_VACUUM_RETENTION_HOURS", 168),
        churn_high_threshold=_fraction(env, "OMNI_CHURN_HIGH_THRESHOLD", 0.6),
        churn_training_snapshots=_positive_int(env, "OMNI_CHURN_TRAINING_SNAPSHOTS", 6),
        churn_snapshot_step_days=_positive_int(env, "OMNI_CHURN_SNAPSHOT_STEP_DAYS", 7),
        churn_promotion_margin=_fraction(env, "OMNI_CHURN_PROMOTION_MARGIN", 0.005, zero=True),
        segmentation_promotion_margin=_fraction(
            env, "OMNI_SEGMENTATION_PROMOTION_MARGIN", 0.01, zero=True
        ),
        recommendation_count=_positive_int(env, "OMNI_RECOMMENDATIONS", 5),
        recommendation_holdout_days=_positive_int(
            env, "OMNI_RECOMMENDATION_HOLDOUT_DAYS", 28, minimum=0
        ),
        psi_threshold=_fraction(env, "OMNI_PSI_THRESHOLD", 0.2),
        nightly_at=_time_of_day(env, "OMNI_NIGHTLY_AT", "03:00"),
        maintenance_at=_time_of_day(env, "OMNI_MAINTENANCE_AT", "05:00"),
        timezone=_timezone(env, "OMNI_TIMEZONE", "UTC"),
        task_retries=_positive_int(env, "OMNI_TASK_RETRIES", 1, minimum=0),
        task_timeout_minutes=_positive_int(env, "OMNI_TASK_TIMEOUT_MINUTES", 120),
        alert_emails=_emails(env, "OMNI_ALERT_EMAIL"),
    )


def _memory(env: dict[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip().lower()
    if not re.fullmatch(r"[1-9]\d*[kmgt]", value):
        raise ValueError(f"{name}={value!r}: expected a JVM memory size such as 4g or 512m")
    return value


def parse_date(value: str) -> date:
    """Parse a ``YYYY-MM-DD`` business date, naming the bad value when it is not one."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"date {value!r}: expected YYYY-MM-DD") from None
