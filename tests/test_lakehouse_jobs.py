"""Bronze, silver, gold, maintenance and erasure run in-process on a tiny generated sample."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import date, datetime, time, timedelta

import deltalake
import pytest
from pyspark.sql import functions as F

from jobs.bronze_ingest import ingest_all
from jobs.erase_customer import UnknownCustomerError, erase_customer, resolve_customer
from jobs.gold import build_gold
from jobs.maintenance import maintain_tables
from jobs.silver import new_device_logins, run_silver
from omni import lakehouse, tables
from omni.history import load_inputs
from omni.sample import SampleSpec, generate_sample
from omni.sources import CRM
from omni.transforms import gold, identity
from omni.transforms.silver import parse_records
from tests.conftest import readers_rows
from tests.lake_checks import (
    NEW_CATEGORY,
    RECATEGORISED_SKU,
    assert_counts_reconcile,
    assert_features_as_built_today,
    assert_gold_as_built_from_history,
    assert_keys_stable,
    assert_merge_trail,
    customer_with_card_and_logins,
    landing_lines,
    landing_lines_naming,
    plant_a_merge,
    plant_a_recategorisation,
    plant_marketing,
    tables_naming,
)
from tests.test_quality import batch

RUN_DATE = date(2026, 3, 31)
FIRST_NIGHT = RUN_DATE - timedelta(days=1)
NIGHTS: dict[str, dict] = {}
MARKETING: dict = {}


def _night(spark, settings, day, run_id, start=None):
    NIGHTS[run_id] = {
        "bronze": ingest_all(spark, settings, day, run_id),
        "silver": run_silver(spark, settings, run_id, day),
        "identity": {
            (r["identifier_type"], r["identifier"]): r["customer_key"]
            for r in lakehouse.read_table(spark, settings, tables.SILVER_IDENTITY).collect()
        },
    }
    NIGHTS[run_id]["gold"] = build_gold(spark, settings, day, run_id, start)


# The first day night 1 builds features for: too early for night 2's late records to rebuild.
PLANTED_DAY = FIRST_NIGHT - timedelta(days=4)


@pytest.fixture(scope="module")
def lake(spark, settings, tmp_path_factory):
    """Two nights: a backfill of 19 days in one run (features for its last 5), then day 20."""
    root = tmp_path_factory.mktemp("lake")
    local = replace(settings, landing_dir=root / "landing", lakehouse_dir=root / "lakehouse")
    generate_sample(
        local.landing_dir,
        SampleSpec(customers=40, days=20, end_date=RUN_DATE, seed=3, late_rate=0.2),
    )
    plant_a_merge(local.landing_dir, PLANTED_DAY, RUN_DATE)
    plant_a_recategorisation(local.landing_dir, RUN_DATE)
    MARKETING.update(plant_marketing(local.landing_dir, FIRST_NIGHT, RUN_DATE))
    _night(spark, local, FIRST_NIGHT, "night-1", start=FIRST_NIGHT - timedelta(days=4))
    _night(spark, local, RUN_DATE, "night-2")
    return local


def test_counts_reconcile_per_source_and_date_over_both_nights(spark, lake):
    assert_counts_reconcile(spark, lake)


def test_marketing_sources_land_typed_deduplicated_and_latest_plan_wins(spark, lake):
    read = lambda t: lakehouse.read_table(spark, lake, t)  # noqa: E731
    campaigns = {
        r["campaign_id"]: (r["holdout_share"], r["offer"])
        for r in read(tables.SILVER_CAMPAIGNS).collect()
    }
    assert campaigns == MARKETING["campaigns"]
    messages = read(tables.SILVER_MESSAGES)
    assert messages.count() == MARKETING["messages"]
    assert messages.select("event_id").distinct().count() == MARKETING["messages"]
    late = messages.where("event_id = 'ME-1-opened'").first()
    assert (late["event_date"], late["_business_date"]) == (FIRST_NIGHT, RUN_DATE)
    assert late["event_ts"] == datetime.combine(FIRST_NIGHT, time(17))
    quarantined = {
        (r["source"], r["reason"]): r["count"]
        for r in read(tables.QUARANTINE_RECORDS)
        .where(F.col("source").startswith("marketing_"))
        .groupBy("source", "reason")
        .count()
        .collect()
    }
    assert quarantined == MARKETING["quarantined"]
    unknown = read(tables.QUARANTINE_RECORDS).where("reason = 'unknown_campaign'").first()
    assert unknown["reason_detail"] == "campaign_id=C404: expected a campaign in silver.campaigns"
    duplicates = {
        r["source"]: r["duplicates"]
        for r in read(tables.RECONCILIATION)
        .where(F.col("source").startswith("marketing_"))
        .groupBy("source")
        .agg(F.sum("duplicates").alias("duplicates"))
        .collect()
    }
    assert duplicates == MARKETING["duplicates"]


def test_keys_are_stable_from_one_night_to_the_next(spark, lake):
    assert_keys_stable(spark, lake, NIGHTS["night-1"]["identity"], NIGHTS["night-2"]["identity"])


def _same_rows(left, right) -> bool:
    return left.exceptAll(right).count() == 0 and right.exceptAll(left).count() == 0


def test_a_merge_across_nights_leaves_a_trail_that_yesterdays_rows_join_through(spark, lake):
    assert NIGHTS["night-2"]["silver"]["retired_keys"] >= 1
    before, after = NIGHTS["night-1"]["identity"], NIGHTS["night-2"]["identity"]
    assert_merge_trail(spark, lake, before, after, "night-2", RUN_DATE, PLANTED_DAY)


def test_identity_read_from_device_logins_equals_identity_from_the_event_history(spark, lake):
    events = lakehouse.read_table(spark, lake, tables.SILVER_EVENTS)
    pairs = events.select("anonymous_id", "customer_id").distinct()
    logins = lakehouse.read_table(spark, lake, tables.SILVER_DEVICE_LOGINS)
    assert logins.count() == pairs.count() > 0  # one row per pair, anonymous visits included
    assert _same_rows(logins.select("anonymous_id", "customer_id"), pairs)
    nodes, edges = identity.identity_links(
        lakehouse.read_table(spark, lake, tables.SILVER_CUSTOMERS),
        events.select("anonymous_id", "customer_id"),
        lakehouse.read_table(spark, lake, tables.SILVER_POS).select("loyalty_card_id"),
        lake.max_customers_per_device,
    )
    from_history = identity.resolve_identities(nodes, edges, "check").drop("updated_run_id")
    stored = lakehouse.read_table(spark, lake, tables.SILVER_IDENTITY).drop("updated_run_id")
    assert _same_rows(stored, from_history)


def test_device_logins_adds_each_pair_once_anonymous_ones_included(spark, settings, tmp_path):
    fresh = replace(settings, lakehouse_dir=tmp_path / "lakehouse")
    schema = "anonymous_id string, customer_id string, event_date date, _run_id string"
    day = date(2026, 3, 1)
    first = spark.createDataFrame(
        [("d1", "c1", day, "r1"), ("d1", None, day, "r1"), ("d2", None, day, "r1")] * 2, schema
    )

    def record(events):
        added = new_device_logins(spark, fresh, events)
        return lakehouse.append(spark, fresh, tables.SILVER_DEVICE_LOGINS, added)

    assert record(first) == 3
    assert record(first) == 0  # a retried run adds nothing
    later = first.union(spark.createDataFrame([("d3", None, day, "r2")], schema))
    assert record(later) == 1
    stored = lakehouse.read_table(spark, fresh, tables.SILVER_DEVICE_LOGINS)
    pairs = [(r["anonymous_id"], r["customer_id"]) for r in stored.collect()]
    assert sorted(pairs, key=lambda pair: (pair[0], pair[1] or "")) == [
        ("d1", None),
        ("d1", "c1"),
        ("d2", None),
        ("d3", None),
    ]


def test_late_records_recompute_the_features_of_the_days_they_touch(spark, lake):
    night = NIGHTS["night-2"]["gold"]
    built_on_night_1 = NIGHTS["night-1"]["gold"]["feature_dates"]
    late_days = sorted(set(night["touched_dates"]) & set(built_on_night_1))
    assert late_days, f"the sample should hold late records for {built_on_night_1}: {night}"
    assert night["feature_dates"] == [*late_days, str(RUN_DATE)]
    assert_features_as_built_today(spark, lake, late_days)


def test_gold_follows_the_customers_days_and_equals_gold_from_the_history(spark, lake):
    """Night 2 read the customers' days, not the history: the days it rebuilt are those its
    records fall on (late ones) and those holding a sku that changed category; the days equal
    a rebuild from all of silver, and the profile and every feature date it built equal what
    the whole history gives (a merge of two customers included)."""
    read = lambda t: lakehouse.read_table(spark, lake, t)  # noqa: E731
    night = NIGHTS["night-2"]
    days = read(tables.SILVER_CUSTOMER_DAILY)
    rebuilt = {r["date"] for r in days.where(F.col("_run_id") == "night-2").collect()}
    late = {date.fromisoformat(d) for d in night["gold"]["touched_dates"]}
    moved = F.col("sku") == RECATEGORISED_SKU
    sold = {
        r["order_date"]
        for r in read(tables.SILVER_ORDER_LINES)
        .where(moved & F.col("anonymous_id").isNotNull())
        .collect()
    } | {
        r["transaction_date"]
        for r in read(tables.SILVER_POS)
        .where(moved & F.col("loyalty_card_id").isNotNull())
        .collect()
    }
    assert sold - late, "the moved sku should be sold on days night 2 brought no record for"
    assert sold - late <= rebuilt <= late | sold
    assert night["silver"]["customer_days_rebuilt"] >= len(rebuilt)
    # Night 1 built the table whole; night 2 only its days, though the history is 20 days.
    assert NIGHTS["night-1"]["silver"]["customer_days_whole"] is True
    assert night["silver"]["customer_days_whole"] is False
    assert night["silver"]["customer_days_rebuilt"] < 10
    in_new_category = days.where(F.col("category_net").getItem(NEW_CATEGORY).isNotNull())
    assert {r["date"] for r in in_new_category.collect()} == sold
    assert_gold_as_built_from_history(spark, lake, RUN_DATE)
    assert_features_as_built_today(spark, lake, night["gold"]["feature_dates"])
    assert "silver.customer_daily" in tables.GOLD_FEATURES.upstream


def _rounded(df):
    kinds = dict(df.dtypes)
    return sorted(
        tuple(
            round(v, 9) if kinds[c] == "double" and v is not None else v
            for c, v in r.asDict().items()
        )
        for r in df.collect()
    )


def test_features_of_many_dates_in_one_pass_equal_those_built_day_by_day(spark, lake):
    """The backfill's one-pass features are the nightly ones, for every day of the sample (late
    records, returns, sessions across days, customers not yet known, a day before any data)."""
    inputs = load_inputs(spark, lake)
    days = [RUN_DATE - timedelta(days=n) for n in range(21)]
    args = (inputs["population"], inputs["transactions"], inputs["activity"])
    one_pass = gold.build_customer_features_over(*args, days)
    got, want = _rounded(one_pass), []
    # Day by day, each collected on its own: one union of 21 nightly plans holds every
    # broadcast of them at once, more than a test worker's heap after a long session.
    for day in days:
        frame = gold.build_customer_features(*args, day)
        assert frame.schema == one_pass.schema, day
        want.extend(_rounded(frame))
    want.sort()
    assert len(want) > 20 * 30
    assert got == want
    for frame in inputs.values():
        frame.unpersist()


def test_a_backfill_builds_every_day_of_the_range_in_one_run(spark, lake):
    summary = build_gold(spark, lake, RUN_DATE, "backfill", start=RUN_DATE - timedelta(days=4))
    assert summary["feature_dates"] == [str(RUN_DATE - timedelta(days=n)) for n in range(4, -1, -1)]
    per_day = (
        lakehouse.read_table(spark, lake, tables.GOLD_FEATURES)
        .groupBy("as_of_date")
        .count()
        .where(F.col("as_of_date") >= F.lit(str(RUN_DATE - timedelta(days=4))).cast("date"))
    )
    assert per_day.count() == 5
    with pytest.raises(ValueError, match="is after --date"):
        build_gold(spark, lake, FIRST_NIGHT, "bad", start=RUN_DATE)


def test_a_third_night_with_no_new_files_changes_nothing(spark, lake):
    before = {
        t.name: lakehouse.read_table(spark, lake, t).count()
        for t in tables.ALL_TABLES
        if t.layer in ("bronze", "silver", "quarantine")
    }
    assert ingest_all(spark, lake, RUN_DATE, "night-3")["ecommerce_events"]["records"] == 0
    summary = run_silver(spark, lake, "night-3", RUN_DATE)
    assert summary["audit"]["published"], summary["audit"]
    assert summary["ecommerce_events"] == {
        "read": 0,
        "accepted": 0,
        "quarantined": 0,
        "duplicates": 0,
        "suppressed": 0,
    }
    after = {
        t.name: lakehouse.read_table(spark, lake, t).count()
        for t in tables.ALL_TABLES
        if t.layer in ("bronze", "silver", "quarantine")
    }
    assert after == before


def test_tables_are_registered_by_name_at_their_paths(spark, lake):
    detail = spark.sql("DESCRIBE DETAIL silver.pos_lines").first()
    assert detail["location"].endswith(str(lake.lakehouse_dir / "silver" / "pos_lines"))
    assert (
        spark.table("silver.pos_lines").count()
        == lakehouse.read_table(spark, lake, tables.SILVER_POS).count()
    )


def test_maintenance_compacts_and_keeps_every_row(spark, lake):
    before = lakehouse.read_table(spark, lake, tables.BRONZE_POS).count()
    result = maintain_tables(spark, lake, retention_hours=168)
    assert result["bronze.pos_lines"]["files_removed"] > result["bronze.pos_lines"]["files_added"]
    assert lakehouse.read_table(spark, lake, tables.BRONZE_POS).count() == before


def test_erasure_removes_the_customer_everywhere_for_good(spark, lake):
    key, identifiers = customer_with_card_and_logins(spark, lake)
    card = next(v for t, v in identifiers if t == "loyalty_card_id")
    customer_id = next(v for t, v in identifiers if t == "customer_id")
    email = (
        parse_records(lakehouse.read_table(spark, lake, tables.BRONZE_CRM), CRM)
        .where(F.col("customer_id") == customer_id)
        .first()["email"]
    )
    identity_path = lakehouse.table_path(lake, tables.SILVER_IDENTITY)
    old_version = spark.sql(f"DESCRIBE HISTORY delta.`{identity_path}`").first()["version"]
    others = (
        lakehouse.read_table(spark, lake, tables.GOLD_PROFILE)
        .where(F.col("customer_key") != key)
        .count()
    )

    # A stored GX result quoting the customer (a sample of failed rows), and one that does not.
    quoted = lake.gx_dir / "validations" / "silver.customers" / "run" / "result.json"
    other = lake.gx_dir / "data_docs" / "validations" / "silver.stores" / "page.html"
    for path, text in ((quoted, f'{{"loyalty_card_id": "{card}"}}'), (other, "<p>S1</p>")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    # The customer's campaign assignment, and someone else's that stays.
    def assignment(i, row):
        row.update(campaign_id="CMP-ERASE", customer_key=[key, "someone-else"][i])
        row.update(customer_id=[customer_id, "C-someone-else"][i])

    lakehouse.append(
        spark,
        lake,
        tables.GOLD_ASSIGNMENTS,
        batch(spark, "gold.campaign_assignments", 2, assignment),
    )

    result = erase_customer(spark, lake, "loyalty_card_id", card, "erasure-1")
    assert result["gx_files_deleted"] == 1
    assert not quoted.exists() and other.exists()
    assert result["rows_deleted"]["bronze.crm_customers"] >= 1
    # The customer's campaign messages (plant_marketing: one sent to every CRM customer).
    assert result["rows_deleted"]["bronze.marketing_messages"] >= 1
    assert result["rows_deleted"]["silver.campaign_messages"] >= 1
    assert result["rows_deleted"]["silver.customer_identity"] == len(identifiers)
    assert result["rows_deleted"]["gold.campaign_assignments"] == 1
    left = lakehouse.read_table(spark, lake, tables.GOLD_ASSIGNMENTS).where(
        "campaign_id = 'CMP-ERASE'"
    )
    assert [r["customer_id"] for r in left.collect()] == ["C-someone-else"]

    needles = [v for t, v in identifiers if t != "email_hash"] + [email, key]
    assert tables_naming(spark, lake, needles) == []
    assert lakehouse.read_table(spark, lake, tables.GOLD_PROFILE).count() == others
    # Time travel to before the erasure cannot bring the rows back: the files are gone.
    with pytest.raises(Exception, match="(?i)file|path|exist"):
        (
            spark.read.format("delta")
            .option("versionAsOf", old_version)
            .load(identity_path)
            .where(F.col("identifier") == card)
            .count()
        )
    audit = (
        lakehouse.read_table(spark, lake, tables.ERASURE_AUDIT)
        .where("erasure_id = 'erasure-1'")
        .first()
    )
    assert audit["identifier_type"] == "loyalty_card_id"
    assert card not in str(audit.asDict()) and len(audit["identifier_sha256"]) == 64
    with pytest.raises(UnknownCustomerError, match="is not in silver.customer_identity"):
        resolve_customer(spark, lake, "loyalty_card_id", card)
    # The landing zone is the source systems': by default its files are listed, not touched.
    holding = landing_lines_naming(lake.landing_dir, needles)
    assert holding and result["landing_files"] == sorted(holding)
    assert (audit["landing_files"], audit["landing_action"]) == (sorted(holding), "reported")
    other.unlink()  # not a page GX wrote: the next Data Docs build could not parse its path


def test_landing_files_are_searched_and_rewritten_through_gzip_line_ends_kept(
    spark, settings, tmp_path
):
    from jobs.erase_customer import landing_files_with, rewrite_landing_file

    local = replace(settings, landing_dir=tmp_path / "landing")
    events = local.landing_dir / "ecommerce" / "events" / "dt=2026-03-30" / "part-0.jsonl.gz"
    crm = local.landing_dir / "crm" / "customers" / "dt=2026-03-30" / "part-0.csv"
    other = local.landing_dir / "crm" / "customers" / "dt=2026-03-31" / "part-0.csv"
    for path in (events, crm, other):
        path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(events, "wb") as handle:
        handle.write(
            b'{"customer_id": "C1"}\n{"customer_id": "C12"}\r\n{"customer_id": "C1", "x": 1}\n'
        )
    crm.write_bytes(b"customer_id,email\r\nC1,JANE@example.com\r\nC2,bob@example.com\r\n")
    other.write_bytes(b"customer_id,email\nC12,x@example.com\n")
    (crm.parent / "_SUCCESS").write_bytes(b"")
    needles = {"C1", "jane@example.com"}  # C12 is someone else

    found = landing_files_with(spark, local, needles)
    assert found == [
        "crm/customers/dt=2026-03-30/part-0.csv",
        "ecommerce/events/dt=2026-03-30/part-0.jsonl.gz",
    ]
    assert [rewrite_landing_file(local.landing_dir / path, needles) for path in found] == [1, 2]
    with gzip.open(events, "rb") as handle:
        assert handle.read() == b'{"customer_id": "C12"}\r\n'
    assert crm.read_bytes() == b"customer_id,email\r\nC2,bob@example.com\r\n"
    assert other.read_bytes() == b"customer_id,email\nC12,x@example.com\n"
    assert landing_files_with(spark, local, needles) == []
    assert sorted(p.name for p in crm.parent.iterdir()) == ["_SUCCESS", "part-0.csv"]


def test_erasure_can_rewrite_the_landing_files_without_the_customer(spark, lake):
    """With ``landing="rewrite"`` every file that named the customer loses those lines and
    keeps all others, in order (gzip files stay gzip); no other file changes; a rerun of the
    night's ingest adds nothing back."""
    key, identifiers = customer_with_card_and_logins(spark, lake)
    customer_id = next(v for t, v in identifiers if t == "customer_id")
    email = (
        parse_records(lakehouse.read_table(spark, lake, tables.BRONZE_CRM), CRM)
        .where(F.col("customer_id") == customer_id)
        .first()["email"]
    )
    needles = [v for t, v in identifiers if t != "email_hash"] + [email, key]
    before = landing_lines(lake.landing_dir)
    naming = landing_lines_naming(lake.landing_dir, needles)
    assert naming

    result = erase_customer(spark, lake, "customer_id", customer_id, "erasure-2", "rewrite")
    assert result["landing_files"] == sorted(naming) and result["landing_action"] == "rewritten"
    assert result["landing_lines_removed"] == sum(len(lines) for lines in naming.values())
    after = landing_lines(lake.landing_dir)
    assert set(after) == set(before)
    for path, lines in before.items():
        assert after[path] == [line for line in lines if line not in naming.get(path, [])], path
    assert not landing_lines_naming(lake.landing_dir, needles)
    audit = (
        lakehouse.read_table(spark, lake, tables.ERASURE_AUDIT)
        .where("erasure_id = 'erasure-2'")
        .first()
    )
    assert (audit["landing_files"], audit["landing_action"]) == (sorted(naming), "rewritten")
    rerun = ingest_all(spark, lake, RUN_DATE, "after-erasure-2")
    assert {name: c["files"] for name, c in rerun.items() if name != "audit"} == dict.fromkeys(
        (name for name in rerun if name != "audit"), 0
    )


