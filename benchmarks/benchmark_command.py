"""`synthwatch benchmark --preset genimage-sdv14` end to end on the proxy corpus laid out as
GenImage: how long one command takes from a dataset folder to the table beside the paper's
numbers, stage by stage, and what it measured.

Usage: python benchmarks/benchmark_command.py [--size medium] [--backbone spectrum] [--head logreg]
                                              [--n-boot 1000] [--workers N] [--out FILE.json]
The proxy's autoencoder fakes stand in for GenImage's generators under GenImage's folder names,
so the measured columns say nothing about Midjourney or ADM; the timings are what they are.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from synthwatch.benchmark import BenchmarkOptions, run_benchmark  # noqa: E402
from synthwatch.corpus import build_corpus  # noqa: E402
from synthwatch.corpus.genimage import write_genimage_tree  # noqa: E402
from synthwatch.embeddings.engine import EngineOptions  # noqa: E402
from synthwatch.heads.evaluation import EvalOptions  # noqa: E402
from synthwatch.heads.training import TrainOptions  # noqa: E402
from synthwatch.store.layout import StoreLayout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="medium")
    parser.add_argument("--backbone", default="spectrum")
    parser.add_argument("--head", default="logreg")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, "
               f"GPU {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}, torch {torch.__version__}")
    print(f"machine: {machine}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = build_corpus(Path(scratch) / "corpus", seed=0, size=args.size)
        write_genimage_tree(corpus.out, Path(scratch) / "GenImage")
        stages, start = [], [time.perf_counter()]

        def say(message: str) -> None:  # each message starts a stage: when, since the command started
            at = time.perf_counter() - start[0]
            stages.append({"stage": message, "at_s": round(at, 2)})
            print(f"{at:7.1f} s  {message}", flush=True)

        options = BenchmarkOptions(
            preset="genimage-sdv14", data=Path(scratch) / "GenImage", head=args.head, backbone=args.backbone,
            allow_random_weights=True, report=Path(scratch) / "report.html",
            train=TrainOptions(evaluation=EvalOptions(n_boot=args.n_boot)), engine=EngineOptions(workers=args.workers))
        started = start[0] = time.perf_counter()
        result = run_benchmark(StoreLayout(Path(scratch) / "store"), options, say=say)
        total = time.perf_counter() - started
    comparison = result["comparison"]
    images = result["ingest"]["ingested"]
    print(f"total {total:.1f} s for {images} images ({images / total:.1f} images/s end to end); "
          f"embed {result['embed']['images_per_s']:.1f} images/s")
    for row in comparison["rows"]:
        m = row["measured"]
        print(f"  {row['generator']:<22} " + ("-" if m is None else
              f"{'held out' if row['held_out'] else 'trained':<9} AUROC {m['auroc']:.3f} balanced accuracy "
              f"{m['balanced_accuracy']:.3f} [{m['balanced_accuracy_ci'][0]:.3f}, {m['balanced_accuracy_ci'][1]:.3f}]"))
    print(f"mean held out: {comparison['mean_held_out']}")
    if args.out:
        Path(args.out).write_text(json.dumps({"machine": machine, "size": args.size, "backbone": args.backbone,
                                              "head": args.head, "total_s": round(total, 1), "stages": stages,
                                              "images": images, "comparison": comparison}, indent=1))


if __name__ == "__main__":
    main()
