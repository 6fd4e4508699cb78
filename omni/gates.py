"""The data-quality gates, read from the results ``omni.quality`` records in
``quality.validation_results``: a run's gate of a layer (``layer_gate``: the nightly DAG's
``validate_*`` steps, without Spark) and the promotion gate (``gate_status``: models are
promoted only on data that passed, ``models/train.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from omni.config import Settings


@dataclass(frozen=True)
class GateStatus:
    passed: bool
    reason: str


def gate_status(spark, settings: Settings, business_date: date, required: str) -> GateStatus:
    """Whether the data-quality gates of ``business_date`` passed, for model promotion.

    They passed when ``required`` (the table a model learns from) was validated for the date
    and the latest validation of every table validated for the date has no blocking failure.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from omni import lakehouse, tables

    results = lakehouse.read_table(spark, settings, tables.VALIDATION_RESULTS).where(
        F.col("business_date") == F.lit(business_date.isoformat()).cast("date")
    )
    latest = Window.partitionBy("table_name")
    rows = (
        results.withColumn("last", F.max("validated_at").over(latest))
        .where(F.col("validated_at") == F.col("last"))
        .groupBy("table_name")
        .agg(
            F.sum(
                F.when(~F.col("success") & (F.col("severity") == "blocking"), 1).otherwise(0)
            ).alias("blocking_failures")
        )
        .collect()
    )
    failures = {r["table_name"]: r["blocking_failures"] for r in rows}
    if required not in failures:
        return GateStatus(False, f"{required} has no validation results for {business_date}")
    failed = sorted(name for name, n in failures.items() if n)
    if failed:
        return GateStatus(
            False, f"blocking expectations failed for {business_date} on {', '.join(failed)}"
        )
    return GateStatus(
        True, f"data-quality gates passed for {business_date} ({len(failures)} tables)"
    )


class DataQualityError(RuntimeError):
    """A blocking expectation failed: nothing downstream may run on this data."""


def layer_gate(
    settings: Settings, table_names: list[str], run_id: str, business_date: date
) -> GateStatus:
    """Whether this run's audit of ``table_names`` passed, from ``quality.validation_results``.

    Read with delta-rs, not Spark: the DAG's gate step costs a table read, not a JVM. Every
    table must have been validated by the run (a job that audited nothing does not pass) and
    none may have a failed blocking expectation.
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from omni import quality, tables

    location = tables.VALIDATION_RESULTS.location(settings.lakehouse_location)
    try:
        opened = DeltaTable(location)
    except TableNotFoundError:
        return GateStatus(
            False,
            f"no {tables.VALIDATION_RESULTS.name} at {location}: run {run_id} recorded no "
            "validation; expected the job before this gate to have audited its tables",
        )
    found = opened.to_pyarrow_table(
        filters=[("business_date", "=", business_date)],
        columns=["run_id", "table_name", *quality.RESULT_COLUMNS],
    )
    results: dict[str, list[dict]] = {}
    for row in found.to_pylist():
        if row["run_id"] == run_id and row["table_name"] in table_names:
            results.setdefault(row["table_name"], []).append(row)
    missing = sorted(set(table_names) - set(results))
    if missing:
        return GateStatus(
            False,
            f"run {run_id} recorded no validation of {', '.join(missing)} for {business_date}: "
            "expected the job that wrote them to have audited them",
        )
    blocking = [
        (name, row)
        for name in table_names
        for row in results[name]
        if not row["success"] and row["severity"] == "blocking"
    ]
    if blocking:
        return GateStatus(
            False,
            f"data-quality gate failed ({len(blocking)} blocking expectation(s)); nothing of "
            f"the batch was published, it is held in {tables.HELD_BATCHES.name}; results in "
            f"{tables.VALIDATION_RESULTS.name}, report at {quality.data_docs_index(settings)}:\n"
            + quality.describe(blocking),
        )
    return GateStatus(True, f"{len(table_names)} table(s) passed for {business_date}")
