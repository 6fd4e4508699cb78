"""Bronze ingest: append every new, complete landing file of every source to its bronze table.

Reads only ``dt=`` folders that hold ``_SUCCESS`` and are on or before ``--date``, skips files
already ingested (so a rerun adds nothing), and keeps every record, parsable or not: a line
that is not a JSON object or a CSV row of the wrong width is kept with its raw text in
``_corrupt_record`` for the silver job to quarantine. Each record keeps its file and line.

Which files are done comes from the small ``bronze.ingested_files`` log, not from a scan of
bronze, so the nightly cost follows the new files. The log is written after the data; a run
killed in between is repaired by the next one, which finds the files in bronze's partitions of
their dates and logs them instead of ingesting them twice.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings, parse_date
from omni.sources import SOURCES, Source

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz")
_DT = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


def ready_files(landing_dir: Path, source: Source, up_to: date) -> dict[str, date]:
    """Data files of complete folders on or before ``up_to``, relative path -> business date."""
    found: dict[str, date] = {}
    root = landing_dir / source.folder
    for folder in sorted(root.glob("dt=*")):
        match = _DT.match(folder.name)
        if not match:
            raise ValueError(f"{folder}: expected a folder named dt=YYYY-MM-DD")
        business_date = parse_date(match.group(1))
        if business_date > up_to or not (folder / "_SUCCESS").exists():
            continue
        for path in sorted(folder.rglob("part-*")):
            if path.name.endswith(DATA_SUFFIXES):
                found[str(path.relative_to(landing_dir))] = business_date
    return found


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


def read_lines(spark: SparkSession, settings: Settings, source: Source, files: list[str]):
    """Every line of ``files`` with its landing-relative file and 1-based line number.

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
        .agg(F.count("*").alias("n"), F.min("_position").alias("first"))
        .collect()
    )
    before: dict[str, int] = {}
    offsets = []
    for split in sorted(splits, key=lambda r: (r["_source_file"], r["_block"])):
        earlier = before.get(split["_source_file"], 0)
        offsets.append((split["_source_file"], split["_block"], earlier + 1 - split["first"]))
        before[split["_source_file"]] = earlier + split["n"]
    if not offsets:
        return lines.select("value", "_source_file", F.lit(None).cast("long").alias("_source_line"))
    offset = spark.createDataFrame(offsets, "_source_file string, _block long, _offset long")
    return lines.join(F.broadcast(offset), ["_source_file", "_block"]).select(
        "value", "_source_file", (F.col("_position") + F.col("_offset")).alias("_source_line")
    )


def already_ingested(
    spark: SparkSession, settings: Settings, source: Source, candidates: dict[str, date]
) -> set[str]:
    """Candidate files in the ingest log; files in bronze but not yet logged are logged now."""
    logged = {
        row["source_file"]
        for row in lakehouse.read_table(spark, settings, tables.INGESTED_FILES)
        .where(F.col("source") == source.name)
        .select("source_file")
        .collect()
    }
    unlogged = {path: day for path, day in candidates.items() if path not in logged}
    if not unlogged:
        return set(candidates)
    found = bronze_file_counts(spark, settings, source, unlogged, run_id=None)
    log_files(spark, settings, source, unlogged, found)
    return (set(candidates) - set(unlogged)) | set(found)


def bronze_file_counts(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    files: dict[str, date],
    run_id: str | None,
) -> dict[str, tuple[str, int]]:
    """Of ``files``, those in bronze: path -> (ingest run, records); reads their dates only."""
    bronze = lakehouse.read_table(spark, settings, source.bronze).where(
        lakehouse.date_literal("_business_date", set(files.values()))
        & F.col("_source_file").isin(sorted(files))
    )
    if run_id is not None:
        bronze = bronze.where(F.col("_run_id") == run_id)
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


def ingest_source(
    spark: SparkSession, settings: Settings, source: Source, up_to: date, run_id: str
) -> dict[str, int]:
    candidates = ready_files(settings.landing_dir, source, up_to)
    done = already_ingested(spark, settings, source, candidates) if candidates else set()
    new_files = {path: day for path, day in candidates.items() if path not in done}
    if not new_files:
        return {"files": 0, "records": 0}
    lines = read_lines(spark, settings, source, sorted(new_files))
    records = parse_records(lines, source).select(
        "*",
        F.current_timestamp().alias("_ingested_at"),
        F.lit(run_id).alias("_run_id"),
        F.to_date(F.regexp_extract("_source_file", r"/dt=(\d{4}-\d{2}-\d{2})/", 1)).alias(
            "_business_date"
        ),
    )
    written = lakehouse.append(spark, settings, source.bronze, records)
    counts = bronze_file_counts(spark, settings, source, new_files, run_id)
    log_files(spark, settings, source, new_files, counts, run_id)
    return {"files": len(new_files), "records": written}


def ingest_all(spark: SparkSession, settings: Settings, up_to: date, run_id: str) -> dict:
    return {
        source.name: ingest_source(spark, settings, source, up_to, run_id) for source in SOURCES
    }


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return ingest_all(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None) -> dict:
    return run_job("bronze_ingest", _body, job_parser(__doc__.splitlines()[0]), argv)


if __name__ == "__main__":
    main()
