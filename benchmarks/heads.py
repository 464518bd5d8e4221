"""Training the default head plus leave-one-generator-out evaluation over 100,000 embeddings;
with ``--bounded``, bounded retraining at 1 M and 10 M synthetic vectors.

Usage: python benchmarks/heads.py [--n 100000] [--dim 384] [--generators 10] [--head logreg] [--n-boot 1000]
       python benchmarks/heads.py --bounded [--sizes 1000000,10000000] [--max-train 200000] [--dim 64]
``--bounded`` runs each size in its own process (so each peak memory is its own): the pool is the
given number of synthetic vectors over 10 generators plus a quarter as many real ones, each image
with its arrival time; it times the replay draw, the default head's fit and threshold on the
replay set (what a retrain trains), and, below 2 M, the same fit on the whole training split; it
also measures held-out AUROC on one generator against the replay size at 1 M, which sets the
default ``--max-train``.
Vectors are unit-norm, 60 % real and 40 % synthetic from ``--generators`` generators, in 400
source groups. Each generator shifts its images along a direction shared by all generators
plus one of its own, so a held-out generator is partly detectable, as in practice. Reports the
time of (a) the LOGO protocol (one head per generator, threshold, bootstrap intervals) and how
it splits between fitting and intervals, (b) the final head, (c) both, against the 60 s goal.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

# This file's name is the `heads` package's: keep its folder off the path so imports find the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from synthwatch.heads.dataset import REAL, EmbeddingSet, split_of_rows  # noqa: E402
from synthwatch.heads.detector import HeadSpec, fit_head  # noqa: E402
from synthwatch.heads.evaluation import EvalOptions, calibrate, evaluate_protocol, make_fold, scorer  # noqa: E402


def simulated(n: int, dim: int, generators: int, seed: int = 0, real_share: float = 0.6,
              float32_draw: bool = False) -> EmbeddingSet:
    """``float32_draw`` draws the noise in float32 (half the memory at 10 M vectors; another stream)."""
    rng = np.random.default_rng(seed)
    names = [f"gen-{i:02d}" for i in range(generators)]
    shared = rng.normal(size=dim)
    own = rng.normal(size=(generators, dim))
    labels = rng.choice([REAL] + names, size=n, p=[real_share] + [(1 - real_share) / generators] * generators)
    vectors = (rng.standard_normal((n, dim), dtype=np.float32) if float32_draw
               else rng.normal(size=(n, dim)).astype(np.float32))
    for i, name in enumerate(names):
        rows = labels == name
        vectors[rows] += (0.10 * shared + 0.12 * own[i]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sources = np.array([f"source-{i}" for i in range(400)], dtype=object)[rng.integers(0, 400, n)]
    return EmbeddingSet(np.array([f"{i:064x}" for i in range(n)], dtype=object), vectors,
                        labels.astype(object), sources, np.zeros(n, np.int64))


def bounded_run(synthetic: int, dim: int, max_train: int, *, unbounded: bool) -> dict:
    """One size, in this process: the pool, the replay draw, the fit on it (and on everything)."""
    import resource

    from synthwatch.heads.replay import bound_training

    n = synthetic + synthetic // 4
    started = time.perf_counter()
    data = pool(n, dim, synthetic)
    built_s = time.perf_counter() - started
    arrivals = dict(zip(data.image_ids.tolist(), np.random.default_rng(1).permutation(n).astype(float).tolist()))
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"synthetic": synthetic, "vectors": n, "dim": dim, "max_train": max_train, "pool_s": round(built_s, 1),
           "rss_after_pool_mb": round(base_mb)}
    started = time.perf_counter()
    sample, record = bound_training(data, arrivals, max_rows=max_train, seed=0)
    out["draw_s"] = round(time.perf_counter() - started, 2)
    out["bounded"] = _fit(sample)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["peak_rss_above_pool_mb"] = round(out["peak_rss_mb"] - base_mb)
    if unbounded:
        out["unbounded"] = _fit(data)
    return out


def pool(n: int, dim: int, synthetic: int) -> EmbeddingSet:
    """``synthetic`` fakes over 10 generators and the rest real, as ``simulated`` draws them."""
    return simulated(n, dim, 10, real_share=1 - synthetic / n, float32_draw=True)


def _fit(data: EmbeddingSet) -> dict:
    """Seconds to split (over every row: validation and test are all kept), to fit the head on the
    training rows, and to set its threshold on the validation reals."""
    spec = HeadSpec()
    started = time.perf_counter()
    fold = make_fold(data, ())
    split_s = time.perf_counter() - started
    head = fit_head(spec, fold.train)
    fit_s = time.perf_counter() - started - split_s
    calibrate(scorer(head, spec.target), fold, 0.01)
    threshold_s = time.perf_counter() - started - split_s - fit_s
    return {"split_s": round(split_s, 2), "fit_s": round(fit_s, 2), "threshold_s": round(threshold_s, 2),
            "train_rows": len(fold.train), "val_real_rows": len(fold.val_real)}


def replay_size_curve(synthetic: int, dim: int, sizes: list[int]) -> list[dict]:
    """Held-out AUROC of gen-00 (every image of it held out) against the replay size."""
    from dataclasses import replace as replaced

    from synthwatch.heads.replay import bound_training

    n = synthetic + synthetic // 4
    data = pool(n, dim, synthetic)
    data = replaced(data, splits=split_of_rows(data))
    rows = []
    for size in sizes:
        bounded, _ = bound_training(data, {}, max_rows=size, seed=0)
        started = time.perf_counter()
        evaluation = evaluate_protocol(HeadSpec(), bounded, protocol="holdout", holdout=["gen-00"],
                                       options=EvalOptions(n_boot=200))
        held = next(r for r in evaluation.results if r.generator == "gen-00")
        rows.append({"max_train": size, "auroc": held.metrics["auroc"], "auroc_ci": held.metrics["auroc_ci"],
                     "seconds": round(time.perf_counter() - started, 1)})
        print(f"  replay {size:>9,}: held-out AUROC {held.metrics['auroc']:.4f} "
              f"[{held.metrics['auroc_ci'][0]:.4f}, {held.metrics['auroc_ci'][1]:.4f}] in {rows[-1]['seconds']} s",
              flush=True)
    return rows


def bounded_main(args) -> None:
    import json
    import subprocess

    print(f"bounded retraining: max-train {args.max_train:,} rows, width {args.dim}; {os.cpu_count()} cores, "
          f"{platform.machine()}", flush=True)
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        run = subprocess.run([sys.executable, __file__, "--bounded", "--one-size", str(size), "--dim", str(args.dim),
                              "--max-train", str(args.max_train)], capture_output=True, text=True, check=True)
        results.append(json.loads(run.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print("held-out AUROC against the replay size, 1 M synthetic vectors:", flush=True)
    curve = replay_size_curve(1_000_000, args.dim, [25_000, 50_000, 100_000, 200_000, 400_000, 10**9])
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": f"{os.cpu_count()} cores, {platform.machine()}",
                                              "sizes": results, "replay_size_curve": curve}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--generators", type=int, default=10)
    parser.add_argument("--head", default="logreg")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--bounded", action="store_true", help="bounded retraining at large sizes instead")
    parser.add_argument("--sizes", default="1000000,10000000", help="synthetic vectors per --bounded run")
    parser.add_argument("--max-train", type=int, default=200_000)
    parser.add_argument("--out", default=None, help="JSON file for the --bounded figures")
    parser.add_argument("--one-size", type=int, default=None, help=argparse.SUPPRESS)  # one --bounded run
    args = parser.parse_args()
    if args.bounded:
        args.dim = 64 if args.dim == 384 else args.dim
        if args.one_size:
            import json

            print(json.dumps(bounded_run(args.one_size, args.dim, args.max_train,
                                         unbounded=args.one_size < 2_000_000)))
            return None
        return bounded_main(args)
    data = simulated(args.n, args.dim, args.generators)
    spec, options = HeadSpec(args.head), EvalOptions(n_boot=args.n_boot)
    print(f"{args.n:,} embeddings of width {args.dim}, {args.generators} generators, head {args.head}, "
          f"{args.n_boot} bootstrap resamples; {os.cpu_count()} cores, {platform.machine()}")

    started = time.perf_counter()
    evaluation = evaluate_protocol(spec, data, protocol="logo", options=options)
    logo_s = time.perf_counter() - started

    started = time.perf_counter()
    fold = make_fold(data, ())
    head = fit_head(spec, fold.train)
    calibrate(scorer(head, spec.target), fold, options.target_fpr)
    final_s = time.perf_counter() - started

    started = time.perf_counter()
    evaluate_protocol(spec, data, protocol="logo", options=EvalOptions(n_boot=1))
    no_boot_s = time.perf_counter() - started
    summary = evaluation.summary()
    print(f"(a) leave-one-generator-out: {logo_s:.1f} s for {len(evaluation.results)} folds, of which "
          f"{no_boot_s:.1f} s splits, fits and scoring and {logo_s - no_boot_s:.1f} s bootstrap intervals")
    print(f"(b) final head on all generators: {final_s:.1f} s")
    total = logo_s + final_s
    print(f"(c) total {total:.1f} s (goal < 60 s: {'met' if total < 60 else 'NOT met'})")
    print(f"held-out AUROC mean {summary['mean_auroc']:.3f}, min {summary['min_auroc']:.3f}; "
          f"TPR at 1% FPR mean {summary['mean_tpr_at_1fpr']:.3f}")


if __name__ == "__main__":
    main()
