"""Ingest throughput against a bare read + sha256 + Pillow decode loop over the same files.

Usage: python benchmarks/ingest.py [--count 3000] [--size 512]
Prints files/s for the bare loop and for `ingest` (copying into the store, and --no-copy),
and the time ratio ingest / bare (goal: <= 1.5).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import tempfile
import time
from pathlib import Path

from PIL import Image

from synthwatch.store.ingest import IngestOptions, ingest
from synthwatch.store.layout import StoreLayout
from synthwatch.store.sources import plan_sources
from synthwatch.corpus.photos import write_jpeg_corpus


def bare_loop(paths: list[Path]) -> float:
    """Read, hash and fully decode each file, one after another; return seconds."""
    started = time.perf_counter()
    for path in paths:
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        with Image.open(path) as image:
            image.load()
    return time.perf_counter() - started


def timed_ingest(folder: Path, store: Path, *, copy: bool) -> float:
    plan = plan_sources([folder], label="real")
    started = time.perf_counter()
    report = ingest(StoreLayout(store), plan, IngestOptions(copy=copy))
    elapsed = time.perf_counter() - started
    assert report.ingested == len(plan.candidates), report.as_dict()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "jpegs"
        started = time.perf_counter()
        paths = write_jpeg_corpus(folder, args.count, size=args.size)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(f"corpus: {len(paths)} JPEGs of {args.size} px, {megabytes:.0f} MB, "
              f"written in {time.perf_counter() - started:.1f} s")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}")
        bare = bare_loop(paths)
        copied = timed_ingest(folder, Path(scratch) / "store-copy", copy=True)
        referenced = timed_ingest(folder, Path(scratch) / "store-nocopy", copy=False)
        rate = len(paths)
        print(f"bare loop (read+sha256+decode, 1 thread): {rate / bare:7.1f} files/s")
        print(f"ingest, copy into store:                  {rate / copied:7.1f} files/s  "
              f"time ratio ingest/bare = {copied / bare:.2f}")
        print(f"ingest, --no-copy:                        {rate / referenced:7.1f} files/s  "
              f"time ratio ingest/bare = {referenced / bare:.2f}")


if __name__ == "__main__":
    main()
