"""`synthwatch serve` under load: requests per second and p50 / p99 latency of `POST /detect`,
one image per request (one client, then several at once) and in batches, over a small store of
the proxy corpus embedded with a given backbone; with `--workers 1,2`, once per number of worker
processes (`serve --workers N`), on the same store and the same requests.

Usage: python benchmarks/service.py [--backbone test-tiny-dinov2] [--requests 200] [--clients 4]
                                    [--batch 8] [--workers 1[,2...]] [--out FILE.json]
`--backbone dinov2-small` uses DINOv2-small's architecture (random weights where the real ones are
missing: the timing is the architecture's, the verdicts mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from synthwatch.cli import main as synthwatch  # noqa: E402
from synthwatch.corpus import build_corpus  # noqa: E402

TOKEN = "benchmark-token"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backbone", default="test-tiny-dinov2")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", default="1", help="worker processes of the service, comma-separated to compare")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.workers.split(",")]
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"machine: {machine}; backbone {args.backbone}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        store, images = _trained_store(Path(scratch), args.backbone)
        uploads = [path.read_bytes() for path in images]
        for workers in worker_counts:
            runs += [{"workers": workers, **run} for run in _serve_and_measure(store, uploads, workers, args)]
    for run in runs:
        base_rate = next(r["images_per_s"] for r in runs if r["workers"] == run["workers"])
        print(f"{run['workers']} worker(s)  {run['mode']:<28} {run['requests_per_s']:7.1f} requests/s  "
              f"{run['images_per_s']:7.1f} images/s ({run['images_per_s'] / base_rate:4.2f}x)  "
              f"p50 {run['p50_ms']:7.1f} ms  p99 {run['p99_ms']:7.1f} ms")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine, "backbone": args.backbone, "runs": runs}, indent=1))


def _serve_and_measure(store: Path, uploads: list[bytes], workers: int, args: argparse.Namespace) -> list[dict]:
    """The three modes against `synthwatch serve --workers WORKERS` in its own process."""
    port = _free_port()
    env = {**os.environ, "SYNTHWATCH_API_TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "synthwatch", "--store", str(store), "serve", "--port",
                               str(port), "--decoders", str(args.clients), "--workers", str(workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base)
        _warm_up(base, uploads, 10 * workers * args.clients, args.clients)
        return [_measure("single, 1 client", base, uploads, args.requests, 1, 1),
                _measure(f"single, {args.clients} clients", base, uploads, args.requests, args.clients, 1),
                _measure(f"batches of {args.batch}, {args.clients} clients", base, uploads,
                         max(args.requests // args.batch, 4), args.clients, args.batch)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _warm_up(base: str, uploads: list[bytes], requests: int, clients: int) -> None:
    """Untimed requests until every worker has loaded the head, the index and the backbone. A
    worker's first requests at once may fail (transformers' lazy imports are not thread-safe):
    counted and said, not fatal here."""
    def attempt(data: bytes) -> bool:
        try:
            _post(base, [data])
            return True
        except httpx.HTTPStatusError:
            return False

    ok = [attempt(uploads[0])]
    with ThreadPoolExecutor(clients) as pool:
        ok += pool.map(attempt, [uploads[n % len(uploads)] for n in range(requests)])
    if not all(ok):
        print(f"warm-up: {ok.count(False)} of {len(ok)} requests failed", flush=True)


def _trained_store(scratch: Path, backbone: str) -> tuple[Path, list[Path]]:
    corpus = build_corpus(scratch / "corpus", seed=0, size="small")
    store = scratch / "store"
    for step in (["ingest", corpus.out, "--quiet"],
                 ["embed", "--backbone", backbone, "--allow-random-weights", "--quiet"], ["index"],
                 ["train", "--n-boot", "50", "--no-robustness", "--auroc-floor", "0", "--tpr-floor", "0"]):
        code = synthwatch(["--store", str(store), *map(str, step), "--json"])
        assert code == 0, step
    return store, sorted(corpus.out.rglob("*.png"))[:64]


def _measure(mode: str, base: str, uploads: list[bytes], requests: int, clients: int, batch: int) -> dict:
    batches = [[uploads[(n * batch + i) % len(uploads)] for i in range(batch)] for n in range(requests)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(lambda images: _post(base, images), batches))
    elapsed = time.perf_counter() - started
    return {"mode": mode, "requests": requests, "batch": batch, "clients": clients,
            "requests_per_s": round(requests / elapsed, 2), "images_per_s": round(requests * batch / elapsed, 2),
            "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(latencies, 99)) * 1000, 1)}


def _post(base: str, images: list[bytes]) -> float:
    started = time.perf_counter()
    answer = httpx.post(f"{base}/detect", params={"k": 5, "source": "benchmark"},
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        files=[("file", (f"{n}.png", data, "image/png")) for n, data in enumerate(images)], timeout=300)
    answer.raise_for_status()
    return time.perf_counter() - started


def _wait_ready(base: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not become ready within 2 minutes")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
