"""Nearest known images: filtered k-NN search that returns exactly k when k match, and
near-duplicate groups."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import faiss
import numpy as np
import pyarrow as pa

from synthwatch.store.backbones import resolve_backbone
from synthwatch.store.catalog import Catalog
from synthwatch.store.catalog_reader import shared_reader
from synthwatch.store.errors import StoreError
from synthwatch.store.id_directory import IdDirectory
from synthwatch.store.index import (IndexFileDamaged, IndexPlan, IndexStore, add_batches, image_keys, index_keys, new_index,
                                   range_pairs)
from synthwatch.store.index_inputs import clean_vector_batches, index_is_current, indexable_keys
from synthwatch.store.layout import StoreLayout
from synthwatch.store.neighbour_rows import NeighbourRows
from synthwatch.store.vectors import VectorStore

# Inner products of unit vectors lie in [-1, 1]; 8-bit and product-quantiser codes approximate
# them by a few hundredths. Anything past this bound is damage, not a neighbour.
SCORE_BOUND = 1.1


@dataclass(frozen=True)
class Neighbor:
    image_id: str
    label: str
    generator: str | None
    score: float
    path: str

    def as_dict(self) -> dict:
        return asdict(self)


def _check_scores(scores: np.ndarray, keys: np.ndarray, query_norms: np.ndarray, backbone_id: str) -> None:
    """Refuse answers no intact index gives: stored vectors have unit length, so a similarity
    is at most the query's length (Cauchy-Schwarz), give or take what coded indexes round."""
    bound = SCORE_BOUND * np.maximum(query_norms, 1e-6)[:, None]
    bad = (keys >= 0) & (~np.isfinite(scores) | (np.abs(scores) > bound))
    if bad.any():
        raise StoreError(f"Expected similarities within the query's length from the index of {backbone_id} "
                         f"(its vectors have unit length), but got {scores[bad][0]:.3g}: it is damaged in memory "
                         "or on disk. Run `synthwatch index --rebuild`, then restart readers such as `serve`.")


