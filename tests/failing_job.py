"""A job that fails on customer data, in an executor and then in the driver (test_privacy)."""

from pyspark.sql import functions as F

from omni.cli import job_parser, run_job


def _body(spark, settings, args):
    frame = spark.createDataFrame([("C0001234", "jane.doe@example.com")], "id string, email string")

    @F.udf("string")
    def check(customer_id, email):
        raise ValueError(f"customer {customer_id!r} has a bad e-mail {email}")

    try:
        frame.select(check("id", "email")).collect()
    except Exception:
        pass  # its log lines are what the test reads; now fail in the driver itself
    return {"n": spark.sql("SELECT CAST('C0001234' AS INT)").collect()}


if __name__ == "__main__":
    run_job("failing", _body, job_parser("fails on customer data"))
