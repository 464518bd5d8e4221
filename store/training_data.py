"""The rows heads are trained and evaluated on: every stored vector of a backbone joined with
the catalog's label, generator and source of its image (images removed from the catalog drop out)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.index import image_keys
from synthwatch.store.layout import StoreLayout
from synthwatch.store.vectors import VectorStore


def labelled_vectors(layout: StoreLayout, backbone_id: str, *, views: str = "all",
                     synthetic_since: str | None = None) -> pa.Table:
    """A table of ``image_id``, ``view``, ``vector`` (fixed-size list of float32), ``generator``
    ('' for real images) and ``source``, ordered by image id and view.

    ``views``: ``all``, or ``clean`` for view 0 only. ``synthetic_since`` (an ISO timestamp) keeps
    only synthetic images ingested after it.
    """
    conditions = (["v.view = 0"] if views == "clean" else []) + (
        ["i.label = 'synthetic' AND i.ingested_at > $since::TIMESTAMP"] if synthetic_since else [])
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return _joined(layout, backbone_id,
                   f"SELECT v.image_id, v.view, v.vector, coalesce(i.generator, '') AS generator, i.source "
                   f"FROM {shards_sql(layout, backbone_id)} v JOIN images i USING (image_id) {where} "
                   "ORDER BY v.image_id, v.view", {"since": synthetic_since} if synthetic_since else None)


def _joined(layout: StoreLayout, backbone_id: str, sql: str, params: dict | None = None) -> pa.Table:
    """Run ``sql`` over the shards and the catalog; a damaged shard is named, not a codec error."""
    try:
        return Catalog(layout).arrow(sql, params)
    except duckdb.Error:
        damaged = VectorStore(layout, backbone_id).damaged_shards()
        if not damaged:
            raise
        raise StoreError(_damaged_message(damaged)) from None


def _damaged_message(damaged: list) -> str:
    names = ", ".join(str(shard) for shard, _ in damaged)
    return (f"Expected readable vector shards, but {len(damaged)} {'is' if len(damaged) == 1 else 'are'} damaged: "
            f"{names} ({damaged[0][1]}). Run `synthwatch status --verify --repair` to set "
            f"{'it' if len(damaged) == 1 else 'them'} aside and re-embed the images.")


def shards_sql(layout: StoreLayout, backbone_id: str) -> str:
    """``read_parquet([...])`` over the backbone's shards (DuckDB reads only the columns a query names)."""
    shards = VectorStore(layout, backbone_id).shards()
    if not shards:
        raise StoreError(f"Expected vectors for {backbone_id}, but the store has none. Run `synthwatch embed` first.")
    files = ", ".join("'" + str(path).replace("'", "''") + "'" for path in shards)
    return f"read_parquet([{files}])"


def labelled_vectors_of(layout: StoreLayout, backbone_id: str, images: pa.Table, *,
                        batch_rows: int = 65_536) -> pa.Table:
    """:func:`labelled_vectors` of the ``images`` named (a table of ``image_id``, ``generator``,
    ``source``) only: each shard is read a batch at a time and only the rows of those images are
    kept (matched by index key, then by id), so memory holds one batch besides what is kept."""
    wanted = images.column("image_id").combine_chunks()
    wanted_keys = np.sort(image_keys(wanted))
    kept = []
    for shard in VectorStore(layout, backbone_id).shards():
        try:
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=batch_rows, columns=["image_id", "view", "vector"]):
                keys = image_keys(batch.column(0))
                at = np.minimum(np.searchsorted(wanted_keys, keys), len(wanted_keys) - 1)
                rows = np.flatnonzero(wanted_keys[at] == keys)
                if len(rows):
                    kept.append(pa.Table.from_batches([batch]).take(rows))
        except (OSError, pa.ArrowException) as error:
            raise StoreError(_damaged_message([(shard, str(error).splitlines()[0])])) from None
    table = pa.concat_tables(kept) if kept else None
    if table is not None:
        table = table.filter(pc.is_in(table.column("image_id"), value_set=wanted))  # a key shared by chance
    if table is None or table.num_rows == 0:
        raise StoreError(f"Expected vectors of the {len(wanted)} images drawn for {backbone_id}, but the shards hold "
                         "none of them. Run `synthwatch embed`.")
    table = table.take(pc.sort_indices(table, [("image_id", "ascending"), ("view", "ascending")]))
    of_image = pc.index_in(table.column("image_id"), value_set=wanted)
    return table.append_column("generator", images.column("generator").take(of_image)).append_column(
        "source", images.column("source").take(of_image)).select(["image_id", "view", "vector", "generator", "source"])


def catalog_images(layout: StoreLayout) -> pa.Table:
    """Every catalog image with where its bytes are: ``image_id``, ``generator`` ('' for real),
    ``source``, ``path`` (the stored blob, or the original for images ingested with --no-copy)."""
    table = Catalog(layout).image_files()
    paths = [str(layout.blob_path(i)) if stored else original for i, stored, original in zip(
        table.column("image_id").to_pylist(), table.column("stored").to_pylist(),
        table.column("original_path").to_pylist())]
    return table.select(["image_id", "generator", "source"]).append_column("path", pa.array(paths, pa.string()))
