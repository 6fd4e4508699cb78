"""What every job does before its own work, in small: the JVM, the Delta session, the catalog
(Hive and Derby), a Delta write and read. ``tests/conftest.py`` runs it once under
``spark-submit`` to record the classes it loads in a class data sharing archive for the tests'
JVMs."""

from __future__ import annotations

from omni.cli import job_parser, run_job


def _body(spark, settings, args) -> dict:
    location = f"{settings.lakehouse_location}/warm_up"
    spark.range(10).withColumnRenamed("id", "n").write.format("delta").save(location)
    rows = spark.read.format("delta").load(location).where("n > 4").count()
    return {"rows": rows, "databases": len(spark.sql("SHOW DATABASES").collect())}


if __name__ == "__main__":
    run_job("class_archive", _body, job_parser(__doc__.splitlines()[0]))
