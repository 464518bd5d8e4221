"""Consistency checks over a store: every row's bytes present and intact, counts agreeing."""

from __future__ import annotations

import hashlib

from store.catalog import Catalog
from store.layout import StoreLayout


def verify_store(layout: StoreLayout, *, rehash: bool = True) -> list[str]:
    """Return a list of problems found (empty when the store is consistent).

    Checks that every image copied into the store has its blob (and, with ``rehash``, that
    the blob's sha256 is its id), that each generator's count matches its images, and that
    every synthetic image's generator is registered.
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
    return problems
