"""Resolving neighbours to catalog rows: exact ids from the id directory against a prefix scan.

Usage: python benchmarks/lookup.py [--images 1000000] [--k 10] [--repeats 50]
Builds a real catalog of N synthetic image rows, then times, for k random indexed keys, what
`similar` and `POST /similar` do after the FAISS search: open a read-only catalog connection and
fetch label, generator and path of the k images; by exact ids through the id directory (now), or
by 60-bit prefixes (before). Also reports building the directory, which happens once per index
version a reader loads.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from synthwatch.store.catalog import Catalog  # noqa: E402
from synthwatch.store.id_directory import IdDirectory  # noqa: E402
from synthwatch.store.index import KEY_DIGITS, image_keys  # noqa: E402
from synthwatch.store.layout import StoreLayout  # noqa: E402

EXACT = "SELECT image_id, label, generator, original_path FROM images WHERE image_id = ANY(?::VARCHAR[])"
PREFIX = ("SELECT image_id, label, generator, original_path FROM images "
          "WHERE substr(image_id, 1, 15) IN (SELECT unnest(?::VARCHAR[]))")


def fill(catalog: Catalog, images: int) -> None:
    """N rows shaped like ingested ones (ids are sha256 of the row number)."""
    with catalog.transaction() as con:
        con.execute(
            "INSERT INTO images SELECT sha256(i::VARCHAR), CASE WHEN i % 2 = 0 THEN 'real' ELSE 'synthetic' END, "
            "CASE WHEN i % 2 = 0 THEN NULL ELSE 'gen-' || (i % 10) END, 'group-' || (i % 1000), "
            "'/data/images/' || i || '.jpg', true, 100000, 512, 512, 'JPEG', 'RGB', 1, now()::TIMESTAMP, 'bench' "
            f"FROM range({images}) t(i)")


def timed(call, repeats: int) -> float:
    """Median milliseconds of ``call``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.images:,} catalog images, k = {args.k}")
    with tempfile.TemporaryDirectory() as scratch:
        catalog = Catalog(StoreLayout(Path(scratch) / "store"))
        catalog.create()
        started = time.perf_counter()
        fill(catalog, args.images)
        print(f"catalog filled in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        ids = catalog.arrow("SELECT image_id FROM images").column("image_id")
        directory = IdDirectory(ids)
        built = time.perf_counter() - started
        megabytes = (directory.keys.nbytes + directory.digests.nbytes) / 1e6
        print(f"id directory: built in {built:.2f} s (catalog read included), {megabytes:.0f} MB")
        rng = np.random.default_rng(0)
        keys = image_keys(ids)[rng.choice(len(ids), args.k, replace=False)]
        prefixes = [format(int(key), f"0{KEY_DIGITS}x") for key in keys]
        connect = timed(lambda: catalog.query("SELECT 1"), args.repeats)
        exact = timed(lambda: catalog.query(EXACT, [sorted(directory.ids_of(keys).values())]), args.repeats)
        scan = timed(lambda: catalog.query(PREFIX, [prefixes]), args.repeats)
        print(f"connection alone:               {connect:7.2f} ms")
        print(f"exact ids via the directory:    {exact:7.2f} ms")
        print(f"prefix scan (before):           {scan:7.2f} ms")
        print(f"prefix scan / exact ids:        {scan / exact:7.1f}x")


if __name__ == "__main__":
    main()
