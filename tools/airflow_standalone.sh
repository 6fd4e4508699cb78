#!/usr/bin/env bash
# Start Airflow standalone (API server and UI, scheduler, DAG processor, triggerer) on
# 127.0.0.1:$AIRFLOW_PORT with the project's DAGs, and print how to log in. Ctrl-C stops it.
set -euo pipefail
port="${AIRFLOW_PORT:-8080}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$port"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$port"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$port/execution/"
# The scheduler may start a task before the API server answers: let the task wait for it.
export AIRFLOW__WORKERS__EXECUTION_API_RETRIES="${AIRFLOW__WORKERS__EXECUTION_API_RETRIES:-12}"
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
log="$AIRFLOW_HOME/standalone.log"

"$(dirname "$0")/airflow_db.sh"
airflow standalone > "$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' INT TERM EXIT
echo "Starting Airflow standalone on http://127.0.0.1:$port (log: $log) ..."
for _ in $(seq 1 120); do
    if ! kill -0 "$server" 2>/dev/null; then
        echo "Airflow standalone stopped; the end of its log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    if curl -fsS "http://127.0.0.1:$port/api/v2/monitor/health" > /dev/null 2>&1 \
        && [ -s "$passwords" ]; then
        break
    fi
    sleep 2
done
password=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$passwords")
cat <<INFO

Airflow is up: http://127.0.0.1:$port
  log in as:  admin
  password:   $password   (kept in $passwords)
DAGs: omni_nightly (daily), omni_models (on the gold assets), omni_maintenance (weekly),
omni_erasure (manual, with params). New DAGs start paused: unpause them in the UI.
Ctrl-C stops Airflow.
INFO
wait "$server"
