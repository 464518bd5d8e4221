"""Keep a backbone's index in step with its Parquet vectors and the catalog: the one writer of
indexes (``synthwatch index`` and the flows call it; readers open indexes with
``synthwatch.store.neighbors.open_for_reading``)."""

from __future__ import annotations

import faiss
import numpy as np
import pyarrow as pa

from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.id_directory import IdDirectory
from synthwatch.store.index import (IndexFileDamaged, IndexPlan, IndexStore, add_batches, image_keys, keys_checksum,
                                   new_index)
from synthwatch.store.index_inputs import clean_vector_batches, indexable_keys
from synthwatch.store.layout import StoreLayout
from synthwatch.store.lock import write_lock
from synthwatch.store.neighbour_rows import NeighbourRows
from synthwatch.store.vectors import VectorStore

RETRAIN_GROWTH = 4  # IVF lists are re-trained once the index holds 4x what they were sized for


def sync_index(
    layout: StoreLayout,
    backbone_id: str,
    *,
    codes: str | None = None,
    rebuild: bool = False,
    exact_limit: int | None = None,
    seed: int = 0,
) -> dict:
    """Bring the index up to date: add new vectors and drop removed images in place, or build.

    The type follows the size (see ``IndexPlan``); ``codes`` (``flat``, ``sq8``, ``pq``) is
    remembered for later syncs. A change of type, IVF lists outgrown 4x, a damaged index, or
    ``rebuild`` builds from scratch. Returns what was done, for ``index --json``.
    """
    vectors = VectorStore(layout, backbone_id)
    if not vectors.shards():
        raise StoreError(f"Expected vectors for {backbone_id}, but the store has none. "
                         "Run `synthwatch embed` first.")
    store = IndexStore(layout, backbone_id)
    with write_lock(layout.lock_for(f"index-{backbone_id}")):
        keys = indexable_keys(layout, backbone_id)
        checksum = keys_checksum(keys)
        manifest = store.manifest()
        usable = manifest if manifest and not manifest.get("damaged") else None
        codes = codes or (usable or {}).get("codes", "flat")
        dim, description = vectors.shape_and_description()
        plan = IndexPlan.for_size(len(keys), dim, codes=codes, exact_limit=exact_limit)
        reason = _reason_to_build(store, usable, plan, codes, rebuild, manifest is not None)
        if reason is None and usable["checksum"] == checksum:
            if "rows_file" not in usable and store.file_intact(usable, lookup_files=False):
                # written before neighbour rows existed: they are added beside the same index file
                return _report(store.with_lookup_files(usable, **lookup_files(layout, keys)), "updated", 0, 0)
            if not store.file_intact(usable):
                reason = "rebuilt (its file was missing or damaged)"
            else:
                return {**_report(usable, "unchanged", 0, 0), "ntotal": len(keys)}  # counted, not taken on trust
        if reason is None:
            try:
                index, _, have = store.load()  # checks the file's bytes too: one read, one hash
            except IndexFileDamaged:
                reason = "rebuilt (its file was missing or damaged)"
            except StoreError as error:
                reason = f"rebuilt ({error})"
        if reason is not None:
            index = new_index(plan, dim, _training_sample(vectors, keys, plan, seed))
            added = add_batches(index, clean_vector_batches(vectors, keys))
            saved = store.save(index, plan, checksum=checksum, codes=codes, description=description,
                               **lookup_files(layout, keys))
            return _report(saved, reason, added, 0)
        added, removed = np.setdiff1d(keys, have), np.setdiff1d(have, keys)
        if len(removed):
            index.remove_ids(faiss.IDSelectorBatch(removed))
        add_batches(index, clean_vector_batches(vectors, added))
        saved = store.save(index, IndexPlan.from_manifest(usable), checksum=checksum, codes=codes,
                           description=usable["backbone"], **lookup_files(layout, keys))
        return _report(saved, "updated", len(added), len(removed))


def lookup_files(layout: StoreLayout, keys: np.ndarray) -> dict:
    """What readers resolve neighbours with, for ``IndexStore.save``: the id directory of the
    indexed ``keys`` (sorted) and their neighbour rows, with the catalog's removal count they are
    current for (read in the same snapshot)."""
    with Catalog(layout).connect(read_only=True) as con:
        images = con.sql("SELECT image_id, label, generator, original_path FROM images").to_arrow_table()
        removed = int(con.execute(Catalog.REMOVED_SQL).fetchone()[0])
    ids = images.column("image_id").combine_chunks()
    rows = NeighbourRows.of_images(images, keys)
    directory = IdDirectory(ids.filter(pa.array(np.isin(image_keys(ids), keys, assume_unique=True))))
    return {"directory": directory.to_bytes(), "neighbour_rows": (*rows.to_bytes(), rows.generators),
            "images_removed": removed}


def _reason_to_build(store: IndexStore, manifest: dict | None, plan: IndexPlan, codes: str,
                     rebuild: bool, had_manifest: bool) -> str | None:
    """Why the index must be built from scratch, or None when it can be updated in place."""
    if manifest is None:
        return "rebuilt (the manifest was damaged)" if had_manifest else "built"
    if rebuild:
        return "rebuilt (asked)"
    if manifest["index_type"] != plan.kind:
        return f"rebuilt as {plan.kind} for {plan.trained_for or 'few'} vectors (was {manifest['index_type']})"
    if manifest.get("codes", "flat") != codes:
        return f"rebuilt with {codes} codes (was {manifest.get('codes', 'flat')})"
    if plan.kind != "flat" and plan.trained_for > RETRAIN_GROWTH * manifest.get("trained_for", 0):
        return f"rebuilt: {plan.trained_for} vectors outgrew lists trained for {manifest.get('trained_for')}"
    return None


def _training_sample(vectors: VectorStore, keys: np.ndarray, plan: IndexPlan, seed: int) -> np.ndarray | None:
    """A random sample of the clean vectors, for training IVF lists (None for exact search)."""
    size = plan.train_size(len(keys))
    if not size:
        return None
    chosen = np.random.default_rng(seed).choice(keys, size, replace=False)
    return np.concatenate([matrix for _, matrix in clean_vector_batches(vectors, chosen)])


def _report(manifest: dict, action: str, added: int, removed: int) -> dict:
    return {
        "backbone_id": manifest["backbone_id"], "ntotal": manifest["ntotal"],
        "index_type": manifest["index_type"], "codes": manifest.get("codes", "flat"),
        "factory": manifest["factory"], "nlist": manifest["nlist"], "nprobe": manifest["nprobe"],
        "action": action, "added": int(added), "removed": int(removed),
    }
