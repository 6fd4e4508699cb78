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

import hashlib
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

TYPE_ORDER = {"customer_id": 1, "loyalty_card_id": 2, "email_hash": 3, "anonymous_id": 4}
KEY_LENGTH = 20


def node(identifier_type: str, column: str) -> F.Column:
    """``<order>|<type>|<value>``: sorting nodes sorts by type priority, then value."""
    return F.when(
        F.col(column).isNotNull() & (F.col(column) != ""),
        F.concat(F.lit(f"{TYPE_ORDER[identifier_type]}|{identifier_type}|"), F.col(column)),
    )


def node_of(identifier_type: F.Column, identifier: F.Column) -> F.Column:
    """``node`` for rows whose identifier type is a column."""
    order = F.create_map(*(F.lit(v) for pair in TYPE_ORDER.items() for v in pair))
    return F.concat_ws("|", order[identifier_type].cast("string"), identifier_type, identifier)


def customer_key(label: F.Column) -> F.Column:
    """The customer_key of a component whose smallest node is ``label``."""
    return F.substring(F.sha2(label, 256), 1, KEY_LENGTH)


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
        customer_key(F.col("label")).alias("customer_key"),
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


def crm_pairs(records: DataFrame, *columns: F.Column | str) -> DataFrame:
    """The (customer, card) and (customer, email hash) links of CRM ``records``: rows of
    ``customer_id``, ``identifier_type``, ``identifier`` and ``columns``."""
    kinds = ("loyalty_card_id", "email_hash")
    link = F.explode(
        F.array(
            *(
                F.struct(F.lit(k).alias("identifier_type"), F.col(k).alias("identifier"))
                for k in kinds
            )
        )
    )
    return (
        records.select("customer_id", link.alias("_link"), *columns)
        .select("customer_id", "_link.*", *(c for c in records.select(*columns).columns))
        .where(F.col("identifier").isNotNull() & (F.col("identifier") != ""))
    )


def link_dates(
    edges: DataFrame, customers: DataFrame, crm_links: DataFrame, logins: DataFrame, today: date
) -> DataFrame:
    """``edges`` (``identity_links``) with ``first_seen_date``: the day ``silver.crm_links`` or
    ``silver.device_logins`` first saw the link. A CRM link is seen by its customer's current
    record's ``updated_at`` date at the latest (what seeds ``silver.crm_links`` in a lakehouse
    from before it); a link with no date at all (none should be) counts as seen ``today``, so
    it is never read into the past."""
    current = crm_pairs(customers, F.to_date("updated_at").alias("first_seen_date"))
    crm = (
        crm_links.select(*current.columns)
        .unionByName(current)
        .select(
            node("customer_id", "customer_id").alias("a"),
            node_of(F.col("identifier_type"), F.col("identifier")).alias("b"),
            "first_seen_date",
        )
    )
    devices = logins.where(F.col("customer_id").isNotNull()).select(
        node("anonymous_id", "anonymous_id").alias("a"),
        node("customer_id", "customer_id").alias("b"),
        "first_seen_date",
    )
    dates = crm.unionByName(devices).groupBy("a", "b").agg(F.min("first_seen_date").alias("seen"))
    return edges.join(dates, ["a", "b"], "left").select(
        "a", "b", F.coalesce("seen", F.lit(today.isoformat()).cast("date")).alias("first_seen_date")
    )


def python_key(label: str) -> str:
    """``customer_key`` in Python: the same hex digest prefix as Spark's ``sha2``."""
    return hashlib.sha256(label.encode()).hexdigest()[:KEY_LENGTH]


def keys_as_of(identity: DataFrame, dated_edges: DataFrame, cutoffs: list[date]) -> DataFrame:
    """The identifiers whose customer was another on a cut-off: rows ``(snapshot_date,
    identifier_type, identifier, customer_key, current_key)``, ``customer_key`` as the graph of
    the links first seen by the cut-off gives it and ``current_key`` as ``identity`` (today's,
    from all of ``dated_edges``) does. Identifiers whose key was the same are left out.

    Links only add up over time, so a customer on a cut-off is part of today's customer. Only
    today's customers that a link first seen after the earliest cut-off touched can differ: their
    identifiers and links (a small share of the graph, each customer's own few) are collected and
    their components on each cut-off found by union-find, smallest node first as
    ``connected_components`` labels them.
    """
    spark: SparkSession = identity.sparkSession
    schema = (
        "snapshot_date date, identifier_type string, identifier string, customer_key string, "
        "current_key string"
    )
    if not cutoffs:
        return spark.createDataFrame([], schema)
    earliest = F.lit(min(cutoffs).isoformat()).cast("date")
    dated_edges = dated_edges.localCheckpoint()  # read twice below: the links built once
    nodes = identity.select(
        node_of(F.col("identifier_type"), F.col("identifier")).alias("node"), "customer_key"
    )
    late = dated_edges.where(F.col("first_seen_date") > earliest)
    touched = (
        late.select(F.col("a").alias("node"))
        .unionByName(late.select(F.col("b").alias("node")))
        .join(nodes, "node")
        .select("customer_key")
        .distinct()
    )
    members = nodes.join(F.broadcast(touched), "customer_key").localCheckpoint()
    current = {row["node"]: row["customer_key"] for row in members.collect()}
    if not current:
        return spark.createDataFrame([], schema)
    their = F.broadcast(members.select(F.col("node").alias("a")))
    links = sorted(
        (row["first_seen_date"], row["a"], row["b"])
        for row in dated_edges.join(their, "a").collect()
    )
    parent = {n: n for n in current}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    rows, pending = [], iter(links)
    link = next(pending, None)
    for cutoff in sorted(cutoffs):  # the links add up: each cut-off goes on from the last
        while link is not None and link[0] <= cutoff:
            for end in link[1:]:  # a node identity lacks (none should) joins as its own
                parent.setdefault(end, end)
            ra, rb = find(link[1]), find(link[2])
            if ra != rb:  # the smaller node is the root: it labels the component
                parent[max(ra, rb)] = min(ra, rb)
            link = next(pending, None)
        for n, key in current.items():
            then = python_key(find(n))
            if then != key:
                kind, value = n.split("|", 2)[1:]
                rows.append((cutoff, kind, value, then, key))
    return spark.createDataFrame(rows, schema)
