"""`synthwatch train --head convnext`: fine-tune a ConvNeXt on the store's images, measure it on
held-out generators like any head, and register it."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict

import numpy as np

from synthwatch.embeddings.views import ROBUSTNESS_VIEWS
from synthwatch.heads.dataset import CLEAN_VIEW, REAL, EmbeddingSet, split_of_rows
from synthwatch.heads.evaluation import Evaluation, evaluate_fitted
from synthwatch.heads.finetune import (
    FINETUNE_KIND, FinetuneOptions, ImageItem, network_bytes, score_items, train_network,
)
from synthwatch.heads.records import NETWORK_FILE, HeadRecord, register
from synthwatch.heads.training import TrainOptions, TrainResult
from synthwatch.store.catalog import Catalog
from synthwatch.heads.metrics import threshold_at_fpr
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.lock import write_lock
from synthwatch.store.training_data import catalog_images


def _images(layout: StoreLayout) -> tuple[EmbeddingSet, list[str]]:
    """Catalog images as rows whose single "vector" column is the row number (scores come later)."""
    table = catalog_images(layout)
    splits = Catalog(layout).group_splits()
    n = table.num_rows
    if n == 0:
        raise StoreError(f"Expected images in {layout.root}, but the catalog has none. Run `synthwatch ingest`.")
    return EmbeddingSet(np.asarray(table.column("image_id").to_pylist(), object),
                        np.arange(n, dtype=np.float32)[:, None],
                        np.asarray(table.column("generator").to_pylist(), object),
                        np.asarray(table.column("source").to_pylist(), object),
                        np.zeros(n, np.int64),
                        np.asarray([splits[s] for s in table.column("source").to_pylist()], object)), \
        table.column("path").to_pylist()


def finetune_and_register(layout: StoreLayout, finetune: FinetuneOptions, options: TrainOptions,
                          progress=None) -> tuple[TrainResult, Evaluation]:
    """Train the network on the training split of generators not held out, set its threshold on
    validation real images, measure it, and register it (not promoted)."""
    images, paths = _images(layout)
    seed = options.evaluation.seed
    split = split_of_rows(images)
    held = np.isin(images.generators, list(options.holdout))
    train_rows = np.flatnonzero((split == "train") & ~held)
    items = [ImageItem(images.image_ids[i], paths[i], int(images.generators[i] != REAL)) for i in train_rows]
    run_key = hashlib.sha256(json.dumps([asdict(finetune), sorted(options.holdout), seed,
                                         images.image_ids[train_rows].tolist()]).encode()).hexdigest()[:16]
    checkpoints = layout.root / "finetune" / run_key
    with write_lock(layout.lock_for("finetune")):
        network, spec, info = train_network(items, finetune, checkpoint_dir=checkpoints, progress=progress)
    scored = _score_for_evaluation(network, spec, images, paths, split, held, seed=seed, device=finetune.device)
    val_real = scored.take((split_of_rows(scored) == "val") & (scored.generators == REAL)
                           & (scored.views == CLEAN_VIEW))
    if len(val_real) == 0:
        raise StoreError("Expected validation real images to set the threshold on, but the validation split has "
                         "none. Ingest real images from more source groups (at least 3).")
    threshold = threshold_at_fpr(val_real.vectors[:, 0], options.evaluation.target_fpr)
    seen = sorted(set(images.generator_names()) - set(options.holdout))
    evaluation = evaluate_fitted(lambda scores: scores[:, 0], threshold, scored, seen=seen, options=options.evaluation)
    record = HeadRecord(
        kind=FINETUNE_KIND, target="binary", threshold=threshold, target_fpr=options.evaluation.target_fpr,
        generators_seen=seen, holdout=sorted(options.holdout), train_groups=sorted(set(images.sources[train_rows].tolist())),
        counts={"train_images": len(items)}, metrics=evaluation.as_dict(), data_fingerprint=run_key,
        split_seed=Catalog(layout).split_seed(), resample_seed=seed, reason=options.reason,
        network={"backbone": spec.name, "mode": "crop", "input_size": spec.input_size, **info,
                 "options": asdict(finetune)})
    version = register(layout, record, {NETWORK_FILE: network_bytes(network)})
    shutil.rmtree(checkpoints, ignore_errors=True)  # registered: nothing left to resume
    return TrainResult(version, "convnext", None, threshold, options.evaluation.target_fpr, seen, sorted(options.holdout),
                       record.counts, evaluation.as_dict(), [], training=info), evaluation


def _score_for_evaluation(network, spec, images: EmbeddingSet, paths: list[str], split: np.ndarray,
                          held: np.ndarray, *, seed: int, device: str) -> EmbeddingSet:
    """Scores of the images evaluation uses, as rows whose "vector" is the score: validation reals
    (clean), and test reals and every fake, clean and under each robustness view."""
    rows = np.flatnonzero((split != "train") | (images.generators != REAL) | held)
    views = [CLEAN_VIEW, *ROBUSTNESS_VIEWS.values()]
    items = [ImageItem(images.image_ids[i], paths[i], view=view) for i in rows for view in views]
    scores = score_items(network, spec, items, seed=seed, device=device)
    index = np.repeat(rows, len(views))
    return EmbeddingSet(images.image_ids[index], scores.astype(np.float32)[:, None], images.generators[index],
                        images.sources[index], np.tile(np.array(views, np.int64), len(rows)), images.splits[index])


def evaluate_network(layout: StoreLayout, scorer, options) -> Evaluation:
    """A registered network (a ``NetworkScorer``) on generators it never saw (all images) and the
    test split of the rest; ``options`` are its evaluation options."""
    record = scorer.record
    images, paths = _images(layout)
    split = split_of_rows(images)
    held = ~np.isin(images.generators, record.generators_seen) & (images.generators != REAL)
    scored = _score_for_evaluation(scorer.network, scorer.spec, images, paths, split, held, seed=options.seed,
                                   device="auto")
    return evaluate_fitted(lambda scores: scores[:, 0], scorer.threshold, scored, seen=record.generators_seen,
                           options=options)
