import re
from pathlib import Path

import pytest

from omni.config import DEVELOPMENT_HASH_KEY, REPO_ROOT, load_settings, parse_date


def test_defaults_are_the_embedded_contract_locations():
    settings = load_settings({})
    assert settings.landing_dir == REPO_ROOT / "data" / "landing"
    assert settings.lakehouse_dir == REPO_ROOT / "data" / "lakehouse"
    assert (
        settings.mlflow_tracking_uri == f"sqlite:///{REPO_ROOT / 'data' / 'mlflow' / 'mlflow.db'}"
    )
    assert settings.mlflow_artifacts_dir == REPO_ROOT / "data" / "mlflow" / "artifacts"
    assert settings.spark_master == "local[*]"
    assert settings.hash_key == DEVELOPMENT_HASH_KEY


def test_environment_overrides_and_relative_paths_are_from_the_repo(tmp_path):
    settings = load_settings(
        {
            "OMNI_LANDING_DIR": "elsewhere/landing",
            "OMNI_LAKEHOUSE_DIR": str(tmp_path / "lh"),
            "MLFLOW_TRACKING_URI": "sqlite:///rel/mlflow.db",
            "OMNI_SPARK_MASTER": "spark://127.0.0.1:7077",
        }
    )
    assert settings.landing_dir == REPO_ROOT / "elsewhere" / "landing"
    assert settings.lakehouse_dir == Path(tmp_path / "lh")
    assert settings.mlflow_tracking_uri == f"sqlite:///{REPO_ROOT / 'rel' / 'mlflow.db'}"
    assert settings.spark_master == "spark://127.0.0.1:7077"


def test_driver_memory_reaches_the_spark_conf():
    from omni.sparkconf import spark_conf

    settings = load_settings({"OMNI_SPARK_DRIVER_MEMORY": "6G"})
    assert settings.spark_driver_memory == "6g"
    assert spark_conf(settings, hive_catalog=False)["spark.driver.memory"] == "6g"


def test_jvm_options_reach_the_driver_and_the_executors():
    from omni.sparkconf import spark_conf

    conf = spark_conf(load_settings({"OMNI_SPARK_JAVA_OPTIONS": " -XX:TieredStopAtLevel=1 "}))
    assert conf["spark.driver.extraJavaOptions"].endswith(" -XX:TieredStopAtLevel=1")
    assert "-Dderby.system.home=" in conf["spark.driver.extraJavaOptions"]
    assert conf["spark.executor.extraJavaOptions"] == "-XX:TieredStopAtLevel=1"
    assert "spark.executor.extraJavaOptions" not in spark_conf(load_settings({}))


def test_spark_properties_are_applied_last():
    from omni.sparkconf import spark_conf

    settings = load_settings(
        {
            "OMNI_SPARK_CONF": "spark.sql.codegen.wholeStage=false, spark.sql.shuffle.partitions=8,"
            "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby://db.example:1527/omni"
        }
    )
    conf = spark_conf(settings)
    assert conf["spark.sql.codegen.wholeStage"] == "false"
    assert conf["spark.sql.shuffle.partitions"] == "8"  # over OMNI_SHUFFLE_PARTITIONS
    # Over the embedded catalog's URL too: a shared Derby network server, say.
    assert (
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == "jdbc:derby://db.example:1527/omni"
    )


@pytest.mark.parametrize("value", ["wholeStage=false", "spark.sql.x", "spark.sql.x="])
def test_a_bad_spark_property_is_named(value):
    with pytest.raises(ValueError, match=f"OMNI_SPARK_CONF: '{re.escape(value)}' is not a Spark"):
        load_settings({"OMNI_SPARK_CONF": f"spark.ui.enabled=false,{value}"})


