"""The landing zone as ``raw-landing.md`` lays it out: which folders are complete, which wait.

Pure Python (no Spark), so the DAGs' first task can check a date against the landing zone and
bronze can decide what to read. A *delivery folder* is what a source marks complete as one:

- a ``dt=`` folder, complete when it holds ``_SUCCESS``;
- for sources whose stores export on their own (``instore/pos``), each ``store_id=`` folder of
  a ``dt=`` folder, complete when it holds its own ``_SUCCESS`` or the ``dt=`` folder does.
  A complete ``dt=`` folder with no store folder is a day without any store's records.

A complete folder may hold no data file (a closed store, a holiday): a day with no records.
A source whose folder does not exist at all is a channel the retailer does not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from omni.config import parse_date
from omni.sources import SOURCES, Source

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz")
MARKER = "_SUCCESS"
_DT = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_STORE = re.compile(r"^store_id=([^/=]+)$")


@dataclass(frozen=True)
class DeliveryFolder:
    source: str
    folder: str  # relative to the landing zone
    business_date: date
    store_id: str | None
    complete: bool
    data_files: tuple[str, ...]  # relative to the landing zone, sorted

    @property
    def status(self) -> str:
        return "complete" if self.complete else "waiting"


def _data_files(landing_dir: Path, folder: Path, recursive: bool) -> tuple[str, ...]:
    paths = folder.rglob("part-*") if recursive else folder.glob("part-*")
    return tuple(
        sorted(
            str(path.relative_to(landing_dir))
            for path in paths
            if path.is_file() and path.name.endswith(DATA_SUFFIXES)
        )
    )


def _business_date(folder: Path) -> date:
    match = _DT.match(folder.name)
    if not match:
        raise ValueError(f"{folder}: expected a folder named dt=YYYY-MM-DD")
    return parse_date(match.group(1))


def scan_source(
    landing_dir: Path, source: Source, up_to: date | None = None
) -> list[DeliveryFolder]:
    """Every delivery folder of ``source`` dated on or before ``up_to``, complete or waiting.

    Folders dated after ``up_to`` belong to later nights and are neither read nor reported.
    """
    root = landing_dir / source.folder
    found: list[DeliveryFolder] = []
    if not root.is_dir():
        return found
    for day_folder in sorted(p for p in root.iterdir() if p.is_dir()):
        business_date = _business_date(day_folder)
        if up_to is not None and business_date > up_to:
            continue
        day_complete = (day_folder / MARKER).exists()
        relative = str(day_folder.relative_to(landing_dir))
        if not source.store_folders:
            files = _data_files(landing_dir, day_folder, recursive=True)
            found.append(
                DeliveryFolder(source.name, relative, business_date, None, day_complete, files)
            )
            continue
        stores = sorted(p for p in day_folder.iterdir() if p.is_dir())
        for store_folder in stores:
            match = _STORE.match(store_folder.name)
            if not match:
                raise ValueError(
                    f"{store_folder}: expected a store folder named store_id=<id> in {relative}"
                )
            found.append(
                DeliveryFolder(
                    source.name,
                    str(store_folder.relative_to(landing_dir)),
                    business_date,
                    match.group(1),
                    day_complete or (store_folder / MARKER).exists(),
                    _data_files(landing_dir, store_folder, recursive=True),
                )
            )
        loose = _data_files(landing_dir, day_folder, recursive=False)
        if loose or not stores:  # files beside the store folders, or a day with no store folder
            found.append(
                DeliveryFolder(source.name, relative, business_date, None, day_complete, loose)
            )
    return found


def complete_files(folders: list[DeliveryFolder]) -> dict[str, date]:
    """Data files of the complete ``folders``, relative path -> business date."""
    return {
        path: folder.business_date
        for folder in folders
        if folder.complete
        for path in folder.data_files
    }


def ready_files(landing_dir: Path, source: Source, up_to: date) -> dict[str, date]:
    """Data files of complete folders on or before ``up_to``, relative path -> business date."""
    return complete_files(scan_source(landing_dir, source, up_to))


def channels(landing_dir: Path) -> dict[str, bool]:
    """Which sources the retailer has: a source whose folder exists at all."""
    return {source.name: (landing_dir / source.folder).is_dir() for source in SOURCES}


def delivered_dates(landing_dir: Path) -> dict[str, list[date]]:
    """Per source, the business dates with at least one complete delivery folder, sorted."""
    return {
        source.name: sorted(
            {f.business_date for f in scan_source(landing_dir, source) if f.complete}
        )
        for source in SOURCES
    }


class NothingToProcessError(ValueError):
    """A business date the landing zone holds nothing for: a run for it would do nothing."""


def check_dates(landing_dir: Path, start: date, end: date) -> dict[str, str]:
    """Refuse a range the landing zone cannot serve, naming what it does hold.

    ``end`` must have a complete delivery of at least one source (a quiet day's empty complete
    folder counts), and ``start`` must not be before the first delivery of any source. Returns
    the last complete date per source, for the run's log.
    """
    delivered = {name: days for name, days in delivered_dates(landing_dir).items() if days}
    if not delivered:
        raise NothingToProcessError(
            f"the landing zone {landing_dir} holds no complete delivery folder of any source: "
            f"expected <source>/dt=YYYY-MM-DD/{MARKER} (see raw-landing.md)"
        )
    first = min(days[0] for days in delivered.values())
    last = max(days[-1] for days in delivered.values())
    if not any(end in days for days in delivered.values()):
        raise NothingToProcessError(
            f"business date {end}: no source has a complete delivery folder for it in "
            f"{landing_dir}; complete deliveries run from {first} to {last}"
        )
    if start < first:
        raise NothingToProcessError(
            f"start date {start} is before the first complete delivery folder ({first}) in "
            f"{landing_dir}: expected a start date from {first} to {last}"
        )
    return {name: str(days[-1]) for name, days in sorted(delivered.items())}
