"""Embedding vectors as Parquet shards, one folder per backbone id.

Rows are ``(image_id, view, augmentation, vector)`` with ``vector`` a fixed-size list of
float32, and the backbone's description in the file metadata, so plain pyarrow or DuckDB can
read them (``read_parquet('vectors/<id>/*.parquet')``). Each shard is written under a
temporary name and moved into place: a shard is either whole or absent.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthwatch.store.atomic import atomic_write_bytes, remove_stale_temporaries
from synthwatch.store.schema import utc_now
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout

METADATA_KEY = b"synthwatch.backbone"


def vector_schema(dim: int, description: dict | None = None) -> pa.Schema:
    schema = pa.schema([
        ("image_id", pa.string()),
        ("view", pa.int16()),
        ("augmentation", pa.string()),
        ("vector", pa.list_(pa.float32(), dim)),
    ])
    if description is not None:
        schema = schema.with_metadata({METADATA_KEY: json.dumps(description).encode()})
    return schema


class VectorStore:
    """The shards of one backbone id."""

    def __init__(self, layout: StoreLayout, backbone_id: str) -> None:
        self.layout = layout
        self.backbone_id = backbone_id
        self.folder = layout.vectors_dir / backbone_id

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("*.parquet")) if self.folder.exists() else []

    def shape_and_description(self) -> tuple[int, dict]:
        """Vector width and the backbone description stored with the shards."""
        shards = self.shards()
        if not shards:
            raise StoreError(f"Expected vectors for {self.backbone_id}, but the store has none. "
                             "Run `synthwatch embed` first.")
        schema = self._open(shards[0]).schema_arrow
        return schema.field("vector").type.list_size, json.loads((schema.metadata or {}).get(METADATA_KEY, b"{}"))

    def row_count(self) -> int:
        return sum(self._open(shard).metadata.num_rows for shard in self.shards())

    def present_views(self) -> dict[str, int]:
        """``{image_id: bit mask of the views stored}``, read one shard at a time."""
        present: dict[str, int] = {}
        for shard in self.shards():
            table = self._read(shard, ["image_id", "view"])
            for image_id, view in zip(table.column(0).to_pylist(), table.column(1).to_pylist()):
                present[image_id] = present.get(image_id, 0) | (1 << view)
        return present

    def write_shard(
        self,
        image_ids: Sequence[str],
        views: Sequence[int],
        augmentations: Sequence[str],
        vectors: np.ndarray,
        description: dict,
    ) -> Path:
        """Write one shard atomically; ``vectors`` is (N, dim) float32."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(image_ids):
            raise ValueError(
                f"Expected vectors of shape ({len(image_ids)}, dim), but got {vectors.shape}."
            )
        dim = vectors.shape[1]
        table = pa.table(
            [
                pa.array(image_ids, pa.string()),
                pa.array(views, pa.int16()),
                pa.array(augmentations, pa.string()),
                pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), dim),
            ],
            schema=vector_schema(dim, description),
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        stamp = utc_now().strftime("%Y%m%dT%H%M%S%f")
        target = self.folder / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        atomic_write_bytes(target, sink.getvalue().to_pybytes())
        return target

    def read(self, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """Yield each shard as a table (streaming: one shard in memory at a time)."""
        for shard in self.shards():
            yield self._read(shard, columns)

    def damaged_shards(self) -> list[tuple[Path, str]]:
        """``(shard, reason)`` for every shard that cannot be read whole (every page decoded)."""
        damaged = []
        for shard in self.shards():
            try:
                self._read(shard, None)
            except StoreError as error:
                damaged.append((shard, str(error.__cause__ or error)))
        return damaged

    def set_aside(self, shard: Path) -> Path:
        """Move a damaged shard out of the readers' way (into ``damaged/``), keeping its bytes;
        the next ``embed`` recomputes its rows, since they are missing now."""
        target = self.folder / "damaged" / shard.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shard.replace(target)
        return target

    def _read(self, shard: Path, columns: Sequence[str] | None) -> pa.Table:
        try:
            return self._open(shard).read(columns=list(columns) if columns else None)
        except StoreError:
            raise
        except (OSError, pa.ArrowException) as error:
            raise StoreError(
                f"Expected a readable Parquet shard, but {shard} is damaged ({str(error).splitlines()[0]}). "
                "Run `synthwatch status --verify --repair` to set it aside and re-embed its images."
            ) from error

    def clean_temporaries(self) -> int:
        return remove_stale_temporaries(self.folder)

    @staticmethod
    def _open(shard: Path) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(shard)
        except (OSError, pa.ArrowInvalid) as error:
            raise StoreError(
                f"Expected a readable Parquet shard, but {shard} is damaged ({error}). Run "
                "`synthwatch status --verify --repair` to set it aside and re-embed its images."
            ) from error


def embedding_counts(layout: StoreLayout) -> dict[str, int]:
    """``{backbone_id: rows}`` for every backbone with vectors in the store."""
    if not layout.vectors_dir.exists():
        return {}
    return {
        folder.name: VectorStore(layout, folder.name).row_count()
        for folder in sorted(layout.vectors_dir.iterdir()) if folder.is_dir()
    }
