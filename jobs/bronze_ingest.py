"""Bronze ingest: append every new, complete landing file of every source to its bronze table.

Reads only complete delivery folders (``omni/landing.py``: a ``dt=`` folder with ``_SUCCESS``,
or a store's own folder of ``instore/pos`` with its ``_SUCCESS``) on or before ``--date``.
Every delivery folder, complete or waiting, is recorded in ``bronze.landing_folders``; folders
still waiting for their marker are reported in the log with how long they have waited, and are
read the night their marker arrives. Skips files already ingested (so a rerun adds
nothing), and keeps every line as delivered, its text with its file and line: bronze parses
nothing, silver parses every record once and quarantines what does not parse.

Which files are done comes from the small ``bronze.ingested_files`` log, not from a scan of
bronze, so the nightly cost follows the new files. The log is written after the data; a run
killed in between is repaired by the next one, which finds the files in bronze's partitions of
their dates and logs them instead of ingesting them twice. Every source's batch and log rows
are staged and the bronze suites judge them before any is written (``omni.publish``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import reduce

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from omni import lakehouse, tables
from omni.cli import job_parser, run_job
from omni.config import Settings
from omni.landing import DeliveryFolder, complete_files, scan_source
from omni.publish import Staging
from omni.sources import SOURCES, Source

log = logging.getLogger("omni.bronze")


# A file up to this size (its text, a gzip file's estimated at 8 times its size) is read
# whole by one task; a bigger one is read in splits, which costs a counting pass.
WHOLE_FILE_MAX_BYTES = 512 * 1024 * 1024
GZIP_RATIO = 8
_LINE_END = r"\r\n|\r|\n"  # what Spark's text reader splits lines at


def read_lines(
    spark: SparkSession, settings: Settings, source: Source, files: list[str]
) -> DataFrame:
    """Every record of ``files``: its text (``_raw_record``), landing-relative file and 1-based
    line number; a CSV file's first line is left out when it spells the contract's header.

    A file is read whole by one task and split into its lines there, so a line's number is
    its position in the file, in the one pass over the data. Files too big to hold as one
    text (``WHOLE_FILE_MAX_BYTES``) are read in splits instead (``_split_lines``).
    """
    paths = {path: settings.landing_dir / path for path in files}
    big = sorted(path for path, local in paths.items() if _text_bytes(local) > WHOLE_FILE_MAX_BYTES)
    whole = [str(local) for path, local in paths.items() if path not in big]
    frames = []
    if whole:
        text = F.regexp_replace("value", f"({_LINE_END})\\z", "")  # the last line's end
        lines = F.when(text == "", F.array().cast("array<string>")).otherwise(
            F.split(text, _LINE_END)
        )
        frames.append(
            spark.read.text(whole, wholetext=True)
            .select(_relative(source), F.posexplode(lines).alias("_source_line", "_raw_record"))
            .select(
                "_raw_record", "_source_file", (F.col("_source_line") + 1).alias("_source_line")
            )
        )
    if big:
        log.info(
            "%s: %d file(s) over %d bytes read in splits",
            source.name,
            len(big),
            WHOLE_FILE_MAX_BYTES,
        )
        frames.append(_split_lines(spark, [str(paths[path]) for path in big], source))
    records = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    if source.format == "csv":
        header = (F.col("_source_line") == 1) & (F.col("_raw_record") == ",".join(source.header))
        records = records.where(~header)
    return records


def _text_bytes(path) -> int:
    size = path.stat().st_size
    return size * GZIP_RATIO if path.suffix == ".gz" else size


def _relative(source: Source):
    return F.regexp_extract(
        F.col("_metadata.file_path"), f"({re.escape(source.folder)}/dt=.*)$", 1
    ).alias("_source_file")


def _split_lines(spark: SparkSession, paths: list[str], source: Source) -> DataFrame:
    """The lines of big files, read in splits: a split's lines are consecutive in its task,
    so ``monotonically_increasing_id`` numbers them in file order; a first pass counts the
    lines of every split, and a line's number is its position in the split plus the lines of
    the file's earlier splits. No shuffle of the lines themselves.
    """
    lines = spark.read.text(paths).select(
        F.col("value").alias("_raw_record"),
        _relative(source),
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
    offset = spark.createDataFrame(
        offsets or [("", 0, 0)], "_source_file string, _block long, _offset long"
    )
    return lines.join(F.broadcast(offset), ["_source_file", "_block"]).select(
        "_raw_record", "_source_file", (F.col("_position") + F.col("_offset")).alias("_source_line")
    )


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


@dataclass(frozen=True)
class Delivered:
    """A source's delivery folders up to the run's date, and the files of its complete ones
    (path -> business date) that the ingest log does not have."""

    source: Source
    folders: list[DeliveryFolder]
    unlogged: dict[str, date]

    @classmethod
    def scan(cls, settings: Settings, source: Source, up_to: date, known: Known) -> Delivered:
        folders = scan_source(settings.landing_dir, source, up_to)
        candidates = complete_files(folders)
        logged = known.logged.get(source.name, frozenset())
        unlogged = {path: day for path, day in candidates.items() if path not in logged}
        return cls(source, folders, unlogged)


def bronze_file_counts(
    spark: SparkSession, settings: Settings, deliveries: list[Delivered]
) -> dict[str, dict[str, tuple[str, int]]]:
    """Of the unlogged files, those in bronze: source -> path -> (ingest run, records), for
    every source in one Spark job that reads their dates only (on a small night each job,
    not the data, is the cost)."""
    in_bronze = {
        d.source.name: lakehouse.read_table(spark, settings, d.source.bronze)
        .where(
            lakehouse.date_literal("_business_date", set(d.unlogged.values()))
            & F.col("_source_file").isin(sorted(d.unlogged))
        )
        .groupBy("_source_file", "_run_id")
        .agg(F.count("*").alias("n"))
        for d in deliveries
        if d.unlogged
    }
    return {
        name: {row["_source_file"]: (row["_run_id"], row["n"]) for row in rows}
        for name, rows in _collect_by_source(in_bronze).items()
    }


def _collect_by_source(frames: dict[str, DataFrame]) -> dict[str, list[Row]]:
    """The rows of each source's frame (frames of one schema), collected in one Spark job."""
    rows: dict[str, list[Row]] = {}
    if frames:
        labelled = [
            frame.select(F.lit(name).alias("_source_name"), "*") for name, frame in frames.items()
        ]
        for row in reduce(DataFrame.unionByName, labelled).collect():
            rows.setdefault(row["_source_name"], []).append(row)
    return rows


