"""Keep customer identifiers out of error messages, task logs and alert e-mails.

Whatever a job raises ends in the Airflow task log, and its summary in the alert e-mail. An
exception can quote the data it failed on: Spark quotes values in single quotes (``The value
'C0001234' of the type "STRING" cannot be cast``), Python's ``repr`` quotes strings, an
executor's error on any Spark master carries the row's values back to the driver. So a job's
error is reported with every quoted literal, e-mail address and customer key replaced; the
data stays where it is governed (quarantine, validation results), never in a log.
"""

from __future__ import annotations

import re

REDACTED = "<redacted>"
_PATTERNS = (
    re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"),  # e-mail addresses
    # 'single-quoted' literals: how Spark quotes values, and Python's repr of a string.
    # (Double quotes are left: Spark quotes types with them, JSON keys and arguments too.)
    re.compile(r"'(?:[^'\\\n]|\\.)*'"),
    re.compile(r"\b[0-9a-f]{20}\b"),  # customer keys (omni.transforms.identity.KEY_LENGTH)
)


def redact(text: str) -> str:
    """``text`` with quoted literals, e-mail addresses and customer keys replaced."""
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def describe_error(error: BaseException | None) -> str:
    """``Type: message`` of an exception, redacted."""
    if error is None:
        return "None"
    return f"{type(error).__name__}: {redact(str(error))}"
