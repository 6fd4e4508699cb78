"""The promotion gate: whether a date's data-quality gates passed, from their recorded results.

Models are promoted only on data that passed (``models/train.py``); the results are those
``omni.quality`` records in ``quality.validation_results``.
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
