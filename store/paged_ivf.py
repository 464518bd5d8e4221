"""An IVF index file searched with its inverted lists read as each search needs them, so a reader's
memory does not grow with the store.

A memory-mapped index keeps in the process every page its searches touch: random queries that
probe 1/64 of the lists touch most of the file within a few hundred queries, and that memory
counts against the reader (4.8 GB at 12.5 M vectors, ``benchmarks/lookup.py``). Here the coarse
quantiser stays in memory (a few MB) and the probed lists are read with ``pread`` (the kernel's
page cache, shared and reclaimable, holds them, not the process), at most ``LIST_BUDGET`` bytes
of lists at a time, and FAISS searches them with the assignment the quantiser made: scores and
order are those of the whole index's own search.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import faiss
import numpy as np

LIST_BUDGET = 8 << 20  # bytes of inverted lists held at once, whatever the store's size
_MISSING = -1


class PagedIVF:
    """Search (``search``, ``range_search``) an IVF index file written by ``faiss.write_index``
    whose lists are read from the file per search, ``budget`` bytes of them at a time."""

    def __init__(self, path: Path, *, budget: int = LIST_BUDGET) -> None:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)  # lists mapped, never touched here
        if not isinstance(faiss.downcast_index(index), faiss.IndexIVF):
            raise ValueError(f"Expected an IVF index at the top of {path}, but got {type(index).__name__}.")
        self.index, self.ivf = index, faiss.extract_index_ivf(index)  # the index owns the IVF structure
        mapped = faiss.downcast_InvertedLists(self.ivf.invlists)
        if not isinstance(mapped, faiss.OnDiskInvertedLists):
            raise ValueError(f"Expected inverted lists stored in {path}, but got {type(mapped).__name__}.")
        self.nlist, self.code_size = int(self.ivf.nlist), int(mapped.code_size)
        lists = [mapped.lists.at(number) for number in range(self.nlist)]
        self.sizes = np.array([entry.size for entry in lists], np.int64)
        self.offsets = np.array([entry.offset for entry in lists], np.int64)
        self.capacities = np.array([entry.capacity for entry in lists], np.int64)
        self.ntotal, self.d = int(index.ntotal), int(index.d)
        if self.sizes.sum() != self.ntotal:
            raise ValueError(f"Expected lists holding {self.ntotal} vectors in {path}, but they hold {self.sizes.sum()}.")
        self._swap_in(faiss.ArrayInvertedLists(self.nlist, self.code_size))  # unmaps the file
        self.budget = budget
        self._file = open(path, "rb")  # noqa: SIM115 (held for the reader's life, closed with it)
        self._lock = threading.Lock()  # one search at a time swaps lists into the shared IVF structure

    def search(self, queries: np.ndarray, k: int, params: faiss.SearchParametersIVF | None = None):
        """``(scores, keys)`` (Q, k) as ``faiss.Index.search`` gives them, best first, -1 past the end."""
        queries = np.ascontiguousarray(queries, np.float32)
        params, assign, centroid_scores = self._assign(queries, params)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        keys = np.full((len(queries), k), _MISSING, np.int64)
        with self._lock:
            for masked in self._loaded_chunks(assign):
                part_scores = np.empty((len(queries), k), np.float32)
                part_keys = np.empty((len(queries), k), np.int64)
                self.ivf.search_preassigned_c(len(queries), faiss.swig_ptr(queries), k, faiss.swig_ptr(masked),
                                              faiss.swig_ptr(centroid_scores), faiss.swig_ptr(part_scores),
                                              faiss.swig_ptr(part_keys), False, params)
                scores, keys = _best(np.hstack([scores, part_scores]), np.hstack([keys, part_keys]), k)
        return scores, keys

    def range_search(self, queries: np.ndarray, threshold: float, params: faiss.SearchParametersIVF | None = None):
        """``(limits, scores, keys)`` as ``faiss.Index.range_search`` gives them (inner product: every
        indexed vector scoring at least ``threshold`` among the probed lists)."""
        queries = np.ascontiguousarray(queries, np.float32)
        params, assign, centroid_scores = self._assign(queries, params)
        found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in queries]
        with self._lock:
            for masked in self._loaded_chunks(assign):
                result = faiss.RangeSearchResult(len(queries))
                self.ivf.range_search_preassigned_c(len(queries), faiss.swig_ptr(queries), float(threshold),
                                                    faiss.swig_ptr(masked), faiss.swig_ptr(centroid_scores),
                                                    result, False, params)
                limits = faiss.rev_swig_ptr(result.lims, len(queries) + 1).astype(np.int64)
                if not limits[-1]:
                    continue
                scores = faiss.rev_swig_ptr(result.distances, int(limits[-1])).copy()
                keys = faiss.rev_swig_ptr(result.labels, int(limits[-1])).copy()
                for row in np.flatnonzero(np.diff(limits)):
                    found[row].append((scores[limits[row]:limits[row + 1]], keys[limits[row]:limits[row + 1]]))
        counts = [sum(len(part[1]) for part in parts) for parts in found]
        limits = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        scores = np.concatenate([part[0] for parts in found for part in parts] or [np.zeros(0, np.float32)])
        keys = np.concatenate([part[1] for parts in found for part in parts] or [np.zeros(0, np.int64)])
        return limits, scores, keys

    def _assign(self, queries: np.ndarray, params: faiss.SearchParametersIVF | None):
        """``(params, lists (Q, nprobe), centroid scores (Q, nprobe))``: the coarse assignment."""
        params = params or faiss.SearchParametersIVF(nprobe=int(self.ivf.nprobe))
        params.nprobe = min(int(params.nprobe), self.nlist)
        centroid_scores, assign = self.ivf.quantizer.search(queries, params.nprobe)
        return params, np.ascontiguousarray(assign, np.int64), np.ascontiguousarray(centroid_scores, np.float32)

    def _loaded_chunks(self, assign: np.ndarray):
        """For each chunk of the probed lists that fits the budget: load it in place of the one before,
        yield ``assign`` with the other lists masked out (FAISS skips a list number of -1); drop the
        last when done."""
        probed = np.unique(assign[assign >= 0])
        probed = probed[self.sizes[probed] > 0]
        list_bytes = self.capacities[probed] * (self.code_size + 8)
        start = 0
        try:
            while start < len(probed):
                within = np.searchsorted(np.cumsum(list_bytes[start:]), self.budget, side="right")
                chunk = probed[start:start + max(1, int(within))]
                start += len(chunk)
                self._swap_in(self._read_lists(chunk))  # frees the chunk before
                loaded = np.zeros(self.nlist, bool)
                loaded[chunk] = True
                yield np.where(loaded[np.maximum(assign, 0)] & (assign >= 0), assign, _MISSING)
        finally:
            self._swap_in(faiss.ArrayInvertedLists(self.nlist, self.code_size))

    def _swap_in(self, lists: faiss.ArrayInvertedLists) -> None:
        """Make ``lists`` the IVF structure's, which frees the lists it held."""
        self.ivf.replace_invlists(lists, True)
        lists.this.disown()

    def _read_lists(self, numbers: np.ndarray) -> faiss.ArrayInvertedLists:
        """Lists ``numbers`` read from the file (each: ``capacity`` codes, then ``capacity`` int64 ids)."""
        lists = faiss.ArrayInvertedLists(self.nlist, self.code_size)
        descriptor = self._file.fileno()
        for number in numbers.tolist():
            size, capacity, offset = int(self.sizes[number]), int(self.capacities[number]), int(self.offsets[number])
            block = os.pread(descriptor, capacity * (self.code_size + 8), offset)  # codes, then ids
            if len(block) != capacity * (self.code_size + 8):
                raise ValueError(f"Expected list {number} of {size} vectors in {self._file.name}, but the file ends early.")
            codes = np.frombuffer(block, np.uint8, size * self.code_size)
            ids = np.frombuffer(block, np.int64, size, capacity * self.code_size)
            lists.add_entries(number, size, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
        return lists


def _best(scores: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest scores per row (missing keys last), as FAISS orders inner products."""
    ranked = np.where(keys >= 0, scores, -np.inf)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(keys, order, axis=1)
