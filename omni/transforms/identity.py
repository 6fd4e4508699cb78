"""Identity resolution: connected components over the links the data shows.

Nodes are identifiers (``customer_id``, ``loyalty_card_id``, ``email_hash``,
``anonymous_id``); links come from CRM rows (customer to card and email hash) and logged-in
events (device to customer). A device seen with more distinct customers than the threshold
(a shared tablet in a store) is kept as a node but not used as a link.

The surviving key of a component is derived from its smallest node, where nodes sort by type
first (customer ids before cards before email hashes before devices) and then by value: a
component keeps the key of its lowest CRM customer id, so keys stay stable night to night and,
when two clusters merge, the cluster holding the lower customer id gives its key.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

TYPE_ORDER = {"customer_id": 1, "loyalty_card_id": 2, "email_hash": 3, "anonymous_id": 4}
KEY_LENGTH = 20


def node(identifier_type: str, column: str) -> F.Column:
    """``<order>|<type>|<value>``: sorting nodes sorts by type priority, then value."""
    return F.when(
        F.col(column).isNotNull() & (F.col(column) != ""),
        F.concat(F.lit(f"{TYPE_ORDER[identifier_type]}|{identifier_type}|"), F.col(column)),
    )


def identity_links(
    customers: DataFrame, events: DataFrame, pos: DataFrame, max_customers_per_device: int
) -> tuple[DataFrame, DataFrame]:
    """Return (nodes, edges): every identifier seen, and the links between them."""
    if max_customers_per_device < 1:
        raise ValueError(f"max_customers_per_device={max_customers_per_device}: expected 1 or more")
    crm = customers.select(
        node("customer_id", "customer_id").alias("a"),
        node("loyalty_card_id", "loyalty_card_id").alias("card"),
        node("email_hash", "email_hash").alias("email"),
    )
    logins = events.select(
        node("anonymous_id", "anonymous_id").alias("device"),
        node("customer_id", "customer_id").alias("customer"),
    ).distinct()
    shared = (
        logins.where(F.col("customer").isNotNull())
        .groupBy("device")
        .agg(F.countDistinct("customer").alias("customers"))
        .where(F.col("customers") > max_customers_per_device)
        .select("device")
    )
    device_links = (
        logins.where(F.col("customer").isNotNull())
        .join(shared, on="device", how="left_anti")
        .select(F.col("device").alias("a"), F.col("customer").alias("b"))
    )
    edges = (
        crm.select("a", F.col("card").alias("b"))
        .unionByName(crm.select("a", F.col("email").alias("b")))
        .unionByName(device_links)
        .where(F.col("a").isNotNull() & F.col("b").isNotNull())
        .distinct()
    )
    nodes = (
        crm.select(F.explode(F.array("a", "card", "email")).alias("node"))
        .unionByName(logins.select(F.explode(F.array("device", "customer")).alias("node")))
        .unionByName(pos.select(node("loyalty_card_id", "loyalty_card_id").alias("node")))
        .where(F.col("node").isNotNull())
        .distinct()
    )
    return nodes, edges


def connected_components(nodes: DataFrame, edges: DataFrame, max_iterations: int = 50) -> DataFrame:
    """Label every node with the smallest node of its component (min-label propagation)."""
    both = edges.select("a", "b").unionByName(
        edges.select(F.col("b").alias("a"), F.col("a").alias("b"))
    )
    both = both.localCheckpoint()
    labels = nodes.select("node", F.col("node").alias("label")).localCheckpoint()
    for _ in range(max_iterations):
        proposals = both.join(labels, both.a == labels.node).select(
            F.col("b").alias("node"), "label"
        )
        updated = (
            labels.unionByName(proposals)
            .groupBy("node")
            .agg(F.min("label").alias("label"))
            .localCheckpoint()
        )
        changed = (
            updated.alias("new")
            .join(labels.alias("old"), "node")
            .where(F.col("new.label") != F.col("old.label"))
            .count()
        )
        labels = updated
        if changed == 0:
            return labels
    raise RuntimeError(f"identity graph did not converge in {max_iterations} iterations")


def resolve_identities(nodes: DataFrame, edges: DataFrame, run_id: str) -> DataFrame:
    """Rows of ``silver.customer_identity``: identifier type and value, and its customer_key."""
    labels = connected_components(nodes, edges)
    parts = F.split("node", r"\|", 3)
    return labels.select(
        parts.getItem(1).alias("identifier_type"),
        parts.getItem(2).alias("identifier"),
        F.substring(F.sha2("label", 256), 1, KEY_LENGTH).alias("customer_key"),
        F.lit(run_id).alias("updated_run_id"),
    )


def retired_keys(old: DataFrame, new: DataFrame) -> DataFrame:
    """(retired_key, merged_into_key): keys of ``old`` identity rows that ``new`` no longer has,
    each with the new key that now holds most of its identifiers (ties: the smaller key)."""
    live = new.select(F.col("customer_key").alias("retired_key")).distinct()
    moved = (
        old.select("identifier_type", "identifier", F.col("customer_key").alias("retired_key"))
        .join(live, "retired_key", "left_anti")
        .join(
            new.select("identifier_type", "identifier", F.col("customer_key").alias("into")),
            ["identifier_type", "identifier"],
        )
        .groupBy("retired_key", "into")
        .agg(F.count("*").alias("identifiers"))
    )
    return moved.groupBy("retired_key").agg(
        F.min_by("into", F.struct(-F.col("identifiers"), F.col("into"))).alias("merged_into_key")
    )


def key_history(
    history: DataFrame, retired: DataFrame, live: DataFrame, retired_on, run_id: str
) -> DataFrame:
    """``silver.customer_key_history`` after a night: its rows, with survivors that were
    retired tonight followed to their new key, plus tonight's retired keys; a key that is live
    again (its customers were told apart) leaves the history."""
    tonight = retired.select(
        "retired_key",
        F.col("merged_into_key").alias("surviving_key"),
        "merged_into_key",
        F.lit(retired_on).cast("date").alias("retired_on"),
        F.lit(run_id).alias("retired_run_id"),
    )
    follow = retired.select(
        F.col("retired_key").alias("surviving_key"), F.col("merged_into_key").alias("_now")
    )
    earlier = (
        history.join(tonight.select("retired_key"), "retired_key", "left_anti")
        .join(follow, "surviving_key", "left")
        .withColumn("surviving_key", F.coalesce("_now", "surviving_key"))
        .drop("_now")
    )
    keys = live.select(F.col("customer_key").alias("retired_key")).distinct()
    return (
        earlier.unionByName(tonight)
        .join(keys, "retired_key", "left_anti")
        .select("retired_key", "surviving_key", "merged_into_key", "retired_on", "retired_run_id")
    )