def test_settings_are_frozen():
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.spark_master = "yarn"  # type: ignore[misc]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"OMNI_CHURN_HORIZON_DAYS": "soon"}, "OMNI_CHURN_HORIZON_DAYS='soon': expected a whole"),
        ({"OMNI_CHURN_HORIZON_DAYS": "0"}, "expected a number of at least 1"),
        ({"OMNI_CHURN_HIGH_THRESHOLD": "1.5"}, "expected a number between 0 and 1"),
        ({"OMNI_CHURN_HIGH_THRESHOLD": "0"}, "expected a number between 0 and 1"),
        (
            {"OMNI_CHURN_PROMOTION_MARGIN": "-0.1"},
            "MARGIN='-0.1': expected a number from 0 up to 1",
        ),
        ({"OMNI_CHURN_TRAINING_SNAPSHOTS": "0"}, "expected a number of at least 1"),
        ({"OMNI_RECOMMENDATIONS": "0"}, "OMNI_RECOMMENDATIONS='0': expected a number of at"),
        ({"OMNI_RECOMMENDATION_HOLDOUT_DAYS": "-1"}, "HOLDOUT_DAYS='-1': expected a number of"),
        ({"OMNI_RECOMMENDATION_HOLDOUT_DAYS": "4w"}, "HOLDOUT_DAYS='4w': expected a whole"),
        ({"OMNI_PSI_THRESHOLD": "0"}, "OMNI_PSI_THRESHOLD='0': expected a number between 0 and 1"),
        ({"OMNI_SPARK_DRIVER_MEMORY": "lots"}, "OMNI_SPARK_DRIVER_MEMORY='lots': expected a JVM"),
        ({"OMNI_TASK_RETRIES": "-1"}, "OMNI_TASK_RETRIES='-1': expected a number of at least 0"),
        ({"OMNI_NIGHTLY_AT": "3am"}, "OMNI_NIGHTLY_AT='3am': expected a time of day HH:MM"),
        ({"OMNI_NIGHTLY_AT": "24:00"}, "OMNI_NIGHTLY_AT='24:00': expected a time of day"),
        ({"OMNI_TIMEZONE": "Mars/Olympus"}, "OMNI_TIMEZONE='Mars/Olympus': expected an IANA"),
        ({"OMNI_ALERT_EMAIL": "ops@shop.example, nobody"}, "'nobody' is not an e-mail address"),
        ({"OMNI_PRODUCTION": "maybe"}, "OMNI_PRODUCTION='maybe': expected true or false"),
        ({"OMNI_PRODUCTION": "true"}, "OMNI_HASH_KEY is missing or is the development key"),
        ({"OMNI_LAKEHOUSE_DIR": "s3a://"}, "OMNI_LAKEHOUSE_DIR='s3a://': expected a path or a URI"),
        ({"OMNI_EXTRA_JARS": "missing/hadoop-aws.jar"}, "hadoop-aws.jar' is not a JAR file"),
        ({"OMNI_EXTRA_JARS": "pyproject.toml"}, "pyproject.toml' is not a JAR file"),
    ],
)
def test_bad_settings_name_the_value_and_what_was_expected(env, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


def test_a_promotion_margin_of_zero_is_allowed():
    settings = load_settings({"OMNI_SEGMENTATION_PROMOTION_MARGIN": "0"})
    assert settings.segmentation_promotion_margin == 0.0
    assert settings.churn_promotion_margin == 0.005
    assert (settings.recommendation_count, settings.psi_threshold) == (5, 0.2)


def test_recommendations_are_evaluated_on_four_weeks_unless_turned_off():
    assert load_settings({}).recommendation_holdout_days == 28
    assert load_settings({"OMNI_RECOMMENDATION_HOLDOUT_DAYS": "0"}).recommendation_holdout_days == 0


def test_orchestration_settings_from_the_environment():
    default = load_settings({})
    assert (default.nightly_at, default.timezone, default.task_retries) == ("03:00", "UTC", 1)
    assert default.alert_emails == ()
    settings = load_settings(
        {
            "OMNI_NIGHTLY_AT": "2:30",
            "OMNI_TIMEZONE": "Europe/Paris",
            "OMNI_TASK_RETRIES": "0",
            "OMNI_TASK_TIMEOUT_MINUTES": "45",
            "OMNI_ALERT_EMAIL": "ops@shop.example, data@shop.example",
        }
    )
    assert (settings.nightly_at, settings.timezone) == ("02:30", "Europe/Paris")
    assert (settings.task_retries, settings.task_timeout_minutes) == (0, 45)
    assert settings.alert_emails == ("ops@shop.example", "data@shop.example")


def test_production_accepts_a_real_key():
    settings = load_settings({"OMNI_PRODUCTION": "true", "OMNI_HASH_KEY": "s3cret"})
    assert settings.production and settings.hash_key == "s3cret"
    assert "s3cret" not in repr(settings)


def test_parse_date_names_bad_input():
    with pytest.raises(ValueError, match="date '2026-13-01': expected YYYY-MM-DD"):
        parse_date("2026-13-01")


def test_a_lakehouse_uri_puts_the_tables_there_and_keeps_the_catalog_local(tmp_path):
    from omni import tables
    from omni.orchestration import gold_assets
    from omni.sparkconf import spark_conf

    settings = load_settings(
        {
            "OMNI_LAKEHOUSE_DIR": "s3a://retail-lake/omni/",
            "OMNI_METASTORE_DIR": str(tmp_path / "catalog"),
            "OMNI_JAR_DIR": str(REPO_ROOT / ".cache" / "jars"),
        }
    )
    assert settings.lakehouse_location == "s3a://retail-lake/omni"
    assert settings.lakehouse_dir == REPO_ROOT / "data" / "lakehouse"  # local state only
    assert settings.metastore_dir == tmp_path / "catalog"
    profile = tables.GOLD_PROFILE
    assert (
        profile.location(settings.lakehouse_location)
        == "s3a://retail-lake/omni/gold/customer_profile"
    )
    assert {asset.uri for asset in gold_assets(settings)} >= {
        "s3a://retail-lake/omni/gold/customer_profile"
    }
    conf = spark_conf(settings)
    assert conf["spark.sql.warehouse.dir"] == "s3a://retail-lake/omni/_warehouse"
    assert (
        str(tmp_path / "catalog" / "metastore_db")
        in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]
    )


