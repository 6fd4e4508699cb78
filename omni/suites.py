"""
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
  runs. A unit is a distinct value of the ``per`` columns, each a Spark SQL expression over
  the batch (default: the scope's day column, so a business day; ``["_business_date",
  "store_id"]`` makes it an open store's day). A batch with no rows has no unit and expects
  none.

A rule written as SQL (a query returning the rows that break it, ``{batch}`` naming the
batch) has the type ``unexpected_row_count_expectation`` (``omni.expectations``): GX's own
``unexpected_rows_expectation`` works too, at twice the Spark jobs.

``omni.quality`` runs the suites; ``omni.gates`` reads their results for model promotion.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from omni.config import REPO_ROOT
from omni.tables import Table, layer_tables

EXPECTATIONS_DIR = REPO_ROOT / "expectations"
SCOPES = ("run", "as_of", "all")
# Our severities and the GX ones they are stored as (GX also knows "info", unused here).
SEVERITIES = {"blocking": "critical", "warning": "warning"}
FRESHNESS_MIN_DATE = "freshness_min_date"
VOLUME_MIN_ROWS = "volume_min_rows"
VOLUME_MAX_ROWS = "volume_max_rows"
# A store silent this long is taken as closed, and no longer warned about.
STORE_SILENCE_DAYS = 30
# The type of a rule written as SQL (``omni.expectations``).
SQL_RULE = "unexpected_row_count_expectation"


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
                "type": SQL_RULE,
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
                    "type": SQL_RULE,
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
    # The columns (SQL expressions) whose distinct values are the batch's delivery units; ()
    # for the scope's day.
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


def suite_tables(layers: list[str], table_names: list[str] | None = None) -> list[Table]:
    """The tables of ``layers`` that have a suite (all of them, or only ``table_names``)."""
    found = [
        table
        for layer in layers
        for table in layer_tables(layer)
        if suite_path(table.name).exists() and (not table_names or table.name in table_names)
    ]
    unknown = sorted(set(table_names or ()) - {t.name for t in found})
    if unknown:
        raise ValueError(
            f"no suite for {unknown} in layers {layers}: expected tables with a file under "
            f"{EXPECTATIONS_DIR}"
        )
    if not found:
        raise ValueError(f"layers {layers} have no expectation suites under {EXPECTATIONS_DIR}")
    return found


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
        raise ValueError(
            f"{path}: volume per={per!r}, expected a list of columns (SQL expressions)"
        )
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
