"""Running the real service for tests: `synthwatch serve` in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from synthwatch.cli import main
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import HeadRegistry
from tests.store.test_index import TINY, _write_crops

TOKEN = "test-token-5f2c"
GENERATORS = ("gen-a", "gen-b")


def build_trained_store(folder: Path) -> Path:
    """A store in ``folder`` of real crops and fakes of two generators in six source groups each
    (enough groups for the splits), embedded with test-tiny-dinov2, indexed, and a trained
    champion judged on floors of 0, and a report where a retrain keeps the champion's (leave-one-generator-
    out, as a retrain's report is, so it draws held-out ROC curves); returns
    the store root (the originals are under ``folder/in``)."""
    for group in range(6):
        _write_crops(folder / "in" / "real" / f"r{group}", 4, seed=10 + group)
        for number, generator in enumerate(GENERATORS):
            _write_crops(folder / "in" / "synthetic" / generator / f"s{group}", 3, seed=100 + 10 * number + group)
    store = folder / "store"
    for args in (["ingest", folder / "in", "--quiet"], ["embed", *TINY, "--quiet"], ["index"],
                 ["train", "--n-boot", "50", "--auroc-floor", "0", "--tpr-floor", "0"]):
        assert main(["--store", str(store), *map(str, args), "--json"]) == 0, args
    layout = StoreLayout(store)
    report = layout.report_path(HeadRegistry(layout).champion())
    assert main(["--store", str(store), "evaluate", "--n-boot", "50", "--protocol", "logo", "--report", str(report), "--json"]) == 0
    return store


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_service(store: Path, *args: str, output: Path | None = None) -> Iterator[str]:
    """`synthwatch --store STORE serve ARGS` with the test token; yields its base URL once it
    answers, and stops it after. Its output goes to a file (a pipe nobody reads fills and stalls
    it): ``output`` if given, else a temporary one."""
    port = _free_port()
    env = {**os.environ, "SYNTHWATCH_API_TOKEN": TOKEN}
    with (open(output, "w+b") if output else tempfile.TemporaryFile()) as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "synthwatch", "--store", str(store), "serve", "--port", str(port), *map(str, args)],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(base, process, log)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_until_up(base: str, process: subprocess.Popen, log) -> None:
    """Poll until the service answers; a process that died fails at once with its output, one
    that never answers is stopped by pytest-timeout (no wall-clock bound here)."""
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).json()["status"] == "ok":
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"synthwatch serve exited with {process.returncode}:\n{log.read().decode()}")
        time.sleep(0.2)
