import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from omni.transforms import silver
from tests.conftest import rows


@pytest.mark.parametrize("key", ["k", "a-much-longer-key-" * 5])
def test_hmac_matches_python_hmac(spark, key):
    emails = ["ana.martin@example.com", "", "é@exämple.com"]
    df = spark.createDataFrame([(e,) for e in emails] + [(None,)], "email string")
    got = {
        r["email"]: r["h"]
        for r in df.select("email", silver.hmac_sha256(F.col("email"), key).alias("h")).collect()
    }
    for email in emails:
        assert got[email] == hmac.new(key.encode(), email.encode(), hashlib.sha256).hexdigest()
    assert got[None] is None


def test_hmac_refuses_an_empty_key():
    with pytest.raises(ValueError, match="hash key is empty"):
        silver.hmac_sha256(F.col("email"), "")


def test_email_is_normalised_before_hashing(spark):
    df = spark.createDataFrame([(" Ana@Example.COM ",), ("ana@example.com",), ("  ",)], "e string")
    hashed = df.select(silver.hmac_sha256(silver.normalise_email(F.col("e")), "k").alias("h"))
    values = [r["h"] for r in hashed.collect()]
    assert values[0] == values[1] and values[2] is None


def _batch(spark, data):
    return (
        spark.createDataFrame(
            data, "id string, _business_date string, _source_file string, _raw_record string"
        )
        .withColumn("_business_date", F.col("_business_date").cast("date"))
        .withColumn("_source_line", F.length("_raw_record").cast("long"))
    )


def test_duplicates_within_the_batch_keep_the_first_arrival(spark):
    batch = _batch(
        spark,
        [
            ("a", "2026-01-02", "f2", "late copy"),
            ("a", "2026-01-01", "f1", "first"),
            ("b", "2026-01-01", "f1", "only"),
        ],
    )
    seen = spark.createDataFrame([], "id string")
    flagged = silver.flag_duplicates(batch, ["id"], seen)
    assert rows(flagged, "id", "_raw_record", "_is_duplicate") == [
        ("a", "first", False),
        ("a", "late copy", True),
        ("b", "only", False),
    ]


def test_keys_already_in_silver_are_duplicates_across_days(spark):
    batch = _batch(spark, [("a", "2026-01-03", "f3", "again"), ("c", "2026-01-03", "f3", "new")])
    seen = spark.createDataFrame([("a",)], "id string")
    flagged = silver.flag_duplicates(batch, ["id"], seen)
    assert rows(flagged, "id", "_is_duplicate") == [("a", True), ("c", False)]


def test_latest_per_key_keeps_the_newest_record(spark):
    df = spark.createDataFrame(
        [("C1", "2026-01-01", "old"), ("C1", "2026-02-01", "new"), ("C2", "2026-01-05", "only")],
        "customer_id string, updated_at string, value string",
    )
    latest = silver.latest_per_key(df, ["customer_id"], ["updated_at"])
    assert rows(latest, "customer_id", "value") == [("C1", "new"), ("C2", "only")]


def test_quarantine_rows_carry_source_file_raw_text_and_reason(spark):
    rejected = spark.createDataFrame(
        [("E1", "f.jsonl", 7, "{bad", "malformed_json", "not a JSON object", "2026-01-01")],
        "event_id string, _source_file string, _source_line long, _raw_record string, "
        "_reason string, _reason_detail string, _business_date string",
    ).withColumn("_business_date", F.col("_business_date").cast("date"))
    out = silver.quarantine_rows(rejected, "ecommerce_events", ["event_id"], "run-1").first()
    assert (
        out["source"],
        out["source_file"],
        out["source_line"],
        out["raw_text"],
        out["reason"],
        out["record_key"],
        out["run_id"],
        str(out["business_date"]),
    ) == ("ecommerce_events", "f.jsonl", 7, "{bad", "malformed_json", "E1", "run-1", "2026-01-01")
