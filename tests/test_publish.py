"""Write, audit, publish: a night that fails a blocking expectation publishes nothing of its
layer (every table keeps its Delta version), its batch is held where it can be queried, the
results and the gate say why, and the next good night publishes it all."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date, timedelta

import pytest
from pyspark.sql import functions as F

from jobs.bronze_ingest import ingest_all
from jobs.gold import build_gold
from jobs.silver import run_silver
from omni import gates, lakehouse, publish, suites, tables
from omni.publish import Staging
from omni.sample import SampleSpec, generate_sample
from omni.sources import STORE_COLUMNS
from omni.tables import Column, Table
from tests.conftest import assert_frame_equal

FIRST = date(2026, 4, 6)
SILVER_GATE = [t.name for t in suites.suite_tables(["silver", "quarantine"])]
BRONZE_GATE = [t.name for t in suites.suite_tables(["bronze"])]
GOLD_GATE = [t.name for t in tables.GOLD_PUBLISHED]
# Written by the jobs whatever the audit says: the hold itself, and the log of deliveries seen
# (freshness is judged on it, so it is written before the audit).
BOOKKEEPING = {tables.HELD_BATCHES.name, tables.ERASURE_AUDIT.name, tables.LANDING_FOLDERS.name}


def _versions(spark, settings, *layers: str) -> dict[str, int]:
    return {
        t.name: lakehouse.table_version(spark, settings, t)
        for t in tables.ALL_TABLES
        if t.layer in layers and t.name not in BOOKKEEPING
    }


def _held(spark, settings, run_id: str):
    return lakehouse.read_table(spark, settings, tables.HELD_BATCHES).where(
        F.col("run_id") == run_id
    )


def _store_file(landing, day: date, row: str) -> None:
    folder = landing / "reference" / "stores" / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-00009.csv").write_text(",".join(STORE_COLUMNS) + "\n" + row + "\n")
    (folder / "_SUCCESS").touch()


@pytest.fixture(scope="module")
def nights(spark, settings, tmp_path_factory):
    """Night 1 good; night 2 delivers a store whose country is no ISO code (silver's gate
    fails); night 3 re-sends the store right, and gold meets a stricter suite (its gate
    fails); then gold is rebuilt under the real suites."""
    root = tmp_path_factory.mktemp("wap")
    landing = root / "landing"
    spec = SampleSpec(customers=40, days=8, end_date=FIRST + timedelta(days=2), seed=5)
    generate_sample(landing, spec)
    _store_file(landing, FIRST + timedelta(days=1), "S77,Lyon Ouest,Lyon,ARA,France,Europe/Paris,")
    _store_file(landing, FIRST + timedelta(days=2), "S77,Lyon Ouest,Lyon,ARA,FR,Europe/Paris,")
    lake = replace(settings, landing_dir=landing, lakehouse_dir=root / "lakehouse")
    out: dict = {"lake": lake}

    def night(run_id: str, day: date) -> dict:
        return {
            "bronze": ingest_all(spark, lake, day, run_id),
            "silver": run_silver(spark, lake, run_id, day),
        }

    out["night-1"] = night("night-1", FIRST)
    out["night-1"]["gold"] = build_gold(spark, lake, FIRST, "night-1")

    before = _versions(spark, lake, "silver", "quarantine", "gold")
    out["night-2"] = night("night-2", FIRST + timedelta(days=1))
    out["night-2"]["unchanged"] = (before, _versions(spark, lake, "silver", "quarantine", "gold"))
    events = lakehouse.read_table(spark, lake, tables.SILVER_EVENTS)
    out["night-2"]["its silver events"] = events.where(F.col("_run_id") == "night-2").count()

    out["night-3"] = night("night-3", FIRST + timedelta(days=2))
    strict = root / "expectations"
    shutil.copytree(suites.EXPECTATIONS_DIR, strict)
    features = strict / "gold" / "customer_features.json"
    suite = json.loads(features.read_text())
    suite["expectations"].append(
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "recency_days", "max_value": -1},
        }
    )
    features.write_text(json.dumps(suite))
    before = _versions(spark, lake, "gold")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(suites, "EXPECTATIONS_DIR", strict)
        out["night-3"]["gold held"] = build_gold(spark, lake, FIRST + timedelta(days=2), "night-3")
    out["night-3"]["gold unchanged"] = (before, _versions(spark, lake, "gold"))
    out["night-3"]["gold"] = build_gold(spark, lake, FIRST + timedelta(days=2), "night-3")
    return out


def test_a_failed_silver_gate_publishes_nothing_of_the_night(spark, nights):
    lake, second = nights["lake"], nights["night-2"]
    assert second["bronze"]["audit"]["published"]
    audit = second["silver"]["audit"]
    assert not audit["published"] and audit["blocking_failures"] == 1
    # What the audit and the hold cost, reported with the job's counts; per table too.
    assert set(audit["seconds"]) == {"audit", "hold"} and audit["seconds"]["audit"] > 0
    assert all(table["seconds"] > 0 for table in audit["tables"].values()), audit["tables"]
    before, after = second["unchanged"]
    assert after == before  # every silver, quarantine and gold table: the same Delta version
    # The results and the gate say why; bronze's gate passed.
    failed = (
        lakehouse.read_table(spark, lake, tables.VALIDATION_RESULTS)
        .where((F.col("run_id") == "night-2") & ~F.col("success"))
        .where(F.col("severity") == "blocking")
        .collect()
    )
    assert [(r["table_name"], r["expectation_type"], r["column_name"]) for r in failed] == [
        ("silver.stores", "expect_column_values_to_match_regex", "country")
    ]
    status = gates.layer_gate(lake, SILVER_GATE, "night-2", FIRST + timedelta(days=1))
    assert not status.passed
    assert "silver.stores: expect_column_values_to_match_regex" in status.reason
    assert tables.HELD_BATCHES.name in status.reason
    assert gates.layer_gate(lake, BRONZE_GATE, "night-2", FIRST + timedelta(days=1)).passed


def test_the_held_batch_is_queryable_with_every_record_of_the_night(spark, nights):
    lake, second = nights["lake"], nights["night-2"]
    held = _held(spark, lake, "night-2")
    counts = {r["table_name"]: r["count"] for r in held.groupBy("table_name").count().collect()}
    assert counts["silver.ecommerce_events"] == second["silver"]["ecommerce_events"]["accepted"]
    assert counts["quarantine.reconciliation"] >= 1
    stores = held.where(F.col("table_name") == "silver.stores").select(
        F.from_json("record", tables.SILVER_STORES.schema_ddl()).alias("r")
    )
    assert [(r["r"]["store_id"], r["r"]["country"]) for r in stores.collect()] == [
        ("S77", "France")
    ]
    # Nothing of the night was in silver; its ingest runs stayed pending for the next night.
    assert second["its silver events"] == 0


def test_the_next_good_night_publishes_the_held_night_too(spark, nights):
    lake, second, third = nights["lake"], nights["night-2"], nights["night-3"]
    assert third["silver"]["audit"]["published"]
    assert set(third["silver"]["audit"]["seconds"]) == {"audit", "publish"}
    assert gates.layer_gate(lake, SILVER_GATE, "night-3", FIRST + timedelta(days=2)).passed
    events = lakehouse.read_table(spark, lake, tables.SILVER_EVENTS)
    assert (
        events.where(F.col("_run_id") == "night-2").count()
        == second["silver"]["ecommerce_events"]["accepted"]
    )
    store = lakehouse.read_table(spark, lake, tables.SILVER_STORES).where("store_id = 'S77'")
    assert [r["country"] for r in store.collect()] == ["FR"]
    runs = lakehouse.read_table(spark, lake, tables.RECONCILIATION).select("run_id").distinct()
    assert {r["run_id"] for r in runs.collect()} == {"night-1", "night-2", "night-3"}


def test_a_failed_gold_gate_leaves_the_published_gold_tables_as_they_were(spark, nights):
    lake, third = nights["lake"], nights["night-3"]
    held = third["gold held"]["audit"]
    assert not held["published"]
    before, after = third["gold unchanged"]
    assert after == before
    day = FIRST + timedelta(days=2)
    kept = {
        r["table_name"]
        for r in _held(spark, lake, "night-3").select("table_name").distinct().collect()
    }
    assert set(GOLD_GATE) <= kept
    # Under the real suites the same night publishes, and the gate says so.
    assert third["gold"]["audit"]["published"]
    assert gates.layer_gate(lake, GOLD_GATE, "night-3", day).passed
    features = lakehouse.read_table(spark, lake, tables.GOLD_FEATURES)
    assert features.where(F.col("as_of_date") == day).count() == third["gold"]["customer_features"]


def test_a_gate_with_no_audit_of_the_run_does_not_pass(nights, tmp_path):
    status = gates.layer_gate(nights["lake"], SILVER_GATE, "never-ran", FIRST)
    assert not status.passed
    assert "recorded no validation" in status.reason
    empty = replace(nights["lake"], lakehouse_dir=tmp_path / "no-lakehouse")
    status = gates.layer_gate(empty, SILVER_GATE, "never-ran", FIRST)
    assert not status.passed and "recorded no validation" in status.reason


SCRATCH = Table(
    "scratch.staged_rows",
    "Rows for the staging tests.",
    (
        Column("k", "string", "key", False),
        Column("v", "bigint", "value"),
        Column("at", "date", "as of"),
    ),
    keys=("k",),
)


@pytest.mark.parametrize(
    "kind",
    ["append", "replace", "overwrite", "insert new keys", "update all", "update when newer"],
)
def test_the_table_to_be_is_the_table_once_written(spark, settings, tmp_path, kind):
    """What the audit judges (``Staging.view``) is what Delta holds after the write."""
    lake = replace(settings, lakehouse_dir=tmp_path / "lakehouse")
    schema = SCRATCH.schema_ddl()
    old, new = date(2026, 1, 1), date(2026, 1, 2)
    lakehouse.append(
        spark,
        lake,
        SCRATCH,
        spark.createDataFrame([("a", 1, new), ("b", 2, old), ("c", 3, None)], schema),
    )
    rows = spark.createDataFrame([("b", 20, new), ("c", 30, old), ("a", 10, old)], schema)
    staging = Staging(spark, lake, "run", new)
    stage = {
        "append": lambda: staging.append(SCRATCH, rows),
        "replace": lambda: staging.replace_where(SCRATCH, rows.limit(1), "k IN ('a', 'b')"),
        "overwrite": lambda: staging.overwrite(SCRATCH, rows),
        "insert new keys": lambda: staging.merge(
            SCRATCH, rows.unionByName(spark.createDataFrame([("d", 4, old)], schema)), update=False
        ),
        "update all": lambda: staging.merge(SCRATCH, rows),
        "update when newer": lambda: staging.merge(SCRATCH, rows, newer_by="at"),
    }[kind]
    stage()
    to_be = staging.view(SCRATCH).localCheckpoint()
    for table, write in staging._writes:
        publish._publish(spark, lake, table, write)
    assert_frame_equal(lakehouse.read_table(spark, lake, SCRATCH), to_be)
