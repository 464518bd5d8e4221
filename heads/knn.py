"""k-nearest-neighbour voting over a FAISS index: the nearest-neighbour baseline of the
detection literature (Ojha et al., 2023), which needs no training beyond storing the vectors.

The index follows the size as the store's does (``store.index.IndexPlan``): exact search for a
few tens of thousands of vectors, IVF with an HNSW coarse quantiser beyond. It is built on first
use and kept while the fitted vectors live (never saved: the vectors are).
"""

from __future__ import annotations

import weakref

import faiss
import numpy as np

from synthwatch.heads.base import EmbeddingHead
from synthwatch.store.index import IndexPlan, build_index

_INDEXES: dict[int, faiss.Index] = {}  # id(fit_vectors_) -> its index, dropped with the array


class KNNHead(EmbeddingHead):
    """Each class's probability is its share of the ``n_neighbors`` nearest training vectors.

    Parameters
    ----------
    n_neighbors : int
    metric : "cosine" or "l2"
        Cosine similarity (vectors L2-normalised, inner-product index) or Euclidean distance.
    """

    _state_names = ("fit_vectors_", "fit_codes_")

    def __init__(self, n_neighbors: int = 10, metric: str = "cosine") -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.metric == "cosine":
            X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        return X

    def _fit(self, X: np.ndarray, codes: np.ndarray) -> None:
        if self.metric not in ("cosine", "l2"):
            raise ValueError(f"Expected metric 'cosine' or 'l2', but got {self.metric!r}.")
        if self.n_neighbors < 1:
            raise ValueError(f"Expected n_neighbors >= 1, but got {self.n_neighbors}.")
        self.fit_vectors_ = self._prepare(X)
        self.fit_codes_ = codes.astype(np.int64)

    def _search_index(self) -> faiss.Index:
        cached = _INDEXES.get(id(self.fit_vectors_))
        if cached is not None:
            return cached
        vectors, dim = self.fit_vectors_, self.fit_vectors_.shape[1]
        plan = IndexPlan.for_size(len(vectors), dim)
        if self.metric == "cosine" and plan.kind != "flat":
            index = build_index(vectors, np.arange(len(vectors), dtype=np.int64), plan)
        else:
            index = faiss.IndexFlatIP(dim) if self.metric == "cosine" else faiss.IndexFlatL2(dim)
            index.add(vectors)
        _INDEXES[id(vectors)] = index
        weakref.finalize(vectors, _INDEXES.pop, id(vectors), None)
        return index

    def _proba(self, X: np.ndarray) -> np.ndarray:
        k = min(self.n_neighbors, len(self.fit_codes_))
        _, found = self._search_index().search(self._prepare(X), k)
        found = np.where(found < 0, found.max(axis=1, keepdims=True), found)  # IVF may find fewer than k
        votes = self.fit_codes_[found]  # (n, k)
        classes = len(self.classes_)
        counts = np.zeros((len(X), classes))
        np.add.at(counts, (np.repeat(np.arange(len(X)), k), votes.ravel()), 1.0)
        return counts / k
