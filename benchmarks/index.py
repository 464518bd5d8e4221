"""Index build time, memory, recall@10 and single-query latency for each index type.

Usage: python benchmarks/index.py [--n 1000000] [--dim 384] [--queries 1000] [--nprobe 16,32,128]
Vectors are clustered (unit-norm points around 2,000 random centres, as embeddings of many
near-similar images are), queries are fresh points from the same clusters. Recall@10 is
measured against exact inner-product search over the same vectors; latency is one query at a
time, as a lookup from the CLI or the HTTP service makes it. Index types and their parameters
come from ``store.index.IndexPlan`` exactly as ``synthwatch index`` chooses them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import faiss
import numpy as np

from synthwatch.store.index import EXACT_SCAN_FLOATS, IndexPlan, build_index


def clustered(n: int, dim: int, *, centres: int, seed: int) -> np.ndarray:
    """``n`` unit vectors (n, dim) float32 scattered around ``centres`` random unit centres."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, dim)).astype(np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        out[start:stop] = means[rng.integers(0, centres, stop - start)]
        out[start:stop] += rng.standard_normal((stop - start, dim)).astype(np.float32) * (0.8 / np.sqrt(dim))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def latencies_ms(index: faiss.Index, queries: np.ndarray, k: int, params) -> np.ndarray:
    """Wall time of each single-query search, in milliseconds."""
    times = np.empty(len(queries))
    for i in range(len(queries)):
        started = time.perf_counter()
        index.search(queries[i:i + 1], k, params=params)
        times[i] = (time.perf_counter() - started) * 1000
    return times


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth))
    return hits / truth.size


def measure(name: str, index: faiss.Index, build_s: float, queries: np.ndarray, truth: np.ndarray | None,
            k: int, params=None) -> dict:
    _, found = index.search(queries, k, params=params)
    lat = latencies_ms(index, queries[:200], k, params)
    return {
        "index": name, "ntotal": int(index.ntotal), "build_s": round(build_s, 2),
        "memory_mb": round(faiss.serialize_index(index).nbytes / 2**20, 1),
        "recall_at_10": None if truth is None else round(recall_at(found, truth), 4),
        "p50_ms": round(float(np.percentile(lat, 50)), 3), "p99_ms": round(float(np.percentile(lat, 99)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nprobe", default="", help="extra nprobe values to sweep for ivf-hnsw")
    args = parser.parse_args()
    k = 10

    started = time.perf_counter()
    data = clustered(args.n + args.queries, args.dim, centres=2000, seed=0)
    vectors, queries = data[:args.n], data[args.n:]
    keys = np.arange(args.n, dtype=np.int64)
    print(f"data: {args.n:,} x {args.dim} clustered unit vectors in {time.perf_counter() - started:.1f} s; "
          f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}")

    rows = []
    # Exact search: the ground truth, and the latency exact search has at this size and at 100,000.
    started = time.perf_counter()
    exact = build_index(vectors, keys, IndexPlan("flat"))
    exact_build = time.perf_counter() - started
    _, truth = exact.search(queries, k)
    rows.append(measure(f"flat (exact) @ {args.n:,}", exact, exact_build, queries, truth, k))
    exact_limit = EXACT_SCAN_FLOATS // args.dim
    for size in sorted({100_000, exact_limit}):
        if size < args.n:
            small = build_index(vectors[:size], keys[:size], IndexPlan("flat"))
            note = " (largest exact index)" if size == exact_limit else ""
            rows.append(measure(f"flat (exact) @ {size:,}{note}", small, 0.0, queries, None, k))
            del small
    del exact

    for codes in ("flat", "sq8", "pq"):
        plan = IndexPlan.for_size(args.n, args.dim, codes=codes)
        started = time.perf_counter()
        index = build_index(vectors, keys, plan)
        build_s = time.perf_counter() - started
        extra = [int(v) for v in args.nprobe.split(",") if v and int(v) != plan.nprobe] if codes == "flat" else []
        sweep = [plan.nprobe] + extra
        for nprobe in sweep:
            label = f"{plan.kind} {plan.factory()} nprobe={nprobe}" + (" (default)" if nprobe == plan.nprobe else "")
            rows.append(measure(label, index, build_s, queries, truth, k, faiss.SearchParametersIVF(nprobe=nprobe)))
        del index

    width = max(len(row["index"]) for row in rows)
    print(f"{'index':<{width}}  {'build s':>8}  {'MB':>7}  {'recall@10':>9}  {'p50 ms':>7}  {'p99 ms':>7}")
    for row in rows:
        recall = "-" if row["recall_at_10"] is None else f"{row['recall_at_10']:.4f}"
        print(f"{row['index']:<{width}}  {row['build_s']:>8.1f}  {row['memory_mb']:>7.1f}  {recall:>9}  "
              f"{row['p50_ms']:>7.3f}  {row['p99_ms']:>7.3f}")
    exact_at_n = rows[0]["p50_ms"]
    default = next(row for row in rows if row["index"].startswith("ivf-hnsw ") and row["index"].endswith("(default)"))
    print(f"default large index: recall@10 {default['recall_at_10']:.4f} (goal >= 0.95), "
          f"p50 {default['p50_ms']:.3f} ms (goal < 5 ms), {exact_at_n / default['p50_ms']:.1f}x faster than exact")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