def log_files(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    files: dict[str, date],
    counts: dict[str, tuple[str, int]],
) -> None:
    """Log ``files`` found in bronze (``counts``: path -> ingest run, records)."""
    frame = _log_rows(spark, source, files, counts)
    if frame is not None:
        lakehouse.merge(spark, settings, tables.INGESTED_FILES, frame, update=False)


def _log_rows(
    spark: SparkSession,
    source: Source,
    files: dict[str, date],
    counts: dict[str, tuple[str, int]],
    run_id: str | None = None,
) -> DataFrame | None:
    """Ingest-log rows of ``files`` in ``counts``, or of all of them ingested by ``run_id``
    (a file with no record is logged too, with 0)."""
    rows = []
    for path, day in sorted(files.items()):
        if path in counts or run_id is not None:
            ingest_run, records = counts.get(path, (run_id, 0))
            rows.append((source.name, path, day, records, ingest_run))
    if not rows:
        return None
    return spark.createDataFrame(
        rows,
        "source string, source_file string, business_date date, records long, run_id string",
    ).withColumn("ingested_at", F.current_timestamp())


def delivery_folder_rows(
    source: Source, folders: list[DeliveryFolder], run_id: str, known: dict[str, Row]
) -> list[dict]:
    """The rows of ``bronze.landing_folders`` that the scanned folders change; waiting ones
    are reported in the log.

    A folder keeps the time a run first saw it (``first_seen_at``: waiting since) and first
    found it complete. Only folders that are new, still waiting or changed (a marker or a file
    arrived) get a row: a year of complete folders is not rewritten every night.
    """
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
    for row in rows:
        if row["status"] == "waiting":
            hours = (now - row["first_seen_at"]).total_seconds() / 3600
            log.warning(
                "LANDING FOLDER WAITING: %s %s has no _SUCCESS yet: not read; waiting since %s "
                "(%.1f h)",
                source.name,
                row["folder"],
                row["first_seen_at"].isoformat(sep=" ", timespec="seconds"),
                hours,
            )
    return rows


@dataclass
class _Logs:
    """What a run adds to bronze's two logs, written once for every source: a MERGE costs
    about a second whatever its size, and there are seven sources."""

    folders: list[dict] = field(default_factory=list)  # bronze.landing_folders rows
    files: list[DataFrame] = field(default_factory=list)  # bronze.ingested_files rows

    def record_folders(self, spark: SparkSession, settings: Settings) -> None:
        """Merge the folder rows now: the bronze suites' freshness rules read the table."""
        table = tables.LANDING_FOLDERS
        if self.folders:
            frame = spark.createDataFrame(
                [tuple(row[c] for c in table.column_names) for row in self.folders],
                table.schema_ddl(),
            )
            lakehouse.merge(spark, settings, table, frame)
        self.folders = []

    def stage_files(self, staging: Staging) -> None:
        """Stage the ingest-log rows, published with the batches they log."""
        if self.files:
            rows = self.files[0]
            for frame in self.files[1:]:
                rows = rows.unionByName(frame)
            staging.merge(tables.INGESTED_FILES, rows, update=False)
        self.files = []


def ingest_source(
    spark: SparkSession, settings: Settings, source: Source, up_to: date, run_id: str
) -> dict:
    """Ingest ``source``'s new complete files up to ``up_to`` on their own: the source's
    bronze table and the ingest log are audited and published (the counts carry the
    ``audit``), as ``ingest_all`` does for every source at once."""
    counts = _ingest(spark, settings, [source], up_to, run_id)
    return {**counts[source.name], "audit": counts["audit"]}


