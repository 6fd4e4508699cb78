"""A Spark standalone cluster (one master, one worker) on 127.0.0.1 from the pip-installed Spark.

The pip wheel has no ``sbin/start-master.sh``; ``spark-class`` starts the daemons instead.
Used by the cluster test and benchmark, and by ``make spark-cluster`` to try the jobs on a
real cluster: point ``spark_default`` at the master it prints.

    python -m omni.standalone --cores 2 --memory 4g     (or: make spark-cluster)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omni.config import REPO_ROOT

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


@dataclass(frozen=True)
class Cluster:
    master_url: str
    ui_url: str
    work_dir: Path


def spark_home() -> Path:
    """The Spark distribution inside the pip-installed pyspark package."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pyspark is not installed: run 'make setup'")
    return Path(spec.submodule_search_locations[0])


def _wait(check, what: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as page:
            return int(json.load(page).get("aliveworkers", 0))
    except OSError:
        return 0


@contextmanager
def standalone_cluster(
    work_dir: Path,
    *,
    port: int = 7077,
    ui_port: int = 8090,
    cores: int = 2,
    memory: str = "4g",
):
    """Start a master and a worker; yield the :class:`Cluster`; stop both on exit."""
    if _port_open(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is taken: expected it free for the master")
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_WORKER_DIR": str(work_dir / "worker"),
        "SPARK_LOCAL_DIRS": str(work_dir / "local"),
        "SPARK_LOG_DIR": str(work_dir / "logs"),
        "SPARK_NO_DAEMONIZE": "1",
    }
    master_url = f"spark://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []
    try:
        master_log = work_dir / "master.log"
        master = _start(
            [
                MASTER_CLASS,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(ui_port),
            ],
            env,
            master_log,
        )
        processes.append(master)
        _wait(lambda: _port_open(port), "the Spark master", master, master_log)
        worker_log = work_dir / "worker.log"
        worker = _start(
            [
                WORKER_CLASS,
                "--host",
                "127.0.0.1",
                "--cores",
                str(cores),
                "--memory",
                memory,
                "--webui-port",
                "0",
                master_url,
            ],
            env,
            worker_log,
        )
        processes.append(worker)
        _wait(lambda: _alive_workers(ui_port) >= 1, "the Spark worker", worker, worker_log)
        yield Cluster(master_url, f"http://127.0.0.1:{ui_port}", work_dir)
    finally:
        for process in reversed(processes):
            _stop(process)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [str(Path(env["SPARK_HOME"]) / "bin" / "spark-class"), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen) -> None:
    """Stop a daemon and everything it started (the worker's executors)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=REPO_ROOT / "data" / "spark-standalone",
        help="worker, log and scratch folders",
    )
    parser.add_argument("--port", type=int, default=7077)
    parser.add_argument("--ui-port", type=int, default=8090)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--memory", default="4g")
    args = parser.parse_args(argv)
    with standalone_cluster(
        args.work_dir.resolve(),
        port=args.port,
        ui_port=args.ui_port,
        cores=args.cores,
        memory=args.memory,
    ) as cluster:
        connection = json.dumps({"conn_type": "spark", "host": cluster.master_url})
        print(
            f"Spark standalone master {cluster.master_url} (UI {cluster.ui_url}), one worker "
            f"with {args.cores} cores and {args.memory}.\n"
            f"Run the DAGs on it with: export AIRFLOW_CONN_SPARK_DEFAULT='{connection}'\n"
            "Ctrl-C stops the cluster.",
            flush=True,
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
