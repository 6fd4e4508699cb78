"""Bronze ingest: append every new, complete landing file of every source to its bronze table.

Reads only ``dt=`` folders that hold ``_SUCCESS`` and are on or before ``--date``, skips files
already ingested (so a rerun adds nothing), and keeps every record, parsable or not: a line
that is not a JSON object or a CSV row of the wrong width is kept with its raw text in
``_corrupt_record`` for the silver job to quarantine.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from omni import lakehouse
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
    """Parse raw lines (``value``, ``_source_file``) into the source's string columns.

    Unknown JSON fields are ignored; unparsable records keep their text in ``_corrupt_record``.
    """
    types = {c.name: c.type for c in source.bronze.columns}
    schema = ", ".join(f"`{name}` {types[name]}" for name in source.data_columns)
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}
    if source.format == "jsonl":
        parsed = F.from_json("value", schema, options)
    else:
        lines = lines.where(F.col("value") != ",".join(source.header))
        parsed = F.from_csv("value", schema, {**options, "escape": '"', "quote": '"'})
    return lines.select("*", parsed.alias("record")).select(
        *(F.col(f"record.`{name}`").alias(name) for name in source.data_columns),
        F.col("value").alias("_raw_record"),
        "_source_file",
    )


def ingest_source(
    spark: SparkSession, settings: Settings, source: Source, up_to: date, run_id: str
) -> dict[str, int]:
    candidates = ready_files(settings.landing_dir, source, up_to)
    if not candidates:
        return {"files": 0, "records": 0}
    existing = lakehouse.read_table(spark, settings, source.bronze)
    done = {
        row["_source_file"]
        for row in existing.where(
            lakehouse.date_literal("_business_date", set(candidates.values()))
        )
        .select("_source_file")
        .distinct()
        .collect()
    }
    new_files = {path: day for path, day in candidates.items() if path not in done}
    if not new_files:
        return {"files": 0, "records": 0}
    absolute = [str(settings.landing_dir / path) for path in sorted(new_files)]
    relative = F.regexp_extract(
        F.col("_metadata.file_path"), f"({re.escape(source.folder)}/dt=.*)$", 1
    )
    lines = spark.read.text(absolute).select("value", relative.alias("_source_file"))
    records = parse_records(lines, source).select(
        "*",
        F.current_timestamp().alias("_ingested_at"),
        F.lit(run_id).alias("_run_id"),
        F.to_date(F.regexp_extract("_source_file", r"/dt=(\d{4}-\d{2}-\d{2})/", 1)).alias(
            "_business_date"
        ),
    )
    written = lakehouse.append(spark, settings, source.bronze, records)
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
