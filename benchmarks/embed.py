"""Embedding throughput on the DINOv2-small architecture (random weights: timing does not depend
on weight values).

Usage: python benchmarks/embed.py [--images 96] [--naive 32] [--rss 48,192] [--device auto]
Reports (a) forward-only images/s on ready tensors, (b) end-to-end images/s from JPEG files on
disk to Parquet shards, (c) a naive baseline: one image at a time through the transformers image
processor and model, (d) peak RSS of end-to-end runs at two corpus sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from embeddings.backbone import create_backbone
from embeddings.engine import EngineOptions, resolve_device
from embeddings.job import embed_store
from store.ingest import IngestOptions, ingest
from store.layout import StoreLayout
from store.sources import plan_sources
from synthwatch.corpus.photos import write_jpeg_corpus

BACKBONE = "dinov2-small"


def forward_only(device: torch.device, batch: int, count: int) -> float:
    backbone = create_backbone(BACKBONE, allow_random_weights=True).to(device)
    pixels = torch.randn(batch, 3, 224, 224)
    backbone.embed(pixels)  # warm-up
    started = time.perf_counter()
    done = 0
    while done < count:
        backbone.embed(pixels)
        done += batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - started)


def end_to_end(folder: Path, store: Path, device: str, batch: int, workers: int | None) -> dict:
    layout = StoreLayout(store)
    ingest(layout, plan_sources([folder], label="real"), IngestOptions(copy=False))
    backbone = create_backbone(BACKBONE, allow_random_weights=True)
    report = embed_store(layout, backbone, options=EngineOptions(batch_size=batch, device=device, workers=workers))
    assert report.failed == 0 and report.embedded == report.images, report.as_dict()
    return report.as_dict()


def naive(paths: list[Path], device: torch.device) -> float:
    from transformers import BitImageProcessor
    from PIL import Image

    processor = BitImageProcessor(  # DINOv2's published preprocessing
        do_resize=True, size={"shortest_edge": 256}, resample=3, do_center_crop=True,
        crop_size={"height": 224, "width": 224}, image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225], do_convert_rgb=True,
    )
    model = create_backbone(BACKBONE, allow_random_weights=True).model.to(device)
    started = time.perf_counter()
    with torch.inference_mode():
        for path in paths:
            inputs = processor(images=Image.open(path), return_tensors="pt").to(device)
            model(**inputs).last_hidden_state[:, 0].cpu()
    return len(paths) / (time.perf_counter() - started)


def rss_child(folder: Path, count: int, device: str, batch: int) -> dict:
    """Run one end-to-end embed in a fresh process; return its peak RSS (and its workers')."""
    code = (
        "import json, resource, sys; from pathlib import Path; sys.path.insert(0, 'benchmarks');"
        "from embed import end_to_end;"
        f"r = end_to_end(Path({str(folder)!r}), Path({str(folder.parent / ('rss-store-' + str(count)))!r}), {device!r}, {batch}, None);"
        "print(json.dumps({'self_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " 'workers_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'images': r['images']}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--naive", type=int, default=32)
    parser.add_argument("--rss", default="48,192")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "none"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, GPU {gpu}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads")
    sizes = [int(n) for n in args.rss.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        paths = write_jpeg_corpus(root / "jpegs", max([args.images, args.naive, *sizes]), size=512)
        a = forward_only(device, args.batch, max(args.images, args.batch * 2))
        print(f"(a) forward only, batch {args.batch}, 224 px:        {a:8.1f} images/s")
        subset = root / "subset"
        subset.mkdir()
        for path in paths[: args.images]:
            (subset / path.name).symlink_to(path)
        b = end_to_end(subset, root / "store", args.device, args.batch, args.workers)
        print(f"(b) end to end, JPEG files -> Parquet:       {b['images_per_s']:8.1f} images/s  "
              f"= {b['images_per_s'] / a:.2f} x (a)")
        c = naive(paths[: args.naive], device)
        print(f"(c) naive, one image at a time, HF processor: {c:8.1f} images/s  "
              f"(b) = {b['images_per_s'] / c:.2f} x (c)")
        for count in sizes:
            folder = root / f"rss-{count}"
            folder.mkdir()
            for path in paths[:count]:
                (folder / path.name).symlink_to(path)
            peak = rss_child(folder, count, args.device, args.batch)
            print(f"(d) peak RSS, {peak['images']:5d} images: main process {peak['self_mb']:7.0f} MB, "
                  f"largest worker {peak['workers_mb']:6.0f} MB")


if __name__ == "__main__":
    main()
