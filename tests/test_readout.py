"""The campaign readout (models/readout.py) on real Delta tables: what the groups did after
their assignment, in every channel, against a planted truth."""

from __future__ import annotations

import math
import os
import random
from datetime import date, datetime, timedelta

import pytest
from scipy.stats import chi2_contingency

from jobs.bronze_ingest import ingest_all
from jobs.silver import run_silver
from models import readout, registry
from models.readout import Group, build_readout, compare
from omni import lakehouse, tables
from omni.config import REPO_ROOT
from omni.sample import SampleGenerator, SampleSpec, write_landing
from omni.sample_campaigns import PLANS, holdout_draw
from tests.conftest import notebook_images, notebook_text, settings_under
from tests.test_quality import batch

LAUNCH = date(2026, 5, 4)  # the night SPRING's audience is assigned
AS_OF = LAUNCH + timedelta(days=20)  # SPRING ended on day 6; its 14-day window ends tonight
WINDOW = 14
SHARE = 0.3
# The planted truth: every customer converts in the window with the base rate; the treatment
# group of a segment adds its effect, in the channel given (in store: with the loyalty card).
BASE_RATE = 0.10
EFFECTS = {
    "at risk": (0.15, "online"),
    "loyal": (0.0, "online"),
    "bargain hunters": (0.10, "store"),
}
PER_SEGMENT = 1200
# What the campaign caused in SPRING's treatment group, per segment (the fixture fills it):
# customers, converters it made (no purchase of their own in the window), revenue it brought,
# and in "online" the group's own conversions.
CAUSED: dict[str, dict] = {}
ONLINE_ORDER, STORE_RECEIPT = 40.0, 25.0


@pytest.fixture(scope="module")
def readout_lake(spark, settings, tmp_path_factory):
    """SPRING (email, 3 segments of PER_SEGMENT customers) with the planted effects; TINY (20
    customers); ENDED (its window closed) and LATER (not started) have no readout. Returns
    the local settings and the expected counts per (campaign, segment, group)."""
    local = settings_under(settings, tmp_path_factory.mktemp("readout"))
    rng = random.Random(22)
    customers = []  # (campaign, customer_id, key, card, segment, group, assigned_on)
    for s, segment in enumerate(EFFECTS):
        for i in range(PER_SEGMENT):
            n = s * PER_SEGMENT + i
            cid = f"C{n:05d}"
            group = "control" if holdout_draw("SPRING", cid) < SHARE else "treatment"
            customers.append(("SPRING", cid, f"K{n}", f"L{n}", segment, group, LAUNCH))
    for i in range(20):
        cid = f"C{i:05d}"  # some of SPRING's customers, in TINY too
        group = "control" if holdout_draw("TINY", cid) < SHARE else "treatment"
        customers.append(("TINY", cid, f"K{i}", f"L{i}", "at risk", group, LAUNCH + timedelta(2)))
    # Tonight's new assignment is not followed yet.
    customers.append(("SPRING", "C99999", "K99999", "L99999", "loyal", "treatment", AS_OF))

    # Purchases of SPRING's customers, some outside the window (on the assignment night,
    # after the window), which never count.
    bought: dict[str, list[tuple[str, date]]] = {}
    for campaign, cid, _, _, segment, group, assigned_on in customers:
        if campaign != "SPRING" or assigned_on == AS_OF:
            continue
        effect, channel = EFFECTS[segment]
        day = assigned_on + timedelta(rng.randint(1, WINDOW))
        mine = bought.setdefault(cid, [])
        own = rng.random() < BASE_RATE
        if own:
            mine.append(("online", day))
        if group == "treatment" and rng.random() < effect / (1 - BASE_RATE):
            mine.append((channel, day))
            caused = CAUSED.setdefault(segment, _totals())
            caused["converters"] += not own  # converted only because of the campaign
            caused["revenue"] += ONLINE_ORDER if channel == "online" else STORE_RECEIPT
        if group == "treatment":
            caused = CAUSED.setdefault(segment, _totals())
            caused["customers"] += 1
            caused["online"] += own  # the treated's own conversions (without the campaign)
        if rng.random() < 0.2:
            mine.append(("online", assigned_on))
        if rng.random() < 0.2:
            mine.append(("store", assigned_on + timedelta(WINDOW + rng.randint(1, 6))))
    cards = {cid: card for _, cid, _, card, *_ in customers}
    orders = [
        (cid, f"O{n}", day)
        for n, (cid, day) in enumerate(
            (cid, day)
            for cid, items in bought.items()
            for channel, day in items
            if channel == "online"
        )
    ]
    receipts = [
        (cards[cid], f"T{n}", day)
        for n, (cid, day) in enumerate(
            (cid, day)
            for cid, items in bought.items()
            for channel, day in items
            if channel == "store"
        )
    ]
    # What the readout must count: each followed assignment, the person's purchases from the
    # day after the assignment night to WINDOW days later (up to tonight).
    expected: dict[tuple[str, str, str], dict] = {}
    for campaign, cid, _, _, segment, group, assigned_on in customers:
        if assigned_on >= AS_OF:
            continue
        last = min(assigned_on + timedelta(WINDOW), AS_OF)
        counted = [c for c, d in bought.get(cid, []) if assigned_on < d <= last]
        revenue = sum(ONLINE_ORDER if c == "online" else STORE_RECEIPT for c in counted)
        for key in ((campaign, segment, group), (campaign, "all", group)):
            totals = expected.setdefault(key, _totals())
            totals["customers"] += 1
            totals["converters"] += bool(counted)
            totals["revenue"] += revenue
            totals["revenue_sq"] += revenue**2
            totals["online"] += counted.count("online")
            totals["in_store"] += counted.count("store")
    _write_lake(spark, local, customers, orders, receipts)
    return local, expected


