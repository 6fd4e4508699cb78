"""Great Expectations 1.x on Spark DataFrames: suites from ``expectations/``, found by table name.

A suite file ``expectations/<layer>/<table>.json`` lists expectations as GX configurations
(``type`` and ``kwargs``) plus the batch ``scope``: ``run`` (rows of this ingest run),
``as_of`` (rows of the run's as-of date) or ``all``. Validation runs through a GX checkpoint
that also updates Data Docs; a failed expectation fails the validation.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from omni.config import REPO_ROOT

log = logging.getLogger(__name__)
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
SCOPES = ("run", "as_of", "all")


@dataclass(frozen=True)
class SuiteSpec:
    table: str
    scope: str
    expectations: tuple[dict[str, Any], ...]
    path: Path

    @property
    def suite_name(self) -> str:
        return self.table


def suite_path(table_name: str) -> Path:
    layer, name = table_name.split(".", 1)
    return EXPECTATIONS_DIR / layer / f"{name}.json"


def load_suite(table_name: str) -> SuiteSpec:
    """Read the suite for ``table_name``, failing loudly on a malformed file."""
    path = suite_path(table_name)
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite for {table_name}: expected {path}")
    spec = json.loads(path.read_text())
    scope = spec.get("scope", "all")
    if scope not in SCOPES:
        raise ValueError(f"{path}: scope={scope!r}, expected one of {SCOPES}")
    if spec.get("table") != table_name:
        raise ValueError(f"{path}: table={spec.get('table')!r}, expected {table_name!r}")
    expectations = tuple(spec.get("expectations") or ())
    if not expectations:
        raise ValueError(f"{path}: expected at least one expectation")
    for item in expectations:
        if set(item) - {"type", "kwargs", "meta"} or "type" not in item:
            raise ValueError(f"{path}: expectation {item!r} needs 'type' and 'kwargs' only")
    return SuiteSpec(table_name, scope, expectations, path)


def _context(root: Path):
    # No usage analytics: the machines have no internet and nothing should leave them.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


@dataclass(frozen=True)
class ValidationOutcome:
    table: str
    success: bool
    evaluated: int
    failed: list[dict[str, Any]]
    rows: int


def validate_frames(
    frames: dict[str, Any], gx_root: Path, run_name: str
) -> list[ValidationOutcome]:
    """Validate each DataFrame against its table's suite with one GX checkpoint."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    context = _context(gx_root)
    datasource = context.data_sources.add_or_update_spark(name="lakehouse")
    outcomes = []
    for table_name, df in frames.items():
        spec = load_suite(table_name)
        suite = gx.ExpectationSuite(name=spec.suite_name)
        for item in spec.expectations:
            config = ExpectationConfiguration(
                type=item["type"], kwargs=item.get("kwargs", {}), meta=item.get("meta")
            )
            suite.add_expectation(config.to_domain_obj())
        suite = context.suites.add_or_update(suite)
        try:
            asset = datasource.get_asset(table_name)
        except LookupError:
            asset = datasource.add_dataframe_asset(name=table_name)
        try:
            batch_definition = asset.get_batch_definition("whole")
        except KeyError:
            batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=table_name, data=batch_definition, suite=suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"{table_name}_checkpoint",
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="update_data_docs")],
                result_format={"result_format": "SUMMARY"},
            )
        )
        result = checkpoint.run(
            batch_parameters={"dataframe": df},
            run_id=None if not run_name else _run_identifier(run_name),
        )
        outcomes.append(_outcome(table_name, result, df))
    return outcomes


def _run_identifier(run_name: str):
    from great_expectations.core.run_identifier import RunIdentifier

    return RunIdentifier(run_name=run_name)


def _outcome(table_name: str, result: Any, df: Any) -> ValidationOutcome:
    failed = []
    evaluated = 0
    for validation in result.run_results.values():
        for item in validation.results:
            evaluated += 1
            if not item.success:
                config = item.expectation_config
                failed.append(
                    {
                        "expectation": config.type,
                        "kwargs": {k: v for k, v in config.kwargs.items() if k != "batch_id"},
                        "observed": item.result.get("observed_value"),
                        "unexpected_count": item.result.get("unexpected_count"),
                        "partial_unexpected": item.result.get("partial_unexpected_list", [])[:5],
                    }
                )
    return ValidationOutcome(table_name, bool(result.success), evaluated, failed, df.count())


def describe_failures(outcomes: list[ValidationOutcome]) -> str:
    lines = []
    for outcome in outcomes:
        for failure in outcome.failed:
            lines.append(
                f"{outcome.table}: {failure['expectation']} {failure['kwargs']} failed "
                f"(observed {failure['observed']!r}, unexpected {failure['unexpected_count']}, "
                f"e.g. {failure['partial_unexpected']})"
            )
    return "\n".join(lines)


def scope_filter(scope: str, run_id: str, as_of: date) -> str | None:
    """The SQL filter that selects a suite's batch."""
    if scope == "run":
        return f"_run_id = '{run_id}'"
    if scope == "as_of":
        return f"as_of_date = DATE'{as_of}'"
    return None
