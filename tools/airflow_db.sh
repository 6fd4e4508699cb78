#!/usr/bin/env bash
# Create or upgrade Airflow's database (SQLite in $AIRFLOW_HOME, or PostgreSQL under
# OMNI_PROFILE=postgresql), and, for the embedded profile, the pool every Spark task of the
# DAGs runs in (omni/orchestration.py CATALOG_POOL): one slot, because the embedded Derby
# catalog admits one JVM at a time, whichever DAG the job belongs to. Idempotent.
set -euo pipefail
mkdir -p "$AIRFLOW_HOME"
log="$AIRFLOW_HOME/db-migrate.log"
airflow db migrate > "$log" 2>&1 || { cat "$log" >&2; exit 1; }
if [ "${OMNI_PROFILE:-embedded}" = postgresql ]; then
    exit 0  # the shared metastore serves many jobs: the tasks run in Airflow's default pool
fi
airflow pools set omni_spark_catalog 1 \
    "Spark jobs on the embedded Derby catalog: one at a time across all DAGs" >> "$log" 2>&1 \
    || { cat "$log" >&2; exit 1; }
