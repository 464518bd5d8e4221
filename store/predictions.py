"""The prediction log: every verdict given on production traffic (`POST /detect`, `detect --log`),
appended to Parquet under ``<store>/predictions/`` for traffic drift checks and discovery.

Rows are buffered and written in batches, each batch one new file written atomically (a reader or
a crash sees whole files only), named by time so that the oldest go first when the log outgrows
its byte budget. Several service processes may write at once: each file has a unique name. Read
it with plain DuckDB: ``SELECT * FROM read_parquet('<store>/predictions/*.parquet')``.

What is stored, and why: the time, the image's sha256 (to find it again, and to count repeats;
not the image), the verdict (score, threshold, head and backbone), the generator it is most like,
its distance to the nearest known fake (far from every known fake is how an unknown generator
shows), the caller's source tag, and the image's embedding (the vector the nearest known fakes were
looked up with: what the drift check on embeddings compares and what `synthwatch discover`
clusters; a vector is not the image, but it describes its content). The uploaded bytes are kept
only when the service is started with ``--keep-uploads`` (under ``uploads/``, for labelling later).
"""

from __future__ import annotations

import io
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthwatch.store.atomic import atomic_write_bytes
from synthwatch.store.layout import StoreLayout

SCHEMA = pa.schema([
    ("at", pa.timestamp("us", tz="UTC")),
    ("image_id", pa.string()),
    ("score", pa.float64()),
    ("synthetic", pa.bool_()),
    ("threshold", pa.float64()),
    ("head_version", pa.string()),
    ("backbone_id", pa.string()),
    ("attribution", pa.string()),  # the generator it is most like (null: real, or no attribution)
    ("attribution_probability", pa.float64()),
    ("nearest_fake_distance", pa.float64()),  # 1 - cosine similarity to the nearest known fake (null: not looked up)
    ("nearest_fake_generator", pa.string()),
    ("source", pa.string()),  # the caller's tag (`?source=`, `--source`)
    ("channel", pa.string()),  # http | cli
    ("embedding", pa.list_(pa.float32())),  # L2-normalised (null: none computed, or logged before vectors were)
    ("embedding_backbone", pa.string()),  # the backbone id of ``embedding``
])
VECTOR_COLUMNS = ("embedding", "embedding_backbone")
DEFAULT_MAX_BYTES = 1 << 30  # the log's budget on disk; the oldest files go first
DEFAULT_BATCH_ROWS = 256
DEFAULT_FLUSH_S = 5.0


class PredictionLog:
    """A buffered, thread-safe writer of the prediction log of one store."""

    def __init__(self, layout: StoreLayout, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        if max_bytes < 1 or batch_rows < 1:
            raise ValueError(f"Expected a positive byte budget and batch size, but got {max_bytes} and {batch_rows}. "
                             "Pass numbers above 0.")
        self.folder = layout.predictions_dir
        self.max_bytes, self.batch_rows = max_bytes, batch_rows
        self._rows: list[dict] = []
        self._lock = threading.Lock()

    def append(self, rows: list[dict]) -> None:
        """Buffer ``rows`` (keys of :data:`SCHEMA`; ``at`` defaults to now); write a batch once
        ``batch_rows`` are waiting."""
        now = datetime.now(timezone.utc)
        with self._lock:
            self._rows.extend({"at": now, **row} for row in rows)
            full = len(self._rows) >= self.batch_rows
        if full:
            self.flush()

    def flush(self) -> Path | None:
        """Write what is buffered as one Parquet file, then trim the log to its budget; returns
        the file written (None when nothing was waiting)."""
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return None
            table = pa.Table.from_pylist(rows, schema=SCHEMA)
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression="zstd")
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            path = self.folder / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
            atomic_write_bytes(path, buffer.getvalue())
            self._trim()
            return path

    def _trim(self) -> None:
        """Delete the oldest files until the log fits ``max_bytes`` (the newest is always kept)."""
        files = log_files(self.folder)
        sizes = []
        for path in files:
            try:
                sizes.append(path.stat().st_size)
            except FileNotFoundError:  # another process trimmed it
                sizes.append(0)
        total = sum(sizes)
        for path, size in zip(files[:-1], sizes[:-1]):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


class PeriodicFlush:
    """Flush a log every ``interval_s`` from a daemon thread (so a quiet service still writes
    what it answered), and once more on :meth:`stop`."""

    def __init__(self, log: PredictionLog, interval_s: float = DEFAULT_FLUSH_S) -> None:
        self.log, self.interval_s = log, interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log-flush", daemon=True)

    def start(self) -> "PeriodicFlush":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.log.flush()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)
        self.log.flush()


def log_files(folder: Path) -> list[Path]:
    """The log's files, oldest first (names start with their UTC time)."""
    return sorted(folder.glob("part-*.parquet")) if folder.exists() else []


def read_predictions(layout: StoreLayout, *, since: datetime | None = None, vectors: bool = False) -> pa.Table:
    """Every logged prediction (at or after ``since``), oldest first; the embeddings only with
    ``vectors`` (they are most of the log's bytes). Files written before a column existed read
    it as nulls."""
    schema = SCHEMA if vectors else pa.schema([f for f in SCHEMA if f.name not in VECTOR_COLUMNS])
    files = log_files(layout.predictions_dir)
    if not files:
        return schema.empty_table()
    parts = []
    for path in files:
        try:
            parts.append(pq.read_table(path, schema=SCHEMA, columns=schema.names))
        except FileNotFoundError:  # trimmed by a writer since it was listed
            continue
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    if since is not None:
        import pyarrow.compute as pc

        table = table.filter(pc.greater_equal(table["at"], pa.scalar(since, SCHEMA.field("at").type)))
    return table.sort_by("at")


def prediction_rows(table: pa.Table) -> list[dict]:
    """The rows of :func:`read_predictions` as dicts, each ``embedding`` (when read) a float32
    array or None: what the traffic checks and discovery take."""
    plain = [name for name in table.column_names if name != "embedding"]
    rows = table.select(plain).to_pylist()
    if "embedding" in table.column_names:
        column = table["embedding"].combine_chunks()
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        offsets = column.offsets.to_numpy()
        values = column.values.to_numpy(zero_copy_only=False)
        for position, row in enumerate(rows):
            row["embedding"] = (values[offsets[position]:offsets[position + 1]] if valid[position] else None)
    return rows


def most_common_backbone(rows: list[dict]) -> str | None:
    """The backbone most of ``rows``' embeddings are of (vectors of different backbones are never
    compared); None when no row has one."""
    from collections import Counter

    counted = Counter(row.get("embedding_backbone") for row in rows if row.get("embedding") is not None)
    return counted.most_common(1)[0][0] if counted else None


def keep_upload(layout: StoreLayout, image_id: str, data: bytes) -> Path:
    """Keep an uploaded image for labelling later (``--keep-uploads``), content-addressed."""
    path = layout.upload_path(image_id)
    if not path.exists():
        atomic_write_bytes(path, data)
    return path
