"""A writer killed with SIGKILL leaves a consistent, resumable store; readers work meanwhile."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthwatch.store.layout import StoreLayout
from synthwatch.store.verify import verify_store
from tests.conftest import write_image

COUNT = 240


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("many")
    for index in range(COUNT):
        generator = f"gen-{index % 4}"
        write_image(root / "synthetic" / generator / f"{index:04d}.png", size=(160, 160), seed=index)
    return root


def _start_ingest(store: Path, folder: Path) -> subprocess.Popen:
    """One image per transaction, so the run is long enough to interrupt."""
    return subprocess.Popen(
        [sys.executable, "-m", "synthwatch", "--store", str(store), "ingest", str(folder),
         "--batch-size", "1", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_blobs(store: Path, at_least: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        blobs = StoreLayout(store).blobs_dir
        if blobs.exists() and sum(1 for p in blobs.rglob("*") if p.is_file()) >= at_least:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("ingest made no progress in 60 s")


def _synthwatch(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "synthwatch", *args, "--json"],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_sigkill_mid_ingest_then_clean_rerun(tmp_path, folder):
    store = tmp_path / "store"
    writer = _start_ingest(store, folder)
    _wait_for_blobs(store, 30, writer)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    status = _synthwatch("--store", str(store), "status")
    stored = status["images"]["synthetic"]
    assert 0 < stored < COUNT, "the kill should land mid-run"
    assert status["last_run"]["status"] == "running"  # the killed run never finished
    assert verify_store(StoreLayout(store)) == []  # no row without its bytes, counts agree

    rerun = _synthwatch("--store", str(store), "ingest", str(folder))
    assert rerun["ingested"] + rerun["duplicates"] == COUNT
    assert rerun["duplicates"] == stored
    final = _synthwatch("--store", str(store), "status")
    assert final["images"]["synthetic"] == COUNT
    assert final["generators"] == {f"gen-{i}": COUNT // 4 for i in range(4)}
    assert final["events"] == 4  # one new-generator event each, never repeated
    assert verify_store(StoreLayout(store)) == []
    leftovers = [p for p in StoreLayout(store).blobs_dir.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_status_answers_while_another_process_ingests(tmp_path, folder):
    store = tmp_path / "store"
    writer = _start_ingest(store, folder)
    try:
        _wait_for_blobs(store, 5, writer)
        seen = []
        while writer.poll() is None and len(seen) < 5:
            seen.append(_synthwatch("--store", str(store), "status")["images"]["synthetic"])
        assert len(seen) >= 3, "the writer finished before readers could overlap with it"
        assert seen == sorted(seen) and seen[-1] < COUNT
    finally:
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert json.loads(out)["ingested"] == COUNT


def test_two_threads_of_one_process_do_not_hold_a_write_lock_together(tmp_path):
    """lockf is per process: without the in-process lock both threads would be inside at once."""
    import threading

    from synthwatch.store.lock import write_lock

    inside, overlaps = [], []

    def writer(name):
        for _ in range(20):
            with write_lock(tmp_path / "write.lock"):
                inside.append(name)
                if len(inside) > 1:
                    overlaps.append(tuple(inside))
                time.sleep(0.002)
                inside.remove(name)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def test_a_nested_write_lock_keeps_other_processes_out_until_the_outer_block_ends(tmp_path):
    from synthwatch.store.lock import write_lock

    probe = [sys.executable, "-c", "import sys; from pathlib import Path; from synthwatch.store.lock import write_lock\n"
             "from synthwatch.store.errors import StoreBusy\n"
             f"try:\n    with write_lock(Path({str(tmp_path / 'write.lock')!r}), timeout_s=0.2): print('took it')\n"
             "except StoreBusy: print('busy')"]
    with write_lock(tmp_path / "write.lock"):
        with write_lock(tmp_path / "write.lock"):  # same thread: no deadlock
            pass
        assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "busy"
    assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "took it"


@pytest.mark.parametrize("damage", ["random pages", "half truncated", "emptied"])
def test_a_damaged_catalog_says_so_in_one_line_and_is_restored_with_nothing_lost(cli, store, tmp_path, damage):
    for index in range(6):
        write_image(tmp_path / "a" / "real" / f"r{index}.png", seed=index)
        write_image(tmp_path / "a" / "synthetic" / "gen-a" / f"s{index}.png", seed=50 + index)
    cli("--store", store, "ingest", tmp_path / "a", "--json")
    cli("--store", store, "embed", "--backbone", "test-tiny-dinov2", "--workers", "0", "--json")
    for index in range(4):
        write_image(tmp_path / "b" / f"x{index}.png", seed=90 + index)
    cli("--store", store, "ingest", tmp_path / "b", "--label", "synthetic", "--generator", "gen-b", "--json")
    _, before, _ = cli("--store", store, "status", "--json")
    layout = StoreLayout(store)
    data = layout.catalog_path.read_bytes()
    damaged = {"random pages": data[:4096] + os.urandom(len(data) - 4096), "half truncated": data[:len(data) // 3],
               "emptied": b""}[damage]
    layout.catalog_path.write_bytes(damaged)
    for command in (["status"], ["ingest", str(tmp_path / "b"), "--label", "real"]):
        # fresh processes: DuckDB keeps a database it opened cached inside this test's process
        done = subprocess.run([sys.executable, "-m", "synthwatch", "--store", str(store), *command, "--json"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert f"Expected a readable catalog at {layout.catalog_path}, but it is damaged" in done.stderr
        assert "Run `synthwatch restore`" in done.stderr
    done = subprocess.run([sys.executable, "-m", "synthwatch", "--store", str(store), "restore", "--json"],
                          capture_output=True, text=True, timeout=120)
    code, restored = done.returncode, json.loads(done.stdout)
    assert code == 0 and restored["rows"]["images"] == 16 and restored["originals_not_in_catalog"] == 0
    assert (store / restored["damaged_catalog_kept"].rsplit("/", 1)[1]).read_bytes() == damaged  # kept as it was
    done = subprocess.run([sys.executable, "-m", "synthwatch", "--store", str(store), "status", "--verify", "--json"],
                          capture_output=True, text=True, timeout=120)
    after = json.loads(done.stdout)
    assert done.returncode == 0 and after["problems"] == []
    for key in ("images", "generators", "quarantined", "events", "embeddings"):
        assert after[key] == before[key]


def test_only_the_newest_snapshots_are_kept(cli, store, tmp_path):
    from synthwatch.store.snapshots import SNAPSHOTS_KEPT, list_snapshots

    for index in range(SNAPSHOTS_KEPT + 2):
        write_image(tmp_path / f"in{index}" / "a.png", seed=200 + index)
        cli("--store", store, "ingest", tmp_path / f"in{index}", "--label", "real", "--json")
    snapshots = list_snapshots(StoreLayout(store))
    assert len(snapshots) == SNAPSHOTS_KEPT
    import json as json_module

    assert json_module.loads((snapshots[-1] / "snapshot.json").read_text())["rows"]["images"] == SNAPSHOTS_KEPT + 2
