"""Labelled embeddings and their train / validation / test splits by source group.

Images are split by group (their ``source``: the photo, shoot or site they came from), never
one by one, so near-identical pictures of one group cannot sit on both sides of a split. A
group's split depends only on its name and the seed, so it stays put as the store grows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
REAL = ""  # the generator of real images (generator names are never empty)
CLEAN_VIEW = 0
ROBUSTNESS_FROM = 1000  # views from here on are evaluation perturbations, never trained on


@dataclass(frozen=True)
class EmbeddingSet:
    """Rows of vectors with what the catalog says about their images.

    ``vectors`` is (n, dim) float32; the other fields are (n,) arrays: ``image_ids`` and
    ``sources`` (str), ``generators`` (str, ``REAL`` for real images), ``views`` (int).
    """

    image_ids: np.ndarray
    vectors: np.ndarray
    generators: np.ndarray
    sources: np.ndarray
    views: np.ndarray

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
                            self.sources[mask], self.views[mask])

    def generator_names(self) -> list[str]:
        return sorted(set(self.generators.tolist()) - {REAL})

    def fingerprint(self, backbone_id: str) -> str:
        """sha256 of the backbone id and the sorted (image id, view, generator) rows."""
        order = np.lexsort((self.views, self.image_ids))
        digest = hashlib.sha256(backbone_id.encode())
        for i in order:
            digest.update(f"{self.image_ids[i]}:{self.views[i]}:{self.generators[i]}\n".encode())
        return digest.hexdigest()


def assign_splits(groups: list[str], *, seed: int = 0, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, str]:
    """``{group: "train" | "val" | "test"}``, decided by a seeded hash of each group's name.

    With three groups or more, every split gets at least one: the groups of the fullest split
    with the highest hashes move to an empty one.
    """
    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) <= 0:
        raise ValueError(f"Expected three positive split fractions summing to 1, but got {fractions}.")
    position = {group: _unit_hash(seed, group) for group in groups}
    bounds = np.cumsum(fractions)
    chosen = {group: SPLITS[int(np.searchsorted(bounds, u, side="right"))] for group, u in position.items()}
    if len(position) >= 3:
        for empty in [split for split in ("test", "val", "train") if split not in chosen.values()]:
            members = {split: [g for g in chosen if chosen[g] == split] for split in SPLITS}
            fullest = max(SPLITS, key=lambda split: (len(members[split]), split == "train"))
            chosen[max(members[fullest], key=lambda g: position[g])] = empty
    return chosen


def _unit_hash(seed: int, group: str) -> float:
    digest = hashlib.sha256(f"{seed}\0{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of_rows(data: EmbeddingSet, *, seed: int = 0) -> np.ndarray:
    """The split of every row, (n,) str, from the groups of real and synthetic images alike."""
    groups = sorted(set(data.sources.tolist()))
    chosen = assign_splits(groups, seed=seed)
    return np.array([chosen[source] for source in data.sources.tolist()], dtype=object)


def split_of_images(layout, backbone_id: str, *, seed: int = 0) -> dict[str, str]:
    """``{image_id: split}`` for the catalog images with vectors of ``backbone_id``, as evaluation
    splits them (by source group)."""
    from synthwatch.store.training_data import labelled_sources

    table = labelled_sources(layout, backbone_id)
    ids, sources = table.column("image_id").to_pylist(), table.column("source").to_pylist()
    chosen = assign_splits(sorted(set(sources)), seed=seed)
    return {image_id: chosen[source] for image_id, source in zip(ids, sources)}
