"""Bronze ingest: append every new, complete landing file of every source to its bronze table.

Reads only complete delivery folders (``omni/landing.py``: a ``dt=`` folder with ``_SUCCESS``,
or a store's own folder of ``instore/pos`` with its ``_SUCCESS``) on or before ``--date``.
Every delivery folder, complete or waiting, is recorded in ``bronze.landing_folders``; folders
still waiting for their marker are reported in the log with how long they have waited, and are
read the night their marker arrives. Skips files
already ingested (so a rerun adds nothing), and keeps every record, parsable or not: a line
that is not a JSON object or a CSV row of the wrong width is kept with its raw text in
``_corrupt_record`` for the silver job to quarantine. Each record keeps its file and line.

Which files are done comes from the small ``bronze.ingested_files`` log, not from a scan of
bronze, so the nightly cost follows the new files. The log is written after the data; a run
killed in between is repaired by the next one, which finds the files in bronze's partitions of
their dates and logs them instead of ingesting them twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.landing import DeliveryFolder, complete_files, scan_source
from omni.sources import SOURCES, Source

log = logging.getLogger("omni.bronze")


def parse_records(lines: DataFrame, source: Source) -> DataFrame:
    """Parse raw lines (``value``, ``_source_file``, ``_source_line``) into string columns.

    Unknown JSON fields are ignored; unparsable records keep their text in ``_corrupt_record``.
    A CSV file's first line is its header when it spells the contract's header exactly.
    """
    schema = source.data_schema
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}
    if source.format == "jsonl":
        parsed = F.from_json("value", schema, options)
    else:
        header = (F.col("_source_line") == 1) & (F.col("value") == ",".join(source.header))
        lines = lines.where(~header)
        parsed = F.from_csv("value", schema, {**options, "escape": '"', "quote": '"'})
    return lines.select("*", parsed.alias("record")).select(
        *(F.col(f"record.`{name}`").alias(name) for name in source.data_columns),
        F.col("value").alias("_raw_record"),
        "_source_file",
        "_source_line",
    )


def read_lines(
    spark: SparkSession, settings: Settings, source: Source, files: list[str]
) -> tuple[DataFrame, dict[str, int]]:
    """Every line of ``files`` with its landing-relative file and 1-based line number, and the
    records of each file (its lines, a CSV header left out).

    A file may be split over several tasks. A split's lines are consecutive in its task, so
    ``monotonically_increasing_id`` numbers them in file order; a first, cheap pass counts the
    lines of every split, and each line's number is its position in the split plus the lines
    of the file's earlier splits. No shuffle of the lines themselves.
    """
    relative = F.regexp_extract(
        F.col("_metadata.file_path"), f"({re.escape(source.folder)}/dt=.*)$", 1
    )
    lines = spark.read.text([str(settings.landing_dir / path) for path in files]).select(
        "value",
        relative.alias("_source_file"),
        F.col("_metadata.file_block_start").alias("_block"),
        F.monotonically_increasing_id().alias("_position"),
    )
    splits = (
        lines.groupBy("_source_file", "_block")
        .agg(
            F.count("*").alias("n"),
            F.min("_position").alias("first"),
            F.min_by("value", "_position").alias("first_line"),
        )
        .collect()
    )
    before: dict[str, int] = {}
    offsets = []
    header = ",".join(source.header) if source.format == "csv" else None
    records: dict[str, int] = {path: 0 for path in files}
    for split in sorted(splits, key=lambda r: (r["_source_file"], r["_block"])):
        path = split["_source_file"]
        earlier = before.get(path, 0)
        offsets.append((path, split["_block"], earlier + 1 - split["first"]))
        before[path] = earlier + split["n"]
        # parse_records drops a CSV file's first line when it is the header
        skipped = earlier == 0 and header is not None and split["first_line"] == header
        records[path] = records.get(path, 0) + split["n"] - skipped
    if not offsets:
        empty = lines.select(
            "value", "_source_file", F.lit(None).cast("long").alias("_source_line")
        )
        return empty, records
    offset = spark.createDataFrame(offsets, "_source_file string, _block long, _offset long")
    numbered = lines.join(F.broadcast(offset), ["_source_file", "_block"]).select(
        "value", "_source_file", (F.col("_position") + F.col("_offset")).alias("_source_line")
    )
    return numbered, records


@dataclass(frozen=True)
class Known:
    """What bronze knew before the run, read once for every source: the files of the ingest
    log and the delivery folders already seen, by source."""

    logged: dict[str, frozenset[str]]
    folders: dict[str, dict[str, Row]]

    @classmethod
    def read(cls, spark: SparkSession, settings: Settings) -> Known:
        logged: dict[str, set[str]] = {}
        for row in (
            lakehouse.read_table(spark, settings, tables.INGESTED_FILES)
            .select("source", "source_file")
            .collect()
        ):
            logged.setdefault(row["source"], set()).add(row["source_file"])
        folders: dict[str, dict[str, Row]] = {}
        for row in lakehouse.read_table(spark, settings, tables.LANDING_FOLDERS).collect():
            folders.setdefault(row["source"], {})[row["folder"]] = row
        return cls({k: frozenset(v) for k, v in logged.items()}, folders)


def already_ingested(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    candidates: dict[str, date],
    logged: frozenset[str],
) -> set[str]:
    """Candidate files in the ingest log; files in bronze but not yet logged are logged now."""
    unlogged = {path: day for path, day in candidates.items() if path not in logged}
    if not unlogged:
        return set(candidates)
    found = bronze_file_counts(spark, settings, source, unlogged)
    log_files(spark, settings, source, unlogged, found)
    return (set(candidates) - set(unlogged)) | set(found)


def bronze_file_counts(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    files: dict[str, date],
) -> dict[str, tuple[str, int]]:
    """Of ``files``, those in bronze: path -> (ingest run, records); reads their dates only."""
    bronze = lakehouse.read_table(spark, settings, source.bronze).where(
        lakehouse.date_literal("_business_date", set(files.values()))
        & F.col("_source_file").isin(sorted(files))
    )
    counts = bronze.groupBy("_source_file", "_run_id").agg(F.count("*").alias("n")).collect()
    return {row["_source_file"]: (row["_run_id"], row["n"]) for row in counts}


def log_files(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    files: dict[str, date],
    counts: dict[str, tuple[str, int]],
    run_id: str | None = None,
) -> None:
    """Log ``files`` that are in bronze (``counts``) or were ingested by ``run_id`` with no row."""
    rows = []
    for path, day in sorted(files.items()):
        if path in counts or run_id is not None:
            ingest_run, records = counts.get(path, (run_id, 0))
            rows.append((source.name, path, day, records, ingest_run))
    if rows:
        frame = spark.createDataFrame(
            rows,
            "source string, source_file string, business_date date, records long, run_id string",
        ).withColumn("ingested_at", F.current_timestamp())
        lakehouse.merge(spark, settings, tables.INGESTED_FILES, frame, update=False)


def record_delivery_folders(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    folders: list[DeliveryFolder],
    run_id: str,
    known: dict[str, Row],
) -> list[dict]:
    """Merge the scanned folders into ``bronze.landing_folders``; return the waiting ones.

    A folder keeps the time a run first saw it (``first_seen_at``: waiting since) and first
    found it complete. Only folders that are new, still waiting or changed (a marker or a file
    arrived) are written: a year of complete folders is not rewritten every night.
    """
    table = tables.LANDING_FOLDERS
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for folder in folders:
        before = known.get(folder.folder)
        if (
            before is not None
            and folder.complete
            and before["status"] == folder.status
            and before["data_files"] == len(folder.data_files)
        ):
            continue  # complete before, and nothing came since
        completed = before["completed_at"] if before is not None else None
        rows.append(
            {
                "source": source.name,
                "folder": folder.folder,
                "business_date": folder.business_date,
                "store_id": folder.store_id,
                "status": folder.status,
                "data_files": len(folder.data_files),
                "first_seen_at": before["first_seen_at"] if before is not None else now,
                "completed_at": (completed or now) if folder.complete else None,
                "first_run_id": before["first_run_id"] if before is not None else run_id,
                "checked_run_id": run_id,
                "checked_at": now,
            }
        )
    if rows:
        frame = spark.createDataFrame(
            [tuple(row[c] for c in table.column_names) for row in rows], table.schema_ddl()
        )
        lakehouse.merge(spark, settings, table, frame)
    waiting = [row for row in rows if row["status"] == "waiting"]
    for row in waiting:
        hours = (now - row["first_seen_at"]).total_seconds() / 3600
        log.warning(
            "LANDING FOLDER WAITING: %s %s has no _SUCCESS yet: not read; waiting since %s "
            "(%.1f h)",
            source.name,
            row["folder"],
            row["first_seen_at"].isoformat(sep=" ", timespec="seconds"),
            hours,
        )
    return waiting


def ingest_source(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    up_to: date,
    run_id: str,
    known: Known | None = None,
) -> dict:
    """Ingest ``source``'s new complete files up to ``up_to``; ``known``: what bronze knew
    before the run (read here when not given)."""
    known = known or Known.read(spark, settings)
    folders = scan_source(settings.landing_dir, source, up_to)
    waiting = record_delivery_folders(
        spark, settings, source, folders, run_id, known.folders.get(source.name, {})
    )
    candidates = complete_files(folders)
    logged = known.logged.get(source.name, frozenset())
    done = already_ingested(spark, settings, source, candidates, logged) if candidates else set()
    new_files = {path: day for path, day in candidates.items() if path not in done}
    counts = {
        "files": len(new_files),
        "records": 0,
        "complete_folders": sum(folder.complete for folder in folders),
        "empty_folders": sum(folder.complete and not folder.data_files for folder in folders),
        "waiting_folders": [row["folder"] for row in waiting],
    }
    if not new_files:
        return counts
    lines, per_file = read_lines(spark, settings, source, sorted(new_files))
    records = parse_records(lines, source).select(
        "*",
        F.current_timestamp().alias("_ingested_at"),
        F.lit(run_id).alias("_run_id"),
        F.to_date(F.regexp_extract("_source_file", r"/dt=(\d{4}-\d{2}-\d{2})/", 1)).alias(
            "_business_date"
        ),
    )
    written = lakehouse.append(spark, settings, source.bronze, records)
    if written != sum(per_file.values()):
        raise RuntimeError(
            f"{source.bronze.name}: {written} rows written for {sum(per_file.values())} records "
            f"counted in {len(per_file)} files: expected every line but CSV headers as a row"
        )
    files = {path: (run_id, n) for path, n in per_file.items() if n}
    log_files(spark, settings, source, new_files, files, run_id)
    return {**counts, "records": written}


def ingest_all(spark: SparkSession, settings: Settings, up_to: date, run_id: str) -> dict:
    known = Known.read(spark, settings)
    return {
        source.name: ingest_source(spark, settings, source, up_to, run_id, known)
        for source in SOURCES
    }


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return ingest_all(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("bronze_ingest", _body, job_parser(__doc__.splitlines()[0]), argv, session)


if __name__ == "__main__":
    main()
