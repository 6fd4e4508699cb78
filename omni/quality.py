"""Data-quality gates: Great Expectations 1.x suites, run on Spark DataFrames inside the jobs.

A table's suite is ``expectations/<layer>/<table>.json``, found from the table's name:

- ``table``: the table's name, also the GX suite's name;
- ``scope``: the rows that form the batch: ``run`` (what this run wrote), ``as_of`` (the rows
  of the run's as-of date) or ``all`` (the whole table);
- ``expectations``: GX expectation configurations (``type``, ``kwargs``, optional ``meta``),
  each with a ``severity``: ``blocking`` (the default: a failure stops the run) or
  ``warning`` (recorded and reported, the run goes on), and optionally ``channels``: the
  sources the expectation needs (a share of online spend means nothing to a shop without
  stores); it is left out for a retailer whose landing zone has no folder for one of them;
- ``freshness`` (optional), one of two kinds:
  ``{"column", "max_lag_days", "severity"}``: the batch holds the run's business date, i.e. the
  column's maximum is at least that date minus the lag (for tables every run rebuilds);
  ``{"source", "max_lag_days", "severity", "store_lag_days"}``: judged on what the source
  *delivered* (``bronze.landing_folders``), not on the batch, so a quiet night (a rerun with
  nothing new, a holiday's empty folder) passes and a source that normally delivers and stops
  fails. A source with no folder by the date is a channel the retailer lacks, and passes.
  ``store_lag_days`` adds a warning for each store that delivered in the last 30 days but not
  within that many days;
- ``volume`` (optional): ``{"min_ratio", "max_ratio", "lookback_runs", "severity", "per"}``:
  the batch's rows per delivery unit lie within these ratios of the median of the previous
  runs. A unit is a distinct value of the ``per`` columns (default: the scope's day column, so
  a business day; ``["_business_date", "store_id"]`` makes it an open store's day). A batch
  with no rows has no unit and expects none.

Freshness and volume become GX expectations whose bounds are suite parameters, filled in on
each run. Every table goes through its own GX validation definition and checkpoint, with the
Spark DataFrame as the batch (nothing is converted to pandas). Every result is appended to
``quality.validation_results`` and the Data Docs site (``data/gx/data_docs``) is updated.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from omni.config import REPO_ROOT, Settings

log = logging.getLogger(__name__)
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
GX_TEMPLATE = REPO_ROOT / "gx" / "great_expectations.yml"
SCOPES = ("run", "as_of", "all")
# Our severities and the GX ones they are stored as (GX also knows "info", unused here).
SEVERITIES = {"blocking": "critical", "warning": "warning"}
FRESHNESS_MIN_DATE = "freshness_min_date"
VOLUME_MIN_ROWS = "volume_min_rows"
VOLUME_MAX_ROWS = "volume_max_rows"
SAMPLE_ROWS = 5
# A store silent this long is taken as closed, and no longer warned about.
STORE_SILENCE_DAYS = 30
SAMPLE_TEXT_CHARS = 300
# Counts only: each sample of bad rows costs a Spark job per expectation, so a table is
# checked once with counts, and only a table with a failure again with samples.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
DETAILED_RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": SAMPLE_ROWS,
    "include_unexpected_rows": True,
}


def _severity(path: Path, value: Any, default: str) -> str:
    value = default if value is None else value
    if value not in SEVERITIES:
        raise ValueError(f"{path}: severity={value!r}, expected one of {sorted(SEVERITIES)}")
    return value


def _number(path: Path, section: str, name: str, value: Any, minimum: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{path}: {section}.{name}={value!r}, expected a number >= {minimum}")
    return value


@dataclass(frozen=True)
class Freshness:
    column: str | None = None
    max_lag_days: int = 0
    severity: str = "blocking"
    # Judged on the deliveries of this source (omni.sources) instead of the batch's column.
    source: str | None = None
    store_lag_days: int | None = None

    def gx_expectations(self, business_date: date) -> list[dict[str, Any]]:
        meta = {"check": "freshness", "max_lag_days": self.max_lag_days}
        if self.source is None:
            return [
                {
                    "type": "expect_column_max_to_be_between",
                    "kwargs": {
                        "column": self.column,
                        "min_value": {"$PARAMETER": FRESHNESS_MIN_DATE},
                    },
                    "meta": meta,
                    "severity": SEVERITIES[self.severity],
                }
            ]
        from omni.tables import LANDING_FOLDERS

        expected = business_date - timedelta(days=self.max_lag_days)
        # Every query names {batch}, as GX asks, in a condition that always holds.
        any_batch = "(SELECT COUNT(*) FROM {batch}) >= 0"
        delivered = (
            f"SELECT '{self.source}' AS source, DATE'{expected}' AS expected_by, "
            "f.last_delivered FROM (SELECT MAX(IF(status = 'complete', business_date, NULL)) "
            f"AS last_delivered, COUNT(*) AS folders FROM {LANDING_FOLDERS.name} WHERE source = "
            f"'{self.source}' AND business_date <= DATE'{business_date}') f WHERE f.folders > 0 "
            f"AND (f.last_delivered IS NULL OR f.last_delivered < DATE'{expected}') AND {any_batch}"
        )
        configs = [
            {
                "type": "unexpected_rows_expectation",
                "kwargs": {
                    "unexpected_rows_query": delivered,
                    "description": f"{self.source} delivered a complete folder by {expected}",
                },
                "meta": {**meta, "source": self.source},
                "severity": SEVERITIES[self.severity],
            }
        ]
        if self.store_lag_days is not None:
            late = business_date - timedelta(days=self.store_lag_days)
            recent = business_date - timedelta(days=STORE_SILENCE_DAYS)
            stores = (
                "SELECT s.* FROM (SELECT store_id, MAX(business_date) AS last_delivered FROM "
                f"{LANDING_FOLDERS.name} WHERE source = '{self.source}' AND status = 'complete' "
                f"AND store_id IS NOT NULL AND business_date <= DATE'{business_date}' AND "
                f"business_date > DATE'{recent}' GROUP BY store_id) s WHERE s.last_delivered < "
                f"DATE'{late}' AND {any_batch}"
            )
            configs.append(
                {
                    "type": "unexpected_rows_expectation",
                    "kwargs": {
                        "unexpected_rows_query": stores,
                        "description": (
                            f"every store that delivered since {recent} delivered by {late}"
                        ),
                    },
                    "meta": {**meta, "source": self.source, "max_lag_days": self.store_lag_days},
                    "severity": SEVERITIES["warning"],
                }
            )
        return configs


@dataclass(frozen=True)
class Volume:
    min_ratio: float = 0.5
    max_ratio: float = 2.0
    lookback_runs: int = 7
    severity: str = "warning"
    # The columns whose distinct values are the batch's delivery units; () for the scope's day.
    per: tuple[str, ...] = ()

    def bounds(self, history: list[float], days: int) -> tuple[int, int | None]:
        """Row-count bounds for a batch of ``days`` delivery units (business days by default).

        ``history`` is the rows per unit of the previous runs, newest first; without any, the
        first run sets the baseline and any count passes. No unit (nothing delivered): no row.
        """
        if days == 0:
            return 0, 0
        recent = [rate for rate in history if rate > 0][: self.lookback_runs]
        if not recent:
            return 0, None
        baseline = statistics.median(recent) * max(days, 1)
        return math.floor(self.min_ratio * baseline), math.ceil(self.max_ratio * baseline)


@dataclass(frozen=True)
class SuiteSpec:
    table: str
    scope: str
    expectations: tuple[dict[str, Any], ...]
    path: Path
    freshness: Freshness | None = None
    volume: Volume | None = None

    @property
    def suite_name(self) -> str:
        return self.table

    def gx_expectations(
        self, business_date: date, channels: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        """GX expectation configurations for a run of ``business_date``: schema (from the
        registry), the suite's own rules (those whose ``channels`` the retailer has, when
        ``channels`` is given), then freshness and volume."""
        configs = schema_expectations(self.table)
        configs += [
            {
                "type": item["type"],
                "kwargs": item.get("kwargs", {}),
                "meta": {"check": "rule", **(item.get("meta") or {})},
                "severity": SEVERITIES[item.get("severity", "blocking")],
            }
            for item in self.expectations
            if channels is None or set(item.get("channels", ())) <= channels
        ]
        if self.freshness:
            configs += self.freshness.gx_expectations(business_date)
        if self.volume:
            configs.append(
                {
                    "type": "expect_table_row_count_to_be_between",
                    "kwargs": {
                        "min_value": {"$PARAMETER": VOLUME_MIN_ROWS},
                        "max_value": {"$PARAMETER": VOLUME_MAX_ROWS},
                    },
                    "meta": {
                        "check": "volume",
                        "min_ratio": self.volume.min_ratio,
                        "max_ratio": self.volume.max_ratio,
                        "lookback_runs": self.volume.lookback_runs,
                    },
                    "severity": SEVERITIES[self.volume.severity],
                }
            )
        return configs


# Spark SQL DDL type (its leading word) -> the pyspark.sql.types class GX checks against.
SPARK_TYPE_CLASSES = {
    "string": "StringType",
    "bigint": "LongType",
    "int": "IntegerType",
    "smallint": "ShortType",
    "double": "DoubleType",
    "float": "FloatType",
    "boolean": "BooleanType",
    "date": "DateType",
    "timestamp": "TimestampType",
    "decimal": "DecimalType",
    "array": "ArrayType",
    "map": "MapType",
    "struct": "StructType",
}


def schema_expectations(table_name: str) -> list[dict[str, Any]]:
    """The registry's columns, in order, and each column's type: blocking, for every suite."""
    from omni.tables import table

    registered = table(table_name)
    configs: list[dict[str, Any]] = [
        {
            "type": "expect_table_columns_to_match_ordered_list",
            "kwargs": {"column_list": registered.column_names},
            "meta": {"check": "schema"},
            "severity": SEVERITIES["blocking"],
        }
    ]
    for column in registered.columns:
        kind = column.type.split("(", 1)[0].split("<", 1)[0].strip().lower()
        if kind not in SPARK_TYPE_CLASSES:
            raise ValueError(
                f"{table_name}.{column.name}: type {column.type!r}, expected one of "
                f"{sorted(SPARK_TYPE_CLASSES)}"
            )
        configs.append(
            {
                "type": "expect_column_values_to_be_of_type",
                "kwargs": {"column": column.name, "type_": SPARK_TYPE_CLASSES[kind]},
                "meta": {"check": "schema"},
                "severity": SEVERITIES["blocking"],
            }
        )
    return configs


def suite_path(table_name: str) -> Path:
    layer, name = table_name.split(".", 1)
    return EXPECTATIONS_DIR / layer / f"{name}.json"


def load_suite(table_name: str) -> SuiteSpec:
    """Read the suite for ``table_name``, failing loudly on a malformed file."""
    path = suite_path(table_name)
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite for {table_name}: expected {path}")
    spec = json.loads(path.read_text())
    unknown = set(spec) - {"table", "scope", "expectations", "freshness", "volume", "comment"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    scope = spec.get("scope", "all")
    if scope not in SCOPES:
        raise ValueError(f"{path}: scope={scope!r}, expected one of {SCOPES}")
    if spec.get("table") != table_name:
        raise ValueError(f"{path}: table={spec.get('table')!r}, expected {table_name!r}")
    expectations = tuple(spec.get("expectations") or ())
    if not expectations:
        raise ValueError(f"{path}: expected at least one expectation")
    for item in expectations:
        if set(item) - {"type", "kwargs", "meta", "severity", "channels"} or "type" not in item:
            raise ValueError(
                f"{path}: expectation {item!r}: expected 'type' and optionally 'kwargs', "
                "'meta', 'severity', 'channels'"
            )
        _severity(path, item.get("severity"), "blocking")
        _channels(path, item.get("channels", []))
    return SuiteSpec(
        table_name,
        scope,
        expectations,
        path,
        _freshness(path, spec.get("freshness")),
        _volume(path, spec.get("volume")),
    )


def _channels(path: Path, names: Any) -> None:
    from omni.sources import BY_NAME

    if not isinstance(names, list) or set(names) - set(BY_NAME):
        raise ValueError(f"{path}: channels={names!r}, expected a list of {sorted(BY_NAME)}")


def _freshness(path: Path, raw: dict[str, Any] | None) -> Freshness | None:
    if raw is None:
        return None
    allowed = {"column", "source", "max_lag_days", "severity", "store_lag_days"}
    expected = (
        "expected {'column' or 'source', 'max_lag_days', 'severity'} (and 'store_lag_days' "
        "with a source whose stores export on their own)"
    )
    column, source = raw.get("column"), raw.get("source")
    if set(raw) - allowed or (column is None) == (source is None):
        raise ValueError(f"{path}: freshness={raw!r}, {expected}")
    if column is not None and (not isinstance(column, str) or "store_lag_days" in raw):
        raise ValueError(f"{path}: freshness={raw!r}, {expected}")
    store_lag = None
    if source is not None:
        from omni.sources import BY_NAME

        if source not in BY_NAME:
            raise ValueError(
                f"{path}: freshness source={source!r}, expected one of {sorted(BY_NAME)}"
            )
        if "store_lag_days" in raw:
            if not BY_NAME[source].store_folders:
                raise ValueError(f"{path}: freshness={raw!r}, {expected}")
            store_lag = int(_number(path, "freshness", "store_lag_days", raw["store_lag_days"], 0))
    lag = int(_number(path, "freshness", "max_lag_days", raw.get("max_lag_days", 0), 0))
    return Freshness(
        column, lag, _severity(path, raw.get("severity"), "blocking"), source, store_lag
    )


def _volume(path: Path, raw: dict[str, Any] | None) -> Volume | None:
    if raw is None:
        return None
    allowed = {"min_ratio", "max_ratio", "lookback_runs", "severity", "per"}
    if set(raw) - allowed:
        raise ValueError(f"{path}: volume keys {sorted(set(raw) - allowed)}, expected {allowed}")
    per = raw.get("per", [])
    if not isinstance(per, list) or not all(isinstance(column, str) for column in per):
        raise ValueError(f"{path}: volume per={per!r}, expected a list of column names")
    default = Volume()
    volume = Volume(
        _number(path, "volume", "min_ratio", raw.get("min_ratio", default.min_ratio), 0),
        _number(path, "volume", "max_ratio", raw.get("max_ratio", default.max_ratio), 0),
        int(_number(path, "volume", "lookback_runs", raw.get("lookback_runs", 7), 1)),
        _severity(path, raw.get("severity"), default.severity),
        tuple(per),
    )
    if volume.min_ratio > volume.max_ratio:
        raise ValueError(f"{path}: volume min_ratio above max_ratio")
    return volume


def scope_filter(
    scope: str, run_id: str, as_of: date, columns: list[str], start: date | None = None
) -> str | None:
    """The SQL filter that selects a suite's batch from a table with ``columns``.

    With ``start`` (a backfill), the ``as_of`` batch holds every date from ``start`` to
    ``as_of``.
    """
    if scope == "run":
        from omni.lakehouse import sql_in

        return sql_in("_run_id" if "_run_id" in columns else "run_id", [run_id])
    if scope == "as_of":
        if start is not None and start < as_of:
            return f"as_of_date BETWEEN DATE'{start}' AND DATE'{as_of}'"
        return f"as_of_date = DATE'{as_of}'"
    return None


def gx_context(settings: Settings):
    """The file-backed GX context under the data folder, configured from ``gx/`` in the repo.

    The repository's ``great_expectations.yml`` is copied over the data folder's on every
    call; only the data sources GX records there itself are kept.
    """
    import yaml

    # No usage analytics: the machines have no internet and nothing should leave them.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

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

    @property
    def blocking_failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"] and r["severity"] == "blocking"]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"] and r["severity"] == "warning"]

    def summary(self) -> dict[str, int]:
        return {
            "rows": self.batch_rows,
            "evaluated": len(self.results),
            "failed_blocking": len(self.blocking_failures),
            "failed_warning": len(self.warnings),
        }


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
) -> list[TableValidation]:
    """Validate each table's batch with its suite; record the results; update Data Docs.

    Nothing is raised for failed expectations: the caller decides what blocks.
    """
    from omni import lakehouse, tables

    context = gx_context(settings)
    try:  # updating the data source re-validates and re-saves every asset: 8 s a task
        datasource = context.data_sources.get("lakehouse")
    except (KeyError, LookupError, ValueError):
        datasource = context.data_sources.add_spark(name="lakehouse")
    history = _volume_history(spark, settings, list(frames), run_id, business_date)
    specs = {name: load_suite(name) for name in frames}
    from omni.landing import channels

    present = frozenset(name for name, has in channels(settings.landing_dir).items() if has)
    if any(spec.freshness and spec.freshness.source for spec in specs.values()):
        lakehouse.ensure_table(spark, settings, tables.LANDING_FOLDERS)  # the queries read it
    validations, identifiers = [], []
    for table_name, df in frames.items():
        spec = specs[table_name]
        batch = lakehouse.materialize(df)
        try:
            validation, result_ids = _validate_one(
                spark, context, datasource, spec, batch, run_id, business_date, history, present
            )
        finally:
            batch.unpersist()
        validations.append(validation)
        identifiers.extend(result_ids)
    _build_data_docs(context, identifiers, [v.table for v in validations])
    _record(spark, settings, validations, run_id, business_date)
    for validation in validations:
        for result in validation.warnings:
            log.warning("data-quality warning:\n%s", describe([(validation.table, result)]))
    return validations


def _validate_one(spark, context, datasource, spec, batch, run_id, business_date, history, present):
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    rows = batch.count()
    day_column = {"run": "_business_date", "as_of": "as_of_date"}.get(spec.scope)
    per = (spec.volume.per if spec.volume else ()) or (
        (day_column,) if day_column in batch.columns else ()
    )
    if not rows:
        days = 0  # nothing delivered, nothing expected: freshness judges whether it should be
    elif per:
        days = batch.select(*per).distinct().count()
    else:
        days = 1
    parameters: dict[str, Any] = {}
    if spec.freshness:
        parameters[FRESHNESS_MIN_DATE] = business_date - timedelta(spec.freshness.max_lag_days)
    if spec.volume:
        low, high = spec.volume.bounds(history.get(spec.table, []), days)
        parameters[VOLUME_MIN_ROWS], parameters[VOLUME_MAX_ROWS] = low, high
    # Built whole and saved once: adding to a stored suite writes the store per expectation.
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(
            name=spec.suite_name,
            expectations=[
                ExpectationConfiguration(**item).to_domain_obj()
                for item in spec.gx_expectations(business_date, present)
            ],
        )
    )
    try:
        asset = datasource.get_asset(spec.table)
    except LookupError:
        asset = datasource.add_dataframe_asset(name=spec.table)
    try:
        batch_definition = asset.get_batch_definition("whole")
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    # Saved by the checkpoint's add_or_update, which stores its validation definitions.
    definition = gx.ValidationDefinition(name=spec.table, data=batch_definition, suite=suite)

    def run_checkpoint(result_format: dict[str, Any]):
        checkpoint = context.checkpoints.add_or_update(
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
            run_id=RunIdentifier(run_name=f"{run_id}__{spec.table}"),
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
                validation.results.append(_result_row(spark, item, view))
    finally:
        spark.catalog.dropTempView(view)
    return validation, list(result.run_results)


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
    if not item.success and config.type == "unexpected_rows_expectation":
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
