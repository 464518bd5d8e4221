"""Discovery's error rates under a stated model, through its own clustering and test.

Usage: python benchmarks/discovery_simulation.py [--trials 200] [--alpha 0.01]
Model: three known generators, each a cloud of unit vectors in 64 dimensions around its own
direction (150 stored fakes each, the anchors and the references of their spread); traffic holds
40 new images of each known generator, and in the second scenario 40 of an unknown generator (a
fourth direction). Each trial clusters traffic with the anchors (``heads.discovery._clusters``)
and judges every group with ``heads.discovery.unfamiliar_p_value`` at alpha / groups: each
member's distance to the reference half of the generator it is nearest to against that
generator's held-out half's (``split_reference``), computed exactly (cosine, as the index does). Prints, for traffic of known
generators only, the share of trials with a group called unfamiliar (false discovery, at most
alpha by design); with the unknown generator, the share of trials where a group of at least 20
of its images and nothing else is called unfamiliar (power), and where a group mostly of known
images is (contamination).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from synthwatch.heads.discovery import _clusters, split_reference, unfamiliar_p_value  # noqa: E402

DIM, STORED, NEW, KNOWN = 64, 150, 40, 3


def _cloud(rng: np.random.Generator, centre: np.ndarray, count: int) -> np.ndarray:
    vectors = centre + rng.normal(scale=1.2, size=(count, DIM))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def trial(rng: np.random.Generator, alpha: float, *, unknown: bool) -> dict:
    centres = [rng.normal(size=DIM) for _ in range(KNOWN + 1)]
    stored = [_cloud(rng, centre, STORED) for centre in centres[:KNOWN]]
    traffic = [_cloud(rng, centre, NEW) for centre in centres[:KNOWN + unknown]]
    is_unknown = np.r_[np.zeros(KNOWN * NEW, bool), np.ones(NEW * unknown, bool)]
    anchors, generator_of = np.vstack(stored), np.repeat(np.arange(KNOWN), STORED)
    splits = [split_reference(vectors, rng) for vectors in stored]
    traffic = np.vstack(traffic)
    labels = _clusters(np.vstack([traffic, anchors]), 5)[:len(traffic)]
    clusters = [c for c in set(labels.tolist()) if c >= 0 and (labels == c).sum() >= 5]
    outcome = {"false": False, "found": False, "contaminated": False}
    for cluster in clusters:
        members = labels == cluster
        nearest = generator_of[(traffic[members] @ anchors.T).argmax(1)]
        strata = []
        for generator in set(nearest.tolist()):
            reference, held = splits[generator]
            strata.append((1 - (traffic[members][nearest == generator] @ reference.T).max(1),
                           1 - (held @ reference.T).max(1)))
        p_value = unfamiliar_p_value(strata)
        if p_value is None or p_value >= alpha / len(clusters):
            continue
        share = is_unknown[members].mean()
        outcome["false"] |= not unknown
        outcome["found"] |= share == 1.0 and members.sum() >= NEW // 2
        outcome["contaminated"] |= unknown and share < 0.5
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    null = [trial(rng, args.alpha, unknown=False) for _ in range(args.trials)]
    planted = [trial(rng, args.alpha, unknown=True) for _ in range(args.trials)]
    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "trials": args.trials, "alpha": args.alpha,
        "false_discovery": np.mean([o["false"] for o in null]),
        "power": np.mean([o["found"] for o in planted]),
        "contaminated": np.mean([o["contaminated"] for o in planted]),
    }
    figures = {key: round(float(value), 4) if isinstance(value, np.floating) else value for key, value in figures.items()}
    print(json.dumps(figures, indent=1))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