def test_delta_rs_reads_the_gold_tables_after_maintenance_and_erasure(spark, lake):
    """Polars, pandas and DuckDB read Delta with delta-rs: every gold table opens there with
    Spark's rows, after OPTIMIZE, VACUUM and an erasure's DELETE (the erasure created the
    model tables the nights did not write, empty)."""
    rows = {}
    for table in tables.layer_tables("gold"):
        location = lakehouse.table_path(lake, table)
        opened = deltalake.DeltaTable(location)
        protocol = opened.protocol()
        assert (protocol.min_reader_version, protocol.reader_features) == (1, None), table.name
        assert opened.metadata().configuration == lakehouse.TABLE_PROPERTIES, table.name
        fields = opened.schema().fields
        assert [f.name for f in fields] == table.column_names
        assert [f.metadata.get("comment") for f in fields] == [c.comment for c in table.columns]
        delta_rs, via_spark = readers_rows(spark, location, table)
        assert delta_rs == via_spark, table.name
        rows[table.name] = len(delta_rs)
    assert all(
        rows[f"gold.{n}"] > 0
        for n in ("customer_profile", "customer_features", "daily_channel_kpis")
    )
    history = spark.sql(
        f"DESCRIBE HISTORY delta.`{lakehouse.table_path(lake, tables.GOLD_PROFILE)}`"
    )
    assert "DELETE" in {r["operation"] for r in history.collect()}


def test_erasure_refuses_bad_requests(spark, lake):
    with pytest.raises(ValueError, match="identifier type 'iban'"):
        resolve_customer(spark, lake, "iban", "x")
    with pytest.raises(ValueError, match="identifier is empty"):
        resolve_customer(spark, lake, "customer_id", " ")
