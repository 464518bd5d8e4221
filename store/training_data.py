"""The rows heads are trained and evaluated on: every stored vector of a backbone joined with
the catalog's label, generator and source of its image (images removed from the catalog drop out)."""

from __future__ import annotations

import pyarrow as pa

from store.catalog import Catalog
from store.errors import StoreError
from store.layout import StoreLayout
from store.vectors import VectorStore


def labelled_vectors(layout: StoreLayout, backbone_id: str, *, views: str = "all") -> pa.Table:
    """A table of ``image_id``, ``view``, ``vector`` (fixed-size list of float32), ``generator``
    ('' for real images) and ``source``, ordered by image id and view.

    ``views``: ``all``, or ``clean`` for view 0 only.
    """
    shards = VectorStore(layout, backbone_id).shards()
    if not shards:
        raise StoreError(f"Expected vectors for {backbone_id}, but the store has none. Run `synthwatch embed` first.")
    files = ", ".join("'" + str(path).replace("'", "''") + "'" for path in shards)
    where = "WHERE v.view = 0" if views == "clean" else ""
    return Catalog(layout).arrow(
        f"SELECT v.image_id, v.view, v.vector, coalesce(i.generator, '') AS generator, i.source "
        f"FROM read_parquet([{files}]) v JOIN images i USING (image_id) {where} ORDER BY v.image_id, v.view"
    )