class NeighborIndex:
    """A loaded index with catalog lookups; :meth:`refresh` picks up a rebuilt index. Nothing
    here writes the index file (``synthwatch.store.indexing`` does)."""

    def __init__(self, layout: StoreLayout, backbone_id: str) -> None:
        self.layout = layout
        self.backbone_id = backbone_id
        self.store = IndexStore(layout, backbone_id)
        self.catalog = Catalog(layout)
        self._load()

    def _load(self) -> None:
        index, manifest, directory = self.store.for_reading()
        try:
            rows = NeighbourRows.open(self.store.folder / manifest["rows_file"], self.store.folder / manifest["paths_file"],
                                      manifest["generators"]) if "rows_file" in manifest else None
            self._use(index, manifest, IdDirectory.open(directory), rows)
        except ValueError as error:
            raise IndexFileDamaged(f"Expected a readable id directory and neighbour rows in {self.store.folder}, but "
                                   f"they are damaged ({error}). Run `synthwatch index --rebuild`.") from None

    def _use(self, index, manifest: dict, directory: IdDirectory, rows: NeighbourRows | None = None) -> None:
        """Search ``index`` (read from its file as searches need it), resolving keys through
        ``directory``, whose keys are those the index holds, and ``rows`` (None: the catalog)."""
        self.index, self.manifest, self.ids, self.rows = index, manifest, directory, rows
        self.keys = directory.keys
        self.version = self.manifest["file"]
        self._allowed: dict[tuple, np.ndarray] = {}  # a filter's keys, read once per index in use

    def refresh(self) -> bool:
        """Reload if another process swapped in a new index; return whether it did."""
        manifest = self.store.manifest()
        if manifest and not manifest.get("damaged") and manifest["file"] != self.version:
            self._load()
            return True
        return False

    def catch_up(self) -> tuple[int, int]:
        """Bring the loaded index in step with the vectors and catalog, in memory only; returns
        ``(added, removed)``."""
        wanted = indexable_keys(self.layout, self.backbone_id)
        added, removed = np.setdiff1d(wanted, self.keys), np.setdiff1d(self.keys, wanted)
        if not len(added) and not len(removed):
            return 0, 0
        if self.manifest.get("file"):  # an index read from its file cannot change: load a private copy
            self.index = self.store.load()[0]
        if len(removed):
            self.index.remove_ids(faiss.IDSelectorBatch(removed))
        add_batches(self.index, clean_vector_batches(VectorStore(self.layout, self.backbone_id), added))
        self.ids = IdDirectory(self.catalog.arrow("SELECT image_id FROM images").column("image_id"))
        self.rows = None  # the files describe the index as written: the catalog answers from here on
        self.keys = np.sort(index_keys(self.index))
        return len(added), len(removed)

    @classmethod
    def built_in_memory(cls, layout: StoreLayout, backbone_id: str) -> "NeighborIndex":
        """An exact index of the clean vectors, built in memory (for a reader whose index file is
        damaged); the file is left for ``synthwatch index`` to rebuild."""
        vectors = VectorStore(layout, backbone_id)
        keys = indexable_keys(layout, backbone_id)
        dim, description = vectors.shape_and_description()
        index = new_index(IndexPlan.for_size(0, dim), dim)
        add_batches(index, clean_vector_batches(vectors, keys))
        neighbors = cls.__new__(cls)
        neighbors.layout, neighbors.backbone_id = layout, backbone_id
        neighbors.store, neighbors.catalog = IndexStore(layout, backbone_id), Catalog(layout)
        manifest = {"file": None, "backbone": description, "backbone_id": backbone_id, "index_type": "flat",
                    "nlist": 0, "nprobe": 0}
        ids = Catalog(layout).arrow("SELECT image_id FROM images").column("image_id").combine_chunks()
        neighbors._use(index, manifest, IdDirectory(ids.filter(pa.array(np.isin(image_keys(ids), keys)))))
        return neighbors

    @property
    def description(self) -> dict:
        return self.manifest["backbone"]

    def allowed_keys(self, label: str | None, generator: str | None) -> np.ndarray | None:
        """Indexed keys of images matching the filters (None when there is no filter). Read from
        the catalog once per filter and index in use: an image's label and generator never change,
        and one removed since is skipped when the search resolves its results."""
        if label is None and generator is None:
            return None
        if (label, generator) not in self._allowed:
            table = self.catalog.arrow(
                "SELECT image_id FROM images WHERE ($1 IS NULL OR label = $1) AND ($2 IS NULL OR generator = $2)",
                [label, generator],
            )
            self._allowed[label, generator] = np.intersect1d(image_keys(table.column("image_id")), self.keys)
        return self._allowed[label, generator]

    def search(self, queries: np.ndarray, k: int, *, label: str | None = None,
               generator: str | None = None) -> tuple[list[list[Neighbor]], int]:
        """Neighbours of each query (Q, dim), best first, and how many indexed images match.

        Returns exactly ``min(k, matching)`` neighbours per query: a filtered search uses an id
        selector, IVF searches probe more lists until enough are found, and when indexed images
        have left the catalog since the index was written (another process removed them), the
        search goes deeper until k images that still exist are found.
        """
        if k < 1:
            raise ValueError(f"Expected k >= 1, but got k = {k}.")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        allowed = self.allowed_keys(label, generator)
        matching = len(self.keys) if allowed is None else len(allowed)
        wanted = min(k, matching)
        if wanted == 0:
            return [[] for _ in queries], matching
        depth = wanted
        while True:
            found = self._resolve(*self._search(queries, depth, allowed), queries)
            if all(len(neighbors) >= wanted for neighbors in found) or depth >= matching:
                return [neighbors[:wanted] for neighbors in found], matching
            depth = min(matching, depth * 2)

    def _search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None):
        selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
        if self.manifest["index_type"] == "flat":
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
            return self.index.search(queries, k, params=params)
        nlist, nprobe = self.manifest["nlist"], self.manifest["nprobe"]
        while True:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe) if selector is not None \
                else faiss.SearchParametersIVF(nprobe=nprobe)
            scores, keys = self.index.search(queries, k, params=params)
            if (keys >= 0).all() or nprobe >= nlist:
                return scores, keys
            nprobe = min(nlist, nprobe * 4)

    def _resolve(self, scores: np.ndarray, keys: np.ndarray, queries: np.ndarray) -> list[list[Neighbor]]:
        _check_scores(scores, keys, np.linalg.norm(queries, axis=1), self.backbone_id)
        found_keys = keys[keys >= 0]
        if self.rows is not None and self._rows_current():
            positions = self.ids.positions_of(found_keys)
            by_key = {key: (self.ids.id_at(position), *self.rows.at(position))
                      for key, position in positions.items()}
        else:
            by_key = self._catalog_rows(found_keys)
        results = []
        for query_scores, query_keys in zip(scores, keys):
            found = []
            for score, key in zip(query_scores, query_keys):
                row = by_key.get(int(key)) if key >= 0 else None
                if row is not None:
                    found.append(Neighbor(row[0], row[1], row[2], round(float(score), 6), row[3]))
            results.append(found)
        return results

    def _rows_current(self) -> bool:
        """Whether no image left the catalog since the index's neighbour rows were written (one
        read of a one-row table; the catalog's image table and its key index stay unread)."""
        return shared_reader(self.layout).query(Catalog.REMOVED_SQL)[0][0] == self.manifest["images_removed"]

    def _catalog_rows(self, keys: np.ndarray) -> dict[int, tuple]:
        """``{key: (image id, label, generator, original path)}`` of the keys' images still in the catalog."""
        ids = self.ids.ids_of(keys)
        rows = shared_reader(self.layout).query(
            "SELECT image_id, label, generator, original_path FROM images WHERE image_id = ANY(?::VARCHAR[])",
            [sorted(ids.values())],
        ) if ids else []
        by_id = {row[0]: row for row in rows}
        return {key: by_id[image_id] for key, image_id in ids.items() if image_id in by_id}

    def pairs_above(self, threshold: float) -> list[tuple[str, str, float]]:
        """Every pair of indexed images whose clean vectors have similarity >= ``threshold``,
        as ``(image_id, image_id, score)`` with the ids in sorted order; reads Parquet a shard
        at a time."""
        batches = clean_vector_batches(VectorStore(self.layout, self.backbone_id), self.keys)
        return range_pairs(self.index, batches, threshold, self.ids.ids_of)


