"""Image network training throughput (the fine-tuned ConvNeXt, the npr residual CNN): training steps
on JPEG files, bf16 autocast against fp32.

Usage: python benchmarks/finetune.py [--head convnext|npr] [--backbone convnext-tiny] [--batch 64] [--steps 40]
                                     [--device auto]
Random weights (timing does not depend on their values). Reports images/s of the whole training
loop (decode, augment, forward, backward, AdamW step) after a warm-up of 5 steps, for bf16
autocast and for fp32 on CUDA (fp32 only on CPU), and the speed-up. Checkpoints are off.
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

import torch  # noqa: E402

from synthwatch.embeddings.engine import resolve_device  # noqa: E402
from synthwatch.heads.network_kinds import NetworkOptions  # noqa: E402
from synthwatch.heads.network_train import ImageItem, train_network  # noqa: E402
from synthwatch.corpus.photos import write_jpeg_corpus  # noqa: E402


def images_per_s(items, options: NetworkOptions, scratch: Path, warmup: int = 5) -> float:
    """Throughput of the steps after the first ``warmup`` (each step ends with ``loss.item()``,
    which waits for the GPU)."""
    marks: dict[int, float] = {}

    def mark(step: int, loss: float) -> None:
        if step in (warmup, options.steps):
            marks[step] = time.perf_counter()

    train_network(items, options, checkpoint_dir=Path(tempfile.mkdtemp(dir=scratch)), progress=mark)
    return (options.steps - warmup) * options.batch_size / (marks[options.steps] - marks[warmup])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", choices=("convnext", "npr"), default="convnext")
    parser.add_argument("--backbone", default="convnext-tiny", help="with --head convnext: the ConvNeXt")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 1)))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "none"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, GPU {gpu}, torch {torch.__version__}; "
          f"{args.head if args.head == 'npr' else args.backbone}, batch {args.batch}, {args.steps} steps, "
          f"{args.workers} loader workers")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        paths = write_jpeg_corpus(root / "jpegs", 256, size=288)
        items = [ImageItem(f"{i:064x}", str(p), i % 2) for i, p in enumerate(paths)]
        base = dict(head=args.head, backbone=args.backbone if args.head == "convnext" else None, steps=args.steps,
                    batch_size=args.batch, device=device.type,
                    workers=args.workers, allow_random_weights=True, checkpoint_every=10**9)
        results = {}
        for label, mixed in ([("bf16 autocast", True), ("fp32", False)] if device.type == "cuda" else [("fp32", False)]):
            results[label] = images_per_s(items, NetworkOptions(**base, mixed_precision=mixed), root)
            print(f"{label:>14}: {results[label]:8.1f} training images/s")
        if len(results) == 2:
            print(f"bf16 / fp32: {results['bf16 autocast'] / results['fp32']:.2f}x")


if __name__ == "__main__":
    main()
