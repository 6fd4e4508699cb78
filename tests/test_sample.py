"""The sample generator: deterministic, contract-shaped, with every bad-record kind."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from omni.sample import (
    CRM_BAD_KINDS,
    EVENT_BAD_KINDS,
    POS_BAD_KINDS,
    SampleSpec,
    generate_sample,
    latest_ready_date,
)
from omni.tables import CRM_COLUMNS, POS_COLUMNS

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
    ],
)
def test_bad_sizes_are_refused(tmp_path, change, message):
    spec = SampleSpec(**{**SPEC.__dict__, **change})
    with pytest.raises(ValueError, match=message):
        generate_sample(tmp_path / "x", spec)
