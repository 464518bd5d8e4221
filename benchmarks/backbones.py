"""Detection quality of backbones on the proxy corpus: leave-one-generator-out, per held-out
generator, AUROC and TPR at 1 % FPR with 95 % bootstrap intervals, clean and under JPEG (quality
50-95) and 0.5x downscaling, with the default head.

Usage: python benchmarks/backbones.py [--size medium] [--backbones dinov2-small,spectrum,dinov2-small+spectrum]
                                      [--n-boot 1000] [--out FILE.json] [--workers N]
Each backbone gets a fresh store: ingest the corpus, embed the clean views (random weights where
no pretrained ones are here, said in the output), evaluate with ``--protocol logo`` (which
embeds the robustness views of the images it tests on). Prints a markdown table and writes JSON.
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

from synthwatch.corpus import build_corpus  # noqa: E402
from synthwatch.embeddings.backbone import create_backbone  # noqa: E402
from synthwatch.embeddings.engine import EngineOptions  # noqa: E402
from synthwatch.embeddings.job import embed_store  # noqa: E402
from synthwatch.heads.evaluation import EvalOptions  # noqa: E402
from synthwatch.heads.pipeline import evaluate_registered  # noqa: E402
from synthwatch.heads.training import TrainOptions  # noqa: E402
from synthwatch.store.ingest import IngestOptions, ingest  # noqa: E402
from synthwatch.store.layout import StoreLayout  # noqa: E402
from synthwatch.store.sources import plan_sources  # noqa: E402

CONDITIONS = ("clean", "jpeg", "downscale")


def measure(corpus: Path, backbone_name: str, *, n_boot: int, workers: int | None, scratch: Path) -> dict:
    """LOGO metrics of the default head on ``backbone_name``'s vectors of ``corpus``."""
    layout = StoreLayout(scratch / backbone_name.replace("+", "_"))
    started = time.perf_counter()
    ingest(layout, plan_sources([corpus]), IngestOptions())
    backbone = create_backbone(backbone_name, allow_random_weights=True)
    embedded = embed_store(layout, backbone, options=EngineOptions(workers=workers))
    report = evaluate_registered(layout, version=None, protocol="logo",
                                 options=TrainOptions(evaluation=EvalOptions(n_boot=n_boot)))
    evaluation = report.as_dict()
    rows = {}
    for generator, metrics in evaluation["per_generator"].items():
        robustness = evaluation["robustness"].get(generator, {})
        rows[generator] = {condition: _pick(metrics if condition == "clean" else robustness.get(condition))
                           for condition in CONDITIONS}
    return {"backbone": backbone_name, "backbone_id": backbone.backbone_id, "weights": backbone.weights,
            "dim": backbone.dim, "images": embedded.embedded, "seconds": round(time.perf_counter() - started, 1),
            "per_generator": rows, "skipped": evaluation["skipped"], "summary": evaluation["summary"]}


def _pick(metrics: dict | None) -> dict | None:
    if not metrics:
        return None
    return {key: metrics[key] for key in ("auroc", "auroc_ci", "tpr_at_1fpr", "tpr_at_1fpr_ci")}


def markdown(results: list[dict]) -> str:
    """One row per (backbone, generator): AUROC [CI] and TPR@1%FPR [CI] per condition."""
    head = "| backbone | held-out generator | " + " | ".join(
        f"{c} AUROC | {c} TPR@1%FPR" for c in CONDITIONS) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(CONDITIONS))]
    for result in results:
        for generator, row in sorted(result["per_generator"].items()):
            cells = []
            for condition in CONDITIONS:
                m = row[condition]
                cells += ["-", "-"] if m is None else [
                    f"{m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}, {m['auroc_ci'][1]:.3f}]",
                    f"{m['tpr_at_1fpr']:.2f} [{m['tpr_at_1fpr_ci'][0]:.2f}, {m['tpr_at_1fpr_ci'][1]:.2f}]"]
            lines.append(f"| {result['backbone']} | {generator} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="medium")
    parser.add_argument("--backbones", default="dinov2-small,spectrum,dinov2-small+spectrum")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--corpus", default=None, help="an existing corpus folder (default: build one)")
    args = parser.parse_args()
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, "
               f"GPU {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}, torch {torch.__version__}")
    print(f"machine: {machine}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(args.corpus) if args.corpus else build_corpus(Path(scratch) / "corpus", seed=0, size=args.size).out
        print(f"corpus: {corpus} ({args.size})", flush=True)
        results = []
        for name in args.backbones.split(","):
            result = measure(corpus, name, n_boot=args.n_boot, workers=args.workers, scratch=Path(scratch))
            print(f"{name}: {result['backbone_id']} ({result['weights']}), {result['images']} images, "
                  f"{result['seconds']} s; summary {result['summary']}", flush=True)
            results.append(result)
            if args.out:
                Path(args.out).write_text(json.dumps({"machine": machine, "size": args.size, "results": results},
                                                     indent=1))
    print(markdown(results))


if __name__ == "__main__":
    main()