def _totals() -> dict:
    return dict.fromkeys(
        ("customers", "converters", "revenue", "revenue_sq", "online", "in_store"), 0
    )


def _write_lake(spark, local, customers, orders, receipts) -> None:
    people = sorted({(cid, key, card) for _, cid, key, card, *_ in customers})
    write = lambda table, frame: lakehouse.overwrite(spark, local, table, frame)  # noqa: E731

    def identity(i, row):
        cid, key, card = people[i // 2]
        kind, value = ("customer_id", cid) if i % 2 == 0 else ("loyalty_card_id", card)
        row.update(identifier_type=kind, identifier=value, customer_key=key)

    def assignment(i, row):
        campaign, cid, key, _, segment, group, assigned_on = customers[i]
        row.update(campaign_id=campaign, customer_id=cid, customer_key=key, channel="email")
        row.update(treatment_group=group, segment_name=segment, assigned_on=assigned_on)
        row.update(holdout_draw=holdout_draw(campaign, cid))

    plans = {  # id: (start, end, holdout share)
        "SPRING": (LAUNCH, LAUNCH + timedelta(6), SHARE),
        "TINY": (LAUNCH + timedelta(2), AS_OF + timedelta(3), SHARE),
        "ENDED": (LAUNCH - timedelta(40), LAUNCH - timedelta(30), SHARE),
        "LATER": (AS_OF + timedelta(1), AS_OF + timedelta(8), SHARE),
    }

    def campaign(i, row):
        name = list(plans)[i]
        start, end, share = plans[name]
        row.update(campaign_id=name, name=name.title(), channel="email", audience="all")
        row.update(start_date=start, end_date=end, holdout_share=share)
        row.update(conversion_window_days=WINDOW)

    def order(i, row):
        cid, order_id, day = orders[i]
        row.update(customer_id=cid, anonymous_id=f"A-{cid}", order_id=order_id, line_number=1)
        row.update(order_date=day, sku="SKU-1", quantity=1, net_amount=ONLINE_ORDER)

    def receipt(i, row):
        card, transaction_id, day = receipts[i]
        row.update(loyalty_card_id=card, transaction_id=transaction_id, line_number=1)
        row.update(transaction_date=day, sku="SKU-1", quantity=1, unit_price=STORE_RECEIPT)
        row.update(discount_amount=0, net_amount=STORE_RECEIPT, store_id="S001", is_return=False)

    # The providers: SPRING's treatment group was sent, most delivered, some opened and
    # clicked, one unsubscribed; one control customer was contacted by mistake.
    treated = [c for c in customers if c[0] == "SPRING" and c[5] == "treatment" and c[6] < AS_OF]
    control = next(c for c in customers if c[0] == "SPRING" and c[5] == "control")
    events = [(c[1], "sent") for c in treated]
    events += [(c[1], "delivered") for c in treated[:900]]
    events += [(c[1], "opened") for c in treated[:300]]
    events += [(c[1], "clicked") for c in treated[:120]]
    events += [(treated[0][1], "unsubscribed"), (control[1], "sent")]

    def message(i, row):
        cid, event_type = events[i]
        row.update(event_id=f"M{i}", message_id=f"SPRING-{cid}", campaign_id="SPRING")
        row.update(channel="email", customer_id=cid, event_type=event_type)
        row.update(event_ts=datetime.combine(LAUNCH + timedelta(1), datetime.min.time()))

    def product(i, row):
        row.update(sku="SKU-1", category="home")

    write(
        tables.SILVER_IDENTITY, batch(spark, "silver.customer_identity", 2 * len(people), identity)
    )
    write(
        tables.GOLD_ASSIGNMENTS,
        batch(spark, "gold.campaign_assignments", len(customers), assignment),
    )
    write(tables.SILVER_CAMPAIGNS, batch(spark, "silver.campaigns", len(plans), campaign))
    write(tables.SILVER_ORDER_LINES, batch(spark, "silver.order_lines", len(orders), order))
    write(tables.SILVER_POS, batch(spark, "silver.pos_lines", len(receipts), receipt))
    write(tables.SILVER_MESSAGES, batch(spark, "silver.campaign_messages", len(events), message))
    write(tables.SILVER_PRODUCTS, batch(spark, "silver.products", 1, product))


@pytest.fixture(scope="module")
def night(spark, readout_lake):
    local, expected = readout_lake
    counts = build_readout(spark, local, AS_OF, "readout-night")
    rows = {
        (r["campaign_id"], r["segment_name"]): r.asDict()
        for r in lakehouse.read_table(spark, local, tables.GOLD_READOUT).collect()
    }
    return counts, rows, expected


def test_the_readout_counts_every_channel_inside_the_window_only(night):
    """Customers, converters, revenue and purchases per channel, exactly as planted: store
    receipts with the customer's loyalty card count, purchases on the assignment night or
    after the window do not, and tonight's assignment is not followed yet."""
    counts, rows, expected = night
    assert counts["audit"]["published"], counts["audit"]
    assert set(rows) == {
        ("SPRING", "all"),
        *(("SPRING", segment) for segment in EFFECTS),
        ("TINY", "all"),
        ("TINY", "at risk"),
    }
    for (campaign, segment), row in rows.items():
        assert row["as_of_date"] == AS_OF
        assert row["campaign_status"] == ("in_window" if campaign == "SPRING" else "running")
        for group in ("treatment", "control"):
            want = expected[campaign, segment, group]
            got = {
                "customers": row[f"customers_{group}"],
                "converters": row[f"converters_{group}"],
                "revenue": round(
                    row[f"revenue_per_customer_{group}"] * row[f"customers_{group}"], 6
                ),
                "online": row[f"purchases_online_{group}"],
                "in_store": row[f"purchases_in_store_{group}"],
            }
            assert got == {k: want[k] for k in got}, (campaign, segment, group)
    bargain = rows["SPRING", "bargain hunters"]
    assert (
        bargain["purchases_in_store_treatment"] > 0 and bargain["purchases_in_store_control"] == 0
    )


def test_the_readout_recovers_the_planted_effect_per_segment(night):
    """The true uplift lies in each segment's 95% interval; the segments with an effect are
    significant, the one without is not; the p-value is the chi-square test's."""
    _, rows, _ = night
    for segment, (planted, _) in EFFECTS.items():
        row, caused = rows["SPRING", segment], CAUSED[segment]
        assert not row["too_small"], row["too_small_reason"]
        # The truth of this sample: the share of the treatment group the campaign converted.
        effect = caused["converters"] / caused["customers"]
        assert row["uplift_abs_low"] < effect < row["uplift_abs_high"], (segment, effect, row)
        assert row["significant"] == (planted > 0), (segment, row["p_value"])
        table = [
            [row[f"converters_{g}"], row[f"customers_{g}"] - row[f"converters_{g}"]]
            for g in ("treatment", "control")
        ]
        assert row["p_value"] == pytest.approx(chi2_contingency(table, correction=False)[1])
        rel = caused["converters"] / caused["online"]  # over the group's own conversions
        assert row["uplift_rel_low"] < rel < row["uplift_rel_high"], (segment, rel, row)
        revenue = caused["revenue"] / caused["customers"]
        assert row["revenue_uplift_low"] < revenue < row["revenue_uplift_high"], (segment, row)


def test_engagement_is_the_treatment_groups_and_a_contacted_control_is_counted(night):
    _, rows, _ = night
    row = rows["SPRING", "all"]
    treated = row["customers_treatment"]
    assert row["sent_rate"] == 1.0
    assert row["delivered_rate"] == pytest.approx(900 / treated)
    assert row["opened_rate"] == pytest.approx(300 / treated)
    assert row["clicked_rate"] == pytest.approx(120 / treated)
    assert row["unsubscribed_rate"] == pytest.approx(1 / treated)
    assert row["control_contacted"] == 1
    assert rows["TINY", "all"]["sent_rate"] == 0.0


def test_a_campaign_too_small_says_so_instead_of_a_p_value(night):
    _, rows, _ = night
    row = rows["TINY", "all"]
    assert row["too_small"]
    assert row["too_small_reason"].startswith("treatment has ") or row[
        "too_small_reason"
    ].startswith("control has ")
    assert "at least 30 per group needed" in row["too_small_reason"]
    assert row["p_value"] is None and row["significant"] is None
    assert row["uplift_abs_low"] is None and row["uplift_abs_high"] is None


def test_a_rerun_replaces_the_nights_rows(spark, readout_lake, night):
    local, _ = readout_lake
    _, before, _ = night
    build_readout(spark, local, AS_OF, "readout-rerun")
    after = lakehouse.read_table(spark, local, tables.GOLD_READOUT).collect()
    assert len(after) == len(before)
    assert {r["_run_id"] for r in after} == {"readout-rerun"}


@pytest.mark.parametrize(
    "treatment, control, reason",
    [
        (Group(29, 5), Group(100, 10), "treatment has 29 customers"),
        (Group(100, 10), Group(10, 1), "control has 10 customers"),
        (Group(1000, 6), Group(400, 1), "2.0 converters expected in control"),
        (Group(100, 99), Group(100, 98), "1.5 non-converters expected in treatment"),
        (Group(100, 20), Group(100, 10), None),
    ],
)
def test_too_small_names_the_counts(treatment, control, reason):
    got = readout.too_small(treatment, control)
    assert (got or "").startswith(reason or "") and (got is None) == (reason is None), got


def test_compare_agrees_with_the_formulas():
    """Wald interval, pooled z-test, log-ratio interval, Welch revenue interval, worked by hand."""
    t, c = Group(1000, 150, 6000.0, 240000.0), Group(400, 40, 1600.0, 64000.0)
    got = compare(t, c)
    assert got["uplift_abs"] == pytest.approx(0.05)
    se = math.sqrt(0.15 * 0.85 / 1000 + 0.1 * 0.9 / 400)
    assert got["uplift_abs_low"] == pytest.approx(0.05 - 1.959964 * se)
    pooled = 190 / 1400
    z = 0.05 / math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 400))
    assert got["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert got["uplift_rel"] == pytest.approx(0.5)
    se_log = math.sqrt(0.85 / 150 + 0.9 / 40)
    assert got["uplift_rel_high"] == pytest.approx(1.5 * math.exp(1.959964 * se_log) - 1)
    var_t = (240000 - 1000 * 36) / 999
    var_c = (64000 - 400 * 16) / 399
    se_rev = math.sqrt(var_t / 1000 + var_c / 400)
    assert got["revenue_uplift"] == pytest.approx(2.0)
    assert got["revenue_uplift_low"] == pytest.approx(2.0 - 1.959964 * se_rev)


# The generator's campaigns (omni.sample_campaigns) through bronze and silver, assigned as the
# pipeline assigns them on the launch night, with the behaviour type as the segment.
PLANTED = SampleSpec(customers=1500, days=40, end_date=date(2026, 9, 30), seed=19)


@pytest.fixture(scope="module")
def planted(spark, settings, tmp_path_factory):
    local = settings_under(settings, tmp_path_factory.mktemp("planted"))
    generator = SampleGenerator(PLANTED)
    write_landing(generator.generate(), local.landing_dir, PLANTED)
    ingest_all(spark, local, PLANTED.end_date, "planted")
    run_silver(spark, local, "planted", PLANTED.end_date)
    keys = {
        r["identifier"]: r["customer_key"]
        for r in lakehouse.read_table(spark, local, tables.SILVER_IDENTITY)
        .where("identifier_type = 'customer_id'")
        .collect()
    }
    truth = generator.campaign_truth
    channels = {plan.campaign_id: plan.channel for plan in PLANS}

    def assignment(i, row):
        t = truth[i]
        row.update(campaign_id=t.campaign_id, customer_id=t.customer_id)
        row.update(customer_key=keys[t.customer_id], channel=channels[t.campaign_id])
        row.update(treatment_group=t.treatment_group, segment_name=t.kind)
        row.update(holdout_draw=holdout_draw(t.campaign_id, t.customer_id))
        row.update(assigned_on=t.assigned_on)

    assignments = batch(spark, "gold.campaign_assignments", len(truth), assignment)
    lakehouse.overwrite(spark, local, tables.GOLD_ASSIGNMENTS, assignments)
    build_readout(spark, local, PLANTED.end_date, "planted-readout")
    rows = {
        (r["campaign_id"], r["segment_name"]): r.asDict()
        for r in lakehouse.read_table(spark, local, tables.GOLD_READOUT).collect()
    }
    return generator, rows


def _planted_truth(generator) -> dict:
    """Per (campaign, segment, group): customers, converters, and the treated who converted
    only because of the campaign (their effect's purchase seen, nothing of their own)."""
    out: dict[tuple[str, str, str], dict] = {}
    effects: dict[tuple[str, str], list[date]] = {}  # another campaign's purchases count too
    for t in generator.campaign_truth:
        if t.effect_seen:
            effects.setdefault((t.customer_id, t.campaign_id), []).append(t.effect_day)
    for t in generator.campaign_truth:
        last = t.assigned_on + timedelta(days=t.window_days)
        days = list(generator.identified[t.customer_id])
        days += [
            d
            for (c, k), ds in effects.items()
            if c == t.customer_id and k != t.campaign_id
            for d in ds
        ]
        own = any(t.assigned_on < d <= last for d in days)
        caused = t.effect_seen and not own
        for segment in (t.kind, "all"):
            totals = out.setdefault((t.campaign_id, segment, t.treatment_group), _totals())
            totals["customers"] += 1
            totals["converters"] += own or t.effect_seen
            totals["caused"] = totals.get("caused", 0) + caused
    return out


def test_the_readout_recovers_the_effects_the_generator_planted(planted):
    """Against the generator's truth: every conversion counted (in store with the card, and
    online), the true effect of each segment inside its 95% interval, the segment with the
    strong effect significant and those with none not; the push that changed nothing, not."""
    generator, rows = planted
    truth = _planted_truth(generator)
    assert {c for c, _ in rows} == {plan.campaign_id for plan in PLANS}
    seen_in_store = [t for t in generator.campaign_truth if t.effect_channel == "store"]
    assert any(t.effect_seen for t in seen_in_store)
    for (campaign, segment), row in rows.items():
        for group in ("treatment", "control"):
            want = truth[campaign, segment, group]
            got = (row[f"customers_{group}"], row[f"converters_{group}"])
            assert got == (want["customers"], want["converters"]), (campaign, segment, group)
        effect = truth[campaign, segment, "treatment"]["caused"] / row["customers_treatment"]
        assert row["sent_rate"] == 1.0 and row["control_contacted"] == 0
        if row["too_small"]:  # the push's small groups (few opt in to push)
            assert campaign == "CMP-APPNEWS" and row["significant"] is None, row
            continue
        assert row["uplift_abs_low"] < effect < row["uplift_abs_high"], (campaign, segment, row)
        planned = dict(PLANS[0].effects) if campaign == PLANS[0].campaign_id else {}
        if planned.get(segment, (0.0,))[0] == 0.0 and segment != "all":
            assert not row["significant"], (campaign, segment, row["p_value"])
    assert rows["CMP-WINBACK", "lapsing"]["significant"]
    for plan in PLANS:  # the control share is the holdout share, within sampling error
        row = rows[plan.campaign_id, "all"]
        n = row["customers_treatment"] + row["customers_control"]
        error = 3 * math.sqrt(plan.holdout_share * (1 - plan.holdout_share) / n)
        assert abs(row["customers_control"] / n - plan.holdout_share) < error, (plan, row)
    assert not rows["CMP-APPNEWS", "all"]["significant"]


def test_each_campaign_night_is_an_mlflow_run_with_its_plots(spark, readout_lake, night):
    """Experiment ``experiments``: one run per campaign and night (a rerun logs into it), the
    overall figures as metrics, the rows as a table, the three plots."""
    local, _ = readout_lake
    _, rows, _ = night
    build_readout(spark, local, AS_OF, "readout-mlflow-rerun")
    client = registry.configure_tracking(local)
    experiment = client.get_experiment_by_name(readout.EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted((r.data.tags["campaign_id"], r.data.tags["as_of_date"]) for r in runs) == [
        ("SPRING", str(AS_OF)),
        ("TINY", str(AS_OF)),
    ]
    for run in runs:
        row = rows[run.data.tags["campaign_id"], "all"]
        assert run.data.tags["pipeline_run_id"] == "readout-mlflow-rerun"
        assert run.data.metrics["customers_treatment"] == row["customers_treatment"]
        assert run.data.metrics.get("p_value") == row["p_value"]
        assert run.data.tags["too_small"] == str(row["too_small"]).lower()
        assert run.data.params["holdout_share"] == str(SHARE)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, readout.PLOTS)}
        assert artifacts == {
            f"{readout.PLOTS}/{name}.png"
            for name in ("uplift_by_segment", "conversion_curves", "engagement_funnel")
        }
        assert "readout.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_the_campaign_notebook_shows_the_readout_and_its_plots(readout_lake, night):
    import nbformat
    from nbclient import NotebookClient

    local, _ = readout_lake
    book = nbformat.read(REPO_ROOT / "notebooks" / "campaign_readout.ipynb", as_version=4)
    env = {
        **os.environ,
        "OMNI_LAKEHOUSE_DIR": str(local.lakehouse_dir),
        "MLFLOW_TRACKING_URI": local.mlflow_tracking_uri,
        "OMNI_MLFLOW_ARTIFACTS_DIR": str(local.mlflow_artifacts_dir),
    }
    NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}
    ).execute(env=env)
    text = notebook_text(book)
    assert f"readout of {AS_OF}: 2 campaign(s)" in text
    assert "SPRING 'Spring' (email, in_window)" in text and "bargain hunters" in text
    assert "at least 30 per group needed" in text  # TINY says why it cannot conclude
    assert notebook_images(book) == 6  # three plots per campaign
