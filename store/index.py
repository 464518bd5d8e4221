"""A FAISS index per backbone id over the clean-view vectors, kept in step with Parquet.

Index keys are the first 60 bits of an image's sha256 id, so they need no mapping table. The
index type follows the size: exact inner-product search while small, IVF with an HNSW coarse
quantiser when large (PQ codes optional), trained on a sample. Every write goes to a new file,
and ``manifest.json`` (count, checksum of keys, type and parameters) is swapped in last, so a
reader sees the old index or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from store.atomic import atomic_write_bytes
from store.catalog import utc_now
from store.errors import StoreError
from store.layout import StoreLayout
from store.vectors import VectorStore

EXACT_LIMIT = 100_000  # up to this many vectors, exact search is fast enough (about 5 ms on 2 cores)
_KEY_MASK = (1 << 60) - 1


def image_key(image_id: str) -> int:
    """The int64 FAISS key of an image: the first 60 bits of its sha256."""
    return int(image_id[:15], 16) & _KEY_MASK


def key_prefix(key: int) -> str:
    return format(key, "015x")


@dataclass(frozen=True)
class IndexPlan:
    """Which index to build for ``n`` vectors of width ``dim``."""

    kind: str  # "flat" | "ivf-hnsw" | "ivf-hnsw-pq"
    nlist: int = 0
    pq_m: int = 0
    nprobe: int = 0

    @classmethod
    def for_size(cls, n: int, dim: int, *, pq: bool = False, exact_limit: int = EXACT_LIMIT) -> "IndexPlan":
        if n <= exact_limit and not pq:
            return cls("flat")
        nlist = int(min(65536, max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))))
        nprobe = min(nlist, max(16, nlist // 32))
        if pq:
            return cls("ivf-hnsw-pq", nlist, _pq_m(dim), nprobe)
        return cls("ivf-hnsw", nlist, 0, nprobe)

    def factory(self) -> str:
        if self.kind == "flat":
            return "IDMap2,Flat"
        codes = f"PQ{self.pq_m}" if self.kind == "ivf-hnsw-pq" else "Flat"
        return f"IVF{self.nlist}_HNSW32,{codes}"


def _pq_m(dim: int) -> int:
    for m in (dim // 8, dim // 4, dim // 2, dim):
        if m and dim % m == 0 and m <= 96:
            return m
    return 1


def build_index(vectors: np.ndarray, keys: np.ndarray, plan: IndexPlan, *, seed: int = 0) -> faiss.Index:
    """A new index over ``vectors`` (N, dim) float32 with int64 ``keys``; IVF is trained on a sample."""
    dim = vectors.shape[1]
    index = faiss.index_factory(dim, plan.factory(), faiss.METRIC_INNER_PRODUCT)
    if plan.kind != "flat":
        sample_size = min(len(vectors), max(plan.nlist * 64, 10_000), 300_000)
        sample = vectors[np.random.default_rng(seed).choice(len(vectors), sample_size, replace=False)]
        index.train(sample)
        faiss.extract_index_ivf(index).nprobe = plan.nprobe
    if len(keys):
        index.add_with_ids(vectors, keys)
    return index


class IndexStore:
    """The index files of one backbone id, under ``indexes/<backbone id>/``."""

    def __init__(self, layout: StoreLayout, backbone_id: str) -> None:
        self.layout = layout
        self.backbone_id = backbone_id
        self.folder = layout.root / "indexes" / backbone_id
        self.manifest_path = self.folder / "manifest.json"

    def manifest(self) -> dict | None:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"damaged": True}

    def load(self) -> tuple[faiss.Index, dict]:
        manifest = self.manifest()
        if not manifest or manifest.get("damaged"):
            raise StoreError(f"Expected an index for {self.backbone_id}, but none is built. Run `synthwatch index`.")
        try:
            index = faiss.read_index(str(self.folder / manifest["file"]))
        except RuntimeError as error:
            raise StoreError(f"Expected a readable index file in {self.folder}, but it is damaged ({error}).") from None
        if index.ntotal != manifest["ntotal"]:
            raise StoreError(
                f"Expected {manifest['ntotal']} vectors in the index of {self.backbone_id}, "
                f"but its file holds {index.ntotal}."
            )
        return index, manifest

    def save(self, index: faiss.Index, plan: IndexPlan, checksum: str, description: dict) -> dict:
        """Write ``index`` to a new file, then swap the manifest; remove files no longer named."""
        name = f"index-{utc_now().strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}.faiss"
        atomic_write_bytes(self.folder / name, faiss.serialize_index(index).tobytes())
        manifest = {
            "backbone_id": self.backbone_id, "file": name, "ntotal": int(index.ntotal),
            "checksum": checksum, "index_type": plan.kind, "factory": plan.factory(),
            "nlist": plan.nlist, "pq_m": plan.pq_m, "nprobe": plan.nprobe, "view": 0,
            "dim": int(index.d), "built_at": utc_now().isoformat(), "backbone": description,
        }
        atomic_write_bytes(self.manifest_path, json.dumps(manifest, indent=1).encode())
        for old in self.folder.glob("index-*.faiss"):
            if old.name != name:
                old.unlink(missing_ok=True)
        return manifest


def keys_checksum(keys: np.ndarray) -> str:
    """Order-independent checksum of a set of keys: count and wrapping sum."""
    total = int(np.sum(keys.astype(np.uint64), dtype=np.uint64)) if len(keys) else 0
    return f"{len(keys)}:{total:016x}"


def clean_keys(vectors: VectorStore, wanted: set[str] | None) -> np.ndarray:
    """Keys of the images with a clean-view row, restricted to ``wanted`` ids (None: all)."""
    keys = []
    for table in vectors.read(["image_id", "view"]):
        views = table.column("view").to_numpy()
        for image_id, view in zip(table.column("image_id").to_pylist(), views):
            if view == 0 and (wanted is None or image_id in wanted):
                keys.append(image_key(image_id))
    return np.unique(np.array(keys, dtype=np.int64))


def clean_vectors(vectors: VectorStore, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(keys, vectors (N, dim) float32, backbone description) of the clean views of ``keys``."""
    wanted = set(keys.tolist())
    found_keys, blocks, description = [], [], {}
    for table in vectors.read(["image_id", "view", "vector"]):
        if not description:
            description = json.loads((table.schema.metadata or {}).get(b"synthwatch.backbone", b"{}"))
        dim = table.schema.field("vector").type.list_size
        matrix = table.column("vector").combine_chunks().values.to_numpy().reshape(-1, dim)
        views = table.column("view").to_numpy()
        rows = [(i, image_key(image_id)) for i, image_id in enumerate(table.column("image_id").to_pylist())
                if views[i] == 0]
        rows = [(i, key) for i, key in rows if key in wanted]
        found_keys.append(np.array([key for _, key in rows], dtype=np.int64))
        blocks.append(matrix[[i for i, _ in rows]])
    if not blocks:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), description
    return (np.concatenate(found_keys),
            np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32), description)


def index_keys(index: faiss.Index) -> np.ndarray:
    """Every key an index holds (IDMap or IVF)."""
    if isinstance(index, faiss.IndexIDMap2) or hasattr(index, "id_map"):
        return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    invlists = faiss.extract_index_ivf(index).invlists
    parts = []
    for number in range(invlists.nlist):
        size = invlists.list_size(number)
        if size:
            parts.append(faiss.rev_swig_ptr(invlists.get_ids(number), size).copy())
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
