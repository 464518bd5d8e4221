"""Keep a backbone's index in step with its Parquet vectors and the catalog."""

from __future__ import annotations

from typing import Iterator

import faiss
import numpy as np
import pyarrow.compute as pc

from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.index import (
    IndexFileDamaged, IndexPlan, IndexStore, add_batches, image_keys, index_keys, keys_checksum, new_index,
)
from synthwatch.store.layout import StoreLayout
from synthwatch.store.lock import write_lock
from synthwatch.store.vectors import VectorStore

CLEAN_VIEW = 0
RETRAIN_GROWTH = 4  # IVF lists are re-trained once the index holds 4x what they were sized for


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
            if store.file_intact(usable):
                return {**_report(usable, "unchanged", 0, 0), "ntotal": len(keys)}  # counted, not taken on trust
            reason = "rebuilt (its file was missing or damaged)"
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
            saved = store.save(index, plan, checksum=checksum, codes=codes, description=description)
            return _report(saved, reason, added, 0)
        added, removed = np.setdiff1d(keys, have), np.setdiff1d(have, keys)
        if len(removed):
            index.remove_ids(faiss.IDSelectorBatch(removed))
        add_batches(index, clean_vector_batches(vectors, added))
        saved = store.save(index, IndexPlan.from_manifest(usable), checksum=checksum, codes=codes,
                           description=usable["backbone"])
        return _report(saved, "updated", len(added), len(removed))


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


def backbones_with(layout: StoreLayout, what: str) -> list[str]:
    """Backbone ids that have ``vectors`` or ``indexes`` in the store."""
    folder = layout.root / what
    if not folder.exists():
        return []
    if what == "indexes":
        return sorted(p.name for p in folder.iterdir() if (p / "manifest.json").exists())
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


def choose_backbone(layout: StoreLayout, requested: str | None, *, among: str = "indexes",
                    preferred: str | None = None) -> str:
    """The backbone id to use: ``requested`` (an id, or a name matching one id), else
    ``preferred`` (the champion head's) when the store has it, else the only one the store has.
    Raises ``StoreError`` listing the choices when it is ambiguous."""
    candidates = backbones_with(layout, among)
    what = "an index" if among == "indexes" else "vectors"
    hint = "Run `synthwatch index`." if among == "indexes" else "Run `synthwatch embed`."
    if requested:
        matches = [c for c in candidates if c == requested] or \
                  [c for c in candidates if c.startswith(requested + "@")]
    elif preferred in candidates:
        matches = [preferred]
    else:
        matches = candidates
    if len(matches) == 1:
        return matches[0]
    if not matches:
        wanted = f"{requested!r} to have {what}" if requested else f"a backbone with {what}"
        have = ", ".join(candidates) or "none"
        raise StoreError(f"Expected {wanted} in {layout.root}, but found none (have: {have}). {hint}")
    raise StoreError(
        f"Expected one backbone, but {len(matches)} have {what}: {', '.join(matches)}. "
        "Choose one with --backbone."
    )


def open_current_index(layout: StoreLayout, requested: str | None, *, preferred: str | None = None):
    """Open the chosen backbone's index after checking it against the vectors and catalog.

    A stale index (count or key checksum differs) is updated, a damaged one rebuilt. Returns
    ``(NeighborIndex, notice)`` where the notice says what was repaired, or None.
    """
    from synthwatch.store.neighbors import NeighborIndex

    backbone_id = choose_backbone(layout, requested, among="indexes", preferred=preferred)
    current, why = index_is_current(layout, backbone_id)
    notice = None
    if not current:
        result = sync_index(layout, backbone_id)
        notice = (f"the index of {backbone_id} was not current ({why}); "
                  f"{result['action']}: +{result['added']} -{result['removed']}")
    try:
        return NeighborIndex(layout, backbone_id), notice
    except StoreError as error:
        result = sync_index(layout, backbone_id, rebuild=True)
        notice = f"the index of {backbone_id} was damaged ({error}); rebuilt with {result['ntotal']} vectors"
        return NeighborIndex(layout, backbone_id), notice
