"""Single records of a one-dimensional ``.npy`` file read with ``pread``, for lookups that need a few
records of a large file: a memory-mapped read brings in what the kernel maps around each record
(large page-cache folios, megabytes on this machine's kernel), so a reader's resident memory would
grow with the file however few records it reads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class NpyRecords:
    """Records of the ``.npy`` file at ``path`` (written by ``np.save`` without pickle), by position."""

    def __init__(self, path: Path) -> None:
        header = np.load(path, mmap_mode="r", allow_pickle=False)  # header only: no record is touched
        if header.ndim != 1:
            raise ValueError(f"Expected a one-dimensional array in {path}, but got shape {header.shape}.")
        self.path, self.dtype, self.length, self.offset = path, header.dtype, len(header), int(header.offset)
        self._file = open(path, "rb")  # noqa: SIM115 (held for the reader's life, closed with it)

    def __len__(self) -> int:
        return self.length

    def read(self, start: int, count: int = 1) -> np.ndarray:
        """Records ``start .. start + count - 1``."""
        if start < 0 or start + count > self.length:
            raise IndexError(f"Expected records within 0..{self.length - 1} of {self.path}, but got {start}+{count}.")
        size = self.dtype.itemsize
        data = os.pread(self._file.fileno(), count * size, self.offset + start * size)
        if len(data) != count * size:
            raise ValueError(f"Expected {count} records at {start} in {self.path}, but the file ends early.")
        return np.frombuffer(data, self.dtype)

    def search_sorted(self, field: str, values: np.ndarray) -> np.ndarray:
        """For each value, the first position whose ``field`` is not below it (``np.searchsorted``
        over a sorted field), by binary search: about log2(n) reads of one record a value."""
        positions = np.empty(len(values), np.int64)
        for slot, value in enumerate(values.tolist()):
            low, high = 0, self.length
            while low < high:
                middle = (low + high) // 2
                if self.read(middle)[field][0] < value:
                    low = middle + 1
                else:
                    high = middle
            positions[slot] = low
        return positions
