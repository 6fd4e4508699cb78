"""
### Omni-channel customer erasure (right to be forgotten)

Trigger with the params `identifier_type` and `identifier` (for example `customer_id` /
`C000123`, or `email` / `jane@example.com`). The job resolves the customer through
`silver.customer_identity` to every identifier linked to them. It deletes their rows from
every table that holds customer data, raw texts included. Then it purges the deleted rows
from the Delta files (`REORG ... APPLY (PURGE)`, `VACUUM RETAIN 0 HOURS`), so time travel
cannot bring them back. `quarantine.erasure_audit` keeps only SHA-256 hashes of the request,
and the landing files that still hold the customer's lines: the landing zone belongs to the
source systems, so by default they are only listed (`landing` = `report`); `rewrite` rewrites
them without those lines, and the audit says which was done. The customer's identifiers go
to `quarantine.suppressed_identifiers` as keyed hashes: every later night drops a record that
carries one (a re-delivered CRM row, a late event), and so does a rebuild from the landing zone.

The identifier reaches the job in its environment, not on the `spark-submit` command line,
so it stays out of process lists and task logs. It is stored in this DAG run's `conf` in
the Airflow database: clear old runs (`airflow db clean`) as your retention policy requires.
An unknown identifier fails the task with a message that says so; nothing is deleted.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from omni import orchestration as orc
from omni import tables
from omni.config import load_settings

SETTINGS = load_settings()


@dag(
    dag_id="omni_erasure",
    schedule=None,
    **orc.dag_defaults(SETTINGS),
    params={
        "identifier_type": Param(
            "customer_id",
            type="string",
            enum=list(tables.ERASURE_IDENTIFIER_TYPES),
            description="What the identifier is.",
        ),
        "identifier": Param(
            "", type="string", minLength=1, description="The customer's identifier."
        ),
        "landing": Param(
            "report",
            type="string",
            enum=["report", "rewrite"],
            description="The landing files that hold the customer: list them in the audit "
            "(report), or also rewrite them without the customer's lines (rewrite).",
        ),
    },
    doc_md=__doc__,
    tags=["omnichannel", "privacy", "erasure"],
)
def omni_erasure():
    orc.spark_job(
        SETTINGS,
        "erase_customer",
        "jobs/erase_customer.py",
        "--identifier-type",
        "{{ params.identifier_type }}",
        "--landing",
        "{{ params.landing }}",
        date_arg=orc.RUN_DAY,
        env={"OMNI_ERASE_IDENTIFIER": "{{ params.identifier }}"},
    )


omni_erasure()
