"""Embedding fanned out over a real Dask cluster: 1 against 2 worker processes on this machine.

Usage: python benchmarks/dask_embed.py [--manifest ../shared/data/realworld-dev/manifest.csv]
           [--backbone srm] [--workers 1,2] [--json]

For each worker count: a fresh store ingests the manifest (not timed), `dask scheduler` and that
many `dask worker --nthreads 1` processes start on the loopback interface, and the embed flow runs
fanned out over them (Prefect's DaskTaskRunner; the ephemeral Prefect server is started by a
warm-up flow first); the wall time of the flow is reported with images per second and the
speed-up over one worker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

DASK = str(Path(sys.executable).with_name("dask"))
DEFAULT_MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realworld-dev" / "manifest.csv"


def start_cluster(folder: Path, workers: int) -> tuple[str, list[subprocess.Popen]]:
    from distributed import Client

    scheduler_file = folder / "scheduler.json"
    common = {"cwd": folder, "start_new_session": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], **common)]
    processes += [subprocess.Popen([DASK, "worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                                    "--nthreads", "1", "--no-dashboard"], **common) for _ in range(workers)]
    while not scheduler_file.exists():
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    with Client(address, timeout=60) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, processes


def one(manifest: Path, backbone: str, workers: int) -> dict:
    from prefect_dask import DaskTaskRunner

    from synthwatch.flows.cycle import embed_flow
    from synthwatch.store.ingest import ingest
    from synthwatch.store.layout import StoreLayout
    from synthwatch.store.sources import plan_sources

    folder = Path(tempfile.mkdtemp(prefix="dask-embed-"))
    try:
        store = folder / "store"
        ingest(StoreLayout(store), plan_sources([str(manifest)]))
        address, processes = start_cluster(folder, workers)
        try:
            started = time.perf_counter()
            result = embed_flow.with_options(task_runner=DaskTaskRunner(address=address))(
                str(store), backbone=backbone, fan_out=True)
            seconds = time.perf_counter() - started
        finally:
            for process in processes:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return {"workers": workers, "images": result["embedded"], "chunks": result["chunks"],
                "worker_processes_used": len(result["workers"]), "seconds": round(seconds, 1),
                "images_per_s": round(result["embedded"] / seconds, 2)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--backbone", default="srm")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from prefect import flow

    flow(name="warm-up")(lambda: None)()  # the ephemeral Prefect server starts here, outside the timings
    rows = [one(args.manifest, args.backbone, int(n)) for n in args.workers.split(",")]
    for row in rows:
        row["speedup"] = round(rows[0]["seconds"] / row["seconds"], 2)
    machine = f"{os.cpu_count()} cores, {platform.machine()}"
    if args.json:
        print(json.dumps({"machine": machine, "backbone": args.backbone, "rows": rows}))
    else:
        print(f"{machine}; backbone {args.backbone}")
        for row in rows:
            print(f"  {row['workers']} worker(s): {row['images']} images in {row['seconds']} s "
                  f"({row['images_per_s']} images/s, {row['speedup']}x)")


if __name__ == "__main__":
    main()
