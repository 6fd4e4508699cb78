"""silver.customer_key_history: keys retired when two customers are found to be one."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

from pyspark.sql import functions as F

from jobs.bronze_ingest import ingest_all
from jobs.gold import build_gold
from jobs.silver import run_silver
from omni import lakehouse, tables
from omni.tables import CRM_COLUMNS, POS_COLUMNS, PRODUCT_COLUMNS, STORE_COLUMNS
from omni.transforms import identity
from tests.conftest import rows

NIGHT_1, NIGHT_2, NIGHT_3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def _csv(folder, header, lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-00000.csv").write_text("\n".join([",".join(header), *lines]) + "\n")
    (folder / "_SUCCESS").touch()


def _events(folder, events):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-00000.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    (folder / "_SUCCESS").touch()


def _event(event_id, day, customer_id=None):
    return {
        "event_id": event_id,
        "event_time": f"{day}T10:00:00.000+00:00",
        "event_type": "page_view",
        "platform": "web",
        "session_id": f"S-{event_id}",
        "anonymous_id": "A-phone",
        "customer_id": customer_id,
        "page_url": "/",
    }


def _crm(card):
    return f"C1,{card},ana@example.com,+351900,Ana,Silva,1980,1000,2025-06-01 10:00:00,true,false"


def _lay_out(root):
    """Night 1: a loyalty card on a receipt, an anonymous phone, a CRM customer without card.
    Night 2: the CRM record gains the card and the phone logs in as the customer."""
    _csv(
        root / f"reference/products/dt={NIGHT_1}",
        PRODUCT_COLUMNS,
        ["SKU-1,Pan,home,kitchen,Acme,20.00,EUR"],
    )
    _csv(
        root / f"reference/stores/dt={NIGHT_1}",
        STORE_COLUMNS,
        ["S1,Paris,Paris,IDF,FR,Europe/Paris,2020-01-01"],
    )
    _csv(root / f"crm/customers/dt={NIGHT_1}", CRM_COLUMNS, [_crm("") + ",2025-06-01 10:00:00"])
    receipt = f"T1,1,S1,R1,{NIGHT_1} 11:00:00,SKU-1,1,20.00,0.00,card,L-9,EUR"
    _csv(root / f"instore/pos/dt={NIGHT_1}/store_id=S1", POS_COLUMNS, [receipt])
    _events(root / f"ecommerce/events/dt={NIGHT_1}", [_event("E1", NIGHT_1)])
    _csv(root / f"crm/customers/dt={NIGHT_2}", CRM_COLUMNS, [_crm("L-9") + f",{NIGHT_2} 09:00:00"])
    _events(root / f"ecommerce/events/dt={NIGHT_2}", [_event("E2", NIGHT_2, customer_id="C1")])
    _csv(root / f"instore/pos/dt={NIGHT_2}/store_id=S1", POS_COLUMNS, [])
    _events(root / f"ecommerce/events/dt={NIGHT_3}", [_event("E3", NIGHT_3, customer_id="C1")])
    _csv(root / f"instore/pos/dt={NIGHT_3}/store_id=S1", POS_COLUMNS, [])


def _keys(spark, settings):
    return {
        (r["identifier_type"], r["identifier"]): r["customer_key"]
        for r in lakehouse.read_table(spark, settings, tables.SILVER_IDENTITY).collect()
    }


def test_a_merge_across_two_nights_leaves_a_trail_that_old_rows_join_through(
    spark, settings, tmp_path
):
    local = replace(settings, landing_dir=tmp_path / "landing", lakehouse_dir=tmp_path / "lake")
    _lay_out(local.landing_dir)
    nights = {}
    for night, day in enumerate((NIGHT_1, NIGHT_2, NIGHT_3), start=1):
        ingest_all(spark, local, day, f"night-{night}")
        nights[day] = run_silver(spark, local, f"night-{night}", day)
        nights[day]["keys"] = _keys(spark, local)
        build_gold(spark, local, day, f"night-{night}")
    before, after = nights[NIGHT_1]["keys"], nights[NIGHT_2]["keys"]
    card, phone = before[("loyalty_card_id", "L-9")], before[("anonymous_id", "A-phone")]
    customer = after[("customer_id", "C1")]
    assert len({card, phone, customer}) == 3 and before[("customer_id", "C1")] == customer
    assert set(after.values()) == {customer}
    assert (nights[NIGHT_1]["retired_keys"], nights[NIGHT_2]["retired_keys"]) == (0, 2)
    history = lakehouse.read_table(spark, local, tables.SILVER_KEY_HISTORY)
    expected = [
        (card, customer, customer, NIGHT_2, "night-2"),
        (phone, customer, customer, NIGHT_2, "night-2"),
    ]
    # A quiet third night keeps the trail as it was.
    assert nights[NIGHT_3]["retired_keys"] == 0
    assert rows(history, *tables.SILVER_KEY_HISTORY.column_names) == sorted(expected)

    # Yesterday's features were written under two keys (the card's purchase, the CRM record);
    # through the history both are today's one customer's.
    features = lakehouse.read_table(spark, local, tables.GOLD_FEATURES)
    yesterday = features.where(F.col("as_of_date") == F.lit(str(NIGHT_1)).cast("date"))
    assert rows(yesterday, "customer_key", "has_purchase") == sorted(
        [(card, True), (customer, False)]
    )
    joined = (
        yesterday.join(history, yesterday.customer_key == history.retired_key, "left")
        .select(F.coalesce("surviving_key", yesterday.customer_key).alias("key"))
        .join(
            lakehouse.read_table(spark, local, tables.GOLD_PROFILE),
            F.col("key") == F.col("customer_key"),
        )
    )
    assert rows(joined, "key", "customer_id") == [(customer, "C1"), (customer, "C1")]


def test_a_key_retired_twice_points_at_the_key_that_survives_now(spark):
    schema = "retired_key string, merged_into_key string"
    history = spark.createDataFrame(
        [("A", "B", "B", date(2026, 1, 1), "n1"), ("X", "Y", "Y", date(2026, 1, 1), "n1")],
        ", ".join(c.name + " " + c.type for c in tables.SILVER_KEY_HISTORY.columns),
    )
    # Tonight B merges into C, and Y is told apart from X again (X is live once more).
    retired = spark.createDataFrame([("B", "C")], schema)
    live = spark.createDataFrame([("C",), ("X",), ("Y",)], "customer_key string")
    got = identity.key_history(history, retired, live, date(2026, 1, 2), "n2")
    assert rows(got) == [
        ("A", "C", "B", date(2026, 1, 1), "n1"),
        ("B", "C", "C", date(2026, 1, 2), "n2"),
    ]
