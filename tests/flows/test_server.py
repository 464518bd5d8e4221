"""Against a real standalone Prefect server on a loopback port: a new generator's event and a drift
alarm start the retrain deployment through its trigger, and a cycle killed mid-way resumes cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from synthwatch.store.catalog import Catalog
from synthwatch.store.layout import StoreLayout

BIN = Path(sys.executable).parent
NO_FLOORS = ("--auroc-floor", "0", "--tpr-floor", "0")


EMIT_DRIFT = """
import asyncio, sys
from prefect.events import Event
from prefect.events.clients import get_events_client
from synthwatch.flows.tasks import store_resource

async def main():
    async with get_events_client() as client:
        await client.emit(Event(event="synthwatch.drift.detected", resource=store_resource(sys.argv[1]),
                                payload={"checks": []}))

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(what, check, timeout_s: float, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`prefect server start` on a free loopback port, with its own home folder and database."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": api, "PREFECT_LOGGING_LEVEL": "WARNING"}
    log = open(home / "server.log", "wb")
    process = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def healthy():
        assert process.poll() is None, (home / "server.log").read_text()[-3000:]
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait("the Prefect server", healthy, 180)
    yield api, env
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def _synthwatch(store, *args, env, **kwargs):
    return subprocess.run([str(BIN / "synthwatch"), "--store", str(store), *map(str, args)], env=env,
                          capture_output=True, text=True, **kwargs)


def _runs_of(api: str, deployment_name: str) -> list[dict]:
    deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
    ids = {d["id"] for d in deployments if d["name"] == deployment_name}
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 50}, timeout=10).json()
    return [r for r in runs if r.get("deployment_id") in ids]


@pytest.mark.timeout(900)  # a server, a deploy process and three runs on 2 cores
def test_new_generator_and_drift_events_trigger_the_retrain_deployment(server, inbox):
    api, env = server
    store, folder, _ = inbox
    assert _synthwatch(store, "sources", "add", folder, env=env).returncode == 0
    # Served from a folder that holds the store as ./store beside packages named like the rooms:
    # installed, the project takes only the name `synthwatch`, so none of them can stand in for it.
    workdir = store.parent
    for room in ("embeddings", "heads", "flows"):
        (workdir / room).mkdir()
        (workdir / room / "__init__.py").write_text("")
    deploy = subprocess.Popen([str(BIN / "synthwatch"), "deploy", "--backbone", "test-tiny-dinov2", *NO_FLOORS],
                              env={**env, "SYNTHWATCH_STORE": "./store"}, cwd=workdir, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait("the deployments", lambda: {d["name"] for d in httpx.post(f"{api}/deployments/filter", json={}).json()}
              >= {"continual", "retrain", "ingest", "embed", "index"}, 120)
        # Run one cycle through the server; it ingests two new generators and forwards their events.
        started = subprocess.run([str(BIN / "prefect"), "deployment", "run", "synthwatch-continual/continual"],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        done = _wait("the continual run", lambda: [r for r in _runs_of(api, "continual")
                                                  if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")], 240)
        assert done[0]["state_type"] == "COMPLETED", done
        finished = _wait("a retrain run started by the trigger", lambda: [
            r for r in _runs_of(api, "retrain") if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")], 240)
        assert finished[0]["state_type"] == "COMPLETED", finished
        assert finished[0]["parameters"]["reason"] == "event synthwatch.generator.new"
        layout = StoreLayout(store)
        champion = json.loads((layout.root / "heads" / "champion.json").read_text())["version"]
        record = json.loads((layout.root / "heads" / champion / "record.json").read_text())
        assert "event synthwatch.generator.new" in record["reason"]
        names = [e["name"] for e in Catalog(layout).events()]
        assert names.count("synthwatch.generator.new") == 2 and "synthwatch.head.promoted" in names

        # A drift alarm about this store starts the retrain deployment too.
        emitted = subprocess.run([sys.executable, "-c", EMIT_DRIFT, str(store)], env=env, capture_output=True,
                                 text=True, timeout=120)
        assert emitted.returncode == 0, emitted.stderr
        by_drift = _wait("a retrain run started by the drift event", lambda: [
            r for r in _runs_of(api, "retrain") if r["parameters"].get("reason") == "event synthwatch.drift.detected"
            and r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")], 240)
        assert by_drift[0]["state_type"] == "COMPLETED", by_drift
    finally:
        os.killpg(deploy.pid, signal.SIGTERM)
        deploy.wait(timeout=30)


def _ingested(layout: StoreLayout) -> bool:
    """One batch commits the whole inbox; the cycle then embeds, indexes and retrains."""
    try:
        return layout.exists() and Catalog(layout).status()["images"]["real"] > 0
    except Exception:  # the catalog is being created
        return False


def _retraining(layout: StoreLayout) -> bool:
    """Training has begun: it embeds the robustness views (1000+) of the images it tests on."""
    import pyarrow.parquet as pq

    for shard in (layout.root / "vectors").glob("*/*.parquet"):
        try:
            if max(pq.read_table(shard, columns=["view"]).column("view").to_pylist(), default=0) >= 1000:
                return True
        except Exception:  # a shard being renamed into place
            continue
    return False


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kill_when", [_ingested, _retraining], ids=["after-ingest", "mid-retrain"])
def test_a_cycle_killed_mid_way_resumes_cleanly(server, inbox, kill_when):
    api, env = server
    store, folder, _ = inbox
    layout = StoreLayout(store)
    assert _synthwatch(store, "sources", "add", folder, env=env).returncode == 0
    run = [str(BIN / "synthwatch"), "--store", str(store), "run", "--backbone", "test-tiny-dinov2", *NO_FLOORS, "--json"]
    process = subprocess.Popen(run, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    _wait(f"the cycle to reach {kill_when.__name__}", lambda: kill_when(layout), 300, every_s=0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Killed before the cycle finished. Mid-retrain the rest of the cycle takes seconds after the
    # views appear, so the kill nearly always lands first; if it did not, the cycle had ended.
    finished = (layout.root / "heads" / "champion.json").exists()
    assert not finished or kill_when is _retraining
    resumed = subprocess.run(run, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode in (0, 3), resumed.stderr[-3000:]  # 3: the gate rejected the candidate
    result = json.loads(resumed.stdout)
    assert (resumed.returncode == 3) == (result["decision"] == "rejected")
    assert result["champion"] is not None
    if not finished:
        assert result["retrained"] and result["decision"] == "promoted"
    status = json.loads(_synthwatch(store, "status", "--verify", "--json", env=env).stdout)
    assert status["images"] == {"real": 72, "synthetic": 32} and status["problems"] == []
    backbone_id = next(iter(status["embeddings"]))
    rows = Catalog(layout).query(f"SELECT image_id, view, count(*) FROM read_parquet('{store}/vectors/{backbone_id}/*.parquet') "
                                 "GROUP BY image_id, view HAVING count(*) > 1")
    assert rows == []  # no (image, view) embedded twice
    clean = Catalog(layout).query(f"SELECT count(DISTINCT image_id) FROM read_parquet('{store}/vectors/{backbone_id}/*.parquet') "
                                  "WHERE view = 0")[0][0]
    assert clean == 104
    again = json.loads(subprocess.run(run, env=env, capture_output=True, text=True, timeout=600).stdout)
    assert (again["ingested"], again["embedded"], again["retrained"]) == (0, 0, False)
