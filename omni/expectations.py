"""The project's own Great Expectations expectation types, registered with GX on import.

``unexpected_row_count_expectation``: a suite's SQL rule (a query that returns the rows that
break it), judged on how many rows the query returns. GX's ``unexpected_rows_expectation``
runs every such query twice, once to count its rows and once to fetch up to 200 of them, even
when the result format never shows them: on a night's small batches each Spark job, not the
data, is what a rule costs. This one asks for the count alone; the sample of a failed rule's
rows is taken once, by ``omni.quality`` (``SAMPLE_ROWS`` of them).
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.expectations.core.unexpected_rows_expectation import (
    UnexpectedRowsExpectation,
)

ROW_COUNT = "unexpected_rows_query.row_count"


class UnexpectedRowCountExpectation(UnexpectedRowsExpectation):
    """Succeeds when the ``unexpected_rows_query`` returns no row; observes how many it does."""

    metric_dependencies: ClassVar[tuple[str, ...]] = (ROW_COUNT,)

    def _validate(
        self, metrics: dict, runtime_configuration: dict | None = None, execution_engine=None
    ) -> dict[str, Any]:
        count = metrics[ROW_COUNT]
        return {"success": count == 0, "result": {"observed_value": count}}
