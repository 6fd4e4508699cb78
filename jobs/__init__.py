"""Spark jobs: each module is runnable with ``spark-submit jobs/<name>.py --date YYYY-MM-DD``."""
