"""What a job pays before and besides its data work, measured in the job and reported per task.

``run_job`` prints them with the job's counts (``fixed_costs``): the seconds from the process's
start to the job's (the JVM's, under ``spark-submit``, which starts first and then the Python
driver; the interpreter's and the imports otherwise), the Spark session, and the seconds spent
in ``spent`` blocks: the catalog look-ups, the Great Expectations import and context.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SPENT: dict[str, float] = {}


@contextmanager
def spent(name: str) -> Iterator[None]:
    """Add the block's wall seconds to ``name``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _SPENT[name] = _SPENT.get(name, 0.0) + time.perf_counter() - started


def reset() -> None:
    _SPENT.clear()


def since_start(pid: int) -> float | None:
    """Seconds since process ``pid`` started, from Linux's ``/proc`` (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start, since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(uptime - started, 0.0)


def report(before_job: dict[str, float | None]) -> dict[str, float | None]:
    """The fixed costs of this job so far: ``before_job`` and every ``spent`` block."""
    return {
        **{name: None if value is None else round(value, 2) for name, value in before_job.items()},
        **{name: round(value, 2) for name, value in sorted(_SPENT.items())},
    }
