"""A bulk night for the benchmark: one sample day's landing files copied up to a target volume.

The sample generator simulates every customer, which cannot make a million events in one night
in useful time. A bulk night takes a generated day and writes ``copies`` of each of its records
into the folder of a later day, with the times shifted by the days between them and every key
given a copy suffix, so each copy is a new record and not a duplicate of the original:

* events: ``event_id``, ``session_id``, ``anonymous_id`` and ``order_id`` of every copy, and the
  ``customer_id`` of every copy but the first (copy 0 is the sample's own customers coming back;
  the other copies are visitors the CRM has not seen);
* receipts: ``transaction_id`` of every copy, ``loyalty_card_id`` of every copy but the first.

Whatever the source day held stays in the mix in the same shares: duplicates delivered twice,
late records (their times shifted alike) and bad lines, which are copied as they are.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

from omni.sources import EVENTS, POS, Source

EVENT_KEYS = ("event_id", "session_id", "anonymous_id", "order_id")
POS_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def copies_for(records: int, target: int) -> int:
    """How many copies of ``records`` reach at least ``target`` records (at least one)."""
    if records <= 0:
        raise ValueError(f"the source day holds no records to copy (target {target})")
    return max(1, math.ceil(target / records))


def _suffix(value, tag: str):
    return f"{value}-{tag}" if isinstance(value, str) and value else value


NEAR = timedelta(days=7)  # a time further from its folder's day is a planted bad one


def _shifted(moment: datetime, source_day: date, shift: timedelta) -> datetime:
    """``moment`` moved by ``shift``; a far-off time (1999, 2099) stays, and stays bad."""
    near = abs(moment.replace(tzinfo=None) - datetime.combine(source_day, datetime.min.time()))
    return moment + shift if near <= NEAR else moment


def _shift_iso(value, source_day: date, shift: timedelta):
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value  # a bad timestamp stays bad: its quarantine reason must not change
    return _shifted(moment, source_day, shift).isoformat(timespec="milliseconds")


def event_copies(line: str, copies: int, source_day: date, shift: timedelta) -> Iterator[str]:
    """``copies`` JSON lines for one landing line (a line that is not a JSON object repeats)."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        yield from (line for _ in range(copies))
        return
    record["event_time"] = _shift_iso(record.get("event_time"), source_day, shift)
    originals = {key: record.get(key) for key in (*EVENT_KEYS, "customer_id")}
    for copy in range(copies):
        tag = f"b{copy}"
        for key in EVENT_KEYS:
            record[key] = _suffix(originals[key], tag)
        customer = originals["customer_id"]
        record["customer_id"] = customer if copy == 0 else _suffix(customer, tag)
        yield json.dumps(record, separators=(",", ":"))


def pos_copies(
    row: list[str], header: list[str], copies: int, source_day: date, shift: timedelta
) -> Iterator:
    """``copies`` CSV rows for one receipt line (a row of the wrong width repeats as it is)."""
    if len(row) != len(header):
        yield from (row for _ in range(copies))
        return
    fields = dict(zip(header, row, strict=True))
    try:
        moment = datetime.strptime(fields["transaction_ts"], POS_TIME_FORMAT)
        fields["transaction_ts"] = _shifted(moment, source_day, shift).strftime(POS_TIME_FORMAT)
    except ValueError:
        pass
    transaction, card = fields["transaction_id"], fields["loyalty_card_id"]
    for copy in range(copies):
        tag = f"b{copy}"
        fields["transaction_id"] = _suffix(transaction, tag)
        fields["loyalty_card_id"] = card if copy == 0 else _suffix(card, tag)
        yield [fields[name] for name in header]


def _day_folder(landing: Path, source: Source, day: date) -> Path:
    return landing / source.folder / f"dt={day.isoformat()}"


def last_landing_day(landing: Path) -> date:
    """The latest ``dt=`` folder of any source (late records can land after the sample's end)."""
    days = [
        date.fromisoformat(folder.name.removeprefix("dt="))
        for source in (EVENTS, POS)
        for folder in (landing / source.folder).glob("dt=*")
    ]
    if not days:
        raise ValueError(f"{landing}: no landing folders to copy from")
    return max(days)


def _day_files(landing: Path, source: Source, day: date) -> list[Path]:
    folder = _day_folder(landing, source, day)
    return sorted(path for path in folder.rglob("part-*") if path.is_file())


def _read_text(path: Path) -> str:
    """A landing file's text; ``.gz`` files are read through gzip."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            return handle.read()
    return path.read_text(encoding="utf-8")


def _write_parts(folder: Path, lines: Iterator[str], parts: int, suffix: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    handles = [
        (folder / f"part-{index:05d}{suffix}").open("w", encoding="utf-8") for index in range(parts)
    ]
    written = 0
    try:
        for written, line in enumerate(lines, start=1):
            handles[written % parts].write(line + "\n")
    finally:
        for handle in handles:
            handle.close()
    return written


def bulk_night(
    landing: Path,
    source_day: date,
    day: date,
    *,
    events: int,
    pos_lines: int,
    event_parts: int = 8,
) -> dict[str, int]:
    """Write the bulk night ``day`` into ``landing`` from ``source_day``; returns what was written.

    The events go to ``event_parts`` files (so Spark reads them in parallel), the receipts to one
    file per store, as the tills would send them; both folders get their ``_SUCCESS`` marker.
    """
    if day <= source_day:
        raise ValueError(f"bulk day {day}: expected a day after the source day {source_day}")
    shift = timedelta(days=(day - source_day).days)
    for source in (EVENTS, POS):
        if _day_folder(landing, source, day).exists():
            raise ValueError(
                f"{_day_folder(landing, source, day)} exists: expected a day with no landing yet"
            )

    event_lines = [
        line
        for path in _day_files(landing, EVENTS, source_day)
        for line in _read_text(path).removesuffix("\n").split("\n")
    ]
    event_copies_n = copies_for(len(event_lines), events)
    events_folder = _day_folder(landing, EVENTS, day)
    written_events = _write_parts(
        events_folder,
        (
            out
            for line in event_lines
            for out in event_copies(line, event_copies_n, source_day, shift)
        ),
        event_parts,
        ".jsonl",
    )
    (events_folder / "_SUCCESS").touch()

    pos_files = _day_files(landing, POS, source_day)
    tables = {
        path: list(csv.reader(io.StringIO(_read_text(path), newline=""))) for path in pos_files
    }
    rows_in = sum(len(rows) - 1 for rows in tables.values())
    pos_copies_n = copies_for(rows_in, pos_lines)
    pos_root = _day_folder(landing, POS, day)
    written_pos = 0
    for path, (header, *rows) in tables.items():
        out_folder = pos_root / path.parent.name
        out_folder.mkdir(parents=True, exist_ok=True)
        with (out_folder / path.name.removesuffix(".gz")).open(
            "w", encoding="utf-8", newline=""
        ) as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            for row in rows:
                for out in pos_copies(row, header, pos_copies_n, source_day, shift):
                    writer.writerow(out)
                    written_pos += 1
    (pos_root / "_SUCCESS").touch()
    return {
        "events": written_events,
        "event_copies": event_copies_n,
        "pos_lines": written_pos,
        "pos_copies": pos_copies_n,
    }
