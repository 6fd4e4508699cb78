"""An erased customer stays erased: re-delivered by the CRM, a late event of their device, a
re-sent receipt line and a malformed record that names them are all dropped at silver (counted
as suppressed, their bronze rows purged), and a rebuild of the lakehouse from the landing
zone keeps them out. Real Spark, Delta and GX on a small generated sample."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from jobs.bronze_ingest import ingest_all
from jobs.erase_customer import erase_customer
from jobs.gold import build_gold
from jobs.silver import run_silver
from omni import lakehouse, suppression, tables
from omni.rebuild import clear_for_rebuild
from omni.sample import SampleSpec, generate_sample
from omni.sources import CRM, CRM_COLUMNS, POS_COLUMNS, SOURCES
from omni.transforms.silver import parse_records
from tests.lake_checks import (
    assert_counts_reconcile,
    customer_with_card_and_logins,
    landing_lines_naming,
    tables_naming,
)

END = date(2026, 3, 31)
FIRST = END - timedelta(days=2)  # night 1 backfills up to here; the erasure follows
SECOND = END - timedelta(days=1)  # the night of the re-deliveries
PASSES: dict[str, dict] = {}


def _night(spark, settings, day, run_id, start=None) -> dict:
    return {
        "bronze": ingest_all(spark, settings, day, run_id),
        "silver": run_silver(spark, settings, run_id, day),
        "gold": build_gold(spark, settings, day, run_id, start),
    }


def _redeliver(landing, customer: dict) -> dict[str, int]:
    """Into the landing folders of ``SECOND`` (not ingested yet): the customer's CRM record
    again (a later update), a malformed CRM line with their e-mail, a late anonymous event of
    their device, and a receipt line with their card. Returns the lines added per source."""
    crm = landing / "crm" / "customers" / f"dt={SECOND}"
    record = dict(customer["crm"], updated_at=f"{SECOND} 10:00:00")
    (crm / "part-00009.csv").write_text(
        ",".join(CRM_COLUMNS)
        + "\n"
        + ",".join(record[c] or "" for c in CRM_COLUMNS)
        + "\n"
        + f"C9999999,{customer['email'].upper()},too,few,columns\n"
    )
    event = {
        "event_id": "E-LATE-ERASED",
        "event_time": f"{FIRST - timedelta(days=3)}T20:00:00+01:00",
        "event_type": "page_view",
        "platform": "web",
        "session_id": "S-LATE-ERASED",
        "anonymous_id": customer["device"],
        "customer_id": None,
        "page_url": "/",
    }
    events = landing / "ecommerce" / "events" / f"dt={SECOND}"
    (events / "part-00009.jsonl").write_text(json.dumps(event) + "\n")
    store = sorted((landing / "instore" / "pos" / f"dt={SECOND}").glob("store_id=*"))[0]
    receipt = (
        f"T-RESENT-ERASED,1,{store.name.split('=')[1]},R1,{SECOND} 11:00:00,SKU-APP-000,1,"
        f"20.00,0.00,card,{customer['card']},EUR"
    )
    (store / "part-00009.csv").write_text(",".join(POS_COLUMNS) + "\n" + receipt + "\n")
    return {"crm_customers": 2, "ecommerce_events": 1, "pos_lines": 1}


def _parquet_files_naming(root, needles) -> list[str]:
    """Every Parquet file under ``root`` (active, removed, checkpoints) that holds a needle."""
    found = []
    for path in sorted(root.rglob("*.parquet")):
        text = json.dumps(pq.read_table(path).to_pylist(), default=str).lower()
        if any(n.lower() in text for n in needles):
            found.append(str(path.relative_to(root)))
    return found


def _gx_files_naming(settings, needles) -> list[str]:
    return [
        str(path)
        for path in settings.gx_dir.rglob("*")
        if path.suffix in (".json", ".html")
        and any(n.lower() in path.read_text(errors="replace").lower() for n in needles)
    ]


def assert_nowhere(spark, settings, needles) -> None:
    """No table, no Parquet file of the lakehouse (current or not) and no GX file names the
    customer."""
    assert tables_naming(spark, settings, needles) == []
    assert _parquet_files_naming(settings.lakehouse_dir, needles) == []
    assert _gx_files_naming(settings, needles) == []


def _suppressed(spark, settings, run_id) -> dict[str, int]:
    rows = (
        lakehouse.read_table(spark, settings, tables.RECONCILIATION)
        .where(F.col("run_id") == run_id)
        .groupBy("source")
        .agg(F.sum("suppressed").alias("n"))
        .collect()
    )
    return {r["source"]: r["n"] for r in rows if r["n"]}


@pytest.fixture(scope="module")
def lake(spark, settings, tmp_path_factory):
    """Night 1 (a backfill), the erasure of an omni-channel customer, the re-deliveries, night
    2; then the lakehouse cleared and rebuilt from the landing zone in one backfill."""
    root = tmp_path_factory.mktemp("suppression")
    local = replace(settings, landing_dir=root / "landing", lakehouse_dir=root / "lakehouse")
    generate_sample(local.landing_dir, SampleSpec(customers=30, days=8, end_date=END, seed=11))
    PASSES["night-1"] = _night(spark, local, FIRST, "night-1", start=FIRST)
    key, identifiers = customer_with_card_and_logins(spark, local)
    customer_id = next(v for t, v in identifiers if t == "customer_id")
    crm = (
        parse_records(lakehouse.read_table(spark, local, tables.BRONZE_CRM), CRM)
        .where(F.col("customer_id") == customer_id)
        .orderBy("updated_at")
        .first()
    )
    customer = {
        "key": key,
        "identifiers": identifiers,
        "email": crm["email"],
        "crm": {c: crm[c] for c in CRM_COLUMNS},
        "card": next(v for t, v in identifiers if t == "loyalty_card_id"),
        "device": sorted(v for t, v in identifiers if t == "anonymous_id")[0],
    }
    customer["needles"] = sorted({v for _, v in identifiers} | {crm["email"], key})
    customers_before = lakehouse.read_table(spark, local, tables.SILVER_CUSTOMERS).count()
    PASSES["erasure"] = erase_customer(spark, local, "email", crm["email"], "erasure-1")
    PASSES["after-erasure"] = {
        "nowhere": (
            tables_naming(spark, local, customer["needles"]),
            _parquet_files_naming(local.lakehouse_dir, customer["needles"]),
        ),
        "customers": lakehouse.read_table(spark, local, tables.SILVER_CUSTOMERS).count(),
        "customers_before": customers_before,
    }
    customer["added"] = _redeliver(local.landing_dir, customer)
    customer["landing"] = landing_lines_naming(local.landing_dir, customer["needles"])
    PASSES["night-2"] = _night(spark, local, SECOND, "night-2")
    PASSES["night-2"]["customers"] = sorted(
        r[0]
        for r in lakehouse.read_table(spark, local, tables.SILVER_CUSTOMERS)
        .select("customer_id")
        .collect()
    )
    return local, customer


def _lines_of(customer, days) -> dict[str, int]:
    """The landing lines that name the customer, per source, in the folders of ``days``
    (a predicate on the folder's date)."""
    counts: dict[str, int] = {}
    for path, lines in customer["landing"].items():
        if not days(date.fromisoformat(path.split("dt=")[1][:10])):
            continue
        source = next(s.name for s in SOURCES if path.startswith(f"{s.folder}/"))
        counts[source] = counts.get(source, 0) + len(lines)
    return counts


def test_the_erasure_adds_the_customers_identifiers_as_keyed_hashes(spark, lake):
    settings, customer = lake
    assert PASSES["after-erasure"]["nowhere"] == ([], [])
    assert PASSES["after-erasure"]["customers"] == PASSES["after-erasure"]["customers_before"] - 1
    rows = lakehouse.read_table(spark, settings, tables.SUPPRESSED_IDENTIFIERS).collect()
    kinds = sorted((r["identifier_type"], r["erasure_id"]) for r in rows)
    expected = sorted(
        (t, "erasure-1")
        for t, _ in customer["identifiers"]
        if t in suppression.RECORD_IDENTIFIER_TYPES
    )
    assert kinds == expected and PASSES["erasure"]["identifiers_suppressed"] == len(expected)
    assert all(len(r["identifier_hash"]) == 64 for r in rows)
    audit = lakehouse.read_table(spark, settings, tables.ERASURE_AUDIT).first()
    assert audit["identifiers_suppressed"] == len(expected)


def test_redelivered_records_are_dropped_counted_and_purged_from_bronze(spark, lake):
    settings, customer = lake
    # Every line of the second night's folders that names the customer (the re-deliveries and
    # the sample's own records of them), and only those, is counted as suppressed.
    expected = _lines_of(customer, lambda day: day == SECOND)
    for source, added in customer["added"].items():
        assert expected.get(source, 0) >= added, source
    assert _suppressed(spark, settings, "night-2") == expected
    assert PASSES["night-2"]["silver"]["crm_customers"]["suppressed"] == expected["crm_customers"]
    # The malformed line is not quarantined: quarantine keeps raw text.
    reasons = lakehouse.read_table(spark, settings, tables.QUARANTINE_RECORDS).where(
        F.col("run_id") == "night-2"
    )
    assert reasons.where(F.col("raw_text").contains("C9999999")).count() == 0
    assert_counts_reconcile(spark, settings, PASSES["erasure"]["rows_deleted"])
    # The customer's CRM record did not come back, and nobody else was dropped.
    assert customer["crm"]["customer_id"] not in PASSES["night-2"]["customers"]
    assert len(PASSES["night-2"]["customers"]) == PASSES["after-erasure"]["customers"]
    assert_nowhere(spark, settings, customer["needles"])
    # Bronze's history was purged: no earlier version holds the dropped rows.
    history = spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.table_path(settings, tables.BRONZE_CRM)}`"
    )
    assert "VACUUM END" in {r["operation"] for r in history.collect()}


def test_a_rebuild_from_the_landing_zone_keeps_the_customer_out(spark, lake):
    settings, customer = lake
    cleared = clear_for_rebuild(spark, settings)
    assert tables.SUPPRESSED_IDENTIFIERS.name not in cleared
    assert tables.ERASURE_AUDIT.name in {t.name for t in tables.ALL_TABLES if t.kept_on_rebuild}
    assert lakehouse.read_table(spark, settings, tables.SILVER_CUSTOMERS).count() == 0
    _night(spark, settings, SECOND, "rebuild", start=FIRST)
    # Every landing line that names the customer, in every folder up to the night, was read
    # again and suppressed (the erasure only reported the landing files); the counts add up.
    expected = _lines_of(customer, lambda day: day <= SECOND)
    assert expected.get("crm_customers") and expected.get("pos_lines")
    assert _suppressed(spark, settings, "rebuild") == expected
    assert_counts_reconcile(spark, settings)
    assert_nowhere(spark, settings, customer["needles"])
    rebuilt = sorted(
        r[0]
        for r in lakehouse.read_table(spark, settings, tables.SILVER_CUSTOMERS)
        .select("customer_id")
        .collect()
    )
    assert rebuilt == PASSES["night-2"]["customers"]
