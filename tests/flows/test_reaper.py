"""Children die with the process that started them, even after a SIGKILL and even when a library
(Prefect's temporary server) started them without tying them to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

PARENT = """
import subprocess, sys, time
from synthwatch.flows.reaper import reap_children_on_exit
reap_children_on_exit()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def _wait_until_gone(pid: int) -> None:
    """Return once ``pid`` has exited (a zombie counts); pytest-timeout fails a test it outlives."""
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.1)


@pytest.mark.timeout(60)
def test_a_child_started_in_its_own_session_dies_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=Path.cwd())
    child = int(parent.stdout.readline())
    time.sleep(1.2)  # the reaper notes children twice a second
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    _wait_until_gone(child)


@pytest.mark.timeout(300)
def test_prefects_temporary_server_does_not_outlive_a_killed_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_LOGGING_LEVEL="WARNING")
    run = subprocess.Popen([sys.executable, "-m", "synthwatch", "--store", str(tmp_path / "store"), "run",
                            "--backbone", "test-tiny-dinov2", "--json"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    while server is None and run.poll() is None:
        for process in psutil.Process(run.pid).children(recursive=True):
            try:
                if "prefect.server.api.server" in " ".join(process.cmdline()):
                    server = process
            except psutil.Error:
                continue
        time.sleep(0.1)
    assert server is not None, "the run never started Prefect's temporary server"
    time.sleep(1.2)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    _wait_until_gone(server.pid)
