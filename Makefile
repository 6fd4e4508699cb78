# Omni-channel consumer-behaviour analytics. `make run` and `make test` install what is missing.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
JARS_MANIFEST = $(wildcard $(CURDIR)/.cache/jars/*/jars.txt)
AIRFLOW_PORT ?= 8080

# Embedded defaults of shared/contracts/serving-tables.md; any of them can be overridden.
export PATH := $(BIN):$(PATH)
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
# OMNI_PROFILE=postgresql (the production profile): the Spark catalog, Airflow and MLflow in
# three databases of the PostgreSQL server libpq's PGHOST/PGPORT/PGUSER/PGPASSWORD name; when
# that is this machine, `make postgres` (a prerequisite of run and airflow) starts it locally.
export OMNI_PROFILE ?= embedded
ifeq ($(OMNI_PROFILE),postgresql)
export PGHOST ?= 127.0.0.1
export PGPORT ?= 5432
export PGUSER ?= omni
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= postgresql+psycopg://$(PGUSER)@$(PGHOST):$(PGPORT)/omni_airflow
# Airflow derives postgresql+asyncpg for its async engine otherwise; psycopg 3 does both.
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC ?= $(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)
export AIRFLOW__CORE__EXECUTOR ?= LocalExecutor
PROFILE_SERVICES := postgres
else
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db
PROFILE_SERVICES :=
endif
export OMNI_SPARK_MASTER ?= local[*]
export AIRFLOW_CONN_SPARK_DEFAULT ?= {"conn_type": "spark", "host": "$(OMNI_SPARK_MASTER)"}
export PYSPARK_PYTHON ?= $(BIN)/python
export PYSPARK_DRIVER_PYTHON ?= $(BIN)/python
export GX_ANALYTICS_ENABLED := False
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
# One OpenMP thread per process: on a small machine, two gradient-boosting fits with spinning
# OpenMP threads (a nightly training task beside a test, say) slow each other down fiftyfold.
export OMP_NUM_THREADS ?= 1

.PHONY: help setup jars sample run airflow test browser postgres postgres-stop postgres-server catalog-register spark-sql bench bench-models bench-churn-sparse bench-orchestration bench-history test-year test-production spark-cluster sql-server data-dictionary notebooks data-docs lint format clean distclean lock airflow-db

help: ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# Bytecode compiled once at install: uv writes none by default, and where PYTHONDONTWRITEBYTECODE
# is set no process writes any either, so every task, job driver and worker would compile the
# modules it imports from source each time (a validation job: 53 s of CPU instead of 45 s).
$(INSTALLED): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

jars: $(INSTALLED) ## Fetch the Delta JARs from Maven Central once, into .cache/
	@$(BIN)/python tools/fetch_delta_jars.py

setup: $(INSTALLED) jars ## Create .venv with the pinned packages and fetch the Delta JARs

sample: setup ## Generate the raw landing sample if the landing zone is empty
	$(BIN)/python -m omni.sample --if-empty

airflow-db: setup $(PROFILE_SERVICES)
	@tools/airflow_db.sh

# The server programs: Debian's package where they are missing (needs root, as in CI).
postgres-server:
	@ls /usr/lib/postgresql/*/bin/postgres > /dev/null 2>&1 || [ -n "$$OMNI_POSTGRES_BIN" ] || \
		{ echo "Installing the PostgreSQL server (apt-get install -y postgresql)"; \
		  export DEBIAN_FRONTEND=noninteractive; \
		  apt-get install -y -q postgresql > /dev/null 2>&1 || \
		  { apt-get update -q > /dev/null && apt-get install -y -q postgresql > /dev/null; }; }

# What a person sees is tested in headless Chromium (tests/browser.py): Debian's package.
browser:
	@command -v chromium > /dev/null 2>&1 || \
		{ echo "Installing Chromium for the browser tests (apt-get install -y chromium)"; \
		  export DEBIAN_FRONTEND=noninteractive; \
		  apt-get install -y -q chromium > /dev/null 2>&1 || \
		  { apt-get update -q > /dev/null && apt-get install -y -q chromium > /dev/null; }; }

postgres: setup postgres-server ## The PostgreSQL profile's server: start it locally (data/postgres) if PGHOST is this machine, create its databases and the metastore schema
	@OMNI_PROFILE=postgresql $(BIN)/python -m omni.postgres start

postgres-stop: setup ## Stop the local PostgreSQL server of `make postgres`
	@$(BIN)/python -m omni.postgres stop

PROFILE ?= $(OMNI_PROFILE)
catalog-register: setup ## Name the lakehouse's tables in PROFILE's catalog (postgresql or embedded): the move between profiles
	@if [ "$(PROFILE)" = postgresql ]; then $(MAKE) --no-print-directory postgres; fi
	$(BIN)/python -m omni.catalog register --profile $(PROFILE)

spark-sql: setup $(PROFILE_SERVICES) ## A spark-sql shell on the profile's catalog: every table by name
	@$(BIN)/python -m omni.catalog shell

# `airflow dags test` runs one DAG run in-process, without a scheduler: the lakehouse DAG, then
# the model DAG its gold assets would trigger under the scheduler (`make airflow`).
# Two nights when a campaign starts in the landing zone: its launch night assigns the audience,
# the latest night reads out what it changed.
run: sample airflow-db ## Run the nightly DAGs (lakehouse, then models) through Airflow: a campaign's launch night, then the latest date
	@nights="$$($(BIN)/python -m omni.sample --print-nights)" && \
	for date in $$nights; do \
		echo "Running omni_nightly, then omni_models, for $$date" && \
		$(BIN)/airflow dags test omni_nightly $$date && \
		$(BIN)/airflow dags test omni_models $$date || exit 1; \
	done && \
	$(BIN)/python -m omni.report --date $${nights##* }

airflow: sample airflow-db ## Start Airflow standalone (UI, scheduler) on localhost with the project's DAGs
	@AIRFLOW_PORT=$(AIRFLOW_PORT) tools/airflow_standalone.sh

# Two workers on two cores: the end-to-end module, the longest, starts at once on one of them
# (tests/conftest.py puts it first) while the other modules share the other worker.
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder --durations=25
test: lint postgres-server browser ## Run the whole test suite (after the lint checks; PYTEST_ARGS=... to change how)
	$(BIN)/pytest $(PYTEST_ARGS)

# The long histories: the year on one worker, the two shops with one channel on the other.
YEAR_PYTEST_ARGS ?= -n 2 --dist loadfile --durations=10
test-year: lint ## A retailer's year, then two nights; shops with one channel (in-process; 25-35 min; .ci/run runs it after make test)
	$(BIN)/pytest -m year tests/test_year.py tests/test_one_channel.py $(YEAR_PYTEST_ARGS)

# The PostgreSQL profile end to end: both DAGs under the scheduler (LocalExecutor) on a server
# the test starts, beside an embedded-profile run of the same sample.
PRODUCTION_PYTEST_ARGS ?= -n 2 --dist loadfile --durations=10
test-production: lint postgres-server ## The PostgreSQL profile: under a real Airflow scheduler against an embedded run; one catalog, moves, outages (20-30 min; not in .ci/run)
	$(BIN)/pytest -m production tests/test_production_profile.py tests/test_postgres_profile.py $(PRODUCTION_PYTEST_ARGS)

BENCH_ARGS ?= --customers 2000 --days 90 --night 60
bench: setup ## Lakehouse benchmark: nightly vs floor, night N vs night 1, backfill (BENCH_ARGS=...)
	$(BIN)/python -m bench.lakehouse $(BENCH_ARGS)

ORCHESTRATION_BENCH_ARGS ?=
bench-orchestration: setup ## Nightly DAGs on local[*] vs a local standalone cluster; spark-submit overhead
	$(BIN)/python -m bench.orchestration $(ORCHESTRATION_BENCH_ARGS)

HISTORY_BENCH_ARGS ?=
bench-history: setup ## A year backfilled in one omni_nightly run, then nights, through Airflow (HISTORY_BENCH_ARGS=...)
	$(BIN)/python -m bench.history $(HISTORY_BENCH_ARGS)

spark-cluster: setup ## Start a Spark standalone master and worker on 127.0.0.1 (Ctrl-C stops them)
	$(BIN)/python -m omni.standalone

notebooks: setup $(PROFILE_SERVICES) ## Execute the notebooks on the default data into data/notebooks/ (after make run)
	@mkdir -p data/notebooks
	@for book in notebooks/*.ipynb; do \
		echo "Executing $$book"; \
		$(BIN)/jupyter-execute --timeout=900 --output=$(CURDIR)/data/notebooks/$$(basename $$book) $$book || exit 1; \
	done

MODEL_BENCH_ARGS ?= --customers 10000 100000
bench-models: setup ## Model benchmark: training set, fits and scoring at two sizes (MODEL_BENCH_ARGS=...)
	$(BIN)/python -m bench.models $(MODEL_BENCH_ARGS)

bench-churn-sparse: setup ## The churn model against BG/NBD on CDNOW's real purchases (store-only, 90-day horizon)
	$(BIN)/python -m bench.churn_sparse

SQL_PORT ?= 10000
sql-server: setup $(PROFILE_SERVICES) ## Start the Spark Thrift (JDBC/ODBC) server on localhost: gold, silver, bronze tables by name
	$(BIN)/python -m omni.sql_server --port $(SQL_PORT)

data-dictionary: setup ## Regenerate docs/data-dictionary.md and .html from the table registry
	$(BIN)/python -m omni.data_dictionary

DOCS_PORT ?= 8765
data-docs: ## Serve the Great Expectations Data Docs (data/gx/data_docs) on localhost
	@test -f data/gx/data_docs/index.html || (echo "No Data Docs yet: run 'make run' first"; exit 1)
	@echo "Data Docs: http://127.0.0.1:$(DOCS_PORT)/index.html (Ctrl-C stops)"
	@$(PYTHON) -m http.server $(DOCS_PORT) --bind 127.0.0.1 --directory data/gx/data_docs

lint: setup ## Check style and formatting with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## Fix import order and style with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: ## Re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean: ## Remove generated data, Airflow state and caches (keeps .venv and the JAR cache)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m omni.postgres stop > /dev/null 2>&1 || true; fi
	rm -rf data .airflow .pytest_cache .ruff_cache spark-warehouse metastore_db derby.log
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

distclean: clean ## Also remove .venv and the JAR cache
	rm -rf .venv .cache
