"""Data-quality gates: the suites (``omni.suites``) run with Great Expectations 1.x on Spark
DataFrames inside the jobs, their results recorded.

Freshness and volume become GX expectations whose bounds are suite parameters, filled in on
each run. Every table goes through its own GX validation definition and checkpoint, with the
Spark DataFrame as the batch (nothing is converted to pandas). Every result is appended to
``quality.validation_results`` and the Data Docs site (``data/gx/data_docs``) is updated.
The volume bounds come from the batch sizes of earlier runs (``_volume_history``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from omni.config import REPO_ROOT, Settings
from omni.suites import (
    FRESHNESS_MIN_DATE,
    VOLUME_MAX_ROWS,
    VOLUME_MIN_ROWS,
    load_suite,
)

log = logging.getLogger(__name__)
GX_TEMPLATE = REPO_ROOT / "gx" / "great_expectations.yml"
SAMPLE_ROWS = 5
SAMPLE_TEXT_CHARS = 300
# Counts only: each sample of bad rows costs a Spark job per expectation, so a table is
# checked once with counts, and only a table with a failure again with samples.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
DETAILED_RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": SAMPLE_ROWS,
    "include_unexpected_rows": True,
}


def gx_context(settings: Settings):
    """The file-backed GX context under the data folder, configured from ``gx/`` in the repo.

    The repository's ``great_expectations.yml`` is copied over the data folder's on every
    call; only the data sources GX records there itself are kept.
    """
    import yaml

    from omni.costs import spent

    # No usage analytics: the machines have no internet and nothing should leave them.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    with spent("gx_import"):
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from omni import expectations  # noqa: F401 (registers the project's expectation types)

    # GX logs every registration of its API at INFO: keep the task logs readable.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    root = settings.gx_dir
    root.mkdir(parents=True, exist_ok=True)
    target = root / "great_expectations.yml"
    config = yaml.safe_load(GX_TEMPLATE.read_text())
    if target.exists():
        current = yaml.safe_load(target.read_text()) or {}
        if current.get("fluent_datasources"):
            config["fluent_datasources"] = current["fluent_datasources"]
        if current.get("data_context_id"):
            config["data_context_id"] = current["data_context_id"]
    text = yaml.safe_dump(config, sort_keys=False)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    with spent("gx_context"):
        context = gx.get_context(mode="file", context_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def data_docs_index(settings: Settings) -> Path:
    return settings.gx_dir / "data_docs" / "index.html"


@dataclass
class TableValidation:
    """One table's validation: its batch size and one result row per expectation."""

    table: str
    batch_rows: int
    batch_days: int
    results: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # the batch computed and its suite run

    @property
    def blocking_failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"] and r["severity"] == "blocking"]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"] and r["severity"] == "warning"]

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.batch_rows,
            "evaluated": len(self.results),
            "failed_blocking": len(self.blocking_failures),
            "failed_warning": len(self.warnings),
            "seconds": round(self.seconds, 2),
        }


# The columns of a recorded result that ``describe`` reads.
RESULT_COLUMNS = (
    "expectation_type",
    "kwargs",
    "severity",
    "success",
    "observed_value",
    "unexpected_count",
    "unexpected_sample",
    "exception",
)


def describe(failures: list[tuple[str, dict[str, Any]]]) -> str:
    """One line per failed expectation: table, expectation, arguments, observed value.

    It goes to task logs and alert e-mails, so the offending rows, which can hold customer
    identifiers, are not in it: they are in ``quality.validation_results`` (its
    ``unexpected_sample``).
    """
    from omni.redact import redact

    return "\n".join(
        f"  [{r['severity']}] {table}: {r['expectation_type']} {r['kwargs']} failed "
        f"(observed {r['observed_value']}, unexpected {r['unexpected_count']}"
        + (", sample rows in quality.validation_results" if r["unexpected_sample"] else "")
        + ")"
        + (f" error: {redact(r['exception'])}" if r["exception"] else "")
        for table, r in failures
    )


def validate_tables(
    spark,
    settings: Settings,
    frames: dict[str, Any],
    run_id: str,
    business_date: date,
    read_as: dict[str, str] | None = None,
) -> list[TableValidation]:
    """Validate each table's batch with its suite; record the results; update Data Docs.

    ``read_as`` maps table names to the views that a suite's SQL reads instead (the tables as
    they will be, while their writes wait for this audit). Nothing is raised for failed
    expectations: the caller decides what blocks.
    """
    from omni import lakehouse

    context = gx_context(settings)
    try:  # updating the data source re-validates and re-saves every asset: 8 s a task
        datasource = context.data_sources.get("lakehouse")
    except (KeyError, LookupError, ValueError):
        datasource = context.data_sources.add_spark(name="lakehouse")
    history = _volume_history(spark, settings, list(frames), run_id, business_date)
    specs = {name: load_suite(name) for name in frames}
    from omni.landing import channels

    present = frozenset(name for name, has in channels(settings.landing_dir).items() if has)
    run = _Run(spark, context, datasource, run_id, business_date, history, present, read_as or {})
    for table in run.tables_read(specs.values()):  # a table never written reads as empty
        lakehouse.ensure_table(spark, settings, table)
    validations, identifiers = [], []
    for table_name, df in frames.items():
        spec = specs[table_name]
        started = time.perf_counter()
        batch = df.cache()  # filled by its first action, which counts it (``_batch_size``)
        try:
            validation, result_ids = _validate_one(run, spec, batch)
        finally:
            batch.unpersist()
        validation.seconds = time.perf_counter() - started
        validations.append(validation)
        identifiers.extend(result_ids)
    _build_data_docs(context, identifiers, [v.table for v in validations])
    _record(spark, settings, validations, run_id, business_date)
    for validation in validations:
        for result in validation.warnings:
            log.warning("data-quality warning:\n%s", describe([(validation.table, result)]))
    return validations


