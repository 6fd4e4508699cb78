"""The sample generator: deterministic, contract-shaped, with every bad-record kind."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from omni.landing import scan_source
from omni.sample import (
    CRM_BAD_KINDS,
    EVENT_BAD_KINDS,
    HOLIDAY_STORE,
    LATE_STORE,
    POS_BAD_KINDS,
    STORES,
    SampleSpec,
    generate_sample,
    latest_ready_date,
)
from omni.sources import CRM_COLUMNS, EVENTS, POS, POS_COLUMNS

SPEC = SampleSpec(customers=60, days=20, end_date=date(2026, 3, 31), seed=11)


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return handle.read().splitlines()


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    counts = generate_sample(root, SPEC)
    return root, counts


def test_same_seed_same_files(landing, tmp_path):
    root, _ = landing
    generate_sample(tmp_path / "again", SPEC)
    assert _digest(tmp_path / "again") == _digest(root)


def test_refuses_to_mix_with_existing_files(landing):
    root, _ = landing
    with pytest.raises(FileExistsError, match="is not empty"):
        generate_sample(root, SPEC)


def test_layout_and_success_markers(landing):
    root, counts = landing
    assert set(counts) == {"ecommerce_events", "pos_lines", "customers", "products", "stores"}
    event_days = sorted(p.name for p in (root / "ecommerce" / "events").iterdir())
    assert event_days[0] == "dt=2026-03-12"
    # Late records of the last days land after the end date, in folders not yet complete.
    for folder in (root / "ecommerce" / "events").iterdir():
        ready = (folder / "_SUCCESS").exists()
        assert ready == (folder.name <= "dt=2026-03-31"), folder
    assert latest_ready_date(root) == date(2026, 3, 31)
    assert list((root / "instore" / "pos" / "dt=2026-03-20").glob("store_id=S*/part-*.csv"))


def test_every_bad_record_kind_is_present(landing):
    root, _ = landing
    events = [
        line for path in (root / "ecommerce" / "events").rglob("part-*") for line in _lines(path)
    ]
    parsed = []
    for line in events:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    assert len(parsed) < len(events)  # truncated and non-JSON lines
    assert any(e.get("event_type") == "hover" for e in parsed)
    assert any("event_id" not in e for e in parsed)
    assert any(str(e.get("event_time", "")).startswith("2099") for e in parsed)
    assert any(str(e.get("event_time", "")).startswith("1999") for e in parsed)
    assert any(e.get("experiment") for e in parsed)  # unknown extra field
    assert len({e["event_id"] for e in parsed if "event_id" in e}) < len(parsed)  # duplicates
    pos_rows = [
        row
        for path in (root / "instore" / "pos").rglob("part-*.csv")
        for row in csv.reader(_lines(path))
    ]
    assert any(len(row) != len(POS_COLUMNS) for row in pos_rows)
    assert any(row[2] == "S999" for row in pos_rows if len(row) == len(POS_COLUMNS))
    assert any(row[6].startswith("-") for row in pos_rows if len(row) == len(POS_COLUMNS))
    crm_rows = [
        row
        for path in (root / "crm" / "customers").rglob("part-*.csv")
        for row in csv.reader(_lines(path))
    ]
    assert any(len(row) != len(CRM_COLUMNS) for row in crm_rows)
    assert len(EVENT_BAD_KINDS) == 9 and len(POS_BAD_KINDS) == 8 and len(CRM_BAD_KINDS) == 3


@pytest.mark.parametrize(
    "change, message",
    [
        ({"customers": 3}, "customers=3: expected at least 10"),
        ({"days": 1}, "days=1: expected at least 2"),
        ({"bad_rate": 0.9}, "bad_rate=0.9: expected a rate"),
        ({"channels": "fax"}, "channels='fax': expected one of"),
        ({"channels": "online", "holidays": True}, "has no stores: holidays"),
    ],
)
def test_bad_sizes_are_refused(tmp_path, change, message):
    spec = SampleSpec(**{**SPEC.__dict__, **change})
    with pytest.raises(ValueError, match=message):
        generate_sample(tmp_path / "x", spec)


YEAR = SampleSpec(
    customers=30,
    days=365,
    end_date=date(2026, 3, 31),
    seed=5,
    holidays=True,
    new_store=True,
    late_store=True,
)


def _csv_rows(root: Path, folder: str) -> list[list[str]]:
    return [
        row
        for path in sorted(root.glob(f"{folder}/**/part-*.csv"))
        for row in csv.reader(_lines(path))
    ]


def test_a_year_with_holidays_a_store_that_opens_and_a_store_that_is_late(tmp_path):
    generate_sample(tmp_path, YEAR)
    folders = {(f.business_date, f.store_id): f for f in scan_source(tmp_path, POS)}
    christmas = folders[(date(2025, 12, 25), "S001")]
    assert christmas.complete
    # The holiday store is closed on public holidays: a complete folder with no receipt.
    closed = folders[(date(2025, 12, 25), HOLIDAY_STORE)]
    assert closed.complete and not closed.data_files
    assert any(f.data_files for (_, store), f in folders.items() if store == HOLIDAY_STORE)
    receipts_of = {r[4][:10] for r in _csv_rows(tmp_path, "instore/pos") if r[2] == HOLIDAY_STORE}
    assert not {"2025-12-25", "2025-12-26", "2026-01-01"} & receipts_of
    # Every open store exports every day, an empty complete folder when nobody came.
    assert any(f.complete and not f.data_files for f in folders.values())
    new_store, opens = STORES[-1][0], YEAR.new_store_opens
    assert opens == date(2025, 9, 30)
    assert min(day for day, store in folders if store == new_store) == opens
    stores = _csv_rows(tmp_path, "reference/stores")
    opened = [row for row in stores if row[0] == new_store]
    assert opened == [[*STORES[-1][:-1], str(opens)]]
    # The late store's last day is there, waiting for its marker; the others are complete.
    last = {store: f for (day, store), f in folders.items() if day == YEAR.end_date}
    assert not last[LATE_STORE].complete and last[LATE_STORE].data_files
    assert all(f.complete for store, f in last.items() if store != LATE_STORE)
    receipts = _csv_rows(tmp_path, "instore/pos")
    assert not [r for r in receipts if r[2] == new_store and r[4][:10] < str(opens)]
    assert latest_ready_date(tmp_path) == YEAR.end_date


@pytest.mark.parametrize(
    "channels, present, absent", [("store", POS, EVENTS), ("online", EVENTS, POS)]
)
def test_a_retailer_with_one_channel_has_no_folder_for_the_other(
    tmp_path, channels, present, absent
):
    spec = SampleSpec(customers=20, days=5, end_date=date(2026, 3, 31), seed=2, channels=channels)
    counts = generate_sample(tmp_path, spec)
    assert not (tmp_path / absent.folder).exists()
    assert scan_source(tmp_path, present)
    assert counts[present.name] > 0 and absent.name not in counts
    assert (tmp_path / "reference" / "stores").exists() == (channels == "store")
    assert latest_ready_date(tmp_path) == date(2026, 3, 31)


def test_lapsing_customers_stop_at_a_steady_hazard():
    """The chance that a lapsing customer still buying stops within the next 30 days is the
    same early and late in the sample, as in a shop whose customers do not all leave in one
    season: a model trained on earlier months then meets the same hazard on the latest."""
    from omni.sample import SampleGenerator

    generator = SampleGenerator(SampleSpec(customers=20_000, days=120, seed=5))
    stops = [c.stop_day for c in generator.customers if c.kind == "lapsing"]
    assert len(stops) > 4000

    def hazard(day: int) -> float:
        active = [s for s in stops if s >= day]
        return sum(s < day + 30 for s in active) / len(active)

    early, late = hazard(20), hazard(90)
    assert 0.15 < early < 0.45
    assert late == pytest.approx(early, abs=0.05)
