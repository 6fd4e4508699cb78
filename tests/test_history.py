"""The customer history the models read, at the Delta versions a training run records."""

from __future__ import annotations

from omni import lakehouse, tables
from omni.history import customer_history
from tests.conftest import settings_under
from tests.test_quality import batch


def _identities(spark, first: int, n: int):
    def change(i, row):
        row.update(identifier_type="customer_id", identifier=f"C{first + i}")
        row.update(customer_key=f"K{first + i}")

    return batch(spark, "silver.customer_identity", n, change)


def test_the_history_is_read_at_the_recorded_versions_not_at_the_latest(spark, settings, tmp_path):
    """A training run records its inputs' Delta versions before it reads them; a silver write
    landing in between (a rerun of the night, a late store) is not part of that training."""
    local = settings_under(settings, tmp_path, landing=False)
    lakehouse.append(spark, local, tables.SILVER_IDENTITY, _identities(spark, 0, 3))
    versions = {
        t.name: lakehouse.table_version(spark, local, t)
        for t in map(tables.table, tables.HISTORY_INPUTS)
    }
    lakehouse.append(spark, local, tables.SILVER_IDENTITY, _identities(spark, 3, 2))

    def keys(recorded):
        with customer_history(spark, local, recorded) as inputs:
            return sorted(r["customer_key"] for r in inputs["population"].collect())

    assert keys(versions) == ["K0", "K1", "K2"]
    assert keys(None) == ["K0", "K1", "K2", "K3", "K4"]
