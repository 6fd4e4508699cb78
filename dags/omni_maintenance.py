"""
### Omni-channel lakehouse maintenance

Weekly, on Sundays at `OMNI_MAINTENANCE_AT` (05:00) in `OMNI_TIMEZONE`: `OPTIMIZE` compacts
the small files that nightly appends leave, then `VACUUM` deletes files that no version
younger than `OMNI_VACUUM_RETENTION_HOURS` (168, Delta's 7 days) needs. It covers every
registered Delta table. Time travel within the retention keeps working. The
`retention_hours` param overrides the retention for one run; it cannot go below 0.

Schedule it apart from `omni_nightly`. Delta's optimistic concurrency makes a conflicting
`OPTIMIZE` fail rather than corrupt a table, and the task retries.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from omni import orchestration as orc
from omni.config import load_settings

SETTINGS = load_settings()


@dag(
    dag_id="omni_maintenance",
    schedule=orc.daily_at(SETTINGS, SETTINGS.maintenance_at, weekday="0"),
    **orc.dag_defaults(SETTINGS),
    params={
        "retention_hours": Param(
            SETTINGS.vacuum_retention_hours,
            type="integer",
            minimum=0,
            description="VACUUM keeps files that versions younger than this need.",
        )
    },
    doc_md=__doc__,
    tags=["omnichannel", "maintenance", "lakehouse"],
)
def omni_maintenance():
    orc.spark_job(
        SETTINGS,
        "optimize_and_vacuum",
        "jobs/maintenance.py",
        "--retention-hours",
        "{{ params.retention_hours }}",
        date_arg=orc.RUN_DAY,
    )


omni_maintenance()
