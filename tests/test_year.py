"""A retailer's year, then two nights: the DAGs' jobs in-process on a generated history.

The sample is a year shaped like a real retailer's: store S002 closes on public holidays (its
folders complete and empty), S006 opens half-way, records arrive late, and S003's folder of the
first night comes a night late. ``omni_nightly`` backfills the year in one DAG run
(``start_date`` its first day) and ``omni_models`` models its last day; then each of two nights
runs both. Every task is the DAG's own job with
its own arguments, in this process (``tests/dag_runner.py``): real Spark, Delta, Great
Expectations and an MLflow SQLite registry.
On the last night, which also reads S003's late folder, a CRM record claims a loyalty card
that had a customer of its own: two customers found to be one.

It takes 25 to 35 minutes on 2 cores beside ``tests/test_one_channel.py``, more than the
suite's budget allows, so ``make test`` leaves it out (marker ``year``) and ``make test-year``
runs it; ``.ci/run`` runs both.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date, timedelta

import pytest
from mlflow import MlflowClient
from pyspark.sql import functions as F

from models import registry
from omni import lakehouse, tables
from omni.sample import (
    HOLIDAY_STORE,
    LATE_STORE,
    PUBLIC_HOLIDAYS,
    STORES,
    SampleSpec,
    generate_sample,
)
from omni.sources import POS_COLUMNS
from tests.conftest import FIGURES, settings_under
from tests.dag_runner import run_dag
from tests.lake_checks import (
    assert_counts_reconcile,
    assert_features_as_built_today,
    assert_keys_stable,
    assert_merge_trail,
    failed_checks,
    plant_a_merge,
)

RUN_DATE = date(2026, 11, 3)  # the last night
NIGHT_DATES = [RUN_DATE - timedelta(days=n) for n in (1, 0)]
FIRST_NIGHT = NIGHT_DATES[0]  # the night before the last
BACKFILL_END = NIGHT_DATES[0] - timedelta(days=1)
YEAR = SampleSpec(
    customers=60,
    days=365 + len(NIGHT_DATES),
    end_date=RUN_DATE,
    seed=17,
    late_rate=0.2,
    holidays=True,
    new_store=True,
)
FIRST_DAY = YEAR.start_date
NEW_STORE = STORES[-1][0]
MODELS = (registry.SEGMENTATION_MODEL, registry.CHURN_MODEL)
pytestmark = pytest.mark.year
# Run id -> its day, each DAG's task counts, the identity it left and the wall time of each DAG
# run, (omni_nightly s, omni_models s), printed under "figures" after the tests.
NIGHTS: dict[str, dict] = {}


def _night(spark, settings, day: date, run_id: str, params: dict | None = None) -> None:
    started = time.monotonic()
    nightly = run_dag("omni_nightly", spark, settings, day, run_id, params)
    lakehouse_seconds = time.monotonic() - started
    modelled = run_dag("omni_models", spark, settings, day, f"{run_id}-models")
    NIGHTS[run_id] = {
        "day": day,
        "bronze": nightly["bronze_ingest"],
        "silver": nightly["silver"],
        "gold": nightly["gold"],
        "dates": nightly["business_dates"],
        "models": modelled,
        "identity": {
            (r["identifier_type"], r["identifier"]): r["customer_key"]
            for r in lakehouse.read_table(spark, settings, tables.SILVER_IDENTITY).collect()
        },
        "seconds": (
            round(lakehouse_seconds),
            round(time.monotonic() - started - lakehouse_seconds),
        ),
    }


# A day the backfill ingests and that no night's late records reach back to.
PLANTED_DAY = FIRST_NIGHT - timedelta(days=4)


def _late_folder(settings):
    pos = settings.landing_dir / "instore" / "pos"
    return pos / f"dt={NIGHT_DATES[0]}" / f"store_id={LATE_STORE}"


@pytest.fixture(scope="module")
def lake(spark, settings, tmp_path_factory):
    """The year backfilled in one run, then two nights (both DAGs each time)."""
    root = tmp_path_factory.mktemp("year")
    # The recommendation evaluation is tested on the end-to-end sample and in the shops with
    # one channel; here it would only add its minutes to a test at the edge of CI's budget.
    local = replace(settings_under(settings, root), recommendation_holdout_days=0)
    generate_sample(local.landing_dir, YEAR)
    plant_a_merge(local.landing_dir, PLANTED_DAY, RUN_DATE)
    late = _late_folder(local)
    (late / "_SUCCESS").unlink()  # S003's folder of night 1 comes a night late, with a receipt
    receipt = (
        f"T-LATE,1,{LATE_STORE},R1,{NIGHT_DATES[0]} 12:00:00,SKU-APP-000,1,20.00,0.00,card,,EUR"
    )
    (late / "part-00009.csv").write_text(f"{','.join(POS_COLUMNS)}\n{receipt}\n")
    _night(spark, local, BACKFILL_END, "backfill", {"start_date": str(FIRST_DAY)})
    _night(spark, local, NIGHT_DATES[0], "night-1")
    (_late_folder(local) / "_SUCCESS").touch()  # S003's folder of night 1 arrives
    _night(spark, local, NIGHT_DATES[1], "night-2")
    return local


def _client(settings):
    return MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)


def test_the_backfill_builds_every_day_of_the_year_in_one_run(spark, lake, record_property):
    record_property(FIGURES, {run: night["seconds"] for run, night in NIGHTS.items()})
    assert NIGHTS["backfill"]["dates"] == {
        "start_date": str(FIRST_DAY),
        "end_date": str(BACKFILL_END),
    }
    assert NIGHTS["backfill"]["gold"]["feature_dates"] == [
        str(FIRST_DAY + timedelta(days=n)) for n in range(365)
    ]
    features = lakehouse.read_table(spark, lake, tables.GOLD_FEATURES)
    per_day = dict(
        (r["as_of_date"], r["count"]) for r in features.groupBy("as_of_date").count().collect()
    )
    assert set(per_day) == {FIRST_DAY + timedelta(days=n) for n in range(365)} | set(NIGHT_DATES)
    # Each day's population is who the CRM and the stores knew by then: it only grows.
    counts = [per_day[day] for day in sorted(per_day)]
    assert counts == sorted(counts) and counts[0] > 0 and counts[-1] >= YEAR.customers
    # Every day of the year has its KPIs, online and in store.
    kpi_days = (
        lakehouse.read_table(spark, lake, tables.GOLD_KPIS)
        .groupBy("channel")
        .agg(F.countDistinct("date").alias("days"))
    )
    assert {r["channel"]: r["days"] for r in kpi_days.collect()} == {
        "online": 365 + len(NIGHT_DATES),
        "store": 365 + len(NIGHT_DATES),
    }


def test_every_gate_of_the_year_passes(spark, lake):
    for run_id in ("backfill", "backfill-models"):
        results, failed = failed_checks(spark, lake, run_id)
        assert results.count() > 50
        assert failed == [], failed
    kinds = {
        r["check_kind"]
        for r in lakehouse.read_table(spark, lake, tables.VALIDATION_RESULTS)
        .where(F.col("run_id") == "backfill")
        .select("check_kind")
        .distinct()
        .collect()
    }
    assert {"schema", "rule", "freshness", "volume"} <= kinds


def _days_in_year(month_days) -> set[date]:
    return {
        date(y, m, d)
        for y in (FIRST_DAY.year, BACKFILL_END.year)
        for m, d in month_days
        if FIRST_DAY <= date(y, m, d) <= BACKFILL_END
    }


def test_a_store_closed_on_holidays_and_one_opened_mid_year_have_the_days_they_traded(spark, lake):
    kpis = lakehouse.read_table(spark, lake, tables.GOLD_KPIS).where(
        (F.col("channel") == "store") & (F.col("date") <= F.lit(str(BACKFILL_END)).cast("date"))
    )
    holidays = _days_in_year(PUBLIC_HOLIDAYS)
    assert len(holidays) == len(PUBLIC_HOLIDAYS)
    closed = {
        r["date"]: (r["orders"], float(r["net_revenue"]), r["units"], r["active_customers"])
        for r in kpis.where(F.col("store_id") == HOLIDAY_STORE).collect()
        if r["date"] in holidays
    }
    # A closed day is a delivered day with nothing sold: its row is there, with zeros.
    assert closed == {day: (0, 0.0, 0, 0) for day in holidays}
    opened = YEAR.new_store_opens
    new_days = {r["date"] for r in kpis.where(F.col("store_id") == NEW_STORE).collect()}
    assert min(new_days) == opened and len(new_days) == (BACKFILL_END - opened).days + 1
    # Every other store has a row every day of the year.
    per_store = kpis.groupBy("store_id").count().collect()
    assert {r["store_id"]: r["count"] for r in per_store if r["store_id"] != NEW_STORE} == {
        store[0]: 365 for store in STORES[:-1]
    }


def test_the_late_store_waits_one_night_and_is_read_the_next(spark, lake):
    folder = str(_late_folder(lake).relative_to(lake.landing_dir))
    [row] = (
        lakehouse.read_table(spark, lake, tables.LANDING_FOLDERS)
        .where(F.col("folder") == folder)
        .collect()
    )
    assert (row["status"], row["store_id"], row["first_run_id"], row["checked_run_id"]) == (
        "complete",
        LATE_STORE,
        "night-1",
        "night-2",
    )
    assert row["completed_at"] > row["first_seen_at"]
    assert folder in NIGHTS["night-1"]["bronze"]["pos_lines"]["waiting_folders"]
    assert NIGHTS["night-2"]["bronze"]["pos_lines"]["waiting_folders"] == []
    bronze = lakehouse.read_table(spark, lake, tables.BRONZE_POS).where(
        F.col("_source_file").contains(folder)
    )
    assert {r["_run_id"] for r in bronze.select("_run_id").distinct().collect()} == {"night-2"}
    # Night 2 rebuilt the KPIs of the day it delivered: S003's row of night 1 is its sales.
    day = F.lit(str(NIGHT_DATES[0])).cast("date")
    [kpi] = (
        lakehouse.read_table(spark, lake, tables.GOLD_KPIS)
        .where((F.col("date") == day) & (F.col("store_id") == LATE_STORE))
        .collect()
    )
    receipts = (
        lakehouse.read_table(spark, lake, tables.SILVER_POS)
        .where((F.col("store_id") == LATE_STORE) & (F.col("transaction_date") == day))
        .select("transaction_id")
        .distinct()
        .count()
    )
    assert kpi["orders"] == receipts > 0


def test_each_night_scores_every_customer_once_and_registers_one_version_per_model(spark, lake):
    client = _client(lake)
    scores = lakehouse.read_table(spark, lake, tables.GOLD_SCORES)
    features = lakehouse.read_table(spark, lake, tables.GOLD_FEATURES)
    registered = {model: client.search_model_versions(f"name='{model}'") for model in MODELS}
    for run_id, night in NIGHTS.items():
        day = F.lit(str(night["day"])).cast("date")
        of_day = scores.where(F.col("as_of_date") == day)
        customers = features.where(F.col("as_of_date") == day).count()
        assert customers > 0
        assert of_day.count() == of_day.select("customer_key").distinct().count() == customers
        runs = {
            r.info.run_id
            for r in client.search_runs(
                [e.experiment_id for e in client.search_experiments()],
                filter_string=f"tags.pipeline_run_id = '{run_id}-models'",
            )
        }
        for model in MODELS:
            versions = [v for v in registered[model] if v.run_id in runs]
            assert len(versions) == 1, (run_id, model, [v.version for v in versions])
            assert versions[0].tags["promotion_decision"]
    for model in MODELS:
        decisions = {int(v.version): v.tags["promotion_decision"] for v in registered[model]}
        assert sorted(decisions) == [1, 2, 3]  # the backfill's, then one a night
        # The champion is the last version promoted; every later one kept it.
        champion = int(client.get_model_version_by_alias(model, "champion").version)
        promoted = [v for v, reason in decisions.items() if reason.startswith("promoted")]
        assert champion == max(promoted)
        assert all(decisions[v].startswith("kept the champion") for v in decisions if v > champion)


def test_each_night_passes_its_gates(spark, lake):
    for run_id in ("night-1", "night-2"):
        for run in (run_id, f"{run_id}-models"):
            results, failed = failed_checks(spark, lake, run)
            assert results.count() > 50
            # A small shop's night: one bad line among 20 can be a warning, never a block.
            assert [f for f in failed if f[2] == "blocking"] == [], (run, failed)


def test_counts_reconcile_per_source_and_date_over_every_night(spark, lake):
    assert_counts_reconcile(spark, lake)


def test_keys_are_stable_from_one_night_to_the_next(spark, lake):
    assert_keys_stable(spark, lake, NIGHTS["night-1"]["identity"], NIGHTS["night-2"]["identity"])


def test_a_merge_across_nights_leaves_a_trail_that_yesterdays_rows_join_through(spark, lake):
    assert NIGHTS["night-2"]["silver"]["retired_keys"] >= 1
    before, after = NIGHTS["night-1"]["identity"], NIGHTS["night-2"]["identity"]
    assert_merge_trail(spark, lake, before, after, "night-2", RUN_DATE, PLANTED_DAY)


def test_late_records_recompute_the_features_of_the_days_they_touch(spark, lake):
    night = NIGHTS["night-2"]["gold"]
    late_days = [day for day in night["touched_dates"] if day != str(RUN_DATE)]
    assert late_days, f"the sample should hold late records for the nights before: {night}"
    # Every day that has features (the backfill's year, the nights) and that late records
    # touched is built again, with the night's own date.
    assert night["feature_dates"] == [*late_days, str(RUN_DATE)]
    assert_features_as_built_today(spark, lake, late_days)
