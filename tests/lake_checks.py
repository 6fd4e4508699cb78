"""Checks that hold on any lake the nightly jobs built: shared by the two-night lake
(``tests/test_lakehouse_jobs.py``), the year (``tests/test_year.py``) and the shops with one
channel (``tests/test_one_channel.py``)."""

from __future__ import annotations

import gzip
import re

from pyspark.sql import functions as F

from omni import lakehouse, tables


def assert_counts_reconcile(spark, settings, erased: dict[str, int] | None = None) -> None:
    """Per source, every bronze record read is accepted, quarantined, a duplicate or
    suppressed (an erased customer's: its bronze row is gone), and the ingest log counts every
    bronze record and every suppressed one. ``erased``: the bronze rows an erasure deleted
    since (its ``rows_deleted``)."""
    read = lambda t: lakehouse.read_table(spark, settings, t)  # noqa: E731
    suppressed = F.coalesce(F.col("suppressed"), F.lit(0))
    recon = (
        read(tables.RECONCILIATION)
        .groupBy("source")
        .agg(
            (F.sum("read") - F.sum(suppressed)).alias("read"),
            F.sum(F.col("accepted") + F.col("quarantined") + F.col("duplicates")).alias("placed"),
            F.sum(suppressed).alias("suppressed"),
        )
    )
    bronze = {
        t.name.split(".")[1]: read(t).count() + (erased or {}).get(t.name, 0)
        for t in tables.ALL_TABLES
        if t.layer == "bronze" and t not in (tables.INGESTED_FILES, tables.LANDING_FOLDERS)
    }
    counts = recon.collect()
    got = {r["source"]: (r["read"], r["placed"]) for r in counts}
    # A source the retailer lacks has no bronze rows and nothing to reconcile.
    assert {s: v for s, v in got.items() if v != (0, 0)} == {
        name: (n, n) for name, n in bronze.items() if n
    }
    log = read(tables.INGESTED_FILES)
    dropped = sum(r["suppressed"] for r in counts)
    assert log.agg(F.sum("records")).first()[0] == sum(bronze.values()) + dropped


def assert_keys_stable(spark, settings, first: dict, second: dict) -> None:
    """``first`` and ``second``: identifier -> customer key after two consecutive nights."""
    moved: dict[str, set[str]] = {}
    for identifier, key in first.items():
        moved.setdefault(key, set()).add(second[identifier])
    # A customer of the first night is still one customer, under one key ...
    assert all(len(new) == 1 for new in moved.values())
    # ... its own key unless it merged with another, and then the key of one of the two.
    survivors = {key for key, new in moved.items() if new == {key}}
    assert len(survivors) >= 0.9 * len(moved)
    # (a customer new tonight can take in an older one: a CRM record for a known loyalty card)
    new_tonight = {second[identifier] for identifier in set(second) - set(first)}
    for key, (new,) in moved.items():
        if new != key:
            assert new in moved or new in new_tonight, f"{key} became {new}, a key from nowhere"
    # Profiles follow the keys: only tonight's keys, one row each.
    profile = lakehouse.read_table(spark, settings, tables.GOLD_PROFILE)
    profile_keys = [r["customer_key"] for r in profile.collect()]
    assert len(profile_keys) == len(set(profile_keys))
    assert set(profile_keys) <= set(second.values())


PLANTED_CARD, PLANTED_CUSTOMER = "L-PLANTED", "C9000001"


def plant_a_merge(landing, receipt_day, merge_day) -> None:
    """A receipt of ``receipt_day`` with a loyalty card no CRM record knows (a customer of its
    own, keyed by the card); in the CRM folder of ``merge_day`` a new record holds that card:
    two customers found to be one that night."""
    from omni.sources import CRM_COLUMNS, POS_COLUMNS

    receipt = f"T-PLANTED,1,S001,R1,{receipt_day} 11:00:00,SKU-APP-000,1,20.00,0.00,card,"
    store = landing / "instore" / "pos" / f"dt={receipt_day}" / "store_id=S001"
    (store / "part-00001.csv").write_text(f"{','.join(POS_COLUMNS)}\n{receipt}{PLANTED_CARD},EUR\n")
    crm = landing / "crm" / "customers" / f"dt={merge_day}"
    crm.mkdir(parents=True, exist_ok=True)
    record = (
        f"{PLANTED_CUSTOMER},{PLANTED_CARD},planted@example.com,+351900000000,Ana,Silva,1980,"
        f"1000,2025-01-01 10:00:00,true,false,{merge_day} 09:00:00"
    )
    (crm / "part-00001.csv").write_text(f"{','.join(CRM_COLUMNS)}\n{record}\n")
    (crm / "_SUCCESS").touch()


