"""Full image ids by index key, so lookups ask the catalog for exact ids (its primary key)
rather than scanning every id for a 60-bit prefix (32 ms a query at a million images)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa

from synthwatch.store.index import image_keys
from synthwatch.store.npy_records import NpyRecords

ID_DIGITS = 64  # a sha256 in hexadecimal
_CHUNK = 65_536  # ids decoded at once, to bound temporaries
_READ_SINGLY = 1_024  # up to this many keys (a lookup's neighbours) are found by reading single records
_NIBBLES = np.full(256, 255, np.uint8)
_NIBBLES[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
_NIBBLES[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)


RECORD = np.dtype([("key", "<i8"), ("digest", "u1", (ID_DIGITS // 2,))])  # 40 bytes an image


class IdDirectory:
    """Sorted index keys with the 32-byte digest of each key's image (40 bytes an image), in
    memory or memory-mapped from the ``.npy`` file written beside an index (:meth:`write`), so a
    lookup process pages in only the records its searches touch."""

    def __init__(self, image_ids: pa.Array | pa.ChunkedArray | None = None, *, records: np.ndarray | None = None,
                 reader: NpyRecords | None = None) -> None:
        if records is None:
            array = image_ids.combine_chunks() if isinstance(image_ids, pa.ChunkedArray) else image_ids
            keys = image_keys(array)
            order = np.argsort(keys, kind="stable")
            records = np.empty(len(keys), RECORD)
            records["key"], records["digest"] = keys[order], _digests(array)[order]
        self.records = records
        self.keys = records["key"]  # whole-array uses (filters, catching up) page in the mapped file
        self.digests = records["digest"]
        self._reader = reader  # single records of the file (lookups), read without mapping

    @classmethod
    def open(cls, path: Path) -> "IdDirectory":
        """The directory of ``path``, memory-mapped read-only (no pickle: a plain record array)."""
        records = np.load(path, mmap_mode="r", allow_pickle=False)
        if records.dtype != RECORD:
            raise ValueError(f"Expected id directory records of {RECORD}, but {path} holds {records.dtype}.")
        return cls(records=records, reader=NpyRecords(path))

    def to_bytes(self) -> bytes:
        """The ``.npy`` bytes :meth:`open` maps."""
        sink = io.BytesIO()
        np.save(sink, np.ascontiguousarray(self.records), allow_pickle=False)
        return sink.getvalue()

    def __len__(self) -> int:
        return len(self.keys)

    def positions_of(self, keys: np.ndarray) -> dict[int, int]:
        """``{key: record position}`` for the keys the directory holds (others are left out)."""
        keys = np.unique(np.asarray(keys, np.int64))
        if not len(self.keys) or not len(keys):
            return {}
        if self._by_record(len(keys)):
            positions = np.minimum(self._reader.search_sorted("key", keys), len(self.keys) - 1)
            stored = np.array([self._reader.read(int(position))["key"][0] for position in positions], np.int64)
        else:
            positions = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            stored = np.asarray(self.keys[positions])
        found = stored == keys
        return dict(zip(keys[found].tolist(), positions[found].tolist()))

    def id_at(self, position: int) -> str:
        """The image id of the record at ``position``."""
        digest = self._reader.read(position)["digest"][0] if self._by_record(1) else self.digests[position]
        return digest.tobytes().hex()

    def ids_of(self, keys: np.ndarray) -> dict[int, str]:
        """``{key: image id}`` for the keys the directory holds (others are left out)."""
        positions = self.positions_of(keys)
        if self._by_record(len(positions)):
            return {key: self.id_at(position) for key, position in positions.items()}
        return {key: self.digests[position].tobytes().hex() for key, position in positions.items()}

    def _by_record(self, count: int) -> bool:
        """Whether ``count`` records are read one by one from the file (a lookup's few) rather than
        from the mapped array (many: paging it in costs less than a read each)."""
        return self._reader is not None and count <= _READ_SINGLY


def _digests(array: pa.Array) -> np.ndarray:
    """(n, 32) uint8: each sha256 id decoded from hexadecimal, a chunk at a time."""
    array = array.cast(pa.large_string()) if array.type == pa.string() else array
    if len(array) == 0:
        return np.zeros((0, ID_DIGITS // 2), np.uint8)
    offsets = np.frombuffer(array.buffers()[1], np.int64)[array.offset:array.offset + len(array) + 1]
    if (np.diff(offsets) != ID_DIGITS).any():
        raise ValueError(f"Expected image ids of {ID_DIGITS} hex digits (sha256), but got another length.")
    data = np.frombuffer(array.buffers()[2], np.uint8)
    out = np.empty((len(array), ID_DIGITS // 2), np.uint8)
    for start in range(0, len(array), _CHUNK):
        starts = offsets[:-1][start:start + _CHUNK]
        nibbles = _NIBBLES[data[starts[:, None] + np.arange(ID_DIGITS)]]
        if (nibbles == 255).any():
            raise ValueError("Expected image ids in hexadecimal (sha256), but got another character.")
        out[start:start + len(starts)] = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return out
