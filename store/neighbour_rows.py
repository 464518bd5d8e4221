"""What a lookup shows of each indexed image (label, generator, original path), in two ``.npy``
files written beside the index in its id directory's order and read by record (``pread``): neighbours
are resolved without the catalog, whose primary-key index DuckDB keeps in memory (about 1.8 GB at
12.5 M images), so a lookup process's own memory does not grow with the store."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthwatch.store.index import image_keys
from synthwatch.store.npy_records import NpyRecords

LABELS = ("real", "synthetic")
NO_GENERATOR = -1
ROW = np.dtype([("label", "u1"), ("generator", "<i2"), ("path_length", "<u4"), ("path_start", "<u8")])


@dataclass(frozen=True)
class NeighbourRows:
    """``rows`` (``ROW``, one per id directory record, in its order), ``paths`` (uint8: the original
    paths' UTF-8 bytes end to end) and the ``generators`` that ``rows["generator"]`` numbers."""

    rows: np.ndarray
    paths: np.ndarray
    generators: tuple[str, ...]
    readers: tuple[NpyRecords, NpyRecords] | None = None  # rows and paths read by record (opened files)

    @classmethod
    def of_images(cls, images: pa.Table, directory_keys: np.ndarray) -> "NeighbourRows":
        """The rows of the catalog ``images`` (``image_id``, ``label``, ``generator``,
        ``original_path``) whose keys are ``directory_keys`` (sorted, as the id directory holds them)."""
        keys = image_keys(images.column("image_id"))
        kept = np.flatnonzero(np.isin(keys, directory_keys, assume_unique=True))
        images = images.take(kept[np.argsort(keys[kept], kind="stable")])
        if images.num_rows != len(directory_keys):
            raise ValueError(f"Expected catalog rows for all {len(directory_keys)} indexed images, but found "
                             f"{images.num_rows}.")
        labels = pc.index_in(images.column("label"), value_set=pa.array(LABELS, pa.string()))
        if labels.null_count:
            unknown = images.column("label").filter(pc.is_null(labels))[0].as_py()
            raise ValueError(f"Expected labels {' or '.join(LABELS)}, but the catalog holds {unknown!r}.")
        generator_column = images.column("generator")
        generators = tuple(sorted(set(pc.unique(generator_column.drop_null()).to_pylist())))
        rows = np.empty(images.num_rows, ROW)
        rows["label"] = labels.to_numpy(zero_copy_only=False)
        numbered = pc.index_in(generator_column, value_set=pa.array(generators, pa.string()))
        rows["generator"] = pc.fill_null(numbered, NO_GENERATOR).to_numpy(zero_copy_only=False)
        paths = images.column("original_path").combine_chunks().cast(pa.large_string())
        offsets = np.frombuffer(paths.buffers()[1], np.int64)[paths.offset:paths.offset + len(paths) + 1]
        rows["path_start"], rows["path_length"] = offsets[:-1] - offsets[0], np.diff(offsets)
        data = np.frombuffer(paths.buffers()[2], np.uint8)[offsets[0]:offsets[-1]] if len(paths) else np.zeros(0, np.uint8)
        return cls(rows, data, generators)

    @classmethod
    def open(cls, rows_path: Path, paths_path: Path, generators: list[str]) -> "NeighbourRows":
        """The rows written by :meth:`to_bytes`, memory-mapped read-only (plain arrays, no pickle)."""
        rows = np.load(rows_path, mmap_mode="r", allow_pickle=False)
        paths = np.load(paths_path, mmap_mode="r", allow_pickle=False)
        if rows.dtype != ROW or paths.dtype != np.uint8:
            raise ValueError(f"Expected neighbour rows of {ROW} and path bytes, but {rows_path} holds {rows.dtype} "
                             f"and {paths_path} {paths.dtype}.")
        return cls(rows, paths, tuple(generators), (NpyRecords(rows_path), NpyRecords(paths_path)))

    def to_bytes(self) -> tuple[bytes, bytes]:
        """The ``.npy`` bytes of the rows and of the paths."""
        return _npy(self.rows), _npy(self.paths)

    def at(self, position: int) -> tuple[str, str | None, str]:
        """``(label, generator or None, original path)`` of the directory's record at ``position``."""
        row = self.rows[position] if self.readers is None else self.readers[0].read(position)[0]
        start, length = int(row["path_start"]), int(row["path_length"])
        generator = int(row["generator"])
        path = self.paths[start:start + length] if self.readers is None else self.readers[1].read(start, length)
        return (LABELS[int(row["label"])], None if generator == NO_GENERATOR else self.generators[generator],
                path.tobytes().decode("utf-8"))


def _npy(array: np.ndarray) -> bytes:
    sink = io.BytesIO()
    np.save(sink, np.ascontiguousarray(array), allow_pickle=False)
    return sink.getvalue()
