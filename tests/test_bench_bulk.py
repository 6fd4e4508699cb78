"""The benchmark's bulk night: copies are new records, times move with the day, bad lines stay."""

import csv
import json
from datetime import date

import pytest

from bench.bulk import bulk_night, copies_for, last_landing_day

SOURCE_DAY, BULK_DAY = date(2026, 10, 31), date(2026, 11, 2)
POS_HEADER = (
    "transaction_id,line_number,store_id,register_id,transaction_ts,sku,quantity,"
    "unit_price,discount_amount,payment_type,loyalty_card_id,currency"
)


@pytest.fixture
def landing(tmp_path):
    events = tmp_path / "ecommerce/events/dt=2026-10-31"
    events.mkdir(parents=True)
    lines = [
        {"event_id": "E1", "event_time": "2026-10-31T10:00:00.000+01:00", "session_id": "S1",
         "anonymous_id": "A1", "customer_id": "C1", "order_id": None, "event_type": "page_view"},
        {"event_id": "E2", "event_time": "2026-10-30T23:59:00.500+00:00", "session_id": "S2",
         "anonymous_id": "A2", "customer_id": None, "order_id": "O2", "event_type": "purchase"},
    ]  # fmt: skip
    old = dict(lines[0], event_id="E4", event_time="1999-12-31T10:00:00.000+01:00")
    lines.append(old)  # planted bad time: must stay before 2000
    text = "\n".join([*(json.dumps(line) for line in lines), '{"event_id": "E3", trunc'])
    (events / "part-00000.jsonl").write_text(text + "\n")
    (events / "_SUCCESS").touch()
    pos = tmp_path / "instore/pos/dt=2026-10-31/store_id=S001"
    pos.mkdir(parents=True)
    rows = [
        "T1,1,S001,R1,2026-10-31 18:00:00,SKU-1,1,9.99,0.00,card,L1,EUR",
        "T2,1,S001,R1,2026-10-31 19:00:00,SKU-1,-1,9.99,0.00,card,,EUR",
        "T3,1,S001,too,few",
    ]
    (pos / "part-00000.csv").write_text("\n".join([POS_HEADER, *rows]) + "\n")
    return tmp_path


def test_copies_reach_the_target():
    assert copies_for(3, 5) == 2
    assert copies_for(1000, 1_000_000) == 1000
    assert copies_for(10, 1) == 1
    with pytest.raises(ValueError, match="no records to copy"):
        copies_for(0, 10)


def test_bulk_night_copies_are_new_records_on_the_new_day(landing):
    written = bulk_night(landing, SOURCE_DAY, BULK_DAY, events=8, pos_lines=6, event_parts=2)
    assert written == {"events": 8, "event_copies": 2, "pos_lines": 6, "pos_copies": 2}

    folder = landing / "ecommerce/events/dt=2026-11-02"
    assert (folder / "_SUCCESS").exists()
    out = [line for path in sorted(folder.glob("part-*")) for line in path.read_text().split("\n")]
    out = [line for line in out if line]
    assert out.count('{"event_id": "E3", trunc') == 2  # a bad line stays bad, once per copy
    parsed = [json.loads(line) for line in out if "trunc" not in line]
    assert sorted(e["event_id"] for e in parsed) == [
        "E1-b0", "E1-b1", "E2-b0", "E2-b1", "E4-b0", "E4-b1"
    ]  # fmt: skip
    by_id = {e["event_id"]: e for e in parsed}
    assert by_id["E1-b0"]["customer_id"] == "C1"  # copy 0: the sample's own customer
    assert by_id["E1-b1"]["customer_id"] == "C1-b1"  # other copies: new customers
    assert by_id["E2-b1"]["customer_id"] is None
    assert by_id["E2-b1"]["order_id"] == "O2-b1"
    assert by_id["E1-b1"]["anonymous_id"] == "A1-b1"
    assert by_id["E1-b0"]["event_time"] == "2026-11-02T10:00:00.000+01:00"
    assert by_id["E2-b0"]["event_time"] == "2026-11-01T23:59:00.500+00:00"  # still late
    assert by_id["E4-b1"]["event_time"] == "1999-12-31T10:00:00.000+01:00"  # still bad

    pos_file = landing / "instore/pos/dt=2026-11-02/store_id=S001/part-00000.csv"
    assert (landing / "instore/pos/dt=2026-11-02/_SUCCESS").exists()
    header, *rows = list(csv.reader(pos_file.read_text().splitlines()))
    assert ",".join(header) == POS_HEADER
    assert [r[0] for r in rows] == ["T1-b0", "T1-b1", "T2-b0", "T2-b1", "T3", "T3"]
    assert rows[0][4] == "2026-11-02 18:00:00" and rows[0][10] == "L1"
    assert rows[1][10] == "L1-b1" and rows[3][10] == ""  # no card stays no card


def test_bulk_day_must_follow_the_source_day_and_be_new(landing):
    with pytest.raises(ValueError, match="expected a day after the source day"):
        bulk_night(landing, SOURCE_DAY, SOURCE_DAY, events=1, pos_lines=1)
    (landing / "ecommerce/events/dt=2026-11-05").mkdir()
    assert last_landing_day(landing) == date(2026, 11, 5)
    with pytest.raises(ValueError, match="exists: expected a day with no landing yet"):
        bulk_night(landing, SOURCE_DAY, date(2026, 11, 5), events=1, pos_lines=1)
