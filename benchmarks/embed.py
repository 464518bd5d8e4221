"""Embedding throughput on a backbone's architecture (random weights: timing does not depend on
weight values).

Usage: python benchmarks/embed.py [--backbone dinov2-small] [--images 96] [--naive 32]
                                  [--batch 32] [--rss 48,192] [--device auto]
Reports (a) forward-only images/s on ready tensors, (b) end-to-end images/s from JPEG files on
disk to Parquet shards, (c) a naive baseline: one image at a time through the published
preprocessing and the model, (d) peak RSS of end-to-end runs at two corpus sizes.
``benchmarks/gpu_check.py`` uses the same functions on a GPU, with batch sizes 64-512.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from synthwatch.embeddings.backbone import Backbone, create_backbone
from synthwatch.embeddings.engine import EngineOptions, WorkItem, resolve_device, view_loader
from synthwatch.embeddings.job import embed_store, plan_embedding
from synthwatch.store.ingest import IngestOptions, ingest
from synthwatch.store.layout import StoreLayout
from synthwatch.store.sources import plan_sources
from synthwatch.store.vectors import VectorStore
from synthwatch.corpus.photos import write_jpeg_corpus


class PeakMemory:
    """Peak resident memory of this process and of its largest child (a decoding worker; they
    share the parent's pages, so a sum would count those many times), sampled every 20 ms while
    in use, and peak CUDA memory allocated by torch."""

    def __init__(self) -> None:
        self.main_mb = self.worker_mb = self.gpu_mb = 0.0

    @contextmanager
    def watch(self):
        import psutil

        me, stop = psutil.Process(), threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    self.main_mb = max(self.main_mb, me.memory_info().rss / 2**20)
                    for child in me.children(recursive=True):
                        self.worker_mb = max(self.worker_mb, child.memory_info().rss / 2**20)
                except psutil.Error:
                    pass
                stop.wait(0.02)

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
            if torch.cuda.is_available():
                self.gpu_mb = torch.cuda.max_memory_allocated() / 2**20


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_only(backbone: Backbone, batch: int, count: int, *, min_seconds: float = 0.0) -> dict:
    """Images/s of the model alone: ready normalised tensors on the device, vectors back on the
    host; at least ``count`` images and ``min_seconds``."""
    size = backbone.spec.input_size
    pixels = torch.randn(batch, 3, size, size, device=backbone.device)
    for _ in range(2):
        backbone.embed(pixels)  # warm-up: kernels chosen, memory pooled
    synchronize(backbone.device)
    with PeakMemory().watch() as peak:
        started = time.perf_counter()
        done = 0
        while done < count or time.perf_counter() - started < min_seconds:
            backbone.embed(pixels)
            done += batch
        synchronize(backbone.device)
        elapsed = time.perf_counter() - started
    return {"batch": batch, "images": done, "images_per_s": done / elapsed, "peak_gpu_mb": peak.gpu_mb}


def ingest_folder(folder: Path, store: Path) -> StoreLayout:
    """A store whose catalog references the files in ``folder`` (not copied) as real images."""
    layout = StoreLayout(store)
    ingest(layout, plan_sources([folder], label="real"), IngestOptions(copy=False))
    return layout


def end_to_end(layout: StoreLayout, backbone: Backbone, device: str, batch: int, workers: int | None) -> dict:
    """Embed every catalog image with ``backbone``, JPEG files to Parquet, as `synthwatch embed`
    does (forgetting vectors of an earlier run first); ``first_batch_s`` is how long the first
    model batch took to arrive (worker start-up and the pipeline filling)."""
    shutil.rmtree(VectorStore(layout, backbone.backbone_id).folder, ignore_errors=True)
    first: list[float] = []

    def progress_factory(total: int):
        return lambda images: first.append(time.perf_counter()) if not first else None

    options = EngineOptions(batch_size=batch, device=device, workers=workers)
    with PeakMemory().watch() as peak:
        started = time.perf_counter()
        report = embed_store(layout, backbone, options=options, progress_factory=progress_factory)
    assert report.failed == 0 and report.embedded == report.images, report.as_dict()
    return {**report.as_dict(), "first_batch_s": first[0] - started if first else None, "batch": batch,
            "workers": workers, "peak_main_mb": peak.main_mb, "peak_worker_mb": peak.worker_mb,
            "peak_gpu_mb": peak.gpu_mb}


def decode_only(layout: StoreLayout, backbone: Backbone, batch: int, workers: int | None) -> dict:
    """Images/s of the engine's decoding workers alone (no model): the ceiling CPU decoding sets."""
    items, _ = plan_embedding(layout, VectorStore(layout, "decode-only"), 0)
    options = EngineOptions(batch_size=batch, workers=workers)
    started = time.perf_counter()
    done = sum(batch["images"] for batch in view_loader(items, backbone, options, backbone.device))
    return {"images": done, "images_per_s": done / (time.perf_counter() - started), "workers": workers}


def naive(backbone: Backbone, paths: list[Path]) -> float:
    """Images/s of one image at a time through the published preprocessing and the model."""
    from PIL import Image

    device = backbone.device
    if backbone.spec.family == "dinov2":
        from transformers import BitImageProcessor

        processor = BitImageProcessor(  # DINOv2's published preprocessing
            do_resize=True, size={"shortest_edge": 256}, resample=3, do_center_crop=True,
            crop_size={"height": 224, "width": 224}, image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225], do_convert_rgb=True,
        )

        def inputs(image):
            return processor(images=image, return_tensors="pt")["pixel_values"]
    else:
        from timm.data import create_transform, resolve_data_config

        transform = create_transform(**resolve_data_config({}, model=backbone.model))

        def inputs(image):
            return transform(image.convert("RGB"))[None]

    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            backbone.embed(inputs(image).to(device))
    return len(paths) / (time.perf_counter() - started)


