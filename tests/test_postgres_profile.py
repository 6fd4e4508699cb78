"""The PostgreSQL profile: one metastore for every process, moving between profiles, and
what a job does when the database is down.

A PostgreSQL server of the tests' own runs in /tmp (``postgres_server``, conftest); each test
gets databases of its own on it, with the metastore schema made as ``make postgres`` makes it.
The jobs run as the DAGs submit them (``spark-submit`` on ``local[2]``) with the profile's
environment; a "notebook" is a Python process holding ``get_spark(load_settings())`` open
(``tests/catalog_session.py``); the SQL server is ``make sql-server``'s; the shell is
``make spark-sql``'s. Under the embedded profile any two of them at once fail on Derby's lock.

The set-up test runs in ``make test``; the others, each a few JVMs for minutes, run in ``make
test-production`` (marker ``production``) with the end-to-end run of the profile, which
``.ci/run`` no longer runs (README, "Tests").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs.bronze_ingest import ingest_all
from jobs.silver import run_silver
from omni import postgres, tables
from omni.config import load_settings
from omni.sample import SampleSpec, generate_sample
from omni.sparkconf import spark_submit_command
from tests.conftest import FIGURES, free_port, job_environment, local_postgres, table_contents
from tests.test_end_to_end import _beeline, _serving

REPO = Path(__file__).resolve().parent.parent
RUN_DATE = date(2026, 3, 6)
RUN_ID = "scheduled__2026-03-07T03:00:00+00:00"
BRONZE = [t.name for t in tables.layer_tables("bronze")]
# What a bronze job writes: its layer, and the results of its audit (omni.publish).
WRITTEN_BY_BRONZE = [*BRONZE, tables.VALIDATION_RESULTS.name]
SILVER = [t.name for t in tables.layer_tables("silver")] + [
    "quarantine.records",
    "quarantine.reconciliation",
]


def _landing(root: Path, customers: int, seed: int) -> Path:
    landing = root / f"landing-{seed}"
    generate_sample(landing, SampleSpec(customers=customers, days=4, end_date=RUN_DATE, seed=seed))
    return landing


def _env(profile: dict[str, str], landing: Path, lakehouse: Path, **extra: str) -> dict[str, str]:
    return job_environment(
        {
            **profile,
            "OMNI_LANDING_DIR": str(landing),
            "OMNI_LAKEHOUSE_DIR": str(lakehouse),
            "OMNI_SHUFFLE_PARTITIONS": "2",
            **extra,
        }
    )


def _submit(env: dict[str, str], script: str, log: Path) -> subprocess.CompletedProcess:
    """A job as the DAGs submit it, with the settings ``env`` gives."""
    settings = load_settings({k: v for k, v in env.items() if k.startswith(("OMNI_", "PG"))})
    command = spark_submit_command(
        settings, script, "--date", str(RUN_DATE), "--run-id", RUN_ID, master="local[2]"
    )
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    log.write_text(result.stdout + result.stderr)
    return result


def _rows(lakehouse: Path, name: str) -> int:
    layer, table = name.split(".")
    return DeltaTable(str(lakehouse / layer / table)).to_pyarrow_table().num_rows


class Notebook:
    """A Spark session held open in another process, asked SQL line by line."""

    def __init__(self, env: dict[str, str], log: Path):
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "catalog_session.py")],
            env=env,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self._answer() == {"ready": True}

    def _answer(self) -> dict:
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise AssertionError(f"the notebook process ended: {self.process.wait()}")

    def sql(self, statement: str) -> list[dict]:
        self.process.stdin.write(statement.replace("\n", " ") + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        assert "rows" in answer, answer
        return answer["rows"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=120)
        self.log.close()


@contextmanager
def _notebook(env: dict[str, str], log: Path):
    notebook = Notebook(env, log)
    try:
        yield notebook
    finally:
        notebook.close()


def _listed(rows: list[dict]) -> set[str]:
    return {f"{r['namespace']}.{r['tableName']}" for r in rows}


def _locations(server, database: str) -> dict[str, str]:
    """Every table the metastore names, and where it points, read from PostgreSQL itself."""
    # Spark keeps a data source table's location in its storage's "path" property (Hive's
    # own LOCATION column holds a placeholder).
    found = server.query(
        database,
        'SELECT d."NAME", t."TBL_NAME", p."PARAM_VALUE" FROM "TBLS" t '
        'JOIN "DBS" d ON d."DB_ID" = t."DB_ID" JOIN "SDS" s ON s."SD_ID" = t."SD_ID" '
        'JOIN "SERDE_PARAMS" p ON p."SERDE_ID" = s."SERDE_ID" AND p."PARAM_KEY" = \'path\'',
    )
    return {f"{db}.{name}": location.removeprefix("file:") for db, name, location in found}


def _register(env: dict[str, str], profile: str) -> dict:
    """``make catalog-register PROFILE=...``: its JSON report."""
    done = subprocess.run(
        [sys.executable, "-m", "omni.catalog", "register", "--profile", profile],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout[done.stdout.index("{") :])


def test_setup_makes_the_databases_and_the_metastore_schema_once(postgres_server):
    env = postgres_server.profile("setup")
    settings = load_settings(env)
    again = postgres.setup(settings)
    assert again == {"databases_created": [], "metastore_schema_created": False}
    assert postgres_server.query("setup_metastore", 'SELECT "SCHEMA_VERSION" FROM "VERSION"') == [
        (postgres.HIVE_SCHEMA_VERSION,)
    ]
    schema = {
        name
        for (name,) in postgres_server.query(
            "setup_metastore",
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        )
    }
    assert {"DBS", "TBLS", "SDS", "COLUMNS_V2", "TABLE_PARAMS", "PARTITIONS"} <= schema
    postgres.require_catalog(settings)  # nothing to say
    # A database without the schema is named, with what to do.
    postgres.ensure_databases(settings.postgres, ["bare_metastore"])
    bare = replace(settings, metastore_database="bare_metastore")
    with pytest.raises(postgres.DatabaseUnavailable, match="'bare_metastore'.*make postgres"):
        postgres.require_catalog(bare)
    # A schema of another Hive version (a Hive 3 metastore's, say) is refused, not used.
    postgres.ensure_databases(settings.postgres, ["hive3_metastore"])
    for statement in (
        'CREATE TABLE "VERSION" ("VER_ID" bigint, "SCHEMA_VERSION" text, "VERSION_COMMENT" text)',
        """INSERT INTO "VERSION" VALUES (1, '3.1.0', 'Hive release version 3.1.0')""",
    ):
        postgres_server.query_none("hive3_metastore", statement)
    hive3 = replace(settings, metastore_database="hive3_metastore")
    with pytest.raises(postgres.DatabaseUnavailable, match="is Hive 3.1.0; .* expects 2.3.0"):
        postgres.require_catalog(hive3)
    with pytest.raises(postgres.DatabaseUnavailable, match="is Hive 3.1.0"):
        postgres.ensure_metastore_schema(hive3)


@pytest.mark.production
def test_jobs_a_notebook_the_sql_server_and_a_shell_share_one_catalog(postgres_server, tmp_path):
    """A notebook session and the SQL server are open while a job registers its tables: both
    see them at once, and see a name re-pointed by a later job at once, with no refresh."""
    profile = postgres_server.profile("shared")
    first, second = _landing(tmp_path, 20, seed=3), _landing(tmp_path, 35, seed=4)
    lake_a, lake_b = tmp_path / "lake-a", tmp_path / "lake-b"
    env = _env(profile, first, lake_a)
    port = free_port()
    # Every refresh an hour away: what the server answers comes from the shared catalog.
    server_command = [sys.executable, "-m", "omni.sql_server", "--port", str(port)]
    with (
        _notebook(env, tmp_path / "notebook.log") as notebook,
        _serving(
            [*server_command, "--refresh", "3600"],
            env,
            tmp_path / "sql-server.out",
            "Ctrl-C stops the server",
        ) as banner,
    ):
        assert "catalog: the jobs' metastore" in banner
        assert notebook.sql("SHOW DATABASES") == [{"namespace": "default"}]
        ran = _submit(env, "jobs/bronze_ingest.py", tmp_path / "bronze-a.log")
        assert ran.returncode == 0, ran.stderr[-4000:]

        assert _listed(notebook.sql("SHOW TABLES IN bronze")) == set(BRONZE)
        assert _listed(_beeline(port, "SHOW TABLES IN bronze")) == set(BRONZE)
        for name in BRONZE:
            expected = _rows(lake_a, name)
            assert notebook.sql(f"SELECT count(*) AS n FROM {name}") == [{"n": expected}]
            assert _beeline(port, f"SELECT count(*) AS n FROM {name}") == [{"n": str(expected)}]
        assert _locations(postgres_server, "shared_metastore") == {
            name: str(lake_a / name.replace(".", "/")) for name in WRITTEN_BY_BRONZE
        }

        # Another lakehouse's job re-points every name: the open sessions follow at once.
        ran = _submit(_env(profile, second, lake_b), "jobs/bronze_ingest.py", tmp_path / "b.log")
        assert ran.returncode == 0, ran.stderr[-4000:]
        events = "bronze.ecommerce_events"
        assert _rows(lake_b, events) != _rows(lake_a, events)
        got = _beeline(port, f"SELECT count(*) AS n FROM {events}")
        assert got == [{"n": str(_rows(lake_b, events))}]
        assert notebook.sql(f"SELECT count(*) AS n FROM {events}") == [{"n": _rows(lake_b, events)}]

    shell = subprocess.run(
        [sys.executable, "-m", "omni.catalog", "shell", "-e", f"SELECT count(*) FROM {events}"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert shell.returncode == 0, shell.stderr[-3000:]
    assert shell.stdout.split() == [str(_rows(lake_b, events))]


@pytest.mark.production
def test_a_lakehouse_moves_between_the_profiles_by_name_only(
    spark, settings, postgres_server, tmp_path
):
    """Built on the embedded profile, registered on PostgreSQL by one command, and back."""
    landing = _landing(tmp_path, 20, seed=8)
    embedded = replace(settings, landing_dir=landing, lakehouse_dir=tmp_path / "lake")
    ingest_all(spark, embedded, RUN_DATE, RUN_ID)
    before = {name: table_contents(spark, embedded.lakehouse_dir, name) for name in BRONZE}
    profile = postgres_server.profile("moved")
    env = _env(profile, landing, embedded.lakehouse_dir)
    report = _register(env, "postgresql")
    assert sorted(report["added"]) == sorted(WRITTEN_BY_BRONZE) and report["repointed"] == []
    assert _locations(postgres_server, "moved_metastore") == {
        name: str(embedded.lakehouse_dir / name.replace(".", "/")) for name in WRITTEN_BY_BRONZE
    }
    # Nothing was copied or rewritten: the same Delta versions and rows.
    after = {name: table_contents(spark, embedded.lakehouse_dir, name) for name in BRONZE}
    assert after == before
    # And back, into a Derby catalog of its own (a laptop's), read by a notebook on it.
    derby = {"OMNI_PROFILE": "embedded", "OMNI_METASTORE_DIR": str(tmp_path / "derby")}
    back_env = _env({}, landing, embedded.lakehouse_dir, **derby)
    assert sorted(_register(back_env, "embedded")["added"]) == sorted(WRITTEN_BY_BRONZE)
    with _notebook(back_env, tmp_path / "notebook.log") as notebook:
        assert _listed(notebook.sql("SHOW TABLES IN bronze")) == set(BRONZE)
        for name in BRONZE:
            n = _rows(embedded.lakehouse_dir, name)
            assert notebook.sql(f"SELECT count(*) AS n FROM {name}") == [{"n": n}]


@pytest.fixture
def own_server():
    """A server this test may stop: not the one the other tests share."""
    with local_postgres("omni-tests-pg-down-") as server:
        yield server


@pytest.mark.production
def test_a_job_fails_fast_when_postgresql_is_down_and_its_retry_is_clean(
    spark, settings, own_server, tmp_path, record_property
):
    landing = _landing(tmp_path, 20, seed=11)
    profile = own_server.profile("down")
    lakehouse = tmp_path / "lake"
    env = _env(profile, landing, lakehouse)
    ran = _submit(env, "jobs/bronze_ingest.py", tmp_path / "bronze.log")
    assert ran.returncode == 0, ran.stderr[-4000:]

    own_server.stop("immediate")  # the database host goes away between two tasks
    started = time.monotonic()
    failed = _submit(env, "jobs/silver.py", tmp_path / "silver-down.log")
    seconds = time.monotonic() - started
    record_property(FIGURES, {"failed_after_seconds_with_postgresql_down": round(seconds, 1)})
    assert failed.returncode != 0
    # spark-submit passes the Python driver's stderr on to its stdout
    said = failed.stdout + failed.stderr
    assert "omni.postgres.DatabaseUnavailable: OMNI_PROFILE=postgresql: the PostgreSQL " in said
    assert f"'down_metastore' at 127.0.0.1:{own_server.server.port}" in said
    assert seconds < 120, f"{seconds:.0f} s to fail"  # a JVM's start, then one connect
    assert not (lakehouse / "silver").exists()  # nothing half-written
    with pytest.raises(postgres.DatabaseUnavailable, match="'down_mlflow'"):
        postgres.require_tracking_store(load_settings(profile))

    own_server.start()  # back: the task's retry, with the same run id
    retried = _submit(env, "jobs/silver.py", tmp_path / "silver-retry.log")
    assert retried.returncode == 0, retried.stderr[-4000:]
    # The same tables as a night that never saw the outage (in-process, embedded profile).
    reference = replace(settings, landing_dir=landing, lakehouse_dir=tmp_path / "reference")
    ingest_all(spark, reference, RUN_DATE, RUN_ID)
    run_silver(spark, reference, RUN_ID, RUN_DATE)
    for name in SILVER:
        got = table_contents(spark, lakehouse, name)
        assert got == table_contents(spark, reference.lakehouse_dir, name), name
    assert _locations(own_server, "down_metastore").keys() >= set(SILVER)
