"""No customer identifier in an error message, a task log or an alert e-mail."""

from __future__ import annotations

import subprocess

from omni import quality
from omni.config import REPO_ROOT, load_settings
from omni.redact import describe_error, redact
from omni.sparkconf import spark_submit_command
from tests.conftest import job_environment

IDENTIFIERS = ("C0001234", "jane.doe@example.com")


def test_quoted_values_emails_and_customer_keys_are_redacted():
    text = (
        "[CAST_INVALID_INPUT] The value 'C0001234' of the type \"STRING\" cannot be cast; "
        "mail jane.doe@example.com, key 0123456789abcdef0123, table `gold`.`customer_scores`"
    )
    assert redact(text) == (
        '[CAST_INVALID_INPUT] The value <redacted> of the type "STRING" cannot be cast; '
        "mail <redacted>, key <redacted>, table `gold`.`customer_scores`"
    )
    assert describe_error(KeyError("C0001234")) == "KeyError: <redacted>"
    assert describe_error(ValueError("start_date 2026-11-05 is after end_date 2026-10-31")) == (
        "ValueError: start_date 2026-11-05 is after end_date 2026-10-31"
    )


def test_a_failed_gate_names_the_check_but_not_the_rows_that_broke_it():
    failure = {
        "severity": "blocking",
        "expectation_type": "expect_column_values_to_be_in_set",
        "kwargs": '{"column": "platform"}',
        "observed_value": None,
        "unexpected_count": 1,
        "unexpected_sample": '[{"customer_id": "C0001234", "platform": "fax"}]',
        "exception": None,
    }
    text = quality.describe([("silver.ecommerce_events", failure)])
    assert "C0001234" not in text and "fax" not in text
    assert "sample rows in quality.validation_results" in text
    assert 'expect_column_values_to_be_in_set {"column": "platform"} failed' in text


def test_a_job_failing_on_customer_data_logs_no_identifier(tmp_path):
    env_settings = {"OMNI_LAKEHOUSE_DIR": str(tmp_path / "lakehouse")}
    command = spark_submit_command(
        load_settings(env_settings),
        "tests/failing_job.py",
        "--date",
        "2026-01-01",
        master="local[1]",
    )
    result = subprocess.run(
        command,
        env=job_environment(env_settings),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "job failing failed: " in output and "CAST_INVALID_INPUT" in output
    assert "PythonException" in output or "ValueError" in output  # the executor's failure
    for identifier in IDENTIFIERS:
        assert identifier not in output, output[-3000:]
