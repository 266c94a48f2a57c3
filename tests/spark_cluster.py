"""A Spark standalone cluster on 127.0.0.1 for the tests (and bench/throughput.py): a test
helper, not part of the product, which runs on whatever master ``[spark] master`` names."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def standalone_cluster(folder: Path, workers: int = 2, cores: int = 1,
                       timeout: float = 90) -> Iterator[tuple[str, dict]]:
    """A Spark standalone master and ``workers`` workers of ``cores`` cores each on
    127.0.0.1, for trying a cluster on one machine (tests and benchmarks). Pip's pyspark
    has no ``sbin/`` scripts, so they start with ``spark-class``; their logs and work
    folders go to ``folder``. Yields the master URL and the master's state once every
    worker has registered; stops every process by pid."""
    import pyspark

    home = Path(pyspark.__file__).parent
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_class = str(home / "bin" / "spark-class")
    port, ui = _free_port(), _free_port()
    folder.mkdir(parents=True, exist_ok=True)
    commands = {"master": [spark_class, "org.apache.spark.deploy.master.Master", "--host",
                           "127.0.0.1", "--port", str(port), "--webui-port", str(ui)]}
    for number in range(workers):
        commands[f"worker-{number}"] = [
            spark_class, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}",
            "--host", "127.0.0.1", "--cores", str(cores), "--memory", "2g",
            "--webui-port", str(_free_port()), "--work-dir", str(folder / f"work-{number}")]
    processes = [subprocess.Popen(command, env=env, start_new_session=True,
                                  stdout=open(folder / f"{name}.log", "w"),
                                  stderr=subprocess.STDOUT)
                 for name, command in commands.items()]
    try:
        deadline = time.time() + timeout
        while True:
            try:
                state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/",
                                                         timeout=5))
                if state.get("aliveworkers") == workers:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the standalone Spark cluster did not start in "
                                   f"{timeout:.0f} s: {(folder / 'master.log').read_text()[-2000:]}")
            time.sleep(1)
        yield f"spark://127.0.0.1:{port}", state
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
