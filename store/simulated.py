"""A store of simulated images and vectors, at sizes no corpus on this machine reaches: a real
catalog (DuckDB), real Parquet shards and the store's own split rule, written in bulk. The
vectors are unit vectors of width ``dim``; each generator shifts its images along a direction
shared by all generators and one of its own, so heads have something to find. Only
``benchmarks/retrain_scale.py`` and tests use it; the images have no bytes (``stored`` false).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from synthwatch.store.catalog import Catalog
from synthwatch.store.layout import StoreLayout
from synthwatch.store.vectors import VectorStore

BACKBONE_ID = "simulated-v1"
START = datetime(2026, 1, 1)


@dataclass(frozen=True)
class SimulatedSize:
    """``synthetic`` images shared by ``generators``, ``real`` ones, over ``groups`` source groups."""

    synthetic: int
    real: int
    generators: int = 10
    groups: int = 400
    dim: int = 64
    shard_rows: int = 250_000


def simulated_id(number: int, seed: int) -> str:
    return hashlib.sha256(f"simulated:{seed}:{number}".encode()).hexdigest()


def write_simulated_store(root: Path, size: SimulatedSize, *, seed: int = 0) -> StoreLayout:
    """Create a store at ``root`` holding ``size``'s images (one clean vector each), arriving one
    a second in a shuffled order; returns its layout."""
    layout = StoreLayout(Path(root))
    catalog = Catalog(layout)
    catalog.create()
    rng = np.random.default_rng(seed)
    n = size.synthetic + size.real
    names = np.array([f"gen-{i:02d}" for i in range(size.generators)], object)
    classes = np.concatenate([np.full(size.real, -1), np.arange(size.synthetic) % size.generators])
    classes = classes[rng.permutation(n)]  # arrival order mixes the classes
    groups = rng.integers(0, size.groups, n)
    shared = rng.normal(size=size.dim).astype(np.float32)
    own = rng.normal(size=(size.generators, size.dim)).astype(np.float32)
    vectors = VectorStore(layout, BACKBONE_ID)
    description = {"name": "simulated", "dim": size.dim, "seed": seed, "backbone_id": BACKBONE_ID}
    for start in range(0, n, size.shard_rows):
        stop = min(n, start + size.shard_rows)
        ids = [simulated_id(i, seed) for i in range(start, stop)]
        chunk = classes[start:stop]
        matrix = rng.standard_normal((stop - start, size.dim), dtype=np.float32)
        synthetic = chunk >= 0
        matrix[synthetic] += 0.10 * shared + 0.12 * own[chunk[synthetic]]
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        vectors.write_shard(ids, np.zeros(len(ids), np.int16), [""] * len(ids), matrix, description)
        rows = pa.table({
            "image_id": ids,
            "label": np.where(synthetic, "synthetic", "real"),
            "generator": pa.array([names[c] if c >= 0 else None for c in chunk.tolist()], pa.string()),
            "source": [f"group-{g:04d}" for g in groups[start:stop].tolist()],
            "ingested_at": pa.array(np.datetime64(START, "s") + np.arange(start, stop).astype("timedelta64[s]"),
                                    pa.timestamp("us")),
        })
        with catalog.transaction() as con:
            con.register("simulated", rows)
            con.execute("INSERT INTO images SELECT image_id, label, generator, source, 'simulated://' || image_id, "
                        "false, 0, 0, 0, 'none', 'none', 1, ingested_at, 'simulated' FROM simulated")
    with catalog.transaction() as con:
        con.execute("INSERT INTO generators SELECT generator, min(ingested_at), count(*) FROM images "
                    "WHERE generator IS NOT NULL GROUP BY generator")
    catalog.create()  # the store's rule assigns every group its split
    return layout