def link_subset(paths: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (folder / path.name).symlink_to(path)
    return folder


def rss_child(folder: Path, backbone_name: str, device: str, batch: int) -> dict:
    """One end-to-end embed in a fresh process; its peak RSS (main process and largest worker)."""
    code = (
        "import json, resource, sys; from pathlib import Path; sys.path.insert(0, 'benchmarks');"
        "from embed import end_to_end, ingest_folder; from synthwatch.embeddings.backbone import create_backbone;"
        f"layout = ingest_folder(Path({str(folder)!r}), Path({str(folder) + '-store'!r}));"
        f"r = end_to_end(layout, create_backbone({backbone_name!r}, allow_random_weights=True), {device!r}, {batch}, None);"
        "print(json.dumps({'self_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " 'workers_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'images': r['images']}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="dinov2-small")
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
          f"{torch.get_num_threads()} torch threads; {args.backbone}")
    sizes = [int(n) for n in args.rss.split(",")]
    backbone = create_backbone(args.backbone, allow_random_weights=True).to(device)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        paths = write_jpeg_corpus(root / "jpegs", max([args.images, args.naive, *sizes]), size=512)
        a = forward_only(backbone, args.batch, max(args.images, args.batch * 2))["images_per_s"]
        print(f"(a) forward only, batch {args.batch}:                {a:8.1f} images/s")
        layout = ingest_folder(link_subset(paths[: args.images], root / "subset"), root / "store")
        b = end_to_end(layout, backbone, args.device, args.batch, args.workers)["images_per_s"]
        print(f"(b) end to end, JPEG files -> Parquet:       {b:8.1f} images/s  = {b / a:.2f} x (a)")
        c = naive(backbone, paths[: args.naive])
        print(f"(c) naive, one image at a time:              {c:8.1f} images/s  (b) = {b / c:.2f} x (c)")
        for count in sizes:
            peak = rss_child(link_subset(paths[:count], root / f"rss-{count}"), args.backbone, args.device, args.batch)
            print(f"(d) peak RSS, {peak['images']:5d} images: main process {peak['self_mb']:7.0f} MB, "
                  f"largest worker {peak['workers_mb']:6.0f} MB")


if __name__ == "__main__":
    main()
