"""Checks that hold on any lake the nightly jobs built: shared by the two-night lake
(``tests/test_lakehouse_jobs.py``) and the year (``tests/test_year.py``)."""

from __future__ import annotations

from pyspark.sql import functions as F

from omni import lakehouse, tables


def assert_counts_reconcile(spark, settings) -> None:
    """Per source, every bronze record read is accepted, quarantined or a duplicate, and the
    ingest log counts every bronze record."""
    read = lambda t: lakehouse.read_table(spark, settings, t)  # noqa: E731
    recon = (
        read(tables.RECONCILIATION)
        .groupBy("source")
        .agg(
            F.sum("read").alias("read"),
            F.sum(F.col("accepted") + F.col("quarantined") + F.col("duplicates")).alias("placed"),
        )
    )
    bronze = {
        t.name.split(".")[1]: read(t).count()
        for t in tables.ALL_TABLES
        if t.layer == "bronze" and t not in (tables.INGESTED_FILES, tables.LANDING_FOLDERS)
    }
    got = {r["source"]: (r["read"], r["placed"]) for r in recon.collect()}
    assert got == {name: (n, n) for name, n in bronze.items()}
    log = read(tables.INGESTED_FILES)
    assert log.agg(F.sum("records")).first()[0] == sum(bronze.values())


def assert_keys_stable(spark, settings, first: dict, second: dict) -> None:
    """``first`` and ``second``: identifier -> customer key after two consecutive nights."""
    moved: dict[str, set[str]] = {}
    for identifier, key in first.items():
        moved.setdefault(key, set()).add(second[identifier])
    # A customer of the first night is still one customer, under one key ...
    assert all(len(new) == 1 for new in moved.values())
    # ... its own key unless it merged with another, and then the key of one of the two.
    survivors = {key for key, new in moved.items() if new == {key}}
    assert len(survivors) >= 0.9 * len(moved)
    # (a customer new tonight can take in an older one: a CRM record for a known loyalty card)
    new_tonight = {second[identifier] for identifier in set(second) - set(first)}
    for key, (new,) in moved.items():
        if new != key:
            assert new in moved or new in new_tonight, f"{key} became {new}, a key from nowhere"
    # Profiles follow the keys: only tonight's keys, one row each.
    profile = lakehouse.read_table(spark, settings, tables.GOLD_PROFILE)
    profile_keys = [r["customer_key"] for r in profile.collect()]
    assert len(profile_keys) == len(set(profile_keys))
    assert set(profile_keys) <= set(second.values())
