"""One evaluation dataset per decision: what training, evaluation and the gate read from the store.

:func:`make_ready` is the explicit step with side effects (embedding the robustness views of the
images evaluation tests on, bringing the index up to date); :func:`prepare_data` then only reads
and returns an immutable :class:`EvaluationData`, which is passed from training to the gate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from synthwatch.heads.dataset import CLEAN_VIEW, EmbeddingSet, split_of_rows
from synthwatch.heads.replay import plan_read
from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.index import IndexPlan, build_index, image_keys, range_pairs
from synthwatch.store.indexing import sync_index
from synthwatch.store.layout import StoreLayout
from synthwatch.store.training_data import labelled_vectors, labelled_vectors_of, shards_sql
from synthwatch.store.vectors import VectorStore

DEFAULT_DEDUP_THRESHOLD = 0.95
FALSE_PAIR_SHARE = 0.01  # of a store's images, at most, paired with an unrelated image as near-duplicates
MAX_SAMPLED_PAIRS = 200_000
NEAR_DUPLICATE_NPROBE = 16

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
    evaluation_sample: dict | None = None  # the validation and test sample's record when evaluation was

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


def make_ready(layout: StoreLayout, backbone_id: str, *, robustness: bool = True, index: bool = True) -> list[str]:
    """Before preparing: embed the JPEG (q50-95 and q75) and 0.5x views of the images evaluation may
    test on (when ``robustness``), and bring the backbone's index up to date (when ``index``; a
    bounded retrain leaves that to `synthwatch index`, which the cycle runs after embedding: checking
    it reads every id). Returns notes on what was done."""
    notes = []
    if robustness:
        added = _embed_robustness_views(layout, backbone_id)
        if added:
            notes.append(f"embedded {added} robustness views (JPEG q50-95, 0.5x, JPEG q75) of evaluation images")
    if not index:
        return notes
    result = sync_index(layout, backbone_id)
    if result["action"] == "built":
        notes.append(f"built the index of {backbone_id} ({result['index_type']}, {result['ntotal']} vectors)")
    elif result["action"] != "unchanged":
        notes.append(f"the index of {backbone_id} was not current; {result['action']}: "
                     f"+{result['added']} -{result['removed']}")
    return notes


def prepare_data(layout: StoreLayout, backbone_id: str, *, dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
                 seed: int = 0, notes: tuple[str, ...] = (), max_train: int | None = None,
                 max_eval: int | None = None) -> EvaluationData:
    """Read everything evaluation needs (nothing is written): the labelled vectors with their
    splits, the near-duplicate threshold in force (``dedup_threshold``, raised above what
    unrelated images reach; ``seed`` draws that sample) and the pairs above it.

    With ``max_train`` or ``max_eval``, what is read is drawn from the catalog first
    (:func:`plan_read`) and only the drawn images' vectors are read. Near-duplicates are looked for
    among the images read, through an index of their own."""
    _, description = VectorStore(layout, backbone_id).shape_and_description()
    splits = Catalog(layout).group_splits()
    plan = None
    if max_train is not None or max_eval is not None:
        plan = plan_read(layout, backbone_id, max_train=max_train, max_eval=max_eval, seed=seed)
        plan = None if plan.reads_everything else plan
    table = labelled_vectors(layout, backbone_id) if plan is None else labelled_vectors_of(layout, backbone_id,
                                                                                           plan.images)
    data = embedding_set_of(table, splits)
    if len(data) == 0:
        raise StoreError(f"Expected labelled vectors for {backbone_id}, but none of its vectors belong to "
                         "catalog images. Run `synthwatch ingest` and `synthwatch embed`.")
    threshold, note = effective_dedup_threshold(data, dedup_threshold, seed=seed)
    notes = tuple(notes) + ((note,) if note else ())
    pairs = tuple(near_duplicates_among(data, threshold))
    if plan is None:
        return EvaluationData(backbone_id, description, data, pairs, threshold, notes)
    return EvaluationData(backbone_id, description, data, pairs, threshold, notes + (_read_note(plan),),
                          plan.training_sample, plan.evaluation_sample)


def near_duplicates_among(data: EmbeddingSet, threshold: float) -> list[tuple[str, str, float]]:
    """Pairs of images among ``data`` whose clean vectors reach ``threshold`` with a training-split
    image (the only pairs that can leak: see ``make_fold``), through a FAISS index of the training
    images' clean vectors: exact while small, IVF beyond (probing ``NEAR_DUPLICATE_NPROBE`` lists: a
    near-duplicate falls in its partner's list or one beside it), so the cost follows what was read."""
    clean = data.take(data.views == CLEAN_VIEW)
    trained = clean.take(split_of_rows(clean) == "train")
    if len(trained) == 0 or len(clean) < 2:
        return []
    plan = IndexPlan.for_size(len(trained), trained.dim)
    if plan.kind != "flat":
        plan = replace(plan, nprobe=min(plan.nlist, NEAR_DUPLICATE_NPROBE))
    trained_keys = image_keys(trained.image_ids.tolist())
    index = build_index(trained.vectors, trained_keys, plan)
    keys = image_keys(clean.image_ids.tolist())
    id_of = dict(zip(keys.tolist(), clean.image_ids.tolist()))

    def ids_of(wanted: np.ndarray) -> dict[int, str]:
        return {key: id_of[key] for key in wanted.tolist() if key in id_of}

    return range_pairs(index, [(keys, clean.vectors)], threshold, ids_of)


def _read_note(plan) -> str:
    parts = []
    if plan.training_sample:
        sample = plan.training_sample
        parts.append(f"training on {sample['rows']:,} of {sample['of_rows']:,} training rows ({sample['rule']}, "
                     f"--max-train {sample['max_train']:,})")
    if plan.evaluation_sample:
        sample = plan.evaluation_sample
        parts.append("validation and test on " + " and ".join(
            f"{sample[split]['images']:,} of {sample[split]['of_images']:,} {split} images"
            for split in ("val", "test")) + f" ({sample['rule']}, --max-eval {sample['max_eval']:,}): metrics and "
            "their intervals are those of the sample")
    return ("read a drawn sample, not every vector: " + "; ".join(parts)
            + "; near-duplicates looked for among the images read")


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
    and real images outside the training split) that lacks one. Returns the rows added. Which
    images lack one is asked of the catalog and the shards' id columns: no vector is read."""
    from synthwatch.embeddings.backbone import backbone_from_description
    from synthwatch.embeddings.engine import EngineOptions
    from synthwatch.embeddings.job import embed_store
    from synthwatch.embeddings.views import ROBUSTNESS_VIEWS

    views = sorted(ROBUSTNESS_VIEWS.values())
    Catalog(layout).group_splits()
    table = Catalog(layout).arrow(
        f"SELECT v.image_id FROM {shards_sql(layout, backbone_id)} v JOIN images i USING (image_id) "
        f"JOIN splits s ON s.source = i.source WHERE i.label = 'synthetic' OR s.split <> 'train' "
        f"GROUP BY v.image_id HAVING bool_or(v.view = {CLEAN_VIEW}) "
        f"AND count(DISTINCT v.view) FILTER (WHERE v.view IN ({', '.join(map(str, views))})) < {len(views)}")
    missing = set(table.column("image_id").to_pylist())
    if not missing:
        return 0
    _, description = VectorStore(layout, backbone_id).shape_and_description()
    report = embed_store(layout, backbone_from_description(description), extra_views=tuple(views),
                         only=missing, options=EngineOptions(workers=0))
    return report.embedded
