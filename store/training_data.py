"""The rows heads are trained and evaluated on: every stored vector of a backbone joined with
the catalog's label, generator and source of its image (images removed from the catalog drop out)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
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


def _joined(layout: StoreLayout, backbone_id: str, sql: str, params: dict | None = None,
            tables: dict[str, pa.Table] | None = None) -> pa.Table:
    """Run ``sql`` over the shards, the catalog and the Arrow ``tables`` named; a damaged shard is
    named, not a codec error."""
    try:
        with Catalog(layout).connect(read_only=True) as con:
            for name, table in (tables or {}).items():
                con.register(name, table)
            return con.sql(sql, params=params or None).to_arrow_table()
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


def labelled_vectors_of(layout: StoreLayout, backbone_id: str, images: pa.Table) -> pa.Table:
    """:func:`labelled_vectors` of the ``images`` named (a table of ``image_id``, ``generator``,
    ``source``) only: DuckDB reads the shards in parallel and keeps the rows of those images (a
    semi-join on the exact id), so memory holds what is kept, not the store."""
    table = _joined(layout, backbone_id,
                    f"SELECT v.image_id, v.view, v.vector, w.generator, w.source FROM {shards_sql(layout, backbone_id)} v "
                    "JOIN wanted w USING (image_id) ORDER BY v.image_id, v.view",
                    tables={"wanted": images.select(["image_id", "generator", "source"])})
    if table.num_rows == 0:
        raise StoreError(f"Expected vectors of the {images.num_rows} images drawn for {backbone_id}, but the shards "
                         "hold none of them. Run `synthwatch embed`.")
    return table


def catalog_images(layout: StoreLayout) -> pa.Table:
    """Every catalog image with where its bytes are: ``image_id``, ``generator`` ('' for real),
    ``source``, ``path`` (the stored blob, or the original for images ingested with --no-copy)."""
    table = Catalog(layout).image_files()
    paths = [str(layout.blob_path(i)) if stored else original for i, stored, original in zip(
        table.column("image_id").to_pylist(), table.column("stored").to_pylist(),
        table.column("original_path").to_pylist())]
    return table.select(["image_id", "generator", "source"]).append_column("path", pa.array(paths, pa.string()))
