"""get_spark: Delta from the local JAR cache, nothing resolved at run time, tables by name."""

import time
from pathlib import Path

import pytest

from omni import lakehouse
from omni.config import REPO_ROOT
from omni.sparkconf import delta_jars
from omni.tables import Column, Table


def test_session_uses_only_local_delta_jars(spark, settings):
    jars = spark.conf.get("spark.jars").split(",")
    assert jars and all(Path(j).is_file() for j in jars)
    assert all(Path(j).resolve().is_relative_to(REPO_ROOT / ".cache") for j in jars)
    assert any(Path(j).name.startswith("delta-spark_") for j in jars)
    assert spark.conf.get("spark.jars.packages", None) in (None, "")
    assert spark.conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert spark.conf.get("spark.driver.memory") == settings.spark_driver_memory


def test_missing_jar_cache_names_the_fix(settings, tmp_path):
    with pytest.raises(FileNotFoundError, match="run 'make setup'"):
        delta_jars(settings.with_overrides(jar_dir=tmp_path))


def test_tables_are_created_from_the_registry_with_comments(spark, settings):
    table = Table(
        "gold.registry_probe",
        "A probe table.",
        (Column("id", "string", "The id", False), Column("amount", "decimal(12,2)", "Money")),
        keys=("id",),
    )
    df = spark.createDataFrame([("a", 1.5), ("b", None)], "id string, amount double")
    assert lakehouse.merge(spark, settings, table, df) == 2
    assert lakehouse.merge(spark, settings, table, df) == 2  # same keys: updated, not added
    described = {
        r["col_name"]: r["comment"]
        for r in spark.sql("DESCRIBE TABLE gold.registry_probe").collect()
    }
    assert described["id"] == "The id" and described["amount"] == "Money"
    got = sorted(
        (r["id"], None if r["amount"] is None else str(r["amount"]))
        for r in spark.table("gold.registry_probe").collect()
    )
    assert got == [("a", "1.50"), ("b", None)]
    history = spark.sql("DESCRIBE HISTORY gold.registry_probe").collect()
    assert {"MERGE"} <= {r["operation"] for r in history}


def test_a_name_registered_elsewhere_is_repointed_at_this_lakehouse(spark, settings, tmp_path):
    table = Table("silver.repoint_probe", "Probe.", (Column("id", "string", "The id"),))
    first = settings.with_overrides(lakehouse_dir=tmp_path / "one")
    second = settings.with_overrides(lakehouse_dir=tmp_path / "two")
    lakehouse.append(spark, first, table, spark.createDataFrame([("one",)], "id string"))
    lakehouse.append(spark, second, table, spark.createDataFrame([("two",)], "id string"))
    assert [r["id"] for r in spark.table("silver.repoint_probe").collect()] == ["two"]
    # The first lakehouse keeps its files: only the name moved.
    first_rows = spark.read.format("delta").load(str(tmp_path / "one" / "silver" / "repoint_probe"))
    assert [r["id"] for r in first_rows.collect()] == ["one"]


def test_a_name_moved_to_another_lakehouse_and_back_is_pointed_back(spark, settings, tmp_path):
    """One session working on two lakehouses in turn (a notebook, a test suite): going back to
    the first one points the name back at it, though this session registered it there before."""
    table = Table("gold.back_probe", "Probe.", (Column("id", "string", "The id"),))
    first = settings.with_overrides(lakehouse_dir=tmp_path / "one")
    second = settings.with_overrides(lakehouse_dir=tmp_path / "two")
    lakehouse.append(spark, first, table, spark.createDataFrame([("one",)], "id string"))
    lakehouse.append(spark, second, table, spark.createDataFrame([("two",)], "id string"))
    lakehouse.ensure_table(spark, first, table)
    assert [r["id"] for r in spark.sql("SELECT id FROM gold.back_probe").collect()] == ["one"]


