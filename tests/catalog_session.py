"""A long-lived Spark session on the profile's catalog, as a notebook's kernel holds one.

Started by the tests as ``python tests/catalog_session.py`` with a profile's environment, it
builds the session the way ``notebooks/README.md`` shows (``get_spark(load_settings())``),
prints ``{"ready": true}``, then answers each SQL statement read from stdin (one per line)
with one JSON line on stdout: ``{"rows": [...]}`` or ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import sys

from omni.config import load_settings
from omni.spark import get_spark


def main() -> None:
    spark = get_spark(load_settings(), "omni.notebook")
    spark.sparkContext.setLogLevel("ERROR")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            rows = [row.asDict() for row in spark.sql(line).collect()]
            print(json.dumps({"rows": rows}, default=str), flush=True)
        except Exception as error:  # the test reads the message
            print(json.dumps({"error": str(error)[:3000]}), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
