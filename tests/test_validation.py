"""Each quarantine rule on hand-built bronze rows, and store-local time to UTC across DST."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from pyspark.sql import functions as F

from omni.sources import CAMPAIGNS, CRM, EVENTS, MESSAGES, POS, PRODUCTS, STORES
from omni.transforms import silver, validation

BUSINESS_DATE = date(2026, 3, 29)


def bronze_frame(spark, source, records):
    """Parsed bronze rows: all data columns as given (strings), plus ingest metadata."""
    columns = source.data_columns
    data = [tuple(record.get(c) for c in columns) for record in records]
    df = spark.createDataFrame(data, source.data_schema)
    return df.select(
        "*",
        F.lit("test/dt=2026-03-29/part-0").alias("_source_file"),
        F.monotonically_increasing_id().alias("_source_line"),
        F.to_json(F.struct(*columns)).alias("_raw_record"),
        F.current_timestamp().alias("_ingested_at"),
        F.lit("run-1").alias("_run_id"),
        F.lit(BUSINESS_DATE.isoformat()).cast("date").alias("_business_date"),
    )


@pytest.fixture(scope="module")
def products(spark):
    return spark.createDataFrame([("SKU-1",), ("SKU-2",)], "sku string")


@pytest.fixture(scope="module")
def stores(spark):
    return spark.createDataFrame(
        [("S1", "Europe/Paris"), ("S2", "America/New_York")], "store_id string, timezone string"
    )


GOOD_EVENT = {
    "event_id": "E1",
    "event_time": "2026-03-29T10:00:00.000+02:00",
    "event_type": "product_view",
    "platform": "web",
    "session_id": "s",
    "anonymous_id": "a",
    "sku": "SKU-1",
}
GOOD_PURCHASE = {
    **GOOD_EVENT,
    "event_type": "purchase",
    "sku": None,
    "order_id": "O1",
    "currency": "EUR",
    "items": [("SKU-1", "2", "9.99"), ("SKU-2", "1", "5")],
}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"_corrupt_record": '{"event_id": tru'}, "malformed_json"),
        ({"event_id": None}, "missing_required_field"),
        ({"anonymous_id": " "}, "missing_required_field"),
        ({"event_type": "hover"}, "unknown_event_type"),
        ({"platform": "fax"}, "unknown_platform"),
        ({"sku": None}, "missing_required_field"),
        ({"event_time": "yesterday"}, "invalid_timestamp"),
        ({"event_time": "1999-12-31T23:59:59+00:00"}, "timestamp_before_2000"),
        ({"event_time": "2026-04-01T00:00:00+00:00"}, "timestamp_in_future"),
        ({"sku": "SKU-404"}, "unknown_sku"),
        ({"event_type": "search", "sku": None, "search_query": None}, "missing_required_field"),
    ],
)
def test_event_rules(spark, products, change, reason):
    checked = validation.check_events(
        bronze_frame(spark, EVENTS, [{**GOOD_EVENT, **change}]), products
    )
    assert [r["_reason"] for r in checked.collect()] == [reason]


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"order_id": None}, "missing_required_field"),
        ({"items": []}, "missing_required_field"),
        ({"items": [("SKU-1", "two", "9.99")]}, "wrong_type"),
        ({"items": [("SKU-1", "1", "abc")]}, "wrong_type"),
        ({"items": [("SKU-1", "1", "-9.99")]}, "negative_price"),
        ({"items": [("SKU-1", "0", "9.99")]}, "invalid_quantity"),
        ({"items": [("SKU-1", "1", "9.99"), ("SKU-404", "1", "1")]}, "unknown_sku"),
        ({"currency": "euro"}, "invalid_currency"),
    ],
)
def test_purchase_rules(spark, products, change, reason):
    checked = validation.check_events(
        bronze_frame(spark, EVENTS, [{**GOOD_PURCHASE, **change}]), products
    )
    assert [r["_reason"] for r in checked.collect()] == [reason]


def test_purchase_items_explode_to_typed_order_lines(spark, products):
    checked = validation.check_events(bronze_frame(spark, EVENTS, [GOOD_PURCHASE]), products)
    lines = validation.explode_order_lines(checked)
    got = sorted(
        (
            r["order_id"],
            r["line_number"],
            r["sku"],
            r["quantity"],
            str(r["unit_price"]),
            str(r["net_amount"]),
            r["order_ts"],
        )
        for r in lines.collect()
    )
    assert got == [
        ("O1", 1, "SKU-1", 2, "9.99", "19.98", datetime(2026, 3, 29, 8, 0)),
        ("O1", 2, "SKU-2", 1, "5.00", "5.00", datetime(2026, 3, 29, 8, 0)),
    ]


GOOD_POS = {
    "transaction_id": "T1",
    "line_number": "1",
    "store_id": "S1",
    "register_id": "R1",
    "transaction_ts": "2026-03-29 12:00:00",
    "sku": "SKU-1",
    "quantity": "2",
    "unit_price": "10.00",
    "discount_amount": "1.50",
    "payment_type": "card",
    "loyalty_card_id": "L1",
    "currency": "EUR",
}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"_corrupt_record": "T1,1,S1"}, "wrong_column_count"),
        ({"transaction_id": ""}, "missing_required_field"),
        ({"quantity": "abc"}, "wrong_type"),
        ({"line_number": "1.5"}, "wrong_type"),
        ({"unit_price": "ten"}, "wrong_type"),
        ({"unit_price": "-10.00"}, "negative_price"),
        ({"discount_amount": "-1"}, "negative_price"),
        ({"quantity": "0"}, "invalid_quantity"),
        ({"store_id": "S999"}, "unknown_store"),
        ({"transaction_ts": "1998-06-01 12:00:00"}, "timestamp_before_2000"),
        ({"transaction_ts": "2099-06-01 12:00:00"}, "timestamp_in_future"),
        ({"transaction_ts": "noon"}, "invalid_timestamp"),
        ({"sku": "SKU-404"}, "unknown_sku"),
    ],
)
def test_pos_rules(spark, products, stores, change, reason):
    checked = validation.check_pos(
        bronze_frame(spark, POS, [{**GOOD_POS, **change}]), products, stores
    )
    assert [r["_reason"] for r in checked.collect()] == [reason]


@pytest.mark.parametrize(
    "store, local, utc, local_date",
    [
        # 2026-03-29: Europe/Paris springs forward at 02:00 local (UTC+1 -> UTC+2).
        ("S1", "2026-03-29 01:30:00", datetime(2026, 3, 29, 0, 30), date(2026, 3, 29)),
        ("S1", "2026-03-29 03:30:00", datetime(2026, 3, 29, 1, 30), date(2026, 3, 29)),
        ("S1", "2026-03-28 23:30:00", datetime(2026, 3, 28, 22, 30), date(2026, 3, 28)),
        # New York is already on daylight time (UTC-4) since 2026-03-08.
        ("S2", "2026-03-28 22:30:00", datetime(2026, 3, 29, 2, 30), date(2026, 3, 28)),
    ],
)
def test_store_local_time_converts_to_utc_with_the_stores_zone(
    spark, products, stores, store, local, utc, local_date
):
    record = {**GOOD_POS, "store_id": store, "transaction_ts": local}
    row = validation.check_pos(bronze_frame(spark, POS, [record]), products, stores).first()
    assert row["_reason"] is None
    assert row["transaction_ts"] == utc
    assert row["transaction_date"] == local_date


def test_returns_are_negative_lines_with_negative_net(spark, products, stores):
    record = {**GOOD_POS, "quantity": "-1", "discount_amount": "0"}
    row = validation.check_pos(bronze_frame(spark, POS, [record]), products, stores).first()
    assert (row["_reason"], row["is_return"], str(row["net_amount"])) == (None, True, "-10.00")


GOOD_CUSTOMER = {
    "customer_id": "C1",
    "loyalty_card_id": "L1",
    "email": "a@b.c",
    "phone": "1",
    "first_name": "A",
    "last_name": "B",
    "birth_year": "1980",
    "postal_code": "1000",
    "signup_ts": "2024-01-01 10:00:00",
    "email_opt_in": "true",
    "push_opt_in": "false",
    "updated_at": "2026-03-29 10:00:00",
}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"_corrupt_record": "C1,L1"}, "wrong_column_count"),
        ({"customer_id": ""}, "missing_required_field"),
        ({"birth_year": "19x0"}, "wrong_type"),
        ({"email_opt_in": "yes"}, "wrong_type"),
        ({"updated_at": "1990-01-01 00:00:00"}, "timestamp_before_2000"),
    ],
)
def test_customer_rules(spark, change, reason):
    checked = validation.check_customers(bronze_frame(spark, CRM, [{**GOOD_CUSTOMER, **change}]))
    assert [r["_reason"] for r in checked.collect()] == [reason]


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"list_price": "-5.00"}, "negative_price"),
        ({"list_price": "cheap"}, "wrong_type"),
        ({"category": None}, "missing_required_field"),
        ({"currency": "eur"}, "invalid_currency"),
    ],
)
def test_product_rules(spark, change, reason):
    good = {
        "sku": "SKU-1",
        "product_name": "x",
        "category": "home",
        "subcategory": "decor",
        "brand": "b",
        "list_price": "5.00",
        "currency": "EUR",
    }
    checked = validation.check_products(bronze_frame(spark, PRODUCTS, [{**good, **change}]))
    assert [r["_reason"] for r in checked.collect()] == [reason]


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"timezone": "Europe/Atlantis"}, "unknown_timezone"),
        ({"opened_on": "someday"}, "wrong_type"),
    ],
)
def test_store_rules(spark, change, reason):
    good = {
        "store_id": "S1",
        "store_name": "x",
        "city": "c",
        "region": "r",
        "country": "FR",
        "timezone": "Europe/Paris",
        "opened_on": "2020-01-01",
    }
    checked = validation.check_stores(bronze_frame(spark, STORES, [{**good, **change}]))
    assert [r["_reason"] for r in checked.collect()] == [reason]


GOOD_CAMPAIGN = {
    "campaign_id": "C1",
    "name": "Spring",
    "channel": "email",
    "audience": "at risk;high",
    "offer": "10% off",
    "start_date": "2026-03-29",
    "end_date": "2026-04-05",
    "holdout_share": "0.2",
    "conversion_window_days": "14",
    "updated_at": "2026-03-28 09:00:00",
}


@pytest.mark.parametrize(
    "change, reason, detail",
    [
        ({}, None, None),
        ({"_corrupt_record": "C1,Spring"}, "wrong_column_count", "expected 10 columns"),
        ({"audience": " "}, "missing_required_field", "required field(s) empty: audience"),
        ({"channel": "sms"}, "unknown_channel", "channel=sms: expected one of email, push"),
        ({"start_date": "spring"}, "wrong_type", "start_date=spring: expected a date YYYY-MM-DD"),
        ({"holdout_share": "a fifth"}, "wrong_type", "holdout_share=a fifth: expected a number"),
        ({"holdout_share": "0.6"}, "invalid_holdout_share", "holdout_share=0.6: expected a share"),
        ({"holdout_share": "-0.1"}, "invalid_holdout_share", "holdout_share=-0.1: expected"),
        ({"holdout_share": "NaN"}, "invalid_holdout_share", "holdout_share=NaN: expected"),
        (
            {"conversion_window_days": "0"},
            "invalid_conversion_window",
            "conversion_window_days=0: expected 1 day",
        ),
        (
            {"end_date": "2026-03-01"},
            "invalid_date_range",
            "end_date=2026-03-01: expected a date on or after start_date (start_date=2026-03-29)",
        ),
        ({"updated_at": "1999-01-01 00:00:00"}, "timestamp_before_2000", "updated_at=1999"),
    ],
)
def test_campaign_rules(spark, change, reason, detail):
    bronze = bronze_frame(spark, CAMPAIGNS, [{**GOOD_CAMPAIGN, **change}])
    row = validation.check_campaigns(bronze).first()
    assert row["_reason"] == reason
    assert (row["_reason_detail"] or "").startswith(detail or "")
    if reason is None:
        assert (row["holdout_share"], row["conversion_window_days"]) == (0.2, 14)
        assert (row["start_date"], row["end_date"]) == (date(2026, 3, 29), date(2026, 4, 5))


GOOD_MESSAGE = {
    "event_id": "M1-sent",
    "message_id": "M1",
    "campaign_id": "C1",
    "channel": "push",
    "customer_id": "CUST-1",
    "event_type": "opened",
    "event_time": "2026-03-29T21:30:00+02:00",
}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, None),
        ({"_corrupt_record": '{"event_id": "M'}, "malformed_json"),
        ({"customer_id": None}, "missing_required_field"),
        ({"message_id": ""}, "missing_required_field"),
        ({"event_type": "read"}, "unknown_event_type"),
        ({"channel": "sms"}, "unknown_channel"),
        ({"event_time": "tonight"}, "invalid_timestamp"),
        ({"event_time": "2031-01-01T00:00:00+00:00"}, "timestamp_in_future"),
        ({"campaign_id": "C404"}, "unknown_campaign"),
    ],
)
def test_message_rules(spark, change, reason):
    campaigns = spark.createDataFrame([("C1",)], "campaign_id string")
    bronze = bronze_frame(spark, MESSAGES, [{**GOOD_MESSAGE, **change}])
    row = validation.check_messages(bronze, campaigns).first()
    assert row["_reason"] == reason
    if reason is None:  # an offset time is read as UTC, and dated by its UTC day
        assert row["event_ts"] == datetime(2026, 3, 29, 19, 30)
        assert row["event_date"] == date(2026, 3, 29)


def test_reason_detail_names_the_value_and_what_was_expected(spark, products):
    record = {**GOOD_EVENT, "event_type": "hover"}
    row = validation.check_events(bronze_frame(spark, EVENTS, [record]), products).first()
    assert row["_reason_detail"].startswith("event_type=hover: expected one of page_view")


def test_unknown_json_fields_do_not_break_parsing(spark):
    line = json.dumps({**GOOD_EVENT, "experiment": "new-checkout", "nested": {"a": 1}})
    lines = spark.createDataFrame(
        [(line, "f", 1), ("not json", "f", 2)],
        "_raw_record string, _source_file string, _source_line long",
    )
    parsed = silver.parse_records(lines, EVENTS)
    got = [(r["event_id"], r["_corrupt_record"]) for r in parsed.collect()]
    assert sorted(got, key=str) == sorted([("E1", None), (None, "not json")], key=str)
    assert parsed.columns == [*EVENTS.data_columns, *lines.columns]  # bronze's columns kept


def test_csv_rows_of_the_wrong_width_are_kept_as_corrupt(spark):
    lines = spark.createDataFrame(
        [
            ('S1,"Paris, Rivoli",Paris,IDF,FR,Europe/Paris,2020-01-01', "f", 2),
            ("S2,Lyon", "f", 3),
        ],
        "_raw_record string, _source_file string, _source_line long",
    )
    got = sorted(
        (r["store_id"], r["store_name"], r["_corrupt_record"])
        for r in silver.parse_records(lines, STORES).collect()
    )
    assert got == [("S1", "Paris, Rivoli", None), ("S2", "Lyon", "S2,Lyon")]
