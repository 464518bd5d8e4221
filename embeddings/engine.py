"""The batched extraction engine: worker processes decode and prepare views, the main process
runs the model, and finished rows go to a sink in shards.

Only the rows of a few batches and one unwritten shard are in memory at any time, so memory
does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from synthwatch.embeddings.backbone import Backbone
from synthwatch.embeddings.decode import STORED_IMAGE_LIMITS, ImageRejected, decode_image, read_image_file
from synthwatch.embeddings.errors import EmbeddingError
from synthwatch.embeddings.views import make_views
from synthwatch.embeddings.workers import dying_with_this_process

# Workers hand over views in chunks this small, so the first model batch need not wait for one
# worker to decode a whole batch alone (0.9 s at 256 images of 512 px); the main process joins
# chunks into model batches.
CHUNK_ROWS = 32


@dataclass(frozen=True)
class WorkItem:
    """One image to embed: where its bytes are and which views it still lacks."""

    image_id: str
    path: str
    views: tuple[int, ...]


@dataclass(frozen=True)
class EngineOptions:
    """How to run: views seed, rows per forward pass (None: 256 on CUDA, 32 on CPU), decoding
    workers, device, shard size."""

    seed: int = 0
    batch_size: int | None = None
    workers: int | None = None
    device: str = "auto"
    shard_images: int = 1024

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise EmbeddingError(f"Expected --batch-size >= 1, but got {self.batch_size}.")

    def rows_per_pass(self, device: torch.device) -> int:
        """Batch 256 saturates a GPU for the small backbones (benchmarks/RESULTS.md); on CPU
        batching buys nothing and 32 keeps memory low."""
        if self.batch_size is not None:
            return self.batch_size
        return 256 if device.type == "cuda" else 32


@dataclass
class Rows:
    """Finished rows, ready for a shard."""

    image_ids: list[str]
    views: list[int]
    augmentations: list[str]
    vectors: np.ndarray  # (N, dim) float32


Sink = Callable[[Rows], None]
OnFailure = Callable[[WorkItem, str], None]


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise EmbeddingError("Expected a CUDA GPU for --device cuda, but torch sees none. Use --device cpu or auto.")
    if requested not in ("cpu", "cuda"):
        raise EmbeddingError(f"Expected --device auto, cpu or cuda, but got {requested!r}.")
    return torch.device(requested)


def default_workers(device: torch.device) -> int:
    """Decoding processes: on CUDA every core but one, at most 32 (the GPU waits on decoding; on
    16 cores each worker up to 15 added throughput, benchmarks/RESULTS.md; beyond is unmeasured);
    on the CPU, where the model needs the cores, at most 8. One on 2 cores either way."""
    return max(1, min(32 if device.type == "cuda" else 8, (os.cpu_count() or 2) - 1))


class _ViewsDataset(Dataset):
    """Reads, verifies and decodes one image, and crops its missing views (in a worker)."""

    def __init__(self, items: Sequence[WorkItem], backbone: Backbone, seed: int) -> None:
        self.items, self.spec, self.mode, self.seed = items, backbone.spec, backbone.mode, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        try:
            data = read_image_file(item.path, STORED_IMAGE_LIMITS)
        except ImageRejected as rejection:
            return item, f"unreadable at embed time: {rejection.reason}", None
        except OSError as error:
            return item, f"unreadable at embed time: {error.strerror or error}", None
        if hashlib.sha256(data).hexdigest() != item.image_id:
            return item, "the file changed since it was ingested (its sha256 no longer matches)", None
        try:
            image, _ = decode_image(data, STORED_IMAGE_LIMITS)
        except ImageRejected as rejection:
            return item, f"failed to decode at embed time: {rejection.reason}", None
        views = list(make_views(image, self.spec, self.mode, list(item.views), seed=self.seed, image_id=item.image_id))
        return item, None, views


def _collate(samples) -> dict:
    """One batch as the worker hands it over: the crops of every good view in one uint8 tensor
    (one shared-memory block, pinned by the loader), the rest as plain lists."""
    good, failed, crops, sizes = [], [], [], []
    for item, reason, views in samples:
        if reason is not None:
            failed.append((item, reason))
            continue
        good.append((item, [view for view, _, _, _ in views],
                     [json.dumps(params, sort_keys=True) for _, params, _, _ in views]))
        crops += [pixels for _, _, pixels, _ in views]
        sizes += [size for _, _, _, size in views]
    return {
        "good": good, "failed": failed, "images": len(samples),
        "crops": torch.from_numpy(np.stack(crops)) if crops else torch.zeros(0, dtype=torch.uint8),
        "sizes": torch.tensor(sizes, dtype=torch.int32).reshape(-1, 2),
    }


def view_loader(items: Sequence[WorkItem], backbone: Backbone, options: EngineOptions, device: torch.device) -> DataLoader:
    """Chunks of up to ``CHUNK_ROWS`` views, decoded by worker processes; each chunk is a dict: ``good`` (item, views, params), ``failed`` (item, reason), ``images``, ``crops``
    (N, S, S, 3) uint8 and ``sizes`` (N, 2), pinned when ``device`` is CUDA."""
    workers = default_workers(device) if options.workers is None else options.workers
    views_per_item = max(1, max((len(item.views) for item in items), default=1))
    return DataLoader(
        _ViewsDataset(items, backbone, options.seed),
        batch_size=max(1, min(CHUNK_ROWS, options.rows_per_pass(device)) // views_per_item),
        num_workers=workers,
        collate_fn=_collate,
        prefetch_factor=4 if workers else None,
        pin_memory=device.type == "cuda",
        worker_init_fn=dying_with_this_process(),
    )


def run_engine(
    items: Sequence[WorkItem],
    backbone: Backbone,
    options: EngineOptions,
    *,
    sink: Sink,
    on_failure: OnFailure,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Embed ``items``; hand rows to ``sink`` every ``shard_images`` images. Returns counts.

    Workers decode and crop while the model runs; on CUDA, a batch's vectors are copied back
    while the next batch is computed (one batch in flight), so the GPU does not wait on Python.
    """
    device = resolve_device(options.device)
    backbone.to(device)
    loader = view_loader(items, backbone, options, device)
    pending = _Pending()
    counts = {"rows": 0, "images": 0, "failed": 0, "shards": 0}
    in_flight: _InFlight | None = None
    started = time.perf_counter()
    step = options.rows_per_pass(device)
    for batch in _model_batches(loader, step, device):
        for item, reason in batch["failed"]:
            on_failure(item, reason)
            counts["failed"] += 1
        launched = None
        if batch["good"]:
            vectors = torch.cat([backbone.embed_crops(crops, sizes) for crops, sizes
                                 in zip(batch["crops"].split(step), batch["sizes"].split(step))])
            launched = _InFlight(batch["good"], vectors)
        if in_flight is not None:
            counts["images"] += in_flight.finish(pending)
        in_flight = launched
        if pending.images >= options.shard_images:
            counts["rows"] += pending.flush(sink)
            counts["shards"] += 1
        if progress is not None:
            progress(batch["images"])
    if in_flight is not None:
        counts["images"] += in_flight.finish(pending)
    if pending.images:
        counts["rows"] += pending.flush(sink)
        counts["shards"] += 1
    counts["elapsed_s"] = time.perf_counter() - started
    return counts


