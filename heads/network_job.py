"""`synthwatch train --head convnext|npr`: train an image network on the store's images, measure it on
held-out generators like any head, and register it; and its leave-one-generator-out evaluation,
one network trained per fold."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, fields

import numpy as np

from synthwatch.embeddings.views import ROBUSTNESS_VIEWS
from synthwatch.heads.dataset import CLEAN_VIEW, REAL, EmbeddingSet, split_of_rows
from synthwatch.heads.evaluation import Evaluation, EvalOptions, evaluate_fitted
from synthwatch.heads.metrics import threshold_at_fpr
from synthwatch.heads.network_train import ImageItem, TrainedNetwork, network_bytes, score_items, train_network
from synthwatch.heads.network_kinds import NetworkOptions, kind_for_head, network_kind
from synthwatch.heads.networks import describe_network
from synthwatch.heads.records import NETWORK_FILE, HeadRecord, register
from synthwatch.heads.training import TrainOptions, TrainResult
from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.lock import write_lock
from synthwatch.store.training_data import catalog_images

__all__ = ["evaluate_network", "evaluate_network_logo", "network_options_of", "train_network_and_register"]


@dataclass(frozen=True)
class _Images:
    """Catalog images as rows whose single "vector" column is the row number (scores come later),
    with where each image's bytes are."""

    rows: EmbeddingSet
    paths: list[str]

    @classmethod
    def of(cls, layout: StoreLayout) -> "_Images":
        table = catalog_images(layout)
        splits = Catalog(layout).group_splits()
        n = table.num_rows
        if n == 0:
            raise StoreError(f"Expected images in {layout.root}, but the catalog has none. Run `synthwatch ingest`.")
        sources = table.column("source").to_pylist()
        rows = EmbeddingSet(np.asarray(table.column("image_id").to_pylist(), object),
                            np.arange(n, dtype=np.float32)[:, None],
                            np.asarray(table.column("generator").to_pylist(), object), np.asarray(sources, object),
                            np.zeros(n, np.int64), np.asarray([splits[s] for s in sources], object))
        return cls(rows, table.column("path").to_pylist())


@dataclass(frozen=True)
class _Fold:
    """One network trained with some generators held out, its threshold, and its scored rows."""

    trained: TrainedNetwork
    threshold: float
    scored: EmbeddingSet
    seen: list[str]
    train_rows: np.ndarray
    run_key: str


def _train_fold(layout: StoreLayout, images: _Images, options: NetworkOptions, holdout: tuple[str, ...], *,
                evaluation: EvalOptions, progress=None) -> _Fold:
    """Train on the training split of the generators not held out (resuming a killed run of the
    same fold), set the threshold on validation real images, and score what evaluation tests."""
    options = options.resolved()
    rows = images.rows
    split = split_of_rows(rows)
    held = np.isin(rows.generators, list(holdout))
    train_rows = np.flatnonzero((split == "train") & ~held)
    items = [ImageItem(rows.image_ids[i], images.paths[i], int(rows.generators[i] != REAL)) for i in train_rows]
    kind = kind_for_head(options.head)  # the key names what is trained, so a checkpoint resumes only its own run
    run_key = hashlib.sha256(json.dumps([describe_network(kind, options), options.as_dict(),
                                         sorted(holdout), evaluation.seed,
                                         rows.image_ids[train_rows].tolist()]).encode()).hexdigest()[:16]
    with write_lock(layout.lock_for("finetune")):
        trained = train_network(items, options, checkpoint_dir=layout.root / "finetune" / run_key, progress=progress)
    scored = _score_for_evaluation(trained, images, split, held, device=options.device)
    val_real = scored.take((split_of_rows(scored) == "val") & (scored.generators == REAL)
                           & (scored.views == CLEAN_VIEW))
    if len(val_real) == 0:
        raise StoreError("Expected validation real images to set the threshold on, but the validation split has "
                         "none. Ingest real images from more source groups (at least 3).")
    threshold = threshold_at_fpr(val_real.vectors[:, 0], evaluation.target_fpr)
    seen = sorted(set(rows.generator_names()) - set(holdout))
    return _Fold(trained, threshold, scored, seen, train_rows, run_key)