@dataclass(frozen=True)
class _Run:
    """What every table's validation in one run shares."""

    spark: Any
    context: Any  # the GX data context
    datasource: Any  # its Spark data source
    run_id: str
    business_date: date
    history: dict[str, list]  # earlier batch sizes per table, for the volume bounds
    present: frozenset[str]  # the sources the retailer has (``omni.landing.channels``)
    read_as: dict[str, str]  # table name -> the view a suite's SQL reads instead

    def tables_read(self, specs) -> list:
        """The registry's tables that the suites' SQL names (staged ones read as views)."""
        from omni import tables

        queries = " ".join(
            item["kwargs"].get("unexpected_rows_query") or ""
            for spec in specs
            for item in self.expectations(spec)
        )
        named = set(_naming(table.name for table in tables.ALL_TABLES).findall(queries))
        return [table for table in tables.ALL_TABLES if table.name in named]

    def expectations(self, spec) -> list[dict[str, Any]]:
        """The suite's expectations for this run, their SQL reading ``read_as``'s views."""
        items = spec.gx_expectations(self.business_date, self.present)
        if not self.read_as:
            return items
        names = _naming(self.read_as)

        def reading_views(item: dict[str, Any]) -> dict[str, Any]:
            query = item["kwargs"].get("unexpected_rows_query")
            if not query:
                return item
            query = names.sub(lambda m: self.read_as[m.group(1)], query)
            return {**item, "kwargs": {**item["kwargs"], "unexpected_rows_query": query}}

        return [reading_views(item) for item in items]


def _naming(names) -> re.Pattern:
    """Matches any of the table names ``names`` where SQL names the table itself (not a
    column ``x.silver.stores`` or a longer name); group 1 is the name."""
    return re.compile(
        r"(?<![\w.`])(" + "|".join(re.escape(n) for n in sorted(names)) + r")(?![\w`])"
    )


def _validate_one(run: _Run, spec, batch) -> tuple[TableValidation, list]:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    rows, days = _batch_size(spec, batch)
    parameters: dict[str, Any] = {}
    if spec.freshness:
        parameters[FRESHNESS_MIN_DATE] = run.business_date - timedelta(spec.freshness.max_lag_days)
    if spec.volume:
        low, high = spec.volume.bounds(run.history.get(spec.table, []), days)
        parameters[VOLUME_MIN_ROWS], parameters[VOLUME_MAX_ROWS] = low, high
    # Built whole and saved once: adding to a stored suite writes the store per expectation.
    suite = run.context.suites.add_or_update(
        gx.ExpectationSuite(
            name=spec.suite_name,
            expectations=[
                ExpectationConfiguration(**item).to_domain_obj() for item in run.expectations(spec)
            ],
        )
    )
    try:
        asset = run.datasource.get_asset(spec.table)
    except LookupError:
        asset = run.datasource.add_dataframe_asset(name=spec.table)
    try:
        batch_definition = asset.get_batch_definition("whole")
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    # Saved by the checkpoint's add_or_update, which stores its validation definitions.
    definition = gx.ValidationDefinition(name=spec.table, data=batch_definition, suite=suite)

    def run_checkpoint(result_format: dict[str, Any]):
        checkpoint = run.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=spec.table,
                validation_definitions=[definition],
                actions=[],
                result_format=result_format,
            )
        )
        return checkpoint.run(
            batch_parameters={"dataframe": batch},
            expectation_parameters=parameters,
            run_id=RunIdentifier(run_name=f"{run.run_id}__{spec.table}"),
        )

    result = run_checkpoint(RESULT_FORMAT)
    if not result.success:
        result = run_checkpoint(DETAILED_RESULT_FORMAT)
    validation = TableValidation(spec.table, rows, days)
    view = f"omni_batch_{uuid.uuid4().hex[:8]}"
    batch.createOrReplaceTempView(view)
    try:
        for suite_result in result.run_results.values():
            for item in suite_result.results:
                validation.results.append(_result_row(run.spark, item, view))
    finally:
        run.spark.catalog.dropTempView(view)
    return validation, list(result.run_results)