def _model_batches(loader: DataLoader, rows: int, device: torch.device):
    """The workers' chunks joined into batches of at least ``rows`` views (the last may hold
    fewer), crops moved to ``device`` chunk by chunk (from pinned memory, asynchronously)."""
    chunks: list[dict] = []
    views = 0
    for chunk in loader:
        chunks.append(chunk)
        views += len(chunk["sizes"])
        if views >= rows:
            yield _joined(chunks, device)
            chunks, views = [], 0
    if chunks:
        yield _joined(chunks, device)


def _joined(chunks: list[dict], device: torch.device) -> dict:
    with_crops = [c for c in chunks if len(c["sizes"])]
    return {
        "good": [entry for c in chunks for entry in c["good"]],
        "failed": [entry for c in chunks for entry in c["failed"]],
        "images": sum(c["images"] for c in chunks),
        "crops": torch.cat([c["crops"].to(device, non_blocking=True) for c in with_crops]) if with_crops else None,
        "sizes": torch.cat([c["sizes"] for c in with_crops]) if with_crops else None,
    }


class _InFlight:
    """A batch whose vectors are being computed and copied back to the host."""

    def __init__(self, good: list, vectors: torch.Tensor) -> None:
        self.good = good
        if vectors.device.type == "cuda":
            self.vectors = torch.empty(vectors.shape, dtype=vectors.dtype, pin_memory=True)
            self.vectors.copy_(vectors, non_blocking=True)
            self.done = torch.cuda.Event()
            self.done.record()
        else:
            self.vectors, self.done = vectors, None

    def finish(self, pending: "_Pending") -> int:
        if self.done is not None:
            self.done.synchronize()
        pending.add(self.good, self.vectors.numpy())
        return len(self.good)


class _Pending:
    """Rows computed but not yet in a shard."""

    def __init__(self) -> None:
        self.images = 0
        self._ids: list[str] = []
        self._views: list[int] = []
        self._params: list[str] = []
        self._vectors: list[np.ndarray] = []

    def add(self, good, vectors: np.ndarray) -> None:
        for item, views, params in good:
            self._ids += [item.image_id] * len(views)
            self._views += views
            self._params += params
        self._vectors.append(vectors)
        self.images += len(good)

    def flush(self, sink: Sink) -> int:
        rows = Rows(self._ids, self._views, self._params, np.concatenate(self._vectors))
        sink(rows)
        count = len(rows.image_ids)
        self.__init__()
        return count
