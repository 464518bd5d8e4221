"""Watching traffic at scale: the prediction log with vectors, `drift --traffic` and discovery's clustering.

Usage: python benchmarks/traffic.py [--rows 100000] [--dim 384] [--candidates 5000]
Writes a week of simulated answers (the log's real writer, 256-row batches, 384-dimensional unit
vectors as DINOv2-small gives: 90 % photos, 8 % known fakes, 2 % an unknown generator), then
times what the commands do with it: reading the log back with and without vectors, the traffic
checks of the last day against the six before (flag rate, KS, Mann-Whitney, the MMD permutation
test), and discovery's HDBSCAN over ``--candidates`` suspicious images (its cap). Prints the
figures and the bytes per logged row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from synthwatch.heads.discovery import _clusters  # noqa: E402
from synthwatch.heads.traffic import traffic_drift  # noqa: E402
from synthwatch.store.layout import StoreLayout  # noqa: E402
from synthwatch.store.predictions import PredictionLog, log_files, prediction_rows, read_predictions  # noqa: E402


def simulated_rows(rows: int, dim: int, now: datetime, rng: np.random.Generator):
    """``rows`` answers spread over the week before ``now``, in time order."""
    centres = {kind: rng.normal(size=dim) for kind in ("real", "known", "unknown")}
    kinds = rng.choice(["real", "known", "unknown"], size=rows, p=[0.90, 0.08, 0.02])
    for number, kind in enumerate(kinds):
        vector = centres[kind] + rng.normal(scale=3.0, size=dim)
        score = {"real": rng.beta(1, 8), "known": rng.beta(8, 1), "unknown": rng.uniform(0.5, 0.9)}[kind]
        yield {"at": now - timedelta(days=7) * (1 - number / rows), "image_id": f"{number:064x}",
               "score": float(score), "synthetic": bool(score >= 0.5), "threshold": 0.5, "head_version": "h1",
               "backbone_id": "b1", "attribution": "gen-a", "attribution_probability": 0.8,
               "nearest_fake_distance": float(rng.uniform(0.02, 0.6)), "nearest_fake_generator": "gen-a",
               "source": kind, "channel": "http", "embedding": (vector / np.linalg.norm(vector)).tolist(),
               "embedding_backbone": "b1"}


def seconds(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--candidates", type=int, default=5000)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    args = parser.parse_args()
    rng, now = np.random.default_rng(0), datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as folder:
        layout = StoreLayout(Path(folder))
        log = PredictionLog(layout)
        written, _ = seconds(lambda: [log.append([row]) for row in simulated_rows(args.rows, args.dim, now, rng)]
                             and log.flush())
        size = sum(path.stat().st_size for path in log_files(layout.predictions_dir))
        read_plain, _ = seconds(lambda: read_predictions(layout).to_pylist())
        read_vectors, rows = seconds(lambda: prediction_rows(read_predictions(layout, vectors=True)))
        checked, drift = seconds(lambda: traffic_drift(rows, since=timedelta(days=1), alpha=0.01, now=now))
        suspicious = np.stack([row["embedding"] for row in rows if row["score"] >= 0.4][-args.candidates:])
        clustered, labels = seconds(lambda: _clusters(suspicious.astype(np.float64), 5))
    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": args.rows, "dim": args.dim,
        "write_rows_per_s": round(args.rows / written), "bytes_per_row": round(size / args.rows),
        "read_without_vectors_s": round(read_plain, 2), "read_with_vectors_s": round(read_vectors, 2),
        "drift_checks_s": round(checked, 2), "drift_window_images": drift["window"]["images"],
        "drift_checks": {c["name"]: c["p_value"] for c in drift["checks"]},
        "cluster_candidates": len(suspicious), "cluster_s": round(clustered, 2),
        "clusters": int(labels.max() + 1),
    }
    print(json.dumps(figures, indent=1))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