def _ingest(
    spark: SparkSession, settings: Settings, sources: Sequence[Source], up_to: date, run_id: str
) -> dict:
    staging = Staging(spark, settings, run_id, up_to)
    known = Known.read(spark, settings)
    logs = _Logs()
    deliveries = [Delivered.scan(settings, source, up_to, known) for source in sources]
    found = bronze_file_counts(spark, settings, deliveries)
    counts = _stage_sources(spark, settings, deliveries, known, found, run_id, staging, logs)
    logs.record_folders(spark, settings)
    logs.stage_files(staging)
    return {**counts, "audit": publish_bronze(staging, counts, sources).summary()}


def _stage_sources(
    spark: SparkSession,
    settings: Settings,
    deliveries: list[Delivered],
    known: Known,
    found: dict[str, dict[str, tuple[str, int]]],
    run_id: str,
    staging: Staging,
    logs: _Logs,
) -> dict[str, dict]:
    """Stage each source's new files; their ingest-log rows and the scanned folders go to
    ``logs``. Files already in bronze but not logged (``found``: a run killed between its
    data and its log) are logged, not ingested again. Source name -> counts."""
    counts, batches = {}, {}
    for d in deliveries:
        source = d.source
        changed = delivery_folder_rows(
            source, d.folders, run_id, known.folders.get(source.name, {})
        )
        logs.folders.extend(changed)
        in_bronze = found.get(source.name, {})
        log_files(spark, settings, source, d.unlogged, in_bronze)
        new_files = {
            path: day
            for path, day in d.unlogged.items()
            if path not in in_bronze  # the rest: in the log, or just logged
        }
        counts[source.name] = {
            "files": len(new_files),
            "records": 0,
            "complete_folders": sum(folder.complete for folder in d.folders),
            "empty_folders": sum(folder.complete and not folder.data_files for folder in d.folders),
            "waiting_folders": [row["folder"] for row in changed if row["status"] == "waiting"],
        }
        if new_files:
            batches[source.name] = (
                source,
                new_files,
                _stage_files(spark, settings, source, new_files, run_id, staging),
            )
    per_file = _records_per_file({name: batch for name, (_, _, batch) in batches.items()})
    for name, (source, files, _) in batches.items():
        counted = per_file.get(name, {})
        if not set(counted) <= set(files):
            raise RuntimeError(
                f"{source.bronze.name}: records of {sorted(set(counted) - set(files))[:3]}, "
                f"which were not asked for: expected only the files {sorted(files)[:3]}..."
            )
        runs = {path: (run_id, n) for path, n in counted.items()}
        logs.files.append(_log_rows(spark, source, files, runs, run_id))
        counts[name]["records"] = sum(counted.values())
    return counts


def _records_per_file(batches: dict[str, DataFrame]) -> dict[str, dict[str, int]]:
    """Source name -> file -> records staged, for every source's batch in one Spark job."""
    counted = {
        name: batch.groupBy("_source_file").agg(F.count("*").alias("n"))
        for name, batch in batches.items()
    }
    return {
        name: {row["_source_file"]: row["n"] for row in rows}
        for name, rows in _collect_by_source(counted).items()
    }


def _stage_files(
    spark: SparkSession,
    settings: Settings,
    source: Source,
    files: dict[str, date],
    run_id: str,
    staging: Staging,
) -> DataFrame:
    """Stage every record of ``files`` for bronze: the staged batch."""
    records = read_lines(spark, settings, source, sorted(files)).select(
        "*",
        F.current_timestamp().alias("_ingested_at"),
        F.lit(run_id).alias("_run_id"),
        F.to_date(F.regexp_extract("_source_file", r"/dt=(\d{4}-\d{2}-\d{2})/", 1)).alias(
            "_business_date"
        ),
    )
    return staging.append(source.bronze, records)


def publish_bronze(staging: Staging, counts: dict[str, dict], sources: Sequence[Source]):
    """Audit the staged bronze batches of ``sources`` and publish them, or hold them all.

    Published, each bronze table must have received every record staged for it.
    """
    names = [source.bronze.name for source in sources]
    if len(sources) < len(SOURCES):
        names.append(tables.INGESTED_FILES.name)
    verdict = staging.audit_and_publish(["bronze"], None if len(sources) == len(SOURCES) else names)
    if verdict.published:
        for source in sources:
            written = verdict.written.get(source.bronze.name, 0)
            if written != counts[source.name]["records"]:
                raise RuntimeError(
                    f"{source.bronze.name}: {written} rows written for "
                    f"{counts[source.name]['records']} records staged: expected every line but "
                    "CSV headers as a row"
                )
    return verdict


def ingest_all(spark: SparkSession, settings: Settings, up_to: date, run_id: str) -> dict:
    """Stage every source's new files, audit the bronze layer, publish or hold (the ``audit``)."""
    return _ingest(spark, settings, SOURCES, up_to, run_id)


def _body(spark: SparkSession, settings: Settings, args) -> dict:
    return ingest_all(spark, settings, args.date, args.run_id)


def main(argv: list[str] | None = None, session=None) -> dict:
    return run_job("bronze_ingest", _body, job_parser(__doc__.splitlines()[0]), argv, session)


if __name__ == "__main__":
    main()
