"""Identity resolution: chains, merges of two clusters, shared devices, stable keys."""

import hashlib
from datetime import date

import pytest

from omni import tables
from omni.transforms import identity
from tests.conftest import rows


def _frames(spark, customers, logins, cards=()):
    crm = spark.createDataFrame(
        customers, "customer_id string, loyalty_card_id string, email_hash string"
    )
    events = spark.createDataFrame(logins, "anonymous_id string, customer_id string")
    pos = spark.createDataFrame([(c,) for c in cards], "loyalty_card_id string")
    return crm, events, pos


def _keys(spark, customers, logins, cards=(), threshold=3):
    nodes, edges = identity.identity_links(*_frames(spark, customers, logins, cards), threshold)
    resolved = identity.resolve_identities(nodes, edges, "run-1")
    return {(r["identifier_type"], r["identifier"]): r["customer_key"] for r in resolved.collect()}


def _key_of(customer_id):
    return hashlib.sha256(f"1|customer_id|{customer_id}".encode()).hexdigest()[:20]


def test_a_chain_of_links_is_one_customer_keyed_by_its_crm_id(spark):
    keys = _keys(
        spark,
        customers=[("C1", "L1", "h1")],
        logins=[("A1", None), ("A1", "C1"), ("A2", "C1")],
        cards=["L1"],
    )
    assert set(keys.values()) == {_key_of("C1")}
    assert set(keys) == {
        ("customer_id", "C1"),
        ("loyalty_card_id", "L1"),
        ("email_hash", "h1"),
        ("anonymous_id", "A1"),
        ("anonymous_id", "A2"),
    }


def test_two_clusters_merge_and_the_lower_customer_id_survives(spark):
    # C2 logs in on device A1, which C1 used too: both clusters become one.
    keys = _keys(
        spark,
        customers=[("C1", "L1", "h1"), ("C2", "L2", "h2")],
        logins=[("A1", "C1"), ("A1", "C2"), ("A9", "C2")],
    )
    assert set(keys.values()) == {_key_of("C1")}


def test_a_shared_device_is_not_a_link(spark):
    logins = [("TABLET", f"C{i}") for i in range(1, 5)] + [("A1", "C1")]
    customers = [(f"C{i}", None, None) for i in range(1, 5)]
    keys = _keys(spark, customers, logins, threshold=3)
    assert len({keys[("customer_id", f"C{i}")] for i in range(1, 5)}) == 4
    assert keys[("anonymous_id", "A1")] == keys[("customer_id", "C1")]
    assert keys[("anonymous_id", "TABLET")] not in {
        keys[("customer_id", f"C{i}")] for i in range(1, 5)
    }


def test_anonymous_devices_and_unknown_cards_get_their_own_keys(spark):
    keys = _keys(spark, customers=[("C1", None, None)], logins=[("A7", None)], cards=["L9"])
    assert len(set(keys.values())) == 3


def test_keys_are_stable_when_new_links_arrive(spark):
    first = _keys(spark, [("C1", "L1", "h1")], [("A1", "C1")])
    second = _keys(spark, [("C1", "L1", "h1"), ("C5", None, None)], [("A1", "C1"), ("A2", "C1")])
    assert first[("customer_id", "C1")] == second[("customer_id", "C1")]


def test_threshold_must_be_positive(spark):
    with pytest.raises(ValueError, match="max_customers_per_device=0: expected 1 or more"):
        identity.identity_links(*_frames(spark, [], []), 0)


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
    # A quiet night retires nothing: the trail stays as it was.
    nothing = spark.createDataFrame([], schema)
    quiet = identity.key_history(got, nothing, live, date(2026, 1, 3), "n3")
    assert rows(quiet) == rows(got)
