"""Bronze ingest on a tiny landing zone: only complete folders, nothing twice, nothing lost."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import date

from pyspark.sql import functions as F

from jobs.bronze_ingest import ingest_source, ready_files
from omni import lakehouse, tables
from omni.sources import EVENTS, STORES


def _write_events(root, day, lines, ready=True, compress=False):
    folder = root / "ecommerce" / "events" / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if compress:
        (folder / "part-00000.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (folder / "part-00000.jsonl").write_text(text)
    if ready:
        (folder / "_SUCCESS").touch()


def _local(settings, tmp_path, name):
    """Settings with a landing zone in ``tmp_path`` and a lakehouse of its own."""
    lakehouse_dir = settings.lakehouse_dir.parent / name / "lakehouse"
    return replace(settings, landing_dir=tmp_path / "landing", lakehouse_dir=lakehouse_dir)


def test_ready_files_skip_incomplete_and_future_folders(tmp_path):
    _write_events(tmp_path, "2026-01-01", ["{}"])
    _write_events(tmp_path, "2026-01-02", ["{}"], ready=False)
    _write_events(tmp_path, "2026-01-03", ["{}"])
    found = ready_files(tmp_path, EVENTS, date(2026, 1, 2))
    assert found == {"ecommerce/events/dt=2026-01-01/part-00000.jsonl": date(2026, 1, 1)}


def test_ingest_keeps_every_line_and_adds_nothing_on_rerun(spark, settings, tmp_path):
    local = _local(settings, tmp_path, "bronze_test")
    _write_events(
        local.landing_dir,
        "2026-01-01",
        ['{"event_id":"E1","event_type":"page_view"}', "not json"],
        compress=True,
    )
    _write_events(local.landing_dir, "2026-01-02", ['{"event_id":"E2","extra":1}'])
    _write_events(local.landing_dir, "2026-01-03", ['{"event_id":"E3"}'], ready=False)

    first = ingest_source(spark, local, EVENTS, date(2026, 1, 3), "run-1")
    again = ingest_source(spark, local, EVENTS, date(2026, 1, 3), "run-2")
    assert first == {"files": 2, "records": 3}
    assert again == {"files": 0, "records": 0}

    table = lakehouse.read_table(spark, local, EVENTS.bronze)
    got = sorted(
        (
            (
                r["event_id"],
                r["_corrupt_record"],
                r["_raw_record"],
                str(r["_business_date"]),
                r["_source_file"],
                r["_source_line"],
                r["_run_id"],
            )
            for r in table.collect()
        ),
        key=str,
    )
    assert got == sorted(
        [
            (
                "E1",
                None,
                '{"event_id":"E1","event_type":"page_view"}',
                "2026-01-01",
                "ecommerce/events/dt=2026-01-01/part-00000.jsonl.gz",
                1,
                "run-1",
            ),
            (
                None,
                "not json",
                "not json",
                "2026-01-01",
                "ecommerce/events/dt=2026-01-01/part-00000.jsonl.gz",
                2,
                "run-1",
            ),
            (
                "E2",
                None,
                '{"event_id":"E2","extra":1}',
                "2026-01-02",
                "ecommerce/events/dt=2026-01-02/part-00000.jsonl",
                1,
                "run-1",
            ),
        ],
        key=str,
    )

    log = lakehouse.read_table(spark, local, tables.INGESTED_FILES)
    assert sorted((r["source_file"], r["records"], r["run_id"]) for r in log.collect()) == [
        ("ecommerce/events/dt=2026-01-01/part-00000.jsonl.gz", 2, "run-1"),
        ("ecommerce/events/dt=2026-01-02/part-00000.jsonl", 1, "run-1"),
    ]

    # A run killed after writing bronze but before the log: the next run logs, not re-reads.
    spark.sql(f"DELETE FROM delta.`{lakehouse.table_path(local, tables.INGESTED_FILES)}`")
    assert ingest_source(spark, local, EVENTS, date(2026, 1, 3), "run-2b")["records"] == 0
    assert lakehouse.read_table(spark, local, EVENTS.bronze).count() == 3
    assert lakehouse.read_table(spark, local, tables.INGESTED_FILES).count() == 2

    # The folder completes later: the next run takes it, and only it.
    (local.landing_dir / "ecommerce" / "events" / "dt=2026-01-03" / "_SUCCESS").touch()
    assert ingest_source(spark, local, EVENTS, date(2026, 1, 3), "run-3")["records"] == 1
    assert spark.table("bronze.ecommerce_events").where(F.col("_run_id") == "run-3").count() == 1


def test_csv_header_is_not_a_record(spark, settings, tmp_path):
    local = _local(settings, tmp_path, "bronze_csv")
    folder = local.landing_dir / "reference" / "stores" / "dt=2026-01-01"
    folder.mkdir(parents=True)
    (folder / "part-00000.csv").write_text(
        ",".join(STORES.header) + "\nS1,Paris,Paris,IDF,FR,Europe/Paris,2020-01-01\nS2,short\n"
    )
    (folder / "_SUCCESS").touch()
    assert ingest_source(spark, local, STORES, date(2026, 1, 1), "r")["records"] == 2


def test_line_numbers_follow_the_file_when_it_is_split(spark, settings, tmp_path):
    local = _local(settings, tmp_path, "bronze_lines")
    _write_events(
        local.landing_dir, "2026-01-01", [f'{{"event_id":"E{i}"}}' for i in range(1, 3001)]
    )
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    try:
        assert ingest_source(spark, local, EVENTS, date(2026, 1, 1), "r")["records"] == 3000
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    table = lakehouse.read_table(spark, local, EVENTS.bronze)
    wrong = table.where(F.col("event_id") != F.concat(F.lit("E"), F.col("_source_line")))
    assert wrong.count() == 0
