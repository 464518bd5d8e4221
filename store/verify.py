"""Consistency checks over a store: every row's bytes present and intact, counts agreeing,
every vector shard readable to its last page, every index file as it was written."""

from __future__ import annotations

import hashlib

from pathlib import Path

from synthwatch.store.catalog import Catalog
from synthwatch.store.index import IndexStore
from synthwatch.store.layout import StoreLayout
from synthwatch.store.vectors import VectorStore


def verify_store(layout: StoreLayout, *, rehash: bool = True) -> list[str]:
    """Return a list of problems found (empty when the store is consistent).

    Checks that every image copied into the store has its blob (and, with ``rehash``, that
    the blob's sha256 is its id), that each generator's count matches its images, that every
    synthetic image's generator is registered, that every vector shard decodes whole, and that
    every index file has the bytes its manifest's sha256 names.
    """
    if not layout.exists():
        return []
    catalog = Catalog(layout)
    problems: list[str] = []
    for (image_id,) in catalog.query("SELECT image_id FROM images WHERE stored ORDER BY image_id"):
        blob = layout.blob_path(image_id)
        if not blob.is_file():
            problems.append(f"image {image_id}: blob {blob} is missing")
        elif rehash and hashlib.sha256(blob.read_bytes()).hexdigest() != image_id:
            problems.append(f"image {image_id}: blob {blob} does not hash to its id")
    mismatched = catalog.query(
        "SELECT coalesce(g.name, i.generator), g.image_count, count(i.image_id) "
        "FROM generators g FULL OUTER JOIN images i ON i.generator = g.name "
        "WHERE i.label IS NULL OR i.label = 'synthetic' "
        "GROUP BY 1, 2 HAVING g.image_count IS DISTINCT FROM count(i.image_id)"
    )
    for name, recorded, actual in mismatched:
        problems.append(f"generator {name!r}: catalog says {recorded} images, found {actual}")
    for backbone_id in backbone_ids(layout):
        for shard, reason in VectorStore(layout, backbone_id).damaged_shards():
            problems.append(f"vectors {backbone_id}: shard {shard} is damaged ({reason})")
    for backbone_id in damaged_indexes(layout):
        problems.append(f"index {backbone_id}: its file does not have the bytes its manifest names")
    return problems


def backbone_ids(layout: StoreLayout) -> list[str]:
    """Backbone ids with a vectors folder."""
    if not layout.vectors_dir.exists():
        return []
    return sorted(folder.name for folder in layout.vectors_dir.iterdir() if folder.is_dir())


def damaged_indexes(layout: StoreLayout) -> list[str]:
    """Backbone ids whose index manifest names a file that is missing or not as written."""
    folder = layout.root / "indexes"
    found = []
    for backbone_id in sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []:
        store = IndexStore(layout, backbone_id)
        manifest = store.manifest()
        if manifest is not None and (manifest.get("damaged") or not store.file_intact(manifest)):
            found.append(backbone_id)
    return found


def set_aside_damaged_shards(layout: StoreLayout) -> dict[str, list[Path]]:
    """Move every damaged vector shard into its folder's ``damaged/``; ``{backbone_id: moved}``."""
    moved: dict[str, list[Path]] = {}
    for backbone_id in backbone_ids(layout):
        vectors = VectorStore(layout, backbone_id)
        for shard, _ in vectors.damaged_shards():
            moved.setdefault(backbone_id, []).append(vectors.set_aside(shard))
    return moved
