"""The customer history the models read, at the Delta versions a training run records."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import functions as F

from jobs.silver import new_crm_links, new_device_logins
from models.features import KEYS_THEN, ChurnWindows, churn_training_set, known_on
from omni import lakehouse, tables
from omni.history import customer_history, keys_as_of
from omni.transforms import identity, silver
from tests.conftest import assert_frame_equal, settings_under
from tests.test_quality import batch


def _identities(spark, first: int, n: int):
    def change(i, row):
        row.update(identifier_type="customer_id", identifier=f"C{first + i}")
        row.update(customer_key=f"K{first + i}")

    return batch(spark, "silver.customer_identity", n, change)


def test_the_history_is_read_at_the_recorded_versions_not_at_the_latest(spark, settings, tmp_path):
    """A training run records its inputs' Delta versions before it reads them; a silver write
    landing in between (a rerun of the night, a late store) is not part of that training."""
    local = settings_under(settings, tmp_path, landing=False)
    lakehouse.append(spark, local, tables.SILVER_IDENTITY, _identities(spark, 0, 3))
    versions = {
        t.name: lakehouse.table_version(spark, local, t)
        for t in map(tables.table, tables.HISTORY_INPUTS)
    }
    lakehouse.append(spark, local, tables.SILVER_IDENTITY, _identities(spark, 3, 2))

    def keys(recorded):
        with customer_history(spark, local, recorded) as inputs:
            return sorted(r["customer_key"] for r in inputs["population"].collect())

    assert keys(versions) == ["K0", "K1", "K2"]
    assert keys(None) == ["K0", "K1", "K2", "K3", "K4"]


AS_OF = date(2026, 6, 30)
HORIZON = 21
WINDOWS = ChurnWindows.for_date(AS_OF, HORIZON, snapshots=1, step_days=7)
LINKED_LATE = datetime(2026, 6, 20, 9, 0)  # after both cut-offs, before the date
REC_CUTOFF = date(2026, 6, 2)  # the recommendation holdout's: 28 days before the date


def _shop(spark, settings, root):
    """A lakehouse of two customers and their silver tables, with its write function."""
    local = settings_under(settings, root, landing=False)

    def write(name, frame, how=lakehouse.append):  # the rows as stored (``new_*`` are lazy)
        how(spark, local, tables.table(name), frame)
        return lakehouse.read_table(spark, local, tables.table(name))

    def at(day: str) -> dict:
        moment = datetime.fromisoformat(f"{day} 12:00")
        return {"date": moment.date(), "ts": moment}

    write("silver.products", batch(spark, "silver.products", 1, sku="SKU1", category="books"))
    orders = [("D1", None, d) for d in ("2026-03-10", "2026-04-10", "2026-05-01")]
    orders += [("D2", "C1", d) for d in ("2026-05-12", "2026-06-01")]

    def order(i, row):
        device, customer_id, day = orders[i]
        row.update(anonymous_id=device, customer_id=customer_id, order_id=f"O{i}", sku="SKU1")
        row.update(order_date=at(day)["date"], order_ts=at(day)["ts"], quantity=1, net_amount=30)

    write("silver.order_lines", batch(spark, "silver.order_lines", len(orders), order))
    receipts = [("L1", d) for d in ("2026-02-01", "2026-04-01", "2026-06-15")]
    receipts += [("L2", d) for d in ("2026-02-03", "2026-03-03", "2026-04-03", "2026-06-05")]

    def receipt(i, row):
        card, day = receipts[i]
        row.update(loyalty_card_id=card, transaction_id=f"T{i}", sku="SKU1", quantity=1)
        row.update(transaction_date=at(day)["date"], transaction_ts=at(day)["ts"])
        row.update(net_amount=20, unit_price=20, discount_amount=0, is_return=False)

    write("silver.pos_lines", batch(spark, "silver.pos_lines", len(receipts), receipt))
    night(
        spark,
        local,
        write,
        [("C1", "L1", datetime(2026, 1, 1)), ("C2", None, datetime(2026, 1, 1))],
        orders,
    )
    return local, write


def night(spark, local, write, records, visits):
    """One night's CRM records and visits (device, customer, day), through the silver job's
    own functions: CRM links, device logins, customers (latest record) and the identity."""

    def customer(i, row):
        row.update(zip(("customer_id", "loyalty_card_id", "updated_at"), records[i]))
        row.update(signup_ts=datetime(2026, 1, 1), email_hash=row["customer_id"].lower() * 32)

    crm = batch(spark, "silver.customers", len(records), customer)
    write("silver.crm_links", new_crm_links(spark, local, crm))
    customers = lakehouse.read_table(spark, local, tables.SILVER_CUSTOMERS).unionByName(crm)
    customers = write(
        "silver.customers",
        silver.latest_per_key(customers, ["customer_id"], ["updated_at"]).localCheckpoint(),
        lakehouse.overwrite,
    )

    def event(i, row):
        device, customer_id, day = visits[i]
        moment = datetime.fromisoformat(f"{day} 12:00")
        row.update(anonymous_id=device, customer_id=customer_id, session_id=f"S{day}{device}")
        row.update(event_date=moment.date(), event_ts=moment, event_id=f"E{day}{device}")

    events = batch(spark, "silver.ecommerce_events", len(visits), event)
    write("silver.ecommerce_events", events)
    logins = write("silver.device_logins", new_device_logins(spark, local, events))
    nodes, edges = identity.identity_links(
        customers,
        logins.select("anonymous_id", "customer_id"),
        lakehouse.read_table(spark, local, tables.SILVER_POS).select("loyalty_card_id"),
        local.max_customers_per_device,
    )
    write(
        "silver.customer_identity",
        identity.resolve_identities(nodes, edges, "r"),
        lakehouse.overwrite,
    )


def _training_set(spark, settings):
    """The churn training set, and the purchase lines and events the recommendation
    evaluation's cut-off sees (``REC_CUTOFF``), both as the links known by then made them."""
    with customer_history(spark, settings) as inputs:
        cutoffs = [*WINDOWS.cutoffs, REC_CUTOFF]
        moved = keys_as_of(spark, settings, inputs["identity"], cutoffs, AS_OF)
        inputs = {**inputs, KEYS_THEN: moved}
        training = churn_training_set(inputs, AS_OF, HORIZON, 365, 1, 7)
        then, _ = known_on(inputs, REC_CUTOFF)
        seen = then["transactions"].select("customer_key", "date", "channel", "quantity")
        seen = seen.unionByName(  # the events the recommenders read: up to the cut-off
            then["activity"]
            .where(F.col("event_date") <= F.lit(REC_CUTOFF))
            .select(
                "customer_key",
                F.col("event_date").alias("date"),
                F.lit("event").alias("channel"),
                F.lit(0).alias("quantity"),
            )
        )
        return tuple(
            spark.createDataFrame(frame.collect(), frame.schema).cache()
            for frame in (training, seen)
        )


