"""A catalogued image's original, found by its id: only the blob copied into the store, never a
path a caller names."""

from __future__ import annotations

import re
from pathlib import Path

from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout

IMAGE_ID = re.compile(r"[0-9a-f]{64}")  # the sha256 of the image's bytes, as the catalog writes it


class OriginalNotFound(StoreError):
    """No stored original for an id: not in the catalog, referenced in place, or missing."""


def stored_original(layout: StoreLayout, image_id: str) -> Path:
    """The blob of catalogued image ``image_id``, copied into the store at ingest.

    Images ingested with ``--no-copy`` are referenced in place: their bytes live wherever the
    ingesting user pointed, so they are refused here rather than read from a catalogued path.

    Raises
    ------
    ValueError
        ``image_id`` is not 64 lowercase hex digits.
    OriginalNotFound
        The catalog does not hold the id, holds it only by reference, or its blob is gone.
    """
    if not isinstance(image_id, str) or not IMAGE_ID.fullmatch(image_id):
        raise ValueError(f"Expected an image id (64 lowercase hex digits, the sha256 of its bytes), but got "
                         f"{str(image_id)[:80]!r}. Use an image_id from /similar or /detect.")
    rows = Catalog(layout).query("SELECT stored FROM images WHERE image_id = ?", [image_id]) if layout.exists() else []
    if not rows:
        raise OriginalNotFound(f"Expected the id of an image in the catalog, but {image_id} is not one. "
                               "Use an image_id from /similar or /detect.")
    if not rows[0][0]:
        raise OriginalNotFound(f"Expected an image copied into the store, but {image_id} was ingested with "
                               "--no-copy (referenced in place), and only stored originals are served. "
                               "Ingest without --no-copy to see its thumbnail.")
    blob = layout.blob_path(image_id)
    if not blob.is_file():
        raise OriginalNotFound(f"Expected the stored original of {image_id}, but it is missing from the store. "
                               "Run `synthwatch status --verify`.")
    return blob
