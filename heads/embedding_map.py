"""A 2-D map of a backbone's stored embeddings for the report: a bounded, seeded sample of clean
vectors with real images and every generator in it, laid out by t-SNE, and the newest generator
(the one whose first image arrived last) named."""

from __future__ import annotations

import numpy as np

from synthwatch.heads.dataset import CLEAN_VIEW, REAL, EmbeddingSet
from synthwatch.heads.prepare import embedding_set_of
from synthwatch.heads.replay import water_fill
from synthwatch.store.catalog import Catalog
from synthwatch.store.layout import StoreLayout
from synthwatch.store.training_data import labelled_vectors

__all__ = ["DEFAULT_MAX_POINTS", "embedding_map", "embedding_map_of", "newest_generator"]

DEFAULT_MAX_POINTS = 1000
_MIN_POINTS = 3
_ITERATIONS = 500


def embedding_map_of(layout: StoreLayout, backbone_id: str, *, max_points: int = DEFAULT_MAX_POINTS,
                     seed: int = 0) -> dict:
    """:func:`embedding_map` of the clean vectors of ``backbone_id`` in the store, newest generator
    by the catalog's arrival times."""
    data = embedding_set_of(labelled_vectors(layout, backbone_id, views="clean"))
    return embedding_map(data, Catalog(layout).arrival_times(data.image_ids), max_points=max_points, seed=seed)


def embedding_map(data: EmbeddingSet, arrivals: dict[str, float], *, max_points: int = DEFAULT_MAX_POINTS,
                  seed: int = 0) -> dict:
    """t-SNE of a sample of the clean rows of ``data``: at most ``max_points`` rows (but at least one
    per group), shared as equally as the groups allow between real images and each generator.

    Parameters
    ----------
    data : EmbeddingSet
        Vectors (n, dim) with their image ids, generators and views.
    arrivals : dict
        ``{image_id: arrival time}`` (:meth:`Catalog.arrival_times`), to name the newest generator.

    Returns
    -------
    dict
        ``x``, ``y`` (lists of m floats), ``generator`` (``""`` for real), ``label`` (``real`` or
        ``synthetic``) and ``image_id`` of each of the m sampled rows; ``newest`` (a generator or
        None), ``method``, ``perplexity``, ``seed`` and ``of`` (the clean rows sampled from).
    """
    if max_points < _MIN_POINTS:
        raise ValueError(f"Expected max_points >= {_MIN_POINTS}, but got {max_points}. Map at least "
                         f"{_MIN_POINTS} points.")
    clean = data.take(data.views == CLEAN_VIEW)
    rows = _stratified_rows(clean.generators, max_points=max_points, seed=seed)
    if len(rows) < _MIN_POINTS:
        raise ValueError(f"Expected at least {_MIN_POINTS} clean vectors to map, but got {len(rows)}. "
                         "Embed more images with `synthwatch embed`.")
    perplexity = float(min(30, len(rows) - 1))
    xy = _tsne(clean.vectors[rows], perplexity=perplexity, seed=seed)
    generators = clean.generators[rows].tolist()
    return {"x": np.round(xy[:, 0], 4).tolist(), "y": np.round(xy[:, 1], 4).tolist(), "generator": generators,
            "label": ["real" if g == REAL else "synthetic" for g in generators],
            "image_id": clean.image_ids[rows].tolist(), "newest": newest_generator(clean, arrivals),
            "method": "t-SNE", "perplexity": perplexity, "seed": seed, "of": len(clean)}


def newest_generator(data: EmbeddingSet, arrivals: dict[str, float]) -> str | None:
    """The generator whose first image arrived last (ties: the last name in sorted order); None
    without generators or arrival times for them."""
    first: dict[str, float] = {}
    for image_id, generator in zip(data.image_ids.tolist(), data.generators.tolist()):
        if generator != REAL and image_id in arrivals:
            first[generator] = min(first.get(generator, np.inf), arrivals[image_id])
    return max(first, key=lambda name: (first[name], name)) if first else None


def _stratified_rows(generators: np.ndarray, *, max_points: int, seed: int) -> np.ndarray:
    """Sorted row positions: each group (real, each generator) draws its water-filled share of
    ``max_points`` (at least one row) without replacement."""
    rng = np.random.default_rng(seed)
    groups = sorted(set(generators.tolist()))
    members = [np.flatnonzero(generators == group) for group in groups]
    shares = water_fill([len(rows) for rows in members], max(max_points, len(groups)))
    return np.sort(np.concatenate([rng.choice(rows, share, replace=False) for rows, share in zip(members, shares)]
                                  or [np.zeros(0, np.int64)]))


def _tsne(vectors: np.ndarray, *, perplexity: float, seed: int) -> np.ndarray:
    """(m, 2) t-SNE layout of (m, dim) vectors, PCA-initialised and seeded. 500 iterations (half
    scikit-learn's default) settle a map of this size; one thread, as a map this small gains little
    from more and, on busy shared cores, loses ten times over to threads waiting on each other."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", max_iter=_ITERATIONS,
                    random_state=seed).fit_transform(vectors.astype(np.float64))
