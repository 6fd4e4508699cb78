"""The SQL server's command line (the server itself runs in the end-to-end module)."""

from __future__ import annotations

import pytest

from omni import sql_server


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "ten"], "'ten': expected a port number"),
        (["--port", "70000"], "'70000': expected a port from 1 to 65535"),
        (["--refresh", "0"], "'0': expected a positive number of seconds"),
        (["--refresh", "soon"], "'soon': expected a number of seconds"),
    ],
)
def test_bad_arguments_are_refused_before_spark_starts(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        sql_server.main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_the_jdbc_url_names_host_and_port():
    assert sql_server.jdbc_url("127.0.0.1", 10001) == "jdbc:hive2://127.0.0.1:10001/default"
