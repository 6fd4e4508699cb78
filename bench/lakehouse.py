"""Lakehouse benchmark: a nightly increment vs the engine floor, night N vs night 1, a backfill.

Prints ratios measured in one run, on one Spark session (the jobs' own functions in-process,
so spark-submit start-up is left out of every figure alike):

* ``night/floor``: bronze -> silver -> gold for the last night, each job's audit included
  (write, audit, publish: the gates run inside the jobs), vs the floor, Spark reading the
  same raw files (parsed with their schema) and writing them once to Delta;
* ``night N/night 1``: the same nightly run on night N (history of N-1 nights in the tables)
  vs night 1 (empty tables);
* ``backfill/night``: one run over all ``--days`` days vs one night (night N);
* ``bulk night/floor``: the night after the backfill at ``--bulk-events`` events and
  ``--bulk-pos`` receipt lines (the last sample day copied up to that volume, see
  ``bench/bulk.py``) vs the floor on the same files.

Targets (issue 25): night/floor <= 3 at 1M events + 200k POS lines, night N/night 1 <= 1.1,
backfill of 90 days/night <= 3.

    python -m bench.lakehouse --customers 2000 --days 90 --night 60 \
        --bulk-events 1000000 --bulk-pos 200000
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from bench.bulk import bulk_night, last_landing_day
from jobs.bronze_ingest import ingest_all
from jobs.gold import build_gold
from jobs.silver import run_silver
from omni.config import load_settings
from omni.landing import ready_files
from omni.sample import SampleSpec, generate_sample
from omni.sources import SOURCES
from omni.spark import get_spark


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def nightly(spark, settings, day: date, run_id: str) -> dict:
    bronze_s, bronze = _timed(ingest_all, spark, settings, day, run_id)
    silver_s, silver = _timed(run_silver, spark, settings, run_id, day)
    gold_s, gold = _timed(build_gold, spark, settings, day, run_id)
    return {
        "bronze": bronze,
        "silver": silver,
        "gold_features": gold["customer_features"],
        "step_seconds": {
            "bronze": round(bronze_s, 1),
            "silver": round(silver_s, 1),
            "gold": round(gold_s, 1),
        },
    }


def floor(spark, settings, day: date, out: Path) -> int:
    """Read the night's raw files of every source with its schema and write them once to Delta.

    The files are parsed as what they are (JSON Lines, CSV with a header) with the bronze
    schema's data columns: the least a pipeline must do to hold the night in a table.
    """
    rows = 0
    for source in SOURCES:
        files = [
            str(settings.landing_dir / path)
            for path, business_date in ready_files(settings.landing_dir, source, day).items()
            if business_date == day
        ]
        if not files:
            continue
        reader = spark.read.schema(source.data_schema)
        if source.format == "jsonl":
            frame = reader.json(files)
        else:
            frame = reader.option("header", "true").csv(files)
        frame.write.format("delta").mode("overwrite").save(str(out / source.name))
        rows += spark.read.format("delta").load(str(out / source.name)).count()
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90, help="days of sample; the backfill")
    parser.add_argument("--night", type=int, default=60, help="N: the night compared to night 1")
    parser.add_argument("--end-date", default="2026-10-31")
    parser.add_argument("--bulk-events", type=int, default=1_000_000, help="0: no bulk night")
    parser.add_argument("--bulk-pos", type=int, default=200_000)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)

    if not 2 <= args.night <= args.days:
        parser.error(f"--night {args.night}: expected 2 to --days ({args.days})")
    end = date.fromisoformat(args.end_date)
    first = end - timedelta(days=args.days - 1)
    night_date = first + timedelta(days=args.night - 1)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="omni-bench-"))
    base = load_settings()
    landing = work / "landing"
    spec = SampleSpec(customers=args.customers, days=args.days, end_date=end, seed=11)
    generated = generate_sample(landing, spec, overwrite=True)

    def lake(name: str):
        path = work / name
        shutil.rmtree(path, ignore_errors=True)
        return replace(base.with_local_lakehouse(path), landing_dir=landing)

    # The session's table catalog lives in the work folder too, not in the repo's lakehouse.
    spark = get_spark(
        base.with_local_lakehouse(work / "catalog"),
        app_name="omni.bench.lakehouse",
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        # Warm the JVM once so the first measured step does not pay for class loading.
        warm = lake("warm")
        nightly(spark, warm, first, "warm")

        nights = lake("nights")
        night_1, counts_1 = _timed(nightly, spark, nights, first, "night-1")
        history, _ = _timed(nightly, spark, nights, night_date - timedelta(days=1), "history")
        night_n, counts_n = _timed(nightly, spark, nights, night_date, "night-n")
        floor_s, floor_rows = _timed(floor, spark, nights, night_date, work / "floor")

        backfill_lake = lake("backfill")
        backfill, _ = _timed(nightly, spark, backfill_lake, end, "backfill")

        bulk = {}
        if args.bulk_events > 0:
            bulk_day = last_landing_day(landing) + timedelta(days=1)
            bulk["written"] = bulk_night(
                landing, end, bulk_day, events=args.bulk_events, pos_lines=args.bulk_pos
            )
            bulk["night_s"], counts = _timed(nightly, spark, backfill_lake, bulk_day, "bulk")
            bulk["floor_s"], bulk["floor_rows"] = _timed(
                floor, spark, backfill_lake, bulk_day, work / "floor-bulk"
            )
            bulk["bronze"] = counts["bronze"]
            bulk["steps"] = counts["step_seconds"]
    finally:
        spark.stop()

    result = {
        "scale": {"customers": args.customers, "days": args.days, "generated": generated},
        "seconds": {
            "night_1": round(night_1, 1),
            f"nights_2_to_{args.night - 1}_in_one_run": round(history, 1),
            f"night_{args.night}": round(night_n, 1),
            f"floor_night_{args.night}": round(floor_s, 1),
            f"backfill_{args.days}_days": round(backfill, 1),
        },
        "records": {
            "night_1": counts_1["bronze"],
            f"night_{args.night}": counts_n["bronze"],
            "floor_rows": floor_rows,
        },
        "ratios": {
            f"night_{args.night}_over_floor": round(night_n / floor_s, 2),
            f"night_{args.night}_over_night_1": round(night_n / night_1, 2),
            f"backfill_{args.days}_days_over_night": round(backfill / night_n, 2),
        },
    }
    if bulk:
        result["bulk_night"] = {
            "written": bulk["written"],
            "bronze": bulk["bronze"],
            "floor_rows": bulk["floor_rows"],
            "seconds": {"night": round(bulk["night_s"], 1), "floor": round(bulk["floor_s"], 1)},
            "night_steps": bulk["steps"],
            # Each stage's share of the floor: how many floors each costs.
            "night_steps_over_floor": {
                step: round(seconds / bulk["floor_s"], 2) for step, seconds in bulk["steps"].items()
            },
            "night_over_floor": round(bulk["night_s"] / bulk["floor_s"], 2),
        }
    print(json.dumps(result, indent=2, default=str))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
