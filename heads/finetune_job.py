"""`synthwatch train --head convnext`: fine-tune a ConvNeXt on the store's images, measure it on
held-out generators like any head, and register it."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, replace

import numpy as np

from synthwatch.embeddings.views import ROBUSTNESS_VIEWS
from synthwatch.heads.dataset import CLEAN_VIEW, REAL, EmbeddingSet, split_of_rows
from synthwatch.heads.evaluation import Evaluation, evaluate_fitted
from synthwatch.heads.finetune import (
    FINETUNE_KIND, FinetuneOptions, ImageItem, network_bytes, score_items, train_network,
)
from synthwatch.heads.jobs import NETWORK_FILE, LoadedHead, TrainOptions, _write
from synthwatch.heads.metrics import threshold_at_fpr
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.lock import write_lock
from synthwatch.store.training_data import catalog_images


def _images(layout: StoreLayout) -> tuple[EmbeddingSet, list[str]]:
    """Catalog images as rows whose single "vector" column is the row number (scores come later)."""
    table = catalog_images(layout)
    n = table.num_rows
    if n == 0:
        raise StoreError(f"Expected images in {layout.root}, but the catalog has none. Run `synthwatch ingest`.")
    return EmbeddingSet(np.asarray(table.column("image_id").to_pylist(), object),
                        np.arange(n, dtype=np.float32)[:, None],
                        np.asarray(table.column("generator").to_pylist(), object),
                        np.asarray(table.column("source").to_pylist(), object),
                        np.zeros(n, np.int64)), table.column("path").to_pylist()


def finetune_and_register(layout: StoreLayout, finetune: FinetuneOptions, options: TrainOptions,
                          progress=None) -> tuple[dict, Evaluation]:
    """Train the network on the training split of generators not held out, set its threshold on
    validation real images, measure it, and register it (not promoted)."""
    images, paths = _images(layout)
    seed = options.evaluation.seed
    split = split_of_rows(images, seed=seed)
    held = np.isin(images.generators, list(options.holdout))
    train_rows = np.flatnonzero((split == "train") & ~held)
    items = [ImageItem(images.image_ids[i], paths[i], int(images.generators[i] != REAL)) for i in train_rows]
    run_key = hashlib.sha256(json.dumps([asdict(finetune), sorted(options.holdout), seed,
                                         images.image_ids[train_rows].tolist()]).encode()).hexdigest()[:16]
    checkpoints = layout.root / "finetune" / run_key
    with write_lock(layout.lock_for("finetune")):
        network, spec, info = train_network(items, finetune, checkpoint_dir=checkpoints, progress=progress)
    scored = _score_for_evaluation(network, spec, images, paths, split, held, seed=seed, device=finetune.device)
    val_real = scored.take((split_of_rows(scored, seed=seed) == "val") & (scored.generators == REAL)
                           & (scored.views == CLEAN_VIEW))
    if len(val_real) == 0:
        raise StoreError("Expected validation real images to set the threshold on, but the validation split has "
                         "none. Ingest real images from more source groups (at least 3).")
    threshold = threshold_at_fpr(val_real.vectors[:, 0], options.evaluation.target_fpr)
    seen = sorted(set(images.generator_names()) - set(options.holdout))
    evaluation = evaluate_fitted(lambda scores: scores[:, 0], threshold, scored, seen=seen, options=options.evaluation)
    record = {
        "kind": FINETUNE_KIND, "target": "binary", "threshold": threshold, "backbone_id": None,
        "network": {"backbone": spec.name, "mode": "crop", "input_size": spec.input_size, **info,
                    "options": asdict(finetune)},
        "generators_seen": seen, "data_fingerprint": run_key,
        "counts": {"train_images": len(items)},
        "train_groups": sorted(set(images.sources[train_rows].tolist())),
    }
    version = _write(layout, record, {NETWORK_FILE: network_bytes(network)}, options, evaluation)
    shutil.rmtree(checkpoints, ignore_errors=True)  # registered: nothing left to resume
    return {"version": version, "head": "convnext", "backbone_id": None, "threshold": round(threshold, 6),
            "target_fpr": options.evaluation.target_fpr, "generators_seen": seen, "holdout": sorted(options.holdout),
            "counts": record["counts"], "training": info, "metrics": evaluation.as_dict(), "notes": []}, evaluation


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
                        images.sources[index], np.tile(np.array(views, np.int64), len(rows)))


def evaluate_network(layout: StoreLayout, loaded: LoadedHead, options: TrainOptions) -> Evaluation:
    """The registered network on generators it never saw (all images) and the test split of the rest."""
    record = loaded.record
    images, paths = _images(layout)
    seed = record["split_seed"]
    split = split_of_rows(images, seed=seed)
    held = ~np.isin(images.generators, record["generators_seen"]) & (images.generators != REAL)
    scored = _score_for_evaluation(loaded.network, loaded.network_spec, images, paths, split, held, seed=seed,
                                   device="auto")
    evaluation_options = replace(options.evaluation, target_fpr=record["target_fpr"], seed=seed)
    return evaluate_fitted(lambda scores: scores[:, 0], loaded.threshold, scored, seen=record["generators_seen"],
                           options=evaluation_options)