def test_a_local_lakehouse_holds_its_catalog_and_its_assets_are_file_uris(tmp_path):
    from omni import tables
    from omni.orchestration import gold_assets

    settings = load_settings({"OMNI_LAKEHOUSE_DIR": str(tmp_path / "lh")})
    assert settings.lakehouse_uri is None
    assert settings.lakehouse_location == str(tmp_path / "lh")
    assert settings.metastore_dir == tmp_path / "lh" / "_metastore"
    expected = (tmp_path / "lh" / "gold" / "customer_profile").as_uri()
    assert tables.GOLD_PROFILE.uri(settings.lakehouse_location) == expected
    assert expected in {asset.uri for asset in gold_assets(settings)}


def test_extra_jars_are_shipped_after_delta_s(tmp_path):
    from omni.sparkconf import spark_conf

    jar = tmp_path / "hadoop-aws-3.5.0.jar"
    jar.write_bytes(b"PK")
    settings = load_settings({"OMNI_EXTRA_JARS": f" {jar} ,"})
    assert settings.extra_jars == (jar,)
    jars = spark_conf(settings)["spark.jars"].split(",")
    assert jars[-1] == str(jar) and any("delta-spark" in name for name in jars[:-1])


def test_a_local_lakehouse_replaces_a_uri(tmp_path):
    at_uri = load_settings({"OMNI_LAKEHOUSE_DIR": "s3a://retail-lake/omni"})
    local = at_uri.with_local_lakehouse(tmp_path / "lh")
    assert local.lakehouse_location == str(tmp_path / "lh")
    assert local.metastore_dir == tmp_path / "lh" / "_metastore"


def test_the_postgresql_profile_puts_every_store_on_the_libpq_server_without_its_password(
    monkeypatch,
):
    from omni.orchestration import job_environment
    from omni.sparkconf import spark_conf, spark_submit_command

    env = {
        "OMNI_PROFILE": "PostgreSQL",
        "PGHOST": "db.example",
        "PGPORT": "6432",
        "PGUSER": "analytics",
        "PGPASSWORD": "s3cret-pw",
    }
    settings = load_settings(env)
    assert settings.shared_catalog and settings.profile == "postgresql"
    assert (
        settings.mlflow_tracking_uri == "postgresql+psycopg://analytics@db.example:6432/omni_mlflow"
    )
    assert "s3cret" not in repr(settings)
    conf = spark_conf(settings)
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == (
        "jdbc:postgresql://db.example:6432/omni_metastore"
    )
    assert conf["spark.hadoop.javax.jdo.option.ConnectionUserName"] == "analytics"
    assert conf["spark.hadoop.datanucleus.schema.autoCreateAll"] == "false"
    assert conf["spark.driver.extraClassPath"].endswith("jdbc/postgresql-42.7.14.jar")
    command = spark_submit_command(settings, "jobs/silver.py", master="local[2]")
    assert not [part for part in command if "s3cret" in part]
    assert not [value for value in conf.values() if "s3cret" in value]
    # The jobs get the server's address from Airflow's environment, never the password.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    forwarded = job_environment()
    assert forwarded["PGHOST"] == "db.example" and "PGPASSWORD" not in forwarded
    # The embedded profile is the default, and still on Derby.
    embedded = spark_conf(load_settings({}))
    assert embedded["spark.hadoop.javax.jdo.option.ConnectionURL"].startswith("jdbc:derby:")
    assert "spark.driver.extraClassPath" not in embedded


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"OMNI_PROFILE": "postgres"},
            "OMNI_PROFILE='postgres': expected one of embedded, postgresql",
        ),
        (
            {"OMNI_PROFILE": "postgresql", "PGPORT": "five"},
            "PGPORT='five': expected a whole number",
        ),
    ],
)
def test_a_bad_profile_setting_is_named(env, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_settings(env)
