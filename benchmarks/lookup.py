"""Resolving neighbours to catalog rows, and what a lookup process holds as the store grows.

Usage: python benchmarks/lookup.py [--images 1000000] [--k 10] [--repeats 50]
       python benchmarks/lookup.py --stores STORE1,STORE2 [--queries 500] [--json]
The first form builds a real catalog of N synthetic image rows, then times, for k random indexed
keys, what `similar` and `POST /similar` do after the FAISS search: fetch label, generator and path
of the k images by exact ids through the id directory, over the process's reused read-only
connection (now) or a connection opened per request (before), or by 60-bit prefixes (before that).
The second form opens each indexed store's index the way `serve` does (IVF lists read per search,
id directory and neighbour rows memory-mapped), each in its own process, answers ``--queries``
random queries (search and resolution) and reports the peak RSS (VmHWM), its anonymous and file-backed parts, and the p50 of resolution.
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
from synthwatch.store.catalog_reader import shared_reader  # noqa: E402
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


def lookup_process(store: str, queries: int, k: int) -> dict:
    """In this process: open the store's index as a reader, answer random queries, report memory."""
    from synthwatch.store.backbones import resolve_backbone
    from synthwatch.store.neighbors import NeighborIndex

    layout = StoreLayout(Path(store))
    started = time.perf_counter()
    neighbors = NeighborIndex(layout, resolve_backbone(layout, need="indexes"))
    opened_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((queries, neighbors.index.d)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    search, resolve = [], []
    for row in matrix:
        started = time.perf_counter()
        scores, keys = neighbors._search(row[None], k, None)
        middle = time.perf_counter()
        neighbors._resolve(scores, keys, row[None])
        search.append(middle - started)
        resolve.append(time.perf_counter() - middle)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    megabytes = {key: round(int(status[key].split()[0]) / 1024) for key in ("VmHWM", "RssAnon", "RssFile")}
    return {"store": store, "vectors": int(neighbors.index.ntotal), "index_type": neighbors.manifest["index_type"],
            "open_s": round(opened_s, 2), "peak_rss_mb": megabytes["VmHWM"], "rss_anon_mb": megabytes["RssAnon"],
            "rss_file_mb": megabytes["RssFile"], "search_p50_ms": round(float(np.median(search)) * 1000, 2),
            "resolve_p50_ms": round(float(np.median(resolve)) * 1000, 2), "queries": queries}


def serve_main(args) -> None:
    import json
    import subprocess

    rows = []
    for store in args.stores.split(","):
        run = subprocess.run([sys.executable, __file__, "--one-store", store, "--queries", str(args.queries),
                              "--k", str(args.k)], capture_output=True, text=True, check=True)
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr if args.json else sys.stdout, flush=True)
    ratio = round(rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"], 2) if len(rows) > 1 else None
    anonymous = round(rows[-1]["rss_anon_mb"] / rows[0]["rss_anon_mb"], 2) if len(rows) > 1 else None
    if args.json:
        print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows,
                          "peak_rss_ratio": ratio, "rss_anon_ratio": anonymous}))
    elif ratio is not None:
        print(f"peak RSS, largest against smallest store: {ratio}x (goal within 1.2x); "
              f"of it the process's own (anonymous) memory: {anonymous}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--stores", help="indexed stores to open as a lookup process each, comma-separated")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one-store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_store:
        import json

        print(json.dumps(lookup_process(args.one_store, args.queries, args.k)))
        return
    if args.stores:
        return serve_main(args)
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
        reader = shared_reader(catalog.layout)  # last: while it is open, this process's connections share it
        shared = timed(lambda: reader.query(EXACT, [sorted(directory.ids_of(keys).values())]), args.repeats)
        print(f"connection alone:               {connect:7.2f} ms")
        print(f"exact ids, reused connection:   {shared:7.2f} ms  (goal <= 10 ms)")
        print(f"exact ids, connection per call: {exact:7.2f} ms")
        print(f"prefix scan (before):           {scan:7.2f} ms")
        print(f"prefix scan / exact ids:        {scan / exact:7.1f}x")


if __name__ == "__main__":
    main()