def _landed(folder, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    (folder / "_SUCCESS").touch()


def plant_marketing(landing, first_day, second_day) -> dict:
    """Two nights of the marketing sources, with what real exports bring: on ``first_day``
    campaigns C1 (email) and C2 (push), one with a holdout share the contract forbids, and a
    sent event per CRM customer of C1 (opened by every other one), one of an unknown type and
    one of an unknown campaign; on ``second_day`` C1 re-planned (a later ``updated_at``: it
    wins) and its first record delivered again, a sent event re-delivered, and a late open of
    ``first_day``. Returns what silver and quarantine must hold."""
    import csv
    import json
    import re

    from omni.sources import CAMPAIGN_COLUMNS

    customers = sorted(  # the well-formed ids of the CRM's rows (the sample breaks some)
        {
            row["customer_id"]
            for path in (landing / "crm" / "customers").glob("dt=*/*.csv")
            for row in csv.DictReader(path.open())
            if re.fullmatch(r"C\d{7}", row["customer_id"] or "")
        }
    )
    header = ",".join(CAMPAIGN_COLUMNS)
    c1 = f"C1,Come back,email,at risk;high,10% off,{first_day},{second_day},0.2,14"
    first = [
        f"{c1},{first_day} 08:00:00",
        f"C2,App only,push,all,,{first_day},{second_day},0.1,7,{first_day} 08:00:00",
        f"C3,Too big,email,all,,{first_day},{second_day},0.7,7,{first_day} 08:00:00",
    ]
    second = [
        f"C1,Come back,email,at risk;high,15% off,{first_day},{second_day},0.25,14,"
        f"{second_day} 07:00:00",
        first[0],
    ]
    folder = landing / "marketing" / "campaigns"
    _landed(folder / f"dt={first_day}", "part-00000.csv", "\n".join([header, *first]) + "\n")
    _landed(folder / f"dt={second_day}", "part-00000.csv", "\n".join([header, *second]) + "\n")

    def event(n, customer, kind, day, campaign="C1"):
        return json.dumps(
            {
                "event_id": f"ME-{n}-{kind}",
                "message_id": f"M-{n}",
                "campaign_id": campaign,
                "channel": "email",
                "customer_id": customer,
                "event_type": kind,
                "event_time": f"{day}T18:00:00+01:00",
            }
        )

    night1 = [event(n, c, "sent", first_day) for n, c in enumerate(customers)]
    night1 += [event(n, c, "opened", first_day) for n, c in enumerate(customers) if n % 2 == 0]
    night1 += [
        event(0, customers[0], "read", first_day),
        event(99, customers[0], "sent", first_day, "C404"),
    ]
    late = event(1, customers[1], "opened", first_day)
    night2 = [night1[0], late]
    folder = landing / "marketing" / "messages"
    _landed(folder / f"dt={first_day}", "part-00000.jsonl", "\n".join(night1) + "\n")
    _landed(folder / f"dt={second_day}", "part-00000.jsonl", "\n".join(night2) + "\n")
    return {
        "customers": customers,
        "campaigns": {"C1": (0.25, "15% off"), "C2": (0.1, None)},
        "messages": len(customers) + len(range(0, len(customers), 2)) + 1,
        "quarantined": {
            ("marketing_campaigns", "invalid_holdout_share"): 1,
            ("marketing_messages", "unknown_event_type"): 1,
            ("marketing_messages", "unknown_campaign"): 1,
        },
        "duplicates": {"marketing_campaigns": 1, "marketing_messages": 1},
    }


RECATEGORISED_SKU, NEW_CATEGORY = "SKU-APP-000", "outdoor"


def plant_a_recategorisation(landing, day) -> None:
    """A catalogue snapshot on ``day`` that moves a sku sold before to another category: the
    days of its earlier lines sum into another category from that night on."""
    folders = sorted((landing / "reference" / "products").glob("dt=*"))
    earlier = [f for f in folders if f.name <= f"dt={day}"][-1]
    header, *rows = (earlier / "part-00000.csv").read_text().splitlines()
    moved = [
        ",".join([*fields[:2], NEW_CATEGORY, *fields[3:]])
        if (fields := row.split(","))[0] == RECATEGORISED_SKU
        else row
        for row in rows
    ]
    assert moved != rows, f"{RECATEGORISED_SKU} is not in {earlier}"
    folder = landing / "reference" / "products" / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-00000.csv").write_text("\n".join([header, *moved]) + "\n")
    (folder / "_SUCCESS").touch()


def comparable(frame):
    """``frame`` with its maps as sorted arrays of entries: set operations refuse maps."""
    return frame.select(
        *(
            F.array_sort(F.map_entries(field.name)).alias(field.name)
            if field.dataType.typeName() == "map"
            else F.col(field.name)
            for field in frame.schema.fields
        )
    )


def assert_gold_as_built_from_history(spark, settings, as_of) -> None:
    """``silver.customer_daily`` holds what the whole of silver sums to today, and the profile
    of ``as_of`` (built from those days) is the one the whole history gives."""
    from datetime import date

    from omni.history import customer_history
    from omni.transforms import gold
    from tests.conftest import assert_frame_equal

    read = lambda t: lakehouse.read_table(spark, settings, t)  # noqa: E731
    stored = read(tables.SILVER_CUSTOMER_DAILY).drop("_run_id")
    lines = gold.purchase_lines(
        read(tables.SILVER_ORDER_LINES), read(tables.SILVER_POS), read(tables.SILVER_PRODUCTS)
    )
    rebuilt = lakehouse.conform(
        gold.customer_days(lines, read(tables.SILVER_EVENTS)).withColumn("_run_id", F.lit("-")),
        tables.SILVER_CUSTOMER_DAILY,
    ).drop("_run_id")
    assert stored.count() > 0
    assert_frame_equal(comparable(stored), comparable(rebuilt))
    as_of = date.fromisoformat(str(as_of))
    with customer_history(spark, settings) as inputs:
        expected = gold.build_customer_profile(
            inputs["population"], inputs["transactions"], inputs["activity"], as_of
        )
        assert_frame_equal(
            read(tables.GOLD_PROFILE), lakehouse.conform(expected, tables.GOLD_PROFILE)
        )


def assert_merge_trail(spark, settings, before: dict, after: dict, run_id: str, day, receipt_day):
    """The planted merge of night ``run_id`` (``day``): the card's key is retired into the CRM
    customer's, and the features of ``receipt_day`` (never rebuilt since) join today's
    customer through ``silver.customer_key_history``. ``before``/``after``: the identities
    (identifier -> key) of the night before and of that night."""
    from tests.conftest import rows

    read = lambda t: lakehouse.read_table(spark, settings, t)  # noqa: E731
    card = before[("loyalty_card_id", PLANTED_CARD)]
    customer = after[("customer_id", PLANTED_CUSTOMER)]
    assert after[("loyalty_card_id", PLANTED_CARD)] == customer != card
    history = read(tables.SILVER_KEY_HISTORY)
    assert rows(
        history.where(F.col("retired_key") == card), *tables.SILVER_KEY_HISTORY.column_names
    ) == [(card, customer, customer, day, run_id)]
    # Every retired key was a key the night before and is none tonight; its survivor is one.
    retired = {r["retired_key"]: r["surviving_key"] for r in history.collect()}
    assert set(retired) <= set(before.values()) - set(after.values())
    assert set(retired.values()) <= set(after.values())
    yesterday = read(tables.GOLD_FEATURES).where(
        (F.col("as_of_date") == F.lit(str(receipt_day)).cast("date"))
        & (F.col("customer_key") == card)
    )
    today = read(tables.SILVER_IDENTITY).where(F.col("identifier_type") == "customer_id")
    joined = (
        yesterday.join(history, yesterday.customer_key == history.retired_key)
        .join(today, F.col("surviving_key") == today.customer_key)
        .select("identifier", "monetary_365d")
    )
    assert rows(joined) == [(PLANTED_CUSTOMER, 20.0)]


def assert_features_as_built_today(spark, settings, days: list[str]) -> None:
    """The stored features of each of ``days`` are those built now from the whole history:
    the rebuild late records caused left nothing stale."""
    from datetime import date

    from omni.history import customer_history
    from omni.transforms import gold

    stored_all = lakehouse.read_table(spark, settings, tables.GOLD_FEATURES)
    with customer_history(spark, settings) as inputs:
        for day in days:
            expected = gold.build_customer_features(
                inputs["population"],
                inputs["transactions"],
                inputs["activity"],
                date.fromisoformat(day),
                settings.profile_window_days,
            )
            stored = stored_all.where(F.col("as_of_date") == F.lit(day).cast("date"))
            expected = lakehouse.conform(expected, tables.GOLD_FEATURES).select(stored.columns)
            assert stored.count() > 0
            assert stored.exceptAll(expected).count() == 0, day
            assert expected.exceptAll(stored).count() == 0, day


def failed_checks(spark, settings, run_id: str):
    """The run's rows of ``quality.validation_results`` and its failed checks, as
    (table, expectation type, severity)."""
    results = lakehouse.read_table(spark, settings, tables.VALIDATION_RESULTS).where(
        F.col("run_id") == run_id
    )
    return results, [
        (r["table_name"], r["expectation_type"], r["severity"])
        for r in results.where(~F.col("success")).collect()
    ]


def customer_with_card_and_logins(spark, settings):
    """The first customer (by key) with a CRM id, a loyalty card and a device: their key and
    their (identifier type, identifier) pairs."""
    identity = lakehouse.read_table(spark, settings, tables.SILVER_IDENTITY)
    keys = (
        identity.groupBy("customer_key")
        .agg(F.collect_set("identifier_type").alias("types"))
        .where(
            F.array_contains("types", "loyalty_card_id")
            & F.array_contains("types", "anonymous_id")
            & F.array_contains("types", "customer_id")
        )
        .orderBy("customer_key")
        .first()
    )
    assert keys is not None, "the sample should hold an omni-channel customer"
    rows = identity.where(F.col("customer_key") == keys["customer_key"]).collect()
    return keys["customer_key"], {(r["identifier_type"], r["identifier"]) for r in rows}


def landing_lines(landing) -> dict[str, list[bytes]]:
    """Every delivered file's lines (gzip opened), by path under the landing zone."""
    files = {}
    for path in sorted(landing.rglob("part-*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            files[str(path.relative_to(landing))] = handle.read().splitlines(True)
    return files


def _names(line: bytes, needles) -> bool:
    text = line.decode("utf-8").lower()
    return any(
        re.search(rf"(?<![a-z0-9_.-]){re.escape(n.lower())}(?![a-z0-9_-])", text) for n in needles
    )


def landing_lines_naming(landing, needles) -> dict[str, list[bytes]]:
    """The lines of the landing files that name one of ``needles`` (whole tokens), by path."""
    return {
        path: [line for line in lines if _names(line, needles)]
        for path, lines in landing_lines(landing).items()
        if any(_names(line, needles) for line in lines)
    }


def tables_naming(spark, settings, needles) -> list[str]:
    """The tables with a row whose text (any string column) holds one of ``needles``."""
    found = []
    for table in tables.ALL_TABLES:
        df = lakehouse.read_table(spark, settings, table)
        text = [c for c, t in df.dtypes if t == "string"]
        if not text:
            continue
        blob = F.lower(F.concat_ws(" ", *text))
        if df.where(F.greatest(*[blob.contains(n.lower()) for n in needles], F.lit(False))).count():
            found.append(table.name)
    return found
