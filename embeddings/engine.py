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
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from embeddings.backbone import Backbone
from embeddings.decode import DecodeLimits, ImageRejected, decode_image
from embeddings.errors import EmbeddingError
from embeddings.views import make_views

# Images were validated at ingest; at embed time only damage or a changed original fails.
_EMBED_LIMITS = DecodeLimits(max_pixels=1_000_000_000, min_side=1)


@dataclass(frozen=True)
class WorkItem:
    """One image to embed: where its bytes are and which views it still lacks."""

    image_id: str
    path: str
    views: tuple[int, ...]


@dataclass(frozen=True)
class EngineOptions:
    """How to run: views seed, rows per forward pass, decoding workers, device, shard size."""

    seed: int = 0
    batch_size: int = 32
    workers: int | None = None
    device: str = "auto"
    shard_images: int = 1024


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


def default_workers() -> int:
    """Leave one core to the model: 1 worker on 2 cores, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class _ViewsDataset(Dataset):
    """Reads, verifies and decodes one image, and prepares its missing views (in a worker)."""

    def __init__(self, items: Sequence[WorkItem], backbone: Backbone, seed: int) -> None:
        self.items, self.spec, self.mode, self.seed = items, backbone.spec, backbone.mode, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        try:
            data = Path(item.path).read_bytes()
        except OSError as error:
            return item, f"unreadable at embed time: {error.strerror or error}", None
        if hashlib.sha256(data).hexdigest() != item.image_id:
            return item, "the file changed since it was ingested (its sha256 no longer matches)", None
        try:
            image, _ = decode_image(data, _EMBED_LIMITS)
        except ImageRejected as rejection:
            return item, f"failed to decode at embed time: {rejection.reason}", None
        views, params, pixels = [], [], []
        for view, augmentation, array in make_views(image, self.spec, self.mode, list(item.views),
                                                    seed=self.seed, image_id=item.image_id):
            views.append(view)
            params.append(json.dumps(augmentation, sort_keys=True))
            pixels.append(array)
        return item, None, (views, params, np.stack(pixels))


def _keep_as_list(samples):
    return samples


def run_engine(
    items: Sequence[WorkItem],
    backbone: Backbone,
    options: EngineOptions,
    *,
    sink: Sink,
    on_failure: OnFailure,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Embed ``items``; hand rows to ``sink`` every ``shard_images`` images. Returns counts."""
    device = resolve_device(options.device)
    backbone.to(device)
    workers = default_workers() if options.workers is None else options.workers
    views_per_item = max(1, max((len(item.views) for item in items), default=1))
    loader = DataLoader(
        _ViewsDataset(items, backbone, options.seed),
        batch_size=max(1, options.batch_size // views_per_item),
        num_workers=workers,
        collate_fn=_keep_as_list,
        prefetch_factor=4 if workers else None,
        pin_memory=device.type == "cuda",
    )
    pending = _Pending()
    counts = {"rows": 0, "images": 0, "failed": 0, "shards": 0}
    started = time.perf_counter()
    for samples in loader:
        good = [(item, payload) for item, reason, payload in samples if reason is None]
        for item, reason, _ in samples:
            if reason is not None:
                on_failure(item, reason)
                counts["failed"] += 1
        if good:
            pixels = torch.from_numpy(np.concatenate([payload[2] for _, payload in good]))
            vectors = torch.cat([backbone.embed(chunk) for chunk in pixels.split(options.batch_size)])
            pending.add(good, vectors.numpy())
            counts["images"] += len(good)
        if pending.images >= options.shard_images:
            counts["rows"] += pending.flush(sink)
            counts["shards"] += 1
        if progress is not None:
            progress(len(samples))
    if pending.images:
        counts["rows"] += pending.flush(sink)
        counts["shards"] += 1
    counts["elapsed_s"] = time.perf_counter() - started
    return counts


class _Pending:
    """Rows computed but not yet in a shard."""

    def __init__(self) -> None:
        self.images = 0
        self._ids: list[str] = []
        self._views: list[int] = []
        self._params: list[str] = []
        self._vectors: list[np.ndarray] = []

    def add(self, good, vectors: np.ndarray) -> None:
        for item, (views, params, _) in good:
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
