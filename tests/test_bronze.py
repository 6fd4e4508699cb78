"""Bronze ingest on a tiny landing zone: only complete folders, nothing twice, nothing lost."""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import date

import pytest
from pyspark.sql import functions as F

from jobs import bronze_ingest
from jobs.bronze_ingest import ingest_source
from omni import lakehouse, tables
from omni.landing import NothingToProcessError, check_dates, ready_files, scan_source
from omni.sources import EVENTS, POS, STORES


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

    first = ingest_source(spark, local, EVENTS, date(2026, 1, 2), "run-1")
    again = ingest_source(spark, local, EVENTS, date(2026, 1, 2), "run-2")
    assert first.pop("audit")["published"] and again.pop("audit")["published"]
    assert first == {
        "files": 2,
        "records": 3,
        "complete_folders": 2,
        "empty_folders": 0,
        "waiting_folders": [],
    }
    assert again == {**first, "files": 0, "records": 0}

    table = lakehouse.read_table(spark, local, EVENTS.bronze)
    # Bronze parses nothing: the line as delivered, where it came from, when, by which run.
    assert table.columns == [c.name for c in tables.INGEST_METADATA]
    got = sorted(
        (
            (
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
    day_1 = "ecommerce/events/dt=2026-01-01/part-00000.jsonl.gz"
    assert got == sorted(
        [
            ('{"event_id":"E1","event_type":"page_view"}', "2026-01-01", day_1, 1, "run-1"),
            ("not json", "2026-01-01", day_1, 2, "run-1"),
            (
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
    assert ingest_source(spark, local, EVENTS, date(2026, 1, 2), "run-2b")["records"] == 0
    assert lakehouse.read_table(spark, local, EVENTS.bronze).count() == 3
    assert lakehouse.read_table(spark, local, tables.INGESTED_FILES).count() == 2

    # The night of the 3rd: its folder still waits for its marker, so the source is late and
    # the freshness gate fails; the waiting folder is reported.
    late = ingest_source(spark, local, EVENTS, date(2026, 1, 3), "run-3a")
    assert late["waiting_folders"] == ["ecommerce/events/dt=2026-01-03"]
    assert not late["audit"]["published"] and late["audit"]["blocking_failures"] == 1
    # The folder completes later: the next run takes it, and only it.
    (local.landing_dir / "ecommerce" / "events" / "dt=2026-01-03" / "_SUCCESS").touch()
    assert ingest_source(spark, local, EVENTS, date(2026, 1, 3), "run-3")["records"] == 1
    assert spark.table("bronze.ecommerce_events").where(F.col("_run_id") == "run-3").count() == 1


def test_csv_header_is_not_a_record(spark, settings, tmp_path):
    local = _local(settings, tmp_path, "bronze_csv")
    folder = local.landing_dir / "reference" / "stores" / "dt=2026-01-01"
    folder.mkdir(parents=True)
    header = ",".join(STORES.header)
    (folder / "part-00000.csv").write_text(
        f"{header}\nS1,Paris,Paris,IDF,FR,Europe/Paris,2020-01-01\nS2,short\n{header}\n"
    )
    (folder / "_SUCCESS").touch()
    assert ingest_source(spark, local, STORES, date(2026, 1, 1), "r")["records"] == 3
    rows = lakehouse.read_table(spark, local, STORES.bronze).orderBy("_source_line").collect()
    # Only the first line is the header: a header text further down is a record, kept.
    assert [(r["_source_line"], r["_raw_record"]) for r in rows] == [
        (2, "S1,Paris,Paris,IDF,FR,Europe/Paris,2020-01-01"),
        (3, "S2,short"),
        (4, header),
    ]


@pytest.mark.parametrize("whole", [True, False], ids=["read-whole", "read-in-splits"])
def test_line_numbers_follow_the_file(spark, settings, tmp_path, monkeypatch, whole):
    """A file read whole and one too big for that (read in 4 kB splits) number alike."""
    local = _local(settings, tmp_path, f"bronze_lines_{whole}")
    _write_events(
        local.landing_dir, "2026-01-01", [f'{{"event_id":"E{i}"}}' for i in range(1, 3001)]
    )
    if not whole:
        monkeypatch.setattr(bronze_ingest, "WHOLE_FILE_MAX_BYTES", 0)
        spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    try:
        assert ingest_source(spark, local, EVENTS, date(2026, 1, 1), "r")["records"] == 3000
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    table = lakehouse.read_table(spark, local, EVENTS.bronze)
    event_id = F.get_json_object("_raw_record", "$.event_id")
    wrong = table.where(event_id != F.concat(F.lit("E"), F.col("_source_line")))
    assert wrong.count() == 0
    assert table.select("_source_line").distinct().count() == 3000


def test_line_ends_as_spark_reads_them(spark, settings, tmp_path):
    """Windows and old Mac line ends, a blank line kept as a record, no final line end, an
    empty file: the lines are the ones Spark's own text reader finds."""
    local = _local(settings, tmp_path, "bronze_line_ends")
    folder = local.landing_dir / "ecommerce" / "events" / "dt=2026-01-01"
    folder.mkdir(parents=True)
    texts = {
        "part-00000.jsonl": '{"a":1}\r\n{"a":2}\r\n\r\n{"a":4}',
        "part-00001.jsonl": '{"b":1}\r{"b":2}\n',
        "part-00002.jsonl": "",
    }
    for name, text in texts.items():
        (folder / name).write_bytes(text.encode())
    (folder / "_SUCCESS").touch()
    assert ingest_source(spark, local, EVENTS, date(2026, 1, 1), "r")["files"] == 3
    got = sorted(
        (r["_source_file"].rsplit("/", 1)[1], r["_source_line"], r["_raw_record"])
        for r in lakehouse.read_table(spark, local, EVENTS.bronze).collect()
    )
    spark_reads = sorted(
        (name, line, row["value"])
        for name in texts
        for line, row in enumerate(spark.read.text(str(folder / name)).collect(), start=1)
    )
    assert got == spark_reads
    assert ("part-00000.jsonl", 3, "") in got
    log = lakehouse.read_table(spark, local, tables.INGESTED_FILES)
    assert sorted((r["source_file"].rsplit("/", 1)[1], r["records"]) for r in log.collect()) == [
        ("part-00000.jsonl", 4),
        ("part-00001.jsonl", 2),
        ("part-00002.jsonl", 0),
    ]


POS_HEADER = ",".join(POS.header)


def _write_pos(root, day, store, rows=(), store_marker=True, day_marker=False):
    """A store's own folder of instore/pos, with its own _SUCCESS (or the day's)."""
    folder = root / "instore" / "pos" / f"dt={day}" / f"store_id={store}"
    folder.mkdir(parents=True, exist_ok=True)
    if rows:
        (folder / "part-00000.csv").write_text("\n".join([POS_HEADER, *rows]) + "\n")
    if store_marker:
        (folder / "_SUCCESS").touch()
    if day_marker:
        (folder.parent / "_SUCCESS").touch()


def _pos_row(transaction, store, day):
    return f"{transaction},1,{store},R1,{day} 10:00:00,SKU-1,1,9.99,0.00,card,,EUR"


def test_stores_that_export_on_their_own_are_read_when_their_marker_arrives(
    spark, settings, tmp_path
):
    local = _local(settings, tmp_path, "bronze_stores")
    root = local.landing_dir
    _write_pos(root, "2026-01-01", "S1", [_pos_row("T1", "S1", "2026-01-01")])
    _write_pos(root, "2026-01-01", "S2", [_pos_row("T2", "S2", "2026-01-01")], store_marker=False)
    _write_pos(root, "2026-01-01", "S3")  # a complete folder with no data file: closed
    _write_pos(root, "2026-01-02", "S1", [_pos_row("T3", "S1", "2026-01-02")], store_marker=False)

    first = ingest_source(spark, local, POS, date(2026, 1, 1), "night-1")
    assert (first["files"], first["records"], first["empty_folders"]) == (1, 1, 1)
    # The folder of the day after the run's date belongs to a later night: not reported.
    assert first["waiting_folders"] == ["instore/pos/dt=2026-01-01/store_id=S2"]
    folders = lakehouse.read_table(spark, local, tables.LANDING_FOLDERS)
    assert sorted(
        (r["folder"], r["store_id"], r["status"], r["data_files"], r["completed_at"] is None)
        for r in folders.collect()
    ) == [
        ("instore/pos/dt=2026-01-01/store_id=S1", "S1", "complete", 1, False),
        ("instore/pos/dt=2026-01-01/store_id=S2", "S2", "waiting", 1, True),
        ("instore/pos/dt=2026-01-01/store_id=S3", "S3", "complete", 0, False),
    ]
    waited = folders.where(F.col("store_id") == "S2").first()

    # Store S2's marker arrives a night late: read then, and only its file.
    (root / "instore" / "pos" / "dt=2026-01-01" / "store_id=S2" / "_SUCCESS").touch()
    _write_pos(root, "2026-01-02", "S1", store_marker=False, day_marker=True)
    second = ingest_source(spark, local, POS, date(2026, 1, 2), "night-2")
    assert (second["files"], second["records"], second["waiting_folders"]) == (2, 2, [])
    bronze = lakehouse.read_table(spark, local, POS.bronze)
    assert sorted((r["_raw_record"].split(",")[0], r["_run_id"]) for r in bronze.collect()) == [
        ("T1", "night-1"),
        ("T2", "night-2"),
        ("T3", "night-2"),
    ]
    now_complete = (
        lakehouse.read_table(spark, local, tables.LANDING_FOLDERS)
        .where(F.col("store_id") == "S2")
        .first()
    )
    assert now_complete["status"] == "complete"
    assert now_complete["first_seen_at"] == waited["first_seen_at"]
    assert now_complete["first_run_id"] == "night-1"
    assert now_complete["checked_run_id"] == "night-2"
    # A folder complete before and unchanged since is not written again.
    unchanged = (
        lakehouse.read_table(spark, local, tables.LANDING_FOLDERS)
        .where(F.col("folder") == "instore/pos/dt=2026-01-01/store_id=S1")
        .first()
    )
    assert unchanged["checked_run_id"] == "night-1"


def test_a_source_with_no_folder_is_a_channel_the_retailer_lacks(spark, settings, tmp_path):
    local = _local(settings, tmp_path, "bronze_no_channel")
    _write_pos(local.landing_dir, "2026-01-01", "S1", [_pos_row("T1", "S1", "2026-01-01")])
    assert scan_source(local.landing_dir, EVENTS) == []
    counts = ingest_source(spark, local, EVENTS, date(2026, 1, 1), "r")
    assert (counts["files"], counts["records"], counts["complete_folders"]) == (0, 0, 0)
    assert check_dates(local.landing_dir, date(2026, 1, 1), date(2026, 1, 1)) == {
        "pos_lines": "2026-01-01"
    }


def test_a_day_marker_completes_every_store_and_a_bare_day_is_a_day_without_records(tmp_path):
    _write_pos(tmp_path, "2026-01-01", "S1", ["x"], store_marker=False, day_marker=True)
    _write_pos(tmp_path, "2026-01-01", "S2", ["y"], store_marker=False)
    holiday = tmp_path / "instore" / "pos" / "dt=2026-01-02"
    holiday.mkdir(parents=True)
    (holiday / "_SUCCESS").touch()
    found = {
        (f.folder, f.store_id, f.complete, len(f.data_files)) for f in scan_source(tmp_path, POS)
    }
    assert found == {
        ("instore/pos/dt=2026-01-01/store_id=S1", "S1", True, 1),
        ("instore/pos/dt=2026-01-01/store_id=S2", "S2", True, 1),
        ("instore/pos/dt=2026-01-02", None, True, 0),
    }
    (tmp_path / "instore" / "pos" / "dt=2026-01-03" / "shop-7").mkdir(parents=True)
    with pytest.raises(ValueError, match="shop-7: expected a store folder named store_id="):
        scan_source(tmp_path, POS)


def test_dates_the_landing_zone_does_not_hold_are_refused_with_what_it_holds(tmp_path):
    with pytest.raises(NothingToProcessError, match="holds no complete delivery folder"):
        check_dates(tmp_path, date(2024, 9, 30), date(2024, 9, 30))
    _write_events(tmp_path, "2026-01-01", ["{}"])
    _write_events(tmp_path, "2026-01-02", ["{}"], ready=False)
    with pytest.raises(NothingToProcessError, match="2024-09-30: no source .* from 2026-01-01"):
        check_dates(tmp_path, date(2024, 9, 30), date(2024, 9, 30))
    with pytest.raises(NothingToProcessError, match="2026-01-02: no source"):
        check_dates(tmp_path, date(2026, 1, 1), date(2026, 1, 2))
    with pytest.raises(NothingToProcessError, match="start date 2025-12-01 is before"):
        check_dates(tmp_path, date(2025, 12, 1), date(2026, 1, 1))
    assert check_dates(tmp_path, date(2026, 1, 1), date(2026, 1, 1)) == {
        "ecommerce_events": "2026-01-01"
    }