def open_for_reading(layout: StoreLayout, requested: str | None = None) -> tuple[NeighborIndex, str | None]:
    """The index of the resolved backbone for a reader, never written: a stale one is brought up
    to date in memory, a damaged one built in memory. Returns ``(NeighborIndex, notice)``, the
    notice saying what was done and that ``synthwatch index`` saves it, or None."""
    backbone_id = resolve_backbone(layout, requested, need="indexes")
    current, why = index_is_current(layout, backbone_id)
    save = "run `synthwatch index` to save it"
    try:
        neighbors = NeighborIndex(layout, backbone_id)
    except StoreError as error:
        neighbors = NeighborIndex.built_in_memory(layout, backbone_id)
        return neighbors, (f"the index of {backbone_id} was damaged ({error}); rebuilt with {len(neighbors.keys)} "
                           f"vectors in memory ({save})")
    if current:
        return neighbors, None
    added, removed = neighbors.catch_up()
    return neighbors, f"the index of {backbone_id} was not current ({why}); updated in memory: +{added} -{removed} ({save})"


def group_pairs(pairs: list[tuple[str, str, float]]) -> list[list[str]]:
    """Connected groups of images linked by ``pairs`` (union-find), largest first."""
    parent: dict[str, str] = {}

    def root(item: str) -> str:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for a, b, _ in pairs:
        parent[root(a)] = root(b)
    groups: dict[str, list[str]] = {}
    for item in parent:
        groups.setdefault(root(item), []).append(item)
    return sorted((sorted(group) for group in groups.values()), key=lambda g: (-len(g), g))


def near_duplicate_groups(pairs: list[tuple[str, str, float]]) -> list[dict]:
    """Groups of :func:`group_pairs` with the lowest similarity that links each, largest first."""
    groups = group_pairs(pairs)
    group_of = {image_id: number for number, group in enumerate(groups) for image_id in group}
    lowest = [1.0] * len(groups)
    for a, _, score in pairs:
        lowest[group_of[a]] = min(lowest[group_of[a]], score)
    return [{"image_ids": group, "min_score": score} for group, score in zip(groups, lowest)]


def straddling_pairs(pairs: list[tuple[str, str, float]], first: set[str], second: set[str]):
    """Near-duplicate pairs with one image in each of two disjoint sets (train/test leakage)."""
    return [(a, b, score) for a, b, score in pairs
            if (a in first and b in second) or (a in second and b in first)]
