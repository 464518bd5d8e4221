"""Embedding on a real Dask cluster: a scheduler and two workers started with the `distributed`
package's own commands, as separate processes on the loopback interface, the way a user starts
them; `synthwatch run --dask ADDRESS` pointed at it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from synthwatch.store.catalog import Catalog
from synthwatch.store.layout import StoreLayout

DASK = str(Path(sys.executable).with_name("dask"))
BACKBONE = "test-tiny-dinov2"


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes, each in its own process group."""

    def __init__(self, folder: Path, workers: int) -> None:
        self.scheduler_file = folder / "scheduler.json"
        common = {"cwd": folder, "start_new_session": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                           "--scheduler-file", str(self.scheduler_file)], **common)
        self.workers = [subprocess.Popen([DASK, "worker", "--scheduler-file", str(self.scheduler_file), "--host",
                                          "127.0.0.1", "--nthreads", "1", "--no-dashboard", "--name", f"w{n}"],
                                         **common) for n in range(workers)]
        self.address = self._wait(workers)

    def _wait(self, workers: int) -> str:
        from distributed import Client

        deadline = time.monotonic() + 90
        while not self.scheduler_file.exists():
            if time.monotonic() > deadline or self.scheduler.poll() is not None:
                raise RuntimeError("dask scheduler did not start")
            time.sleep(0.2)
        address = json.loads(self.scheduler_file.read_text())["address"]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=90)
        return address

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and its nanny: nothing restarts it
        process.wait()

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                self.kill(process)


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path, workers=2)
    yield started
    started.close()


def _run(store: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "synthwatch", "--store", str(store), "run", "--backbone", BACKBONE,
                             "--allow-random-weights", *flags, "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _vectors(store: Path):
    from synthwatch.heads.prepare import load_embedding_set

    return load_embedding_set(StoreLayout(store), _backbone_id(store))


def _backbone_id(store: Path) -> str:
    return next(path.name for path in (store / "vectors").iterdir() if path.is_dir())


@pytest.fixture
def two_stores(inbox, tmp_path):
    """The inbox corpus watched by two stores: one embedded on the cluster, one in a single process."""
    from synthwatch.store.watched import add_source

    store, folder, _ = inbox
    local = tmp_path / "local"
    for target in (store, local):
        add_source(StoreLayout(target), str(folder))
    return store, local


def test_run_fans_embedding_out_over_two_worker_processes_with_the_vectors_of_a_single_process(cluster, two_stores):
    store, local = two_stores
    fanned = _run(store, "--dask", cluster.address)
    alone = _run(local)
    (out, err), (local_out, local_err) = fanned.communicate(timeout=600), alone.communicate(timeout=600)
    assert fanned.returncode in (0, 3), err[-3000:]  # 3: the gate rejected the first candidate
    assert alone.returncode in (0, 3), local_err[-3000:]
    result = json.loads(out)
    assert result["embedded"] == json.loads(local_out)["embedded"] == 104
    a, b = _vectors(local), _vectors(store)
    assert a.image_ids.tolist() == b.image_ids.tolist() and a.views.tolist() == b.views.tolist()
    np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-5, atol=1e-6)
    runs = [json.loads(row[0]) for row in Catalog(StoreLayout(store)).query(
        "SELECT summary FROM runs WHERE command = 'embed' ORDER BY started_at")]
    # One writer: the workers wrote shards only; the fan-out's one run record is the coordinator's
    # (the retrain's robustness views are embedded in the flow's process, a run of their own).
    fanned_out = [run for run in runs if "workers" in run]
    assert len(fanned_out) == 1 and fanned_out[0]["embedded"] == 104 and fanned_out[0]["chunks"] > 2
    assert fanned_out[0]["workers"] == 2  # work landed on both worker processes


def test_a_worker_killed_mid_run_loses_nothing_and_the_run_completes_on_the_other(cluster, two_stores):
    from distributed import Client

    store, local = two_stores
    run = _run(store, "--dask", cluster.address)
    victim = None
    with Client(cluster.address, timeout=60) as client:
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline and run.poll() is None:
            busy = [worker for worker, tasks in client.processing().items() if tasks]
            if busy:
                name = client.scheduler_info()["workers"][busy[0]]["name"]
                victim = cluster.workers[int(str(name)[1:])]
            time.sleep(0.05)
    assert victim is not None, "no worker ever took a task"
    cluster.kill(victim)
    out, err = run.communicate(timeout=600)
    assert run.returncode in (0, 3), err[-3000:]
    assert json.loads(out)["embedded"] == 104
    alone = _run(local)
    local_out, local_err = alone.communicate(timeout=600)
    assert alone.returncode in (0, 3), local_err[-3000:]
    a, b = _vectors(local), _vectors(store)
    assert a.image_ids.tolist() == b.image_ids.tolist()  # every image, each once
    np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-5, atol=1e-6)
