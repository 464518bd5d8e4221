"""Labelled embeddings with the train / validation / test split of each row.

Rows from a store carry the splits the catalog holds for their source groups
(``synthwatch.store.splits``: assigned once, never moved). Sets built in memory without splits
(tests, benchmarks) get them from the same rule, over their own groups in sorted order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from synthwatch.store.splits import SPLITS, assign_splits

REAL = ""  # the generator of real images (generator names are never empty)
CLEAN_VIEW = 0
ROBUSTNESS_FROM = 1000  # views from here on are evaluation perturbations, never trained on


@dataclass(frozen=True)
class EmbeddingSet:
    """Rows of vectors with what the catalog says about their images.

    ``vectors`` is (n, dim) float32; the other fields are (n,) arrays: ``image_ids`` and
    ``sources`` (str), ``generators`` (str, ``REAL`` for real images), ``views`` (int), and
    ``splits`` (str: train, val or test; from the catalog, or None to derive them in memory).
    """

    image_ids: np.ndarray
    vectors: np.ndarray
    generators: np.ndarray
    sources: np.ndarray
    views: np.ndarray
    splits: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        for name in ("vectors", "generators", "sources", "views"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Expected {n} rows in {name}, but got {len(getattr(self, name))}.")

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def labels(self) -> np.ndarray:
        """1 for synthetic, 0 for real, (n,) int64."""
        return (self.generators != REAL).astype(np.int64)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    def take(self, mask: np.ndarray) -> "EmbeddingSet":
        return EmbeddingSet(self.image_ids[mask], self.vectors[mask], self.generators[mask],
                            self.sources[mask], self.views[mask], None if self.splits is None else self.splits[mask])

    def generator_names(self) -> list[str]:
        return sorted(set(self.generators.tolist()) - {REAL})

    def fingerprint(self, backbone_id: str) -> str:
        """sha256 of the backbone id and the sorted (image id, view, generator) rows."""
        order = np.lexsort((self.views, self.image_ids))
        digest = hashlib.sha256(backbone_id.encode())
        for i in order:
            digest.update(f"{self.image_ids[i]}:{self.views[i]}:{self.generators[i]}\n".encode())
        return digest.hexdigest()


def rows_with_ids(image_ids: np.ndarray, wanted) -> np.ndarray:
    """(n,) bool: rows whose image id is in ``wanted`` (a set lookup per row: ``np.isin`` on string
    ids is quadratic)."""
    wanted = wanted if isinstance(wanted, (set, frozenset, dict)) else set(wanted)
    return np.fromiter((i in wanted for i in image_ids.tolist()), bool, len(image_ids))


def split_of_rows(data: EmbeddingSet) -> np.ndarray:
    """The split of every row, (n,) str: the stored one, or for a set built in memory without
    splits, :func:`assign_splits` over its groups in sorted order."""
    if data.splits is not None:
        return data.splits
    chosen = assign_splits(sorted(set(data.sources.tolist())))
    return np.array([chosen[source] for source in data.sources.tolist()], dtype=object)


__all__ = ["CLEAN_VIEW", "REAL", "ROBUSTNESS_FROM", "SPLITS", "EmbeddingSet", "assign_splits",
           "rows_with_ids", "split_of_rows"]
