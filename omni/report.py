"""Print what a run left behind: row counts of the serving tables and the champion models."""

from __future__ import annotations

import argparse

from pyspark.sql import functions as F

from omni import lakehouse, quality, tables
from omni.config import load_settings, parse_date


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--date", required=True, type=parse_date)
    args = parser.parse_args(argv)
    settings = load_settings()
    from models import registry
    from omni.spark import get_spark

    spark = get_spark(settings, "omni.report")
    spark.sparkContext.setLogLevel("ERROR")
    print(f"\nLakehouse {settings.lakehouse_location} after the run of {args.date}:")
    for table in tables.ALL_TABLES:
        df = lakehouse.read_table(spark, settings, table)
        if "as_of_date" in df.columns:
            df = df.where(F.col("as_of_date") == F.lit(str(args.date)).cast("date"))
        print(f"  {table.name:<28} {df.count():>9} rows")
    results = lakehouse.read_table(spark, settings, tables.VALIDATION_RESULTS).where(
        F.col("business_date") == F.lit(str(args.date)).cast("date")
    )
    failed = results.where(~F.col("success")).orderBy("table_name").collect()
    print(
        f"\nData quality of {args.date}: {results.count()} expectation results, "
        f"{len(failed)} failed; Data Docs: {quality.data_docs_index(settings)}"
    )
    for row in failed:
        print(
            f"  [{row['severity']}] {row['table_name']}: {row['expectation_type']} "
            f"{row['kwargs']} (observed {row['observed_value']})"
        )
    spark.stop()
    client = registry.configure_tracking(settings)
    print(f"\nMLflow registry {settings.mlflow_tracking_uri}:")
    for model in (registry.SEGMENTATION_MODEL, registry.CHURN_MODEL):
        champion = registry.champion_version(client, model)
        print(
            f"  {model:<24} champion: "
            f"{'none' if champion is None else 'version ' + str(champion.version)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