def train_network_and_register(layout: StoreLayout, network: NetworkOptions, options: TrainOptions,
                               progress=None) -> tuple[TrainResult, Evaluation]:
    """Train the network on the training split of generators not held out, set its threshold on
    validation real images, measure it, and register it (not promoted)."""
    images = _Images.of(layout)
    fold = _train_fold(layout, images, network, tuple(options.holdout), evaluation=options.evaluation,
                       progress=progress)
    trained = fold.trained
    evaluation = evaluate_fitted(_score_column, fold.threshold, fold.scored, seen=fold.seen,
                                 options=options.evaluation)
    record = HeadRecord(
        kind=trained.kind.name, target="binary", threshold=fold.threshold, target_fpr=options.evaluation.target_fpr,
        generators_seen=fold.seen, holdout=sorted(options.holdout),
        train_groups=sorted(set(images.rows.sources[fold.train_rows].tolist())),
        counts={"train_images": len(fold.train_rows)}, metrics=evaluation.as_dict(), data_fingerprint=fold.run_key,
        split_seed=Catalog(layout).split_seed(), resample_seed=options.evaluation.seed, reason=options.reason,
        network={**describe_network(trained.kind, trained.options), **trained.info, "options": trained.options.as_dict()})
    version = register(layout, record, {NETWORK_FILE: network_bytes(trained.network)})
    shutil.rmtree(layout.root / "finetune" / fold.run_key, ignore_errors=True)  # registered: nothing to resume
    return TrainResult(version, trained.options.head, None, fold.threshold, options.evaluation.target_fpr, fold.seen,
                       sorted(options.holdout), record.counts, evaluation.as_dict(), [],
                       training=trained.info), evaluation


def evaluate_network_logo(layout: StoreLayout, network: NetworkOptions, options: EvalOptions, *,
                          progress=None) -> Evaluation:
    """Leave-one-generator-out for an image network: for each generator, a network trained on the
    others (training split) and real images, its threshold set on validation real images, tested
    on every image of the generator it never saw against held-out real images. Each fold's run is
    checkpointed, so a killed evaluation resumes fold by fold."""
    images = _Images.of(layout)
    evaluation = Evaluation("logo", options.target_fpr, None, [])
    for generator in images.rows.generator_names():
        others = [name for name in images.rows.generator_names() if name != generator]
        if not others:
            evaluation.skipped[generator] = "no other generator left to train on"
            continue
        fold = _train_fold(layout, images, network, (generator,), evaluation=options,
                           progress=None if progress is None else (lambda step, loss, g=generator: progress(g, step, loss)))
        measured = evaluate_fitted(_score_column, fold.threshold, fold.scored, seen=fold.seen, options=options)
        evaluation.results += [result for result in measured.results if result.generator == generator]
        evaluation.skipped.update({name: why for name, why in measured.skipped.items() if name == generator})
        evaluation.dropped_near_duplicates = max(evaluation.dropped_near_duplicates, measured.dropped_near_duplicates)
        shutil.rmtree(layout.root / "finetune" / fold.run_key, ignore_errors=True)
    return evaluation


def evaluate_network(layout: StoreLayout, scorer, options: EvalOptions) -> Evaluation:
    """A registered network (a ``NetworkScorer``) on generators it never saw (all images) and the
    test split of the rest; ``options`` are its evaluation options."""
    record = scorer.record
    images = _Images.of(layout)
    rows = images.rows
    held = ~np.isin(rows.generators, record.generators_seen) & (rows.generators != REAL)
    scored = _score_for_evaluation(scorer.trained, images, split_of_rows(rows), held, device="auto")
    return evaluate_fitted(_score_column, scorer.threshold, scored, seen=record.generators_seen, options=options)


def network_options_of(record: HeadRecord) -> NetworkOptions:
    """The options a stored network was trained with (records of earlier releases: their ConvNeXt)."""
    stored = dict(record.network.get("options", {}))
    known = {f.name for f in fields(NetworkOptions)}
    values = {key: value for key, value in stored.items() if key in known}
    values["head"] = network_kind(record.kind).head
    if values["head"] == "convnext":
        values.setdefault("backbone", record.network.get("backbone"))
    return NetworkOptions(**values)


def _score_column(scores: np.ndarray) -> np.ndarray:
    return scores[:, 0]


def _score_for_evaluation(trained: TrainedNetwork, images: _Images, split: np.ndarray, held: np.ndarray, *,
                          device: str) -> EmbeddingSet:
    """Scores of the images evaluation uses, as rows whose "vector" is the score: the validation and
    test splits, and every image of the held-out generators, each clean and under each robustness
    view."""
    rows = images.rows
    chosen = np.flatnonzero((split != "train") | held)
    views = [CLEAN_VIEW, *ROBUSTNESS_VIEWS.values()]
    items = [ImageItem(rows.image_ids[i], images.paths[i], view=view) for i in chosen for view in views]
    scores = score_items(trained, items, device=device)
    index = np.repeat(chosen, len(views))
    return EmbeddingSet(rows.image_ids[index], scores.astype(np.float32)[:, None], rows.generators[index],
                        rows.sources[index], np.tile(np.array(views, np.int64), len(chosen)), rows.splits[index])