def _batch_size(spec, batch) -> tuple[int, int]:
    """The batch's rows and days (of ``volume.per``, else of the scope's date column), counted
    in one pass: on tiny nights each Spark action, not the data, is what a suite costs."""
    from pyspark.sql import functions as F

    day_column = {"run": "_business_date", "as_of": "as_of_date"}.get(spec.scope)
    per = (spec.volume.per if spec.volume else ()) or (
        (day_column,) if day_column in batch.columns else ()
    )
    # A struct is never null, so its distinct count keeps null days, as ``distinct()`` does.
    days = F.count_distinct(F.struct(*(F.expr(p) for p in per))) if per else F.lit(1)
    rows, days = batch.agg(F.count(F.lit(1)), days).first()
    # No rows, no days: nothing delivered, nothing expected (freshness judges whether it should).
    return rows, days if rows else 0


def _result_row(spark, item, view: str) -> dict[str, Any]:
    config = item.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    result = item.result or {}
    columns = kwargs.get("column") or kwargs.get("column_list")
    if isinstance(columns, list):
        columns = ",".join(columns)
    sample = result.get("unexpected_rows")
    if sample is None:
        sample = result.get("partial_unexpected_list")
    if not item.success and "unexpected_rows_query" in kwargs:
        query = kwargs["unexpected_rows_query"].replace("{batch}", view)
        sample = spark.sql(query).limit(SAMPLE_ROWS).collect()
    exception = _exception(item.exception_info)
    severity = getattr(config.severity, "value", config.severity)
    return {
        "expectation_id": config.id or _fallback_id(config.type, kwargs),
        "expectation_type": config.type,
        "check_kind": (config.meta or {}).get("check", "rule"),
        "column_name": columns,
        "kwargs": _json(kwargs),
        "severity": "blocking" if severity == "critical" else severity,
        "success": bool(item.success) and exception is None,
        "observed_value": None
        if result.get("observed_value") is None
        else _json(result["observed_value"]),
        "element_count": result.get("element_count"),
        "unexpected_count": result.get("unexpected_count"),
        "unexpected_percent": result.get("unexpected_percent"),
        "unexpected_sample": _json([_plain(row) for row in sample]) if sample else None,
        "exception": exception,
    }


def _exception(info: Any) -> str | None:
    """The message of an expectation that raised, whatever shape GX reports it in."""
    if not info:
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message") or "raised an exception")[:2000]
    return None


def _fallback_id(kind: str, kwargs: dict[str, Any]) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, kind + _json(kwargs)))


def _plain(value: Any) -> Any:
    """Rows and values as JSON-friendly data, long texts cut."""
    if hasattr(value, "asDict"):
        value = value.asDict(recursive=True)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) > SAMPLE_TEXT_CHARS:
        return value[:SAMPLE_TEXT_CHARS] + "..."
    return value


def _json(value: Any) -> str:
    return json.dumps(_plain(value), default=str, sort_keys=True)


HISTORY_DAYS = 120


def _volume_history(spark, settings: Settings, table_names, run_id: str, business_date: date):
    """Rows per business day of each table's previous runs (of the last 120 days), newest first."""
    from pyspark.sql import functions as F

    from omni import lakehouse, tables

    results = lakehouse.read_table(spark, settings, tables.VALIDATION_RESULTS)
    rows = (
        results.where(
            F.col("business_date").between(business_date - timedelta(HISTORY_DAYS), business_date)
            & F.col("table_name").isin(table_names)
            & (F.col("run_id") != run_id)
        )
        .groupBy("table_name", "run_id")
        .agg(
            F.max("validated_at").alias("at"),
            F.max("batch_rows").alias("batch_rows"),
            F.max("batch_days").alias("batch_days"),
        )
        .orderBy(F.col("at").desc())
        .collect()
    )
    history: dict[str, list[float]] = {}
    for row in rows:
        history.setdefault(row["table_name"], []).append(
            row["batch_rows"] / max(row["batch_days"], 1)
        )
    return history


def _build_data_docs(context, identifiers: list, table_names: list[str]) -> None:
    """Render this validation's result pages, its suites' pages and the index."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    suites = [ExpectationSuiteIdentifier(name=name) for name in table_names]
    context.build_data_docs(resource_identifiers=[*suites, *identifiers])


def _record(spark, settings: Settings, validations, run_id: str, business_date: date) -> int:
    """Append the results; a retried run replaces its own rows for the same tables."""
    from omni import lakehouse, tables

    table = tables.VALIDATION_RESULTS
    now = datetime.now(UTC).replace(tzinfo=None)
    records = [
        {
            "run_id": run_id,
            "business_date": business_date,
            "table_name": validation.table,
            **result,
            "batch_rows": validation.batch_rows,
            "batch_days": validation.batch_days,
            "validated_at": now,
        }
        for validation in validations
        for result in validation.results
    ]
    df = spark.createDataFrame(
        [tuple(record[c] for c in table.column_names) for record in records], table.schema_ddl()
    )
    predicate = (
        f"{lakehouse.sql_in('business_date', [business_date])} AND "
        f"{lakehouse.sql_in('run_id', [run_id])} AND "
        f"{lakehouse.sql_in('table_name', [v.table for v in validations])}"
    )
    return lakehouse.replace_where(spark, settings, table, df, predicate)
