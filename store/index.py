"""A FAISS index per backbone id: its keys, its type and parameters, and its files.

Index keys are the first 60 bits of an image's sha256 id, so they need no mapping table. The
type follows the size: exact inner-product search while a query scans little enough memory to
stay fast, then IVF with an HNSW coarse quantiser, whose codes are the full vectors (default),
8-bit scalar codes (``sq8``, 4x smaller) or product-quantiser codes (``pq``, 16x smaller), trained
on a sample. Every write goes to a new file and ``manifest.json`` (count, checksum of keys,
sha256 of the file's bytes, type and parameters) is swapped in last, so a reader sees the old
index or the new one, never half; a reader checks the bytes against the sha256 when it opens a
version, so a damaged file is never searched.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import faiss
import numpy as np
import pyarrow as pa

from synthwatch.store.atomic import atomic_write_bytes
from synthwatch.store.schema import utc_now
from synthwatch.store.errors import StoreError
from synthwatch.store.file_digest import file_sha256, sampled_sha256
from synthwatch.store.layout import StoreLayout
from synthwatch.store.paged_ivf import PagedIVF

# Exact search scans every vector: up to about 12 M floats (48 MB; 31,250 vectors of width 384)
# one query takes about 5 ms on 2 cores (benchmarks/index.py); beyond that, IVF.
EXACT_SCAN_FLOATS = 12_000_000
MIN_IVF_VECTORS = 10_000  # IVF needs enough vectors to train its coarse quantiser
RANGE_QUERIES = 8192  # queries a range search takes at once: exact search is 3.7x slower in blocks of 1,024
CODES = ("flat", "sq8", "pq")
KEY_DIGITS = 15  # 15 hex digits = 60 bits
_HEX_VALUES = np.full(256, -1, np.int64)
_HEX_VALUES[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16)
_HEX_VALUES[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)
_HEX_WEIGHTS = 16 ** np.arange(KEY_DIGITS - 1, -1, -1, dtype=np.int64)


def image_key(image_id: str) -> int:
    """The int64 FAISS key of an image: the first 60 bits of its sha256."""
    return int(image_id[:KEY_DIGITS], 16)


def image_key_sql(column: str) -> str:
    """The SQL (DuckDB) of :func:`image_key` over a column of image ids."""
    return f"('0x' || left({column}, {KEY_DIGITS}))::BIGINT"


def image_keys(image_ids: pa.Array | pa.ChunkedArray | Sequence[str]) -> np.ndarray:
    """:func:`image_key` of many ids at once, (N,) int64, without a Python loop."""
    array = image_ids.combine_chunks() if isinstance(image_ids, pa.ChunkedArray) else pa.array(image_ids, pa.string())
    if len(array) == 0:
        return np.zeros(0, np.int64)
    array = array.cast(pa.large_string()) if array.type == pa.string() else array
    offsets = np.frombuffer(array.buffers()[1], np.int64)[array.offset:array.offset + len(array) + 1]
    if (np.diff(offsets) < KEY_DIGITS).any():
        raise ValueError(f"Expected image ids of at least {KEY_DIGITS} hex digits, but got a shorter one.")
    data = np.frombuffer(array.buffers()[2], np.uint8)
    digits = _HEX_VALUES[data[offsets[:-1, None] + np.arange(KEY_DIGITS)]]
    if (digits < 0).any():
        raise ValueError("Expected image ids in hexadecimal (sha256), but got another character.")
    return digits @ _HEX_WEIGHTS


def keys_checksum(keys: np.ndarray) -> str:
    """Order-independent checksum of a set of keys: count and wrapping sum."""
    total = int(np.sum(keys.astype(np.uint64), dtype=np.uint64)) if len(keys) else 0
    return f"{len(keys)}:{total:016x}"


class IndexFileDamaged(StoreError):
    """An index file that is missing, unreadable, or not the bytes its manifest names."""


@dataclass(frozen=True)
class IndexPlan:
    """Which index holds ``n`` vectors of width ``dim``, and how it is searched.

    ``kind`` is ``flat`` (exact) or ``ivf-hnsw``, ``ivf-hnsw-sq8``, ``ivf-hnsw-pq`` (inverted
    lists of full vectors, 8-bit scalar codes, or ``pq_m``-byte product-quantiser codes);
    ``trained_for`` is the count the IVF lists were sized for.
    """

    kind: str
    nlist: int = 0
    pq_m: int = 0
    nprobe: int = 0
    trained_for: int = 0

    @classmethod
    def for_size(cls, n: int, dim: int, *, codes: str = "flat", exact_limit: int | None = None) -> "IndexPlan":
        if codes not in CODES:
            raise ValueError(f"Expected codes in {', '.join(CODES)}, but got {codes!r}.")
        if exact_limit is None:
            exact_limit = max(MIN_IVF_VECTORS, EXACT_SCAN_FLOATS // max(dim, 1))
        if n <= exact_limit:
            return cls("flat")
        nlist = int(min(65536, 2 ** round(math.log2(4 * math.sqrt(n)))))
        nlist = max(16, min(nlist, 2 ** int(math.log2(max(n // 40, 1)))))  # k-means wants 40 vectors a list
        nprobe = min(nlist, max(16, nlist // 64))
        kind = "ivf-hnsw" if codes == "flat" else f"ivf-hnsw-{codes}"
        return cls(kind, nlist, _pq_m(dim) if codes == "pq" else 0, nprobe, n)

    @classmethod
    def from_manifest(cls, manifest: dict) -> "IndexPlan":
        return cls(manifest["index_type"], manifest["nlist"], manifest["pq_m"], manifest["nprobe"],
                   manifest.get("trained_for", 0))

    @property
    def codes(self) -> str:
        return {"ivf-hnsw-sq8": "sq8", "ivf-hnsw-pq": "pq"}.get(self.kind, "flat")

    def factory(self) -> str:
        if self.kind == "flat":
            return "IDMap2,Flat"
        codes = {"flat": "Flat", "sq8": "SQ8", "pq": f"PQ{self.pq_m}"}[self.codes]
        return f"IVF{self.nlist}_HNSW32,{codes}"

    def train_size(self, n: int) -> int:
        """Vectors to train on: 40 per list (what k-means needs), at least 10,000, at most n."""
        return 0 if self.kind == "flat" else min(n, max(40 * self.nlist, MIN_IVF_VECTORS), 300_000)

    def as_dict(self) -> dict:
        return {"index_type": self.kind, "factory": self.factory(), "nlist": self.nlist,
                "pq_m": self.pq_m, "nprobe": self.nprobe, "trained_for": self.trained_for}


def _pq_m(dim: int) -> int:
    """Sub-quantisers of 4 dimensions (a quarter of a byte per float), dividing ``dim``."""
    for m in range(max(1, dim // 4), 0, -1):
        if dim % m == 0:
            return m
    return 1


def new_index(plan: IndexPlan, dim: int, sample: np.ndarray | None = None) -> faiss.Index:
    """An empty index for ``plan``, trained on ``sample`` (S, dim) float32 when it is IVF."""
    index = faiss.index_factory(dim, plan.factory(), faiss.METRIC_INNER_PRODUCT)
    if plan.kind != "flat":
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        if plan.codes == "pq":
            ivf.do_polysemous_training = False  # costs minutes and the lookups do not use it
        if sample is None or len(sample) < plan.nlist:
            raise ValueError(f"Expected at least {plan.nlist} training vectors for {plan.kind}, "
                             f"but got {0 if sample is None else len(sample)}.")
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        ivf.nprobe = plan.nprobe
    return index


def build_index(vectors: np.ndarray, keys: np.ndarray, plan: IndexPlan, *, seed: int = 0) -> faiss.Index:
    """An index of in-memory ``vectors`` (N, dim) float32 with int64 ``keys``."""
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(len(vectors), plan.train_size(len(vectors)), replace=False))]
    index = new_index(plan, vectors.shape[1], sample)
    add_batches(index, [(keys, vectors)])
    return index


def add_batches(index: faiss.Index, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> int:
    """Add ``(keys (B,) int64, vectors (B, dim) float32)`` batches; return how many vectors."""
    added = 0
    for keys, vectors in batches:
        if len(keys):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(keys, np.int64))
            added += len(keys)
    return added


def range_pairs(index: faiss.Index, batches: Iterable[tuple[np.ndarray, np.ndarray]], threshold: float,
                ids_of: Callable[[np.ndarray], dict[int, str]]) -> list[tuple[str, str, float]]:
    """Every pair of distinct images with similarity >= ``threshold`` between the queries (batches
    of ``(keys, vectors)``) and ``index``, as ``(image_id, image_id, score)`` with the ids sorted;
    ``ids_of`` maps keys to ids (a key it leaves out is skipped)."""
    pairs: dict[tuple[str, str], float] = {}
    for keys, matrix in batches:
        for start in range(0, len(keys), RANGE_QUERIES):
            chunk = keys[start:start + RANGE_QUERIES]
            limits, scores, found = index.range_search(
                np.ascontiguousarray(matrix[start:start + RANGE_QUERIES], np.float32), threshold)
            ids = ids_of(np.concatenate([chunk, found]))
            for row, key in enumerate(chunk.tolist()):
                for position in range(limits[row], limits[row + 1]):
                    other = int(found[position])
                    if other != key and other in ids and key in ids:
                        pair = tuple(sorted((ids[key], ids[other])))
                        pairs[pair] = max(pairs.get(pair, -1.0), round(float(scores[position]), 6))
    return [(a, b, score) for (a, b), score in sorted(pairs.items())]


def index_keys(index: faiss.Index) -> np.ndarray:
    """Every key an index holds (IDMap or IVF), (ntotal,) int64."""
    if hasattr(index, "id_map"):
        return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    invlists = faiss.extract_index_ivf(index).invlists
    parts = []
    for number in range(invlists.nlist):
        size = invlists.list_size(number)
        if size:
            parts.append(faiss.rev_swig_ptr(invlists.get_ids(number), size).copy())
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


class IndexStore:
    """The index files of one backbone id, under ``indexes/<backbone id>/``."""

    def __init__(self, layout: StoreLayout, backbone_id: str) -> None:
        self.layout = layout
        self.backbone_id = backbone_id
        self.folder = layout.root / "indexes" / backbone_id
        self.manifest_path = self.folder / "manifest.json"

    def manifest(self) -> dict | None:
        """The current manifest; None when none is written, ``{"damaged": True}`` if unreadable."""
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"damaged": True}

    def load(self) -> tuple[faiss.Index, dict, np.ndarray]:
        """``(index, manifest, keys)``: the file's bytes checked against the manifest's sha256,
        the index's keys against its count and key checksum."""
        for attempt in range(3):
            manifest = self.manifest()
            if not manifest or manifest.get("damaged"):
                raise StoreError(f"Expected an index for {self.backbone_id}, but none is built. "
                                 "Run `synthwatch index`.")
            try:
                self._check_file(manifest)  # streamed, then read once: the bytes are not held twice
                index = faiss.read_index(str(self.folder / manifest["file"]))
                break
            except (OSError, RuntimeError, StoreError) as error:
                if attempt < 2 and self.manifest() != manifest:
                    continue  # a writer swapped in a new index between the two reads
                reason = error if isinstance(error, StoreError) else str(error).splitlines()[0]
                raise IndexFileDamaged(f"Expected a readable index file in {self.folder}, but it is "
                                 f"damaged ({reason}). Run `synthwatch index --rebuild`.") from None
        keys = index_keys(index)
        if keys_checksum(keys) != manifest["checksum"]:
            raise StoreError(f"Expected the index of {self.backbone_id} to hold the keys its manifest "
                             f"names ({manifest['checksum']}), but it holds {keys_checksum(keys)}. "
                             "Run `synthwatch index --rebuild`.")
        return index, manifest, keys

    def _check_file(self, manifest: dict) -> None:
        """Refuse the manifest's index file unless its bytes hash to the sha256 written with them
        (streamed; index files are never rewritten under their name)."""
        expected = manifest.get("file_sha256")
        if expected is None:
            raise StoreError("its manifest predates byte checksums")
        if file_sha256(self.folder / manifest["file"]) != expected:
            raise StoreError(f"{manifest['file']}: its bytes do not match the sha256 written with it")

    def file_intact(self, manifest: dict, *, lookup_files: bool = True) -> bool:
        """Whether the files the manifest names (index and, unless ``lookup_files`` is false, id
        directory and neighbour rows) are there with the bytes they were written with."""
        try:
            self._check_file(manifest)
            return not lookup_files or ("ids_file" in manifest and all(
                file_sha256(self.folder / file) == digest for file, digest in _side_files(manifest)))
        except (OSError, StoreError):
            return False

    def save(self, index: faiss.Index, plan: IndexPlan, *, checksum: str, codes: str, description: dict,
             **lookup) -> dict:
        """Write ``index`` to a new file with its lookup files (see :meth:`with_lookup_files` for
        ``lookup``), then swap the manifest; remove files no longer named."""
        name = self._new_name()
        data = memoryview(faiss.serialize_index(index))  # written and hashed as it is: no copy
        atomic_write_bytes(self.folder / name, data)
        manifest = {
            "backbone_id": self.backbone_id, "file": name, "file_bytes": int(data.nbytes),
            "file_sha256": hashlib.sha256(data).hexdigest(), "ntotal": int(index.ntotal),
            "checksum": checksum, **plan.as_dict(), "codes": codes, "view": 0,
            "dim": int(index.d), "built_at": utc_now().isoformat(), "backbone": description,
        }
        return self.with_lookup_files(manifest, **lookup)

    def with_lookup_files(self, manifest: dict, *, directory: bytes,
                          neighbour_rows: tuple[bytes, bytes, tuple[str, ...]], images_removed: int) -> dict:
        """Write the id ``directory`` (``IdDirectory.to_bytes``) and neighbour rows
        (``NeighbourRows.to_bytes`` and the generators they number; ``images_removed``: the catalog's
        removal count they are current for) of the index ``manifest`` names to new files, then swap
        in the manifest naming them; the index file itself is neither read nor rewritten. Files no
        longer named are removed."""
        prefix = self._new_name()
        rows, paths, generators = neighbour_rows
        side = {"ids": directory, "rows": rows, "paths": paths}
        for kind, content in side.items():
            atomic_write_bytes(self.folder / f"{prefix}.{kind}.npy", content)
        manifest = {
            **manifest,
            **{key: value for kind, content in side.items() for key, value in (
                (f"{kind}_file", f"{prefix}.{kind}.npy"), (f"{kind}_sha256", hashlib.sha256(content).hexdigest()))},
            "generators": list(generators), "images_removed": images_removed,
        }
        manifest["sampled_sha256"] = {file: sampled_sha256(self.folder / file)
                                      for file in (manifest["file"], *(file for file, _ in _side_files(manifest)))}
        atomic_write_bytes(self.manifest_path, json.dumps(manifest, indent=1).encode())
        named = {manifest["file"], *(file for file, _ in _side_files(manifest))}
        for old in self.folder.glob("index-*.faiss*"):
            if old.name not in named and ".tmp-" not in old.name:  # temporaries are not ours to remove
                old.unlink(missing_ok=True)
        return manifest

    @staticmethod
    def _new_name() -> str:
        return f"index-{utc_now().strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}.faiss"

    def for_reading(self) -> tuple[faiss.Index | PagedIVF, dict, Path]:
        """``(index, manifest, id directory file)`` for a reader: every file checked against the
        sampled digest written with it (``store.file_digest``: the same cost at any size; the whole
        file's sha256 where the manifest has none); an IVF index searched with its lists read per
        search (``store.paged_ivf``), an exact one (small by construction) memory-mapped; map the
        directory with ``IdDirectory.open``. The index's lists never stay in the reader's memory."""
        for attempt in range(3):
            manifest = self.manifest()
            if not manifest or manifest.get("damaged"):
                raise StoreError(f"Expected an index for {self.backbone_id}, but none is built. Run `synthwatch index`.")
            if "ids_file" not in manifest:
                raise StoreError("its manifest predates id directories")
            try:
                sampled = manifest.get("sampled_sha256", {})
                for file, digest in ((manifest["file"], manifest.get("file_sha256")), *_side_files(manifest)):
                    if file in sampled:  # the same cost at any size; status --verify reads every byte
                        intact = sampled_sha256(self.folder / file) == sampled[file]
                    else:
                        intact = file_sha256(self.folder / file) == digest
                    if not intact:
                        raise StoreError(f"{file}: its bytes do not match the sha256 written with it")
                path = self.folder / manifest["file"]
                index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP) if manifest["index_type"] == "flat" \
                    else PagedIVF(path)
                return index, manifest, self.folder / manifest["ids_file"]
            except (OSError, RuntimeError, ValueError, StoreError) as error:
                if attempt < 2 and self.manifest() != manifest:
                    continue  # a writer swapped in a new index between the reads
                reason = error if isinstance(error, StoreError) else str(error).splitlines()[0]
                raise IndexFileDamaged(f"Expected a readable index file in {self.folder}, but it is "
                                       f"damaged ({reason}). Run `synthwatch index --rebuild`.") from None
        raise AssertionError("unreachable")


def _side_files(manifest: dict) -> list[tuple[str, str]]:
    """``(file, sha256)`` of the id directory and, where the manifest names them, the neighbour rows
    (indexes written before them have none: readers then ask the catalog)."""
    return [(manifest[f"{kind}_file"], manifest[f"{kind}_sha256"]) for kind in ("ids", "rows", "paths")
            if f"{kind}_file" in manifest]
