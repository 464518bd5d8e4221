"""One evaluation dataset per decision: what training, evaluation and the gate read from the store.

:func:`make_ready` is the explicit step with side effects (embedding the robustness views of the
images evaluation tests on, bringing the index up to date); :func:`prepare_data` then only reads
and returns an immutable :class:`EvaluationData`, which is passed from training to the gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthwatch.heads.dataset import CLEAN_VIEW, REAL, EmbeddingSet
from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.indexing import sync_index
from synthwatch.store.layout import StoreLayout
from synthwatch.store.neighbors import NeighborIndex
from synthwatch.store.training_data import labelled_vectors
from synthwatch.store.vectors import VectorStore

DEFAULT_DEDUP_THRESHOLD = 0.95
FALSE_PAIR_SHARE = 0.01  # of a store's images, at most, paired with an unrelated image as near-duplicates
MAX_SAMPLED_PAIRS = 200_000

__all__ = ["DEFAULT_DEDUP_THRESHOLD", "EvaluationData", "embedding_set_of", "load_embedding_set", "make_ready",
           "prepare_data"]


@dataclass(frozen=True)
class EvaluationData:
    """The labelled vectors of one backbone, each row with its stored split, and the
    near-duplicate pairs among them at ``dedup_threshold``."""

    backbone_id: str
    description: dict
    data: EmbeddingSet
    pairs: tuple[tuple[str, str, float], ...]
    dedup_threshold: float
    notes: tuple[str, ...] = ()
    training_sample: dict | None = None  # the replay set's record when training was bounded

    def generators_seen(self, holdout) -> list[str]:
        return sorted(set(self.data.generator_names()) - set(holdout))


def load_embedding_set(layout: StoreLayout, backbone_id: str) -> EmbeddingSet:
    """Every stored vector of ``backbone_id`` whose image is in the catalog, with the split of its
    source group as the catalog holds it."""
    return embedding_set_of(labelled_vectors(layout, backbone_id), Catalog(layout).group_splits())


def embedding_set_of(table, splits: dict[str, str] | None = None) -> EmbeddingSet:
    """An :class:`EmbeddingSet` of a ``labelled_vectors`` table, each row with its group's split
    from ``splits`` (None: no splits)."""
    n = table.num_rows
    vectors = table.column("vector").combine_chunks().flatten().to_numpy().astype(np.float32)
    sources = table.column("source").to_pylist()
    return EmbeddingSet(
        np.asarray(table.column("image_id").to_pylist(), dtype=object),
        vectors.reshape(n, -1) if n else np.zeros((0, 0), np.float32),
        np.asarray(table.column("generator").to_pylist(), dtype=object),
        np.asarray(sources, dtype=object),
        table.column("view").to_numpy().astype(np.int64),
        None if splits is None else np.asarray([splits[source] for source in sources], dtype=object),
    )


def make_ready(layout: StoreLayout, backbone_id: str, *, robustness: bool = True) -> list[str]:
    """Before preparing: embed the JPEG (q50-95 and q75) and 0.5x views of the images evaluation may
    test on (when ``robustness``), and bring the backbone's index up to date. Returns notes on what
    was done."""
    notes = []
    if robustness:
        added = _embed_robustness_views(layout, backbone_id)
        if added:
            notes.append(f"embedded {added} robustness views (JPEG q50-95, 0.5x, JPEG q75) of evaluation images")
    result = sync_index(layout, backbone_id)
    if result["action"] == "built":
        notes.append(f"built the index of {backbone_id} ({result['index_type']}, {result['ntotal']} vectors)")
    elif result["action"] != "unchanged":
        notes.append(f"the index of {backbone_id} was not current; {result['action']}: "
                     f"+{result['added']} -{result['removed']}")
    return notes


def prepare_data(layout: StoreLayout, backbone_id: str, *, dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
                 seed: int = 0, notes: tuple[str, ...] = ()) -> EvaluationData:
    """Read everything evaluation needs (nothing is written): the labelled vectors with their
    splits, the near-duplicate threshold in force (``dedup_threshold``, raised above what
    unrelated images reach; ``seed`` draws that sample) and the pairs above it from the index."""
    _, description = VectorStore(layout, backbone_id).shape_and_description()
    data = load_embedding_set(layout, backbone_id)
    if len(data) == 0:
        raise StoreError(f"Expected labelled vectors for {backbone_id}, but none of its vectors belong to "
                         "catalog images. Run `synthwatch ingest` and `synthwatch embed`.")
    threshold, note = effective_dedup_threshold(data, dedup_threshold, seed=seed)
    pairs = tuple(NeighborIndex(layout, backbone_id).pairs_above(threshold))
    return EvaluationData(backbone_id, description, data, pairs, threshold, tuple(notes) + ((note,) if note else ()))


def effective_dedup_threshold(data: EmbeddingSet, requested: float, *, seed: int = 0) -> tuple[float, str | None]:
    """``requested``, raised when unrelated images (of different source groups) already reach it, as
    forensic and random-weight backbones' vectors do: to the similarity unrelated pairs exceed so
    rarely that, over every pair of the store, about ``FALSE_PAIR_SHARE`` of its images would meet an
    unrelated "near-duplicate" (the largest sampled similarity where no sample can resolve a rate
    that small). A fixed percentile would not do: the count of pairs grows with the square of the
    store: at the 99.9th percentile a store of 574 images dropped about 40 % of its test real images."""
    clean = data.take(data.views == CLEAN_VIEW)
    n = len(clean)
    if n < 10:
        return requested, None
    pairs = n * (n - 1) / 2
    rate = min(1e-3, FALSE_PAIR_SHARE * n / pairs)  # unrelated pairs allowed above the threshold
    rng = np.random.default_rng(seed)
    count = int(min(MAX_SAMPLED_PAIRS, max(4000, np.ceil(5 / rate))))
    a, b = rng.integers(0, n, count), rng.integers(0, n, count)
    unrelated = clean.sources[a] != clean.sources[b]
    if unrelated.sum() < 100:
        return requested, None
    a, b = a[unrelated], b[unrelated]
    similarity = np.concatenate([np.einsum("ij,ij->i", clean.vectors[a[i:i + 16384]], clean.vectors[b[i:i + 16384]])
                                 for i in range(0, len(a), 16384)])
    tail = float(np.quantile(similarity, 1 - rate)) if len(similarity) * rate >= 5 else float(similarity.max())
    if tail <= requested:
        return requested, None
    raised = float(min(0.99999, tail))
    return raised, (f"near-duplicate threshold raised from {requested} to {raised:.5f}: images from different "
                    f"source groups already reach {requested} with this backbone; above {raised:.5f} about "
                    f"{FALSE_PAIR_SHARE:.0%} of the store's images would meet an unrelated one")


def _embed_robustness_views(layout: StoreLayout, backbone_id: str) -> int:
    """Embed the robustness views of every image evaluation may test on (all synthetic images,
    and real images outside the training split) that lacks one. Returns the rows added."""
    from synthwatch.embeddings.backbone import backbone_from_description
    from synthwatch.embeddings.engine import EngineOptions
    from synthwatch.embeddings.job import embed_store
    from synthwatch.embeddings.views import ROBUSTNESS_VIEWS

    data = load_embedding_set(layout, backbone_id)
    clean = data.take(data.views == CLEAN_VIEW)
    wanted = (clean.generators != REAL) | (clean.splits != "train")
    have = {view: set(data.image_ids[data.views == view].tolist()) for view in ROBUSTNESS_VIEWS.values()}
    missing = {i for i in clean.image_ids[wanted].tolist() if any(i not in ids for ids in have.values())}
    if not missing:
        return 0
    _, description = VectorStore(layout, backbone_id).shape_and_description()
    report = embed_store(layout, backbone_from_description(description), extra_views=tuple(ROBUSTNESS_VIEWS.values()),
                         only=missing, options=EngineOptions(workers=0))
    return report.embedded
