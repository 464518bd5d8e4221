"""Training the default head plus leave-one-generator-out evaluation over 100,000 embeddings.
(Bounded retraining at 1 M and 10 M images is ``benchmarks/retrain_scale.py``.)

Usage: python benchmarks/heads.py [--n 100000] [--dim 384] [--generators 10] [--head logreg] [--n-boot 1000]
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

from synthwatch.heads.dataset import REAL, EmbeddingSet  # noqa: E402
from synthwatch.heads.detector import HeadSpec, fit_head  # noqa: E402
from synthwatch.heads.evaluation import EvalOptions, calibrate, evaluate_protocol, make_fold, scorer  # noqa: E402


def simulated(n: int, dim: int, generators: int, seed: int = 0, real_share: float = 0.6) -> EmbeddingSet:
    rng = np.random.default_rng(seed)
    names = [f"gen-{i:02d}" for i in range(generators)]
    shared = rng.normal(size=dim)
    own = rng.normal(size=(generators, dim))
    labels = rng.choice([REAL] + names, size=n, p=[real_share] + [(1 - real_share) / generators] * generators)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    for i, name in enumerate(names):
        rows = labels == name
        vectors[rows] += (0.10 * shared + 0.12 * own[i]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sources = np.array([f"source-{i}" for i in range(400)], dtype=object)[rng.integers(0, 400, n)]
    return EmbeddingSet(np.array([f"{i:064x}" for i in range(n)], dtype=object), vectors,
                        labels.astype(object), sources, np.zeros(n, np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--generators", type=int, default=10)
    parser.add_argument("--head", default="logreg")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
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
