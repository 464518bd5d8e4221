"""Keep a backbone's index in step with its Parquet vectors and the catalog."""

from __future__ import annotations

import numpy as np
import faiss

from store.catalog import Catalog
from store.errors import StoreError
from store.index import (
    EXACT_LIMIT, IndexPlan, IndexStore, build_index, clean_keys, clean_vectors, index_keys, keys_checksum,
)
from store.layout import StoreLayout
from store.lock import write_lock
from store.vectors import VectorStore


def catalog_ids(layout: StoreLayout) -> set[str]:
    return {row[0] for row in Catalog(layout).query("SELECT image_id FROM images")}


def index_is_current(layout: StoreLayout, backbone_id: str) -> tuple[bool, str]:
    """Whether the index matches the clean vectors of catalog images; and why not."""
    manifest = IndexStore(layout, backbone_id).manifest()
    if manifest is None:
        return False, "no index yet"
    if manifest.get("damaged"):
        return False, "its manifest is damaged"
    checksum = keys_checksum(clean_keys(VectorStore(layout, backbone_id), catalog_ids(layout)))
    if checksum != manifest["checksum"]:
        return False, f"it is stale (index {manifest['checksum']}, vectors {checksum})"
    return True, "current"


def sync_index(
    layout: StoreLayout,
    backbone_id: str,
    *,
    pq: bool = False,
    rebuild: bool = False,
    exact_limit: int = EXACT_LIMIT,
) -> dict:
    """Bring the index up to date: add new vectors, drop removed images, or (re)build.

    The type follows the size (see ``IndexPlan``); a change of type, a damaged index, or
    ``rebuild`` builds from scratch. Returns what was done, for ``index --json``.
    """
    vectors = VectorStore(layout, backbone_id)
    if not vectors.shards():
        raise StoreError(
            f"Expected vectors for {backbone_id}, but the store has none. Run `synthwatch embed` first."
        )
    store = IndexStore(layout, backbone_id)
    with write_lock(layout.lock_for(f"index-{backbone_id}")):
        keys = clean_keys(vectors, catalog_ids(layout))
        checksum = keys_checksum(keys)
        dim = _dim(vectors)
        plan = IndexPlan.for_size(len(keys), dim, pq=pq, exact_limit=exact_limit)
        manifest = store.manifest()
        if manifest and not manifest.get("damaged") and manifest["checksum"] == checksum \
                and manifest["index_type"] == plan.kind and not rebuild:
            return _report(manifest, "unchanged", 0, 0)
        existing, reason = _existing(store, manifest, plan, rebuild, len(keys))
        if existing is None:
            found, matrix, description = clean_vectors(vectors, keys)
            index = build_index(matrix if len(found) else np.zeros((0, dim), np.float32), found, plan)
            saved = store.save(index, plan, checksum, description)
            return _report(saved, reason, int(index.ntotal), 0)
        index, old_manifest = existing
        have = index_keys(index)
        added = np.setdiff1d(keys, have)
        removed = np.setdiff1d(have, keys)
        if len(removed):
            index.remove_ids(faiss.IDSelectorBatch(removed))
        if len(added):
            found, matrix, _ = clean_vectors(vectors, added)
            index.add_with_ids(matrix, found)
        plan = IndexPlan(old_manifest["index_type"], old_manifest["nlist"], old_manifest["pq_m"], old_manifest["nprobe"])
        saved = store.save(index, plan, checksum, old_manifest["backbone"])
        return _report(saved, "updated", len(added), len(removed))


def _existing(store: IndexStore, manifest: dict | None, plan: IndexPlan, rebuild: bool, count: int):
    """The index to update in place, or None with the reason for building anew."""
    if manifest is None:
        return None, "built"
    if rebuild:
        return None, "rebuilt (asked)"
    if manifest.get("damaged"):
        return None, "rebuilt (the manifest was damaged)"
    if manifest["index_type"] != plan.kind:
        return None, f"rebuilt as {plan.kind} for {count} vectors (was {manifest['index_type']})"
    try:
        return store.load(), "updated"
    except StoreError as error:
        return None, f"rebuilt ({error})"


def _dim(vectors: VectorStore) -> int:
    import pyarrow.parquet as pq

    return pq.read_schema(vectors.shards()[0]).field("vector").type.list_size


def _report(manifest: dict, action: str, added: int, removed: int) -> dict:
    return {
        "backbone_id": manifest["backbone_id"], "ntotal": manifest["ntotal"],
        "index_type": manifest["index_type"], "factory": manifest["factory"],
        "nlist": manifest["nlist"], "nprobe": manifest["nprobe"], "action": action,
        "added": added, "removed": removed,
    }


def backbones_with(layout: StoreLayout, what: str) -> list[str]:
    """Backbone ids that have ``vectors`` or ``indexes`` in the store."""
    folder = layout.root / what
    if not folder.exists():
        return []
    if what == "indexes":
        return sorted(p.name for p in folder.iterdir() if (p / "manifest.json").exists())
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


def choose_backbone(layout: StoreLayout, requested: str | None, *, among: str = "indexes") -> str:
    """The backbone id to use: ``requested`` (an id, or a name matching one id), else the only
    one the store has. Raises ``StoreError`` listing the choices when it is ambiguous."""
    candidates = backbones_with(layout, among)
    what = "an index" if among == "indexes" else "vectors"
    hint = "Run `synthwatch index`." if among == "indexes" else "Run `synthwatch embed`."
    if requested:
        matches = [c for c in candidates if c == requested] or \
                  [c for c in candidates if c.startswith(requested + "@")]
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


def open_current_index(layout: StoreLayout, requested: str | None):
    """Open the chosen backbone's index after checking it against the vectors and catalog.

    A stale index (count or key checksum differs) is updated, a damaged one rebuilt. Returns
    ``(NeighborIndex, notice)`` where the notice says what was repaired, or None.
    """
    from store.neighbors import NeighborIndex

    backbone_id = choose_backbone(layout, requested, among="indexes")
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
