"""What a backbone's index must hold: the keys of the clean vectors of catalog images, and those
vectors a shard at a time; and whether an index on disk still matches them."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow.compute as pc

from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.index import IndexStore, image_keys, keys_checksum
from synthwatch.store.layout import StoreLayout
from synthwatch.store.vectors import VectorStore

CLEAN_VIEW = 0


def catalog_keys(layout: StoreLayout) -> np.ndarray:
    """Sorted keys of every image in the catalog; refuses two images sharing a 60-bit key (about
    a 0.4 % chance at 100 million images), which would make one answer for the other."""
    table = Catalog(layout).arrow("SELECT image_id FROM images")
    keys = image_keys(table.column("image_id"))
    unique, counts = np.unique(keys, return_counts=True)
    if len(unique) < len(keys):
        shared = set(unique[counts > 1].tolist())
        ids = [i for i, key in zip(table.column("image_id").to_pylist(), keys.tolist()) if key in shared]
        raise StoreError(f"Expected every image to have its own index key (the first 60 bits of its sha256), "
                         f"but {', '.join(ids[:4])} share one. Remove one of them (a key collision) and index again.")
    return unique


def stored_keys(vectors: VectorStore) -> np.ndarray:
    """Sorted keys of the images that have a clean-view vector in Parquet."""
    parts = [image_keys(table.filter(pc.equal(table.column("view"), CLEAN_VIEW)).column("image_id"))
             for table in vectors.read(["image_id", "view"])]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def indexable_keys(layout: StoreLayout, backbone_id: str) -> np.ndarray:
    """Keys the index must hold: clean vectors of images still in the catalog."""
    return np.intersect1d(stored_keys(VectorStore(layout, backbone_id)), catalog_keys(layout), assume_unique=True)


def clean_vector_batches(vectors: VectorStore, wanted: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(keys, vectors (B, dim) float32)`` of the clean views of ``wanted`` keys, a shard at a time."""
    wanted = np.unique(wanted)
    for table in vectors.read(["image_id", "view", "vector"]):
        table = table.filter(pc.equal(table.column("view"), CLEAN_VIEW))
        keys = image_keys(table.column("image_id"))
        rows = np.flatnonzero(np.isin(keys, wanted, assume_unique=False))
        if len(rows):
            dim = table.schema.field("vector").type.list_size
            matrix = table.column("vector").combine_chunks().values.to_numpy().reshape(-1, dim)
            yield keys[rows], matrix[rows]


def index_is_current(layout: StoreLayout, backbone_id: str) -> tuple[bool, str]:
    """Whether the index's manifest matches the clean vectors of catalog images; and why not."""
    manifest = IndexStore(layout, backbone_id).manifest()
    if manifest is None:
        return False, "no index yet"
    if manifest.get("damaged"):
        return False, "its manifest is damaged"
    checksum = keys_checksum(indexable_keys(layout, backbone_id))
    if checksum != manifest["checksum"]:
        return False, f"it is stale (index {manifest['checksum']}, vectors {checksum})"
    return True, "current"