def test_a_link_found_after_the_cut_off_leaves_the_training_rows_unchanged(
    spark, settings, tmp_path
):
    """Training snapshots see the customers as the links known on their cut-off made them: a
    device logging in, or a card added in CRM, after the cut-off moves none of its purchases
    into the snapshot's features; the label still counts the person's purchases in the window
    in every channel, through today's identity."""
    assert LINKED_LATE.date() > max(*WINDOWS.cutoffs, REC_CUTOFF)
    local, write = _shop(spark, settings, tmp_path)
    expected, seen = _training_set(spark, local)
    # The next night, two links appear after both cut-offs: C1 logs in on D1, the device of
    # three guest orders before them, and CRM adds card L2, of four receipts before them, to C2.
    night(spark, local, write, [("C2", "L2", LINKED_LATE)], [("D1", "C1", str(LINKED_LATE.date()))])
    today = lakehouse.read_table(spark, local, tables.SILVER_IDENTITY)
    key = {r["identifier"]: r["customer_key"] for r in today.collect()}
    assert key["D1"] == key["C1"] and key["L2"] == key["C2"]  # both links are there today

    training_now, seen_now = _training_set(spark, local)
    assert_frame_equal(training_now, expected)
    # The recommendation evaluation's cut-off too: every line and event keeps its customer.
    assert_frame_equal(seen_now, seen)
    assert seen.where(F.col("channel") == "event").count() > 0
    by_cutoff = {(r["snapshot_date"], r["customer_key"]): r for r in expected.collect()}
    c1, l2 = key["C1"], identity.python_key("2|loyalty_card_id|L2")
    training, holdout = WINDOWS.training[0], WINDOWS.holdout
    # 2026-05-19: C1 had two receipts and an order of their own; D1's three guest orders stay
    # with the device, which is no customer yet. L2's receipts are a card's of its own.
    assert by_cutoff[(training, c1)]["frequency_365d"] == 3.0
    assert by_cutoff[(holdout, c1)]["frequency_365d"] == 4.0  # + C1's order of 06-01
    assert by_cutoff[(training, l2)]["frequency_365d"] == 3.0
    assert not by_cutoff[(training, l2)]["churned"]  # the card's receipt of 06-05
    assert len(by_cutoff) == 4
