"""Great Expectations gates on Spark: each kind of violation fails the expectation meant for it.

Two validations through the real GX checkpoints: run ``r1`` of good batches (the volume
baseline), then run ``r2`` where each table carries exactly one kind of problem. The
assertions read the results recorded in ``quality.validation_results``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from omni import gates, lakehouse, quality, suites, tables

DAY = date(2026, 3, 31)
HASH = "ab" * 32
KEY = "0123456789abcdef0123"

# Values that pass every suite, by column name; anything else gets a default of its type.
GOOD = {
    "currency": "EUR",
    "country": "FR",
    "timezone": "Europe/Paris",
    "email_hash": HASH,
    "customer_key": KEY,
    "identifier_type": "customer_id",
    "platform": "web",
    "event_type": "page_view",
    "channel": "online",
    "churn_risk_band": "low",
    "birth_year": 1980,
    "_source_file": f"ecommerce/events/dt={DAY}/part-0.jsonl",
    "_business_date": DAY,
    "as_of_date": DAY,
    "recency_days": 20,
    "frequency_365d": 3,
    "monetary_365d": 300,
    "online_share_365d": 0.4,
    "discount_share_365d": 0.05,
    "return_rate_365d": 0.01,
    "churn_probability": 0.3,
    "new_customers": 0,
    "_corrupt_record": None,
}
UNIQUE = {"event_id", "transaction_id", "_source_line"}
DEFAULTS = {
    "string": "x",
    "bigint": 1,
    "int": 1,
    "double": 1.0,
    "boolean": True,
    "date": DAY,
    "timestamp": datetime(2026, 3, 31, 12, 0),
    "decimal": Decimal("1.00"),
}


def batch(spark, name, n, change=None, **values):
    """``n`` rows of table ``name`` that pass its suite; ``change(i, row)`` edits row ``i``."""
    table = tables.table(name)
    rows = []
    for i in range(n):
        row = {}
        for column in table.columns:
            kind = column.type.split("(")[0].split("<")[0]
            unique = column.name in table.keys or column.name in UNIQUE
            if column.name in values:
                row[column.name] = values[column.name]
            elif unique and kind == "string":
                row[column.name] = f"{column.name}-{i}"
            elif unique and kind in ("int", "bigint"):
                row[column.name] = i + 1
            else:
                row[column.name] = GOOD.get(column.name, DEFAULTS.get(kind))
        if change:
            change(i, row)
        for column in table.columns:
            value = row[column.name]
            if column.type == "double" and isinstance(value, int):
                row[column.name] = float(value)
            elif column.type.startswith("decimal") and isinstance(value, int | float):
                row[column.name] = Decimal(str(value))
        rows.append(row)
    return spark.createDataFrame(
        [tuple(r[c] for c in table.column_names) for r in rows], table.schema_ddl()
    )


def deliveries(spark, source, days, store_ids=(None,), status="complete"):
    """``bronze.landing_folders`` rows: one folder per day (and store) of ``source``."""
    folders = [(day, store) for day in days for store in store_ids]
    folder = "instore/pos" if source == "pos_lines" else "ecommerce/events"

    def change(i, row):
        day, store = folders[i]
        row["business_date"], row["store_id"] = day, store
        row["folder"] = f"{folder}/dt={day}" + (f"/store_id={store}" if store else "")
        row["completed_at"] = datetime(2026, 1, 1) if status == "complete" else None

    return batch(
        spark, "bronze.landing_folders", len(folders), change, source=source, status=status
    )


def _hex_key(i, row):
    row["customer_key"] = f"{i:020x}"


def _set(column, value, only=None):
    def change(i, row):
        if only is None or i == only:
            row[column] = value

    return change


@pytest.fixture(scope="module")
def gated(spark, settings, tmp_path_factory):
    local = replace(settings, lakehouse_dir=tmp_path_factory.mktemp("quality") / "lakehouse")
    # What the referential checks look up, by name: one product, one store, eight customers.
    reference = {
        tables.SILVER_PRODUCTS: batch(spark, "silver.products", 1, sku="SKU-1"),
        tables.SILVER_STORES: batch(spark, "silver.stores", 1, store_id="S1"),
        tables.SILVER_IDENTITY: batch(
            spark, "silver.customer_identity", 8, _hex_key, identifier_type="customer_id"
        ),
    }
    for table, df in reference.items():
        lakehouse.overwrite(spark, local, table, df)
    # The clickstream's last complete delivery was three days before the run's date.
    lakehouse.overwrite(
        spark,
        local,
        tables.LANDING_FOLDERS,
        deliveries(spark, "ecommerce_events", [DAY - timedelta(3)]),
    )

    good = {
        "silver.customer_identity": batch(
            spark, "silver.customer_identity", 20, identifier_type="customer_id"
        ),
        "silver.stores": batch(spark, "silver.stores", 4),
    }
    first = quality.validate_tables(spark, local, good, "r1", DAY)

    def features(i, row):
        _hex_key(i, row)
        row["recency_days"] = 9000.0  # every customer lapsed for decades: a distribution shift

    broken = {
        "silver.pos_lines": batch(
            spark, "silver.pos_lines", 6, _set("store_id", "S9", only=2), sku="SKU-1", store_id="S1"
        ),
        "silver.ecommerce_events": batch(
            spark, "silver.ecommerce_events", 6, _set("platform", "fax", only=0), sku="SKU-1"
        ),
        "silver.stores": batch(spark, "silver.stores", 4, _set("store_id", "store_id-0", only=1)),
        "silver.customers": batch(spark, "silver.customers", 6, _set("customer_id", None, only=3)),
        "silver.products": batch(
            spark, "silver.products", 3, _set("list_price", Decimal("-1.00"), only=0)
        ),
        "silver.order_lines": batch(spark, "silver.order_lines", 3, sku="SKU-1").withColumn(
            "quantity", F.col("quantity").cast("string")
        ),
        "bronze.ecommerce_events": batch(
            spark, "bronze.ecommerce_events", 3, _business_date=DAY - timedelta(days=3)
        ),
        "silver.customer_identity": batch(
            spark, "silver.customer_identity", 4, identifier_type="customer_id"
        ),
        "silver.device_logins": batch(spark, "silver.device_logins", 3).drop("first_seen_date"),
        "gold.customer_features": batch(spark, "gold.customer_features", 8, features),
    }
    second = quality.validate_tables(spark, local, broken, "r2", DAY)
    results = lakehouse.read_table(spark, local, tables.VALIDATION_RESULTS).cache()
    return local, first, second, results


def _failed(results, run_id, table):
    return {
        (r["expectation_type"], r["column_name"], r["severity"])
        for r in results.where(
            (F.col("run_id") == run_id) & (F.col("table_name") == table) & ~F.col("success")
        ).collect()
    }


def test_good_batches_pass_every_expectation(gated):
    _, first, _, results = gated
    assert [(v.table, v.blocking_failures + v.warnings) for v in first] == [
        ("silver.customer_identity", []),
        ("silver.stores", []),
    ]
    assert results.where((F.col("run_id") == "r1") & ~F.col("success")).count() == 0


@pytest.mark.parametrize(
    "table, expected",
    [
        # referential: a receipt line of a store that silver.stores does not know
        ("silver.pos_lines", {(suites.SQL_RULE, None, "blocking")}),
        # allowed values
        # (and freshness: silver's is judged on the same late deliveries as bronze's, below)
        (
            "silver.ecommerce_events",
            {
                ("expect_column_values_to_be_in_set", "platform", "blocking"),
                (suites.SQL_RULE, None, "blocking"),
            },
        ),
        # unique key
        ("silver.stores", {("expect_column_values_to_be_unique", "store_id", "blocking")}),
        # non-null key
        ("silver.customers", {("expect_column_values_to_not_be_null", "customer_id", "blocking")}),
        # value range
        ("silver.products", {("expect_column_values_to_be_between", "list_price", "blocking")}),
        # column type
        (
            "silver.order_lines",
            {
                ("expect_column_values_to_be_of_type", "quantity", "blocking"),
                ("expect_column_values_to_be_between", "quantity", "blocking"),  # text, not 1..1000
            },
        ),
        # freshness: the source's last complete delivery was three days before the run's date
        ("bronze.ecommerce_events", {(suites.SQL_RULE, None, "blocking")}),
        # volume: 4 rows where the previous run had 20
        ("silver.customer_identity", {("expect_table_row_count_to_be_between", None, "warning")}),
        # distribution bounds on gold features
        (
            "gold.customer_features",
            {
                ("expect_column_mean_to_be_between", "recency_days", "warning"),
                ("expect_column_median_to_be_between", "recency_days", "warning"),
            },
        ),
    ],
)
def test_each_kind_of_violation_fails_the_right_expectation(gated, table, expected):
    _, _, _, results = gated
    assert _failed(results, "r2", table) == expected


def test_a_missing_column_fails_the_schema_check(gated):
    _, _, _, results = gated
    failed = _failed(results, "r2", "silver.device_logins")
    assert ("expect_table_columns_to_match_ordered_list", "blocking") in {
        (kind, severity) for kind, _, severity in failed
    }


def test_results_carry_observed_values_counts_and_a_sample_of_the_bad_rows(gated):
    _, _, second, results = gated
    row = results.where(
        (F.col("run_id") == "r2") & (F.col("table_name") == "silver.pos_lines") & ~F.col("success")
    ).collect()[0]
    assert row["observed_value"] == "1"  # one unexpected row
    assert [r["store_id"] for r in json.loads(row["unexpected_sample"])] == ["S9"]
    assert row["batch_rows"] == 6 and row["business_date"] == DAY
    events = results.where(
        (F.col("run_id") == "r2")
        & (F.col("table_name") == "silver.ecommerce_events")
        & (F.col("column_name") == "platform")
        & ~F.col("success")
    ).first()
    assert events["unexpected_count"] == 1 and events["element_count"] == 6
    assert json.loads(events["unexpected_sample"])[0]["platform"] == "fax"
    volume = results.where(
        (F.col("run_id") == "r2")
        & (F.col("table_name") == "silver.customer_identity")
        & (F.col("check_kind") == "volume")
    ).first()
    # Baseline 20 rows a day; bounds 0.9x-1.5x of it.
    assert json.loads(volume["kwargs"]) == {"min_value": 18, "max_value": 30}
    by_table = {v.table: v for v in second}
    assert by_table["gold.customer_features"].blocking_failures == []
    assert len(by_table["gold.customer_features"].warnings) == 2
    assert by_table["silver.pos_lines"].blocking_failures


def test_a_retried_validation_replaces_its_own_results(spark, gated):
    local, _, _, results = gated
    before = results.where(F.col("run_id") == "r1").count()
    again = {"silver.stores": batch(spark, "silver.stores", 4)}
    quality.validate_tables(spark, local, again, "r1", DAY)
    after = lakehouse.read_table(spark, local, tables.VALIDATION_RESULTS)
    assert after.where(F.col("run_id") == "r1").count() == before
    assert (
        after.where((F.col("run_id") == "r1") & (F.col("table_name") == "silver.stores"))
        .select("expectation_id")
        .distinct()
        .count()
        == after.where((F.col("run_id") == "r1") & (F.col("table_name") == "silver.stores")).count()
    )


def test_model_promotion_gate_reads_the_latest_validation_of_each_table(spark, gated):
    local = gated[0]
    # Run r2 came last for silver.pos_lines and failed a blocking referential check there.
    status = gates.gate_status(spark, local, DAY, "gold.customer_features")
    assert not status.passed
    assert status.reason.startswith(f"blocking expectations failed for {DAY} on ")
    assert "silver.pos_lines" in status.reason and "gold.customer_features" not in status.reason
    # The table a model learns from must have been validated for the date at all.
    missing = gates.gate_status(spark, local, DAY, "gold.customer_scores")
    assert missing == gates.GateStatus(
        False, f"gold.customer_scores has no validation results for {DAY}"
    )
    later = DAY + timedelta(days=1)
    assert not gates.gate_status(spark, local, later, "gold.customer_features").passed


def test_data_docs_name_the_validated_suites(gated):
    local = gated[0]
    page = quality.data_docs_index(local).read_text()
    for suite in ("silver.pos_lines", "gold.customer_features", "silver.customer_identity"):
        assert suite in page


def test_a_sql_rule_is_judged_by_its_count_in_fewer_spark_jobs_than_gxs_own(spark):
    """The suites' SQL rules give GX's verdict and count without the rows GX would fetch."""
    import great_expectations as gx
    from great_expectations.expectations import UnexpectedRowsExpectation

    from omni.expectations import UnexpectedRowCountExpectation

    context = gx.get_context(mode="ephemeral")
    whole = (
        context.data_sources.add_spark(name="rules")
        .add_dataframe_asset(name="numbers")
        .add_batch_definition_whole_dataframe("whole")
    )
    numbers = spark.range(10).withColumnRenamed("id", "n")
    outcomes = {}
    for kind in (UnexpectedRowCountExpectation, UnexpectedRowsExpectation):
        for query, label in (("n >= 7", "breaks"), ("n > 99", "holds")):
            group = f"rule-{kind.expectation_type}-{label}"
            spark.sparkContext.setJobGroup(group, group)
            try:
                result = whole.get_batch(batch_parameters={"dataframe": numbers}).validate(
                    kind(unexpected_rows_query=f"SELECT * FROM {{batch}} WHERE {query}"),
                    result_format="BASIC",
                )
            finally:
                spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
            jobs = len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))
            outcomes[kind.expectation_type, label] = (result.success, result.result, jobs)
    ours, theirs = suites.SQL_RULE, UnexpectedRowsExpectation.expectation_type
    assert outcomes[ours, "breaks"][:2] == (False, {"observed_value": 3})
    assert outcomes[ours, "holds"][:2] == (True, {"observed_value": 0})
    for label in ("breaks", "holds"):
        assert outcomes[ours, label][:2] == outcomes[theirs, label][:2]
        assert outcomes[ours, label][2] < outcomes[theirs, label][2], outcomes


def test_every_bronze_silver_and_gold_table_has_a_suite():
    for table in tables.ALL_TABLES:
        if table.layer in ("bronze", "silver", "gold"):
            spec = suites.load_suite(table.name)
            assert spec.table == table.name


def test_volume_bounds_follow_the_median_of_recent_runs_per_day():
    volume = suites.Volume(min_ratio=0.5, max_ratio=2.0, lookback_runs=3)
    assert volume.bounds([], days=1) == (0, None)
    assert volume.bounds([100], days=0) == (0, 0)  # nothing delivered: no row expected
    # Newest first; zero-row runs and runs past the lookback are ignored.
    assert volume.bounds([100, 0, 120, 80, 5000], days=1) == (50, 200)
    assert volume.bounds([100, 100, 100], days=3) == (150, 600)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"scope": "daily"}, "scope='daily'"),
        ({"volume": {"min_ratio": 2, "max_ratio": 1}}, "min_ratio above max_ratio"),
        ({"freshness": {"column": "d", "max_lag_days": -1}}, "max_lag_days=-1"),
        ({"freshness": {"source": "fax", "max_lag_days": 0}}, "freshness source='fax'"),
        ({"freshness": {"column": "d", "source": "pos_lines"}}, "expected {'column' or 'source'"),
        ({"freshness": {"source": "products", "store_lag_days": 2}}, "'store_lag_days' with"),
        ({"volume": {"per": "store_id"}}, "volume per='store_id'"),
        ({"expectations": [{"type": "x", "severity": "fatal"}]}, "severity='fatal'"),
        ({"owner": "me"}, "unknown keys ['owner']"),
    ],
)
def test_malformed_suites_are_refused_with_the_bad_value(tmp_path, monkeypatch, change, message):
    folder = tmp_path / "silver"
    folder.mkdir()
    spec = {"table": "silver.stores", "scope": "all", "expectations": [{"type": "x"}], **change}
    (folder / "stores.json").write_text(json.dumps(spec))
    monkeypatch.setattr(suites, "EXPECTATIONS_DIR", tmp_path)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        suites.load_suite("silver.stores")


QUIET_LAYERS = ("bronze", "silver", "quarantine")


def _empty_batches(spark):
    """Every bronze, silver and quarantine suite whose batch is what a run wrote: none of it."""
    from omni.suites import suite_tables

    return {
        table.name: batch(spark, table.name, 0)
        for table in suite_tables(list(QUIET_LAYERS))
        if suites.load_suite(table.name).scope == "run"
    }


def _outcome(validations):
    return {
        v.table: sorted(
            (r["expectation_type"], r["check_kind"], r["severity"])
            for r in v.blocking_failures + v.warnings
        )
        for v in validations
        if v.blocking_failures or v.warnings
    }


def test_a_quiet_night_passes_every_gate_and_a_source_that_stops_fails(
    spark, settings, tmp_path_factory
):
    """Nothing new to ingest (a rerun, a holiday's empty folders, a store that opened late, no
    online shop at all) is a normal night; a source that delivered and stops is not."""
    local = replace(settings, lakehouse_dir=tmp_path_factory.mktemp("quiet") / "lakehouse")
    week = [DAY - timedelta(days=n) for n in range(6, -1, -1)]
    stores = deliveries(spark, "pos_lines", week[:-1], ("S1", "S2"))
    # Tonight S1 is closed (a complete, empty folder) and S3, opened today, delivers.
    tonight = deliveries(spark, "pos_lines", [DAY], ("S1", "S3"))
    lakehouse.overwrite(spark, local, tables.LANDING_FOLDERS, stores.unionByName(tonight))
    for reference in (tables.SILVER_PRODUCTS, tables.SILVER_STORES):  # the referential checks
        lakehouse.overwrite(spark, local, reference, batch(spark, reference.name, 1))
    quiet = quality.validate_tables(spark, local, _empty_batches(spark), "quiet", DAY)
    assert _outcome(quiet) == {}  # no online shop: no clickstream folder, no freshness to judge
    assert {v.table: v.batch_days for v in quiet}["bronze.pos_lines"] == 0

    # S1 and S3 deliver the next two nights, S2 stays silent past the contract's two days of
    # lateness: a warning names it. Then nothing comes at all: the source has stopped.
    later = deliveries(spark, "pos_lines", [DAY + timedelta(1), DAY + timedelta(2)], ("S1", "S3"))
    lakehouse.append(spark, local, tables.LANDING_FOLDERS, later)
    receipts = {
        name: frame for name, frame in _empty_batches(spark).items() if name.endswith("pos_lines")
    }
    late = quality.validate_tables(spark, local, receipts, "late", DAY + timedelta(2))
    stopped = quality.validate_tables(spark, local, receipts, "stop", DAY + timedelta(3))
    store_warning = (suites.SQL_RULE, "freshness", "warning")
    assert _outcome(late) == {
        "bronze.pos_lines": [store_warning],
        "silver.pos_lines": [store_warning],
    }
    results = lakehouse.read_table(spark, local, tables.VALIDATION_RESULTS)
    sample = results.where((F.col("run_id") == "late") & ~F.col("success")).first()[
        "unexpected_sample"
    ]
    assert json.loads(sample) == [{"store_id": "S2", "last_delivered": str(DAY - timedelta(1))}]
    source_stopped = (suites.SQL_RULE, "freshness", "blocking")
    assert _outcome(stopped) == {
        "bronze.pos_lines": [source_stopped, store_warning],
        "silver.pos_lines": [source_stopped, store_warning],
    }


def test_a_shop_without_stores_needs_no_store_list(spark, settings, tmp_path):
    """An online-only retailer delivers no stores file, so silver.stores is empty: that passes.
    The same empty list with receipts landing blocks, as receipts name stores."""
    local = replace(
        settings, landing_dir=tmp_path / "landing", lakehouse_dir=tmp_path / "lakehouse"
    )
    (local.landing_dir / "ecommerce" / "events").mkdir(parents=True)
    empty = {"silver.stores": batch(spark, "silver.stores", 0)}
    assert _outcome(quality.validate_tables(spark, local, empty, "online-only", DAY)) == {}
    (local.landing_dir / "instore" / "pos").mkdir(parents=True)
    with_stores = _outcome(quality.validate_tables(spark, local, empty, "with-stores", DAY))
    assert [kind for kind, _, severity in with_stores["silver.stores"]] == [
        "expect_table_row_count_to_be_between"
    ]


def test_volume_counts_rows_per_open_store_day(spark, settings, tmp_path_factory):
    """A store closed for a regional holiday halves the receipts of the night, not the rows per
    store that delivered: no warning. Half the rows from every store still warns."""
    local = replace(settings, lakehouse_dir=tmp_path_factory.mktemp("volume") / "lakehouse")
    lakehouse.overwrite(
        spark, local, tables.LANDING_FOLDERS, deliveries(spark, "pos_lines", [DAY], ("S1", "S2"))
    )

    def lines(n, stores):
        def change(i, row):  # bronze knows a line's store from its delivery folder
            store = stores[i % len(stores)]
            row["_source_file"] = f"instore/pos/dt={DAY}/store_id={store}/part-0.csv"

        return {"bronze.pos_lines": batch(spark, "bronze.pos_lines", n, change)}

    quality.validate_tables(spark, local, lines(20, ["S1", "S2"]), "both", DAY)
    one_store = quality.validate_tables(spark, local, lines(10, ["S1"]), "one", DAY)
    thin = quality.validate_tables(spark, local, lines(8, ["S1", "S2"]), "thin", DAY)
    assert _outcome(one_store) == {}
    assert [v.batch_days for v in one_store] == [1]
    assert _outcome(thin) == {
        "bronze.pos_lines": [("expect_table_row_count_to_be_between", "volume", "warning")]
    }