def test_a_lakehouse_at_a_uri_is_registered_there_once(spark, settings, tmp_path):
    """A ``file://`` URI stands for object storage: the metastore writes it back as ``file:/``,
    which must count as the same place, or every session would drop and re-register."""
    table = Table("silver.uri_probe", "Probe.", (Column("id", "string", "The id"),))
    at_uri = settings.with_overrides(lakehouse_uri=(tmp_path / "lake").as_uri())
    df = spark.createDataFrame([("a",)], "id string")
    assert lakehouse.append(spark, at_uri, table, df) == 1
    created = _catalog_created_time(spark, table.name)
    time.sleep(1.1)  # the catalog keeps whole seconds
    lakehouse._ENSURED.clear()  # as in a new session
    assert lakehouse.append(spark, at_uri, table, df) == 1
    assert [r["id"] for r in spark.table("silver.uri_probe").collect()] == ["a", "a"]
    detail = spark.sql("DESCRIBE DETAIL silver.uri_probe").first()
    assert detail["location"] == f"file:{tmp_path / 'lake' / 'silver' / 'uri_probe'}"
    assert _catalog_created_time(spark, table.name) == created  # not dropped and registered again


def _catalog_created_time(spark, name: str) -> int:
    catalog = spark._jsparkSession.sessionState().catalog().externalCatalog()
    return catalog.getTable(*name.split(".")).createTime()


def test_sql_in_quotes_ids_and_dates():
    from datetime import date

    assert lakehouse.sql_in("d", [date(2026, 1, 2)]) == "`d` IN (DATE'2026-01-02')"
    assert lakehouse.sql_in("r", ["it's", "a\\b"]) == "`r` IN ('it\\'s', 'a\\\\b')"
    assert lakehouse.sql_in("r", []) == "false"
    assert lakehouse.sql_in("d", [date(2026, 1, 2)], alias="target") == (
        "target.`d` IN (DATE'2026-01-02')"
    )


def test_a_name_registered_at_a_deleted_lakehouse_is_pointed_at_the_new_one(
    spark, settings, tmp_path
):
    import shutil

    table = Table("gold.stale_probe", "A probe.", (Column("id", "string", "The id", False),))
    df = spark.createDataFrame([("a",)], "id string")
    old = settings.with_overrides(lakehouse_dir=tmp_path / "old")
    assert lakehouse.append(spark, old, table, df) == 1
    shutil.rmtree(tmp_path / "old")
    lakehouse._ENSURED.clear()  # as in a new session
    new = settings.with_overrides(lakehouse_dir=tmp_path / "new")
    assert lakehouse.append(spark, new, table, df) == 1
    assert [r["id"] for r in spark.table("gold.stale_probe").collect()] == ["a"]


def test_a_lakehouse_deleted_and_rebuilt_at_the_same_place_gets_its_table_back(
    spark, settings, tmp_path
):
    import shutil

    table = Table("gold.reborn_probe", "A probe.", (Column("id", "string", "The id", False),))
    here = settings.with_overrides(lakehouse_dir=tmp_path / "here")
    lakehouse.append(spark, here, table, spark.createDataFrame([("old",)], "id string"))
    shutil.rmtree(tmp_path / "here")
    lakehouse._ENSURED.clear()  # as in a new session
    assert lakehouse.read_table(spark, here, table).count() == 0
    lakehouse.append(spark, here, table, spark.createDataFrame([("new",)], "id string"))
    assert [r["id"] for r in spark.table("gold.reborn_probe").collect()] == ["new"]
    assert spark.catalog.getTable("gold.reborn_probe").description == "A probe."


def test_columns_added_to_the_registry_reach_an_existing_table(spark, settings, tmp_path):
    """The serving contract lets tables gain columns: older rows read them as null."""
    local = settings.with_overrides(lakehouse_dir=tmp_path)
    key = Column("id", "string", "The id", False)
    old = Table("gold.evolution_probe", "Probe.", (key,), keys=("id",))
    new = Table(
        "gold.evolution_probe", "Probe.", (key, Column("score", "double", "A score")), ("id",)
    )
    lakehouse.append(spark, local, old, spark.createDataFrame([("a",)], "id string"))
    lakehouse.append(
        spark, local, new, spark.createDataFrame([("b", 0.5)], "id string, score double")
    )
    lakehouse.merge(
        spark, local, new, spark.createDataFrame([("c", 1.5)], "id string, score double")
    )
    got = sorted((r["id"], r["score"]) for r in lakehouse.read_table(spark, local, new).collect())
    assert got == [("a", None), ("b", 0.5), ("c", 1.5)]
