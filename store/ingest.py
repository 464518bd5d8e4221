"""Ingestion: read, hash, dedupe, fully decode and register images, in atomic batches.

Each batch is read and hashed in a thread pool (hashing and decoding release the GIL), checked
against the catalog, decoded and copied into content-addressed blobs, and then committed in one
DuckDB transaction. A crash loses at most the batch in flight; blobs are written before the rows
that name them, so a committed row always has its bytes. Re-running skips what is stored.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from synthwatch.embeddings.decode import DecodeLimits, ImageInfo, ImageRejected, decode_image, read_image_file
from synthwatch.store.atomic import atomic_write_bytes, remove_stale_temporaries, sync_filesystem
from synthwatch.store.catalog import Batch, Catalog, ImageRecord, KnownImage, QuarantineRecord, utc_now
from synthwatch.store.layout import StoreLayout
from synthwatch.store.lock import write_lock
from synthwatch.store.candidates import Candidate, Plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest: copy originals into the store or reference them, limits, batching."""

    copy: bool = True
    limits: DecodeLimits = DecodeLimits()
    batch_size: int = 128
    workers: int = max(1, min(8, os.cpu_count() or 1))


@dataclass
class IngestReport:
    """What one run did; ``as_dict`` is the ``ingest --json`` contract."""

    run_id: str = ""
    ingested: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: int = 0
    conflicts: int = 0
    new_generators: list[str] = field(default_factory=list)
    rejections: list[dict] = field(default_factory=list)
    conflict_details: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        files = self.ingested + self.duplicates + self.rejected + self.conflicts
        return {
            "run_id": self.run_id,
            "ingested": self.ingested,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "conflicts": self.conflicts,
            "new_generators": self.new_generators,
            "rejections": self.rejections,
            "conflict_details": self.conflict_details,
            "elapsed_s": round(self.elapsed_s, 3),
            "files_per_s": round(files / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
        }


@dataclass
class _Read:
    candidate: Candidate
    data: bytes
    image_id: str


Progress = Callable[[int], None]


def ingest(
    layout: StoreLayout,
    plan: Plan,
    options: IngestOptions = IngestOptions(),
    *,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest everything in ``plan`` into the store at ``layout``; see the module docstring."""
    if options.batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1, but got {options.batch_size}.")
    started = time.perf_counter()
    catalog = Catalog(layout)
    catalog.create()
    report = IngestReport(skipped=len(plan.skipped))
    with write_lock(layout.lock_path), ThreadPoolExecutor(options.workers) as pool:
        remove_stale_temporaries(layout.blobs_dir)
        report.run_id = catalog.start_run("ingest")
        early = Batch(quarantine=[QuarantineRecord(item.path, item.reason) for item in plan.invalid])
        _commit(catalog, early, report)
        for chunk in _chunks(plan.candidates, options.batch_size):
            batch = _process_chunk(chunk, catalog, layout, options, pool, report)
            _commit(catalog, batch, report)
            if progress is not None:
                progress(len(chunk))
        report.elapsed_s = time.perf_counter() - started
        catalog.finish_run(report.run_id, {k: v for k, v in report.as_dict().items()
                                           if k not in ("rejections", "conflict_details")})
    log.info("ingested %d new images into %s (%d duplicates, %d rejected, %d conflicts) in %.1f s; new generators: %s",
             report.ingested, layout.root, report.duplicates, report.rejected, report.conflicts, report.elapsed_s,
             ", ".join(report.new_generators) or "none")
    return report


def _commit(catalog: Catalog, batch: Batch, report: IngestReport) -> None:
    if not batch.images and not batch.quarantine:
        return
    report.new_generators += catalog.commit(batch, report.run_id)
    report.ingested += len(batch.images)
    for item in batch.quarantine:
        entry = {"path": item.path, "reason": item.reason}
        if item.kind == "conflict":
            report.conflicts += 1
            report.conflict_details.append(entry)
        else:
            report.rejected += 1
            report.rejections.append(entry)


def _process_chunk(
    chunk: Sequence[Candidate],
    catalog: Catalog,
    layout: StoreLayout,
    options: IngestOptions,
    pool: ThreadPoolExecutor,
    report: IngestReport,
) -> Batch:
    batch = Batch()
    reads: list[_Read] = []
    for result in pool.map(functools.partial(_read_and_hash, limits=options.limits), chunk):
        if isinstance(result, QuarantineRecord):
            batch.quarantine.append(result)
        else:
            reads.append(result)
    known = catalog.lookup(sorted({read.image_id for read in reads}))
    fresh: dict[str, _Read] = {}
    repeats: list[_Read] = []
    for read in reads:
        previous = known.get(read.image_id)
        if previous is not None:
            _classify_repeat(read, previous, batch, report)
        elif read.image_id in fresh:
            repeats.append(read)  # same bytes twice in this batch: judged once decoded
        else:
            fresh[read.image_id] = read
    stamp = utc_now()
    outcomes = dict(zip(fresh, pool.map(lambda r: _decode_and_store(r, layout, options), fresh.values())))
    if options.copy and outcomes:  # the blobs (bytes and names) on disk before the catalog says they exist
        sync_filesystem(layout.root)
    for image_id, outcome in outcomes.items():
        if isinstance(outcome, QuarantineRecord):
            batch.quarantine.append(outcome)
        else:
            batch.images.append(_record(fresh[image_id], outcome, options.copy, stamp, report.run_id))
            candidate = fresh[image_id].candidate
            if candidate.split is not None:
                batch.shipped_splits[candidate.source] = candidate.split
    for read in repeats:
        outcome = outcomes[read.image_id]
        if isinstance(outcome, QuarantineRecord):
            batch.quarantine.append(QuarantineRecord(str(read.candidate.path), outcome.reason,
                                                     image_id=read.image_id))
        else:
            first = fresh[read.image_id].candidate
            _classify_repeat(read, KnownImage(first.label, first.generator, str(first.path)),
                             batch, report)
    return batch


def _classify_repeat(read: _Read, previous: KnownImage, batch: Batch, report: IngestReport) -> None:
    """Bytes seen before: a duplicate if the label agrees, else a conflict to quarantine."""
    if _same_label(previous, read.candidate):
        report.duplicates += 1
    else:
        batch.quarantine.append(_conflict(read, previous))


def _read_and_hash(candidate: Candidate, *, limits: DecodeLimits) -> _Read | QuarantineRecord:
    try:
        data = read_image_file(candidate.path, limits)
    except ImageRejected as rejection:
        return QuarantineRecord(str(candidate.path), rejection.reason)
    except FileNotFoundError:
        return QuarantineRecord(str(candidate.path), "file not found (removed during ingest?)")
    except OSError as error:
        return QuarantineRecord(str(candidate.path), f"unreadable: {error.strerror or error}")
    return _Read(candidate, data, hashlib.sha256(data).hexdigest())


def _decode_and_store(read: _Read, layout: StoreLayout, options: IngestOptions) -> ImageInfo | QuarantineRecord:
    try:
        _, info = decode_image(read.data, options.limits)
    except ImageRejected as rejection:
        return QuarantineRecord(str(read.candidate.path), rejection.reason, image_id=read.image_id)
    if options.copy:
        blob = layout.blob_path(read.image_id)
        if not blob.exists():
            atomic_write_bytes(blob, read.data)
    return info


def _record(read: _Read, info: ImageInfo, copied: bool, stamp, run_id: str) -> ImageRecord:
    candidate = read.candidate
    return ImageRecord(
        image_id=read.image_id,
        label=candidate.label,
        generator=candidate.generator,
        source=candidate.source,
        original_path=candidate.origin or str(candidate.path),
        stored=copied,
        size_bytes=len(read.data),
        width=info.width,
        height=info.height,
        format=info.format,
        mode=info.mode,
        frames=info.frames,
        ingested_at=stamp,
        run_id=run_id,
    )


def _same_label(previous: KnownImage, candidate: Candidate) -> bool:
    return previous.label == candidate.label and previous.generator == candidate.generator


def _describe_label(label: str, generator: str | None) -> str:
    return label if generator is None else f"{label}/{generator}"


def _conflict(read: _Read, previous: KnownImage) -> QuarantineRecord:
    reason = (
        f"conflict: these bytes are already stored as "
        f"{_describe_label(previous.label, previous.generator)} (from {previous.original_path}), "
        f"but this file says {_describe_label(read.candidate.label, read.candidate.generator)}; "
        "nothing was changed: fix the label or remove one copy"
    )
    return QuarantineRecord(str(read.candidate.path), reason, kind="conflict", image_id=read.image_id)


def _chunks(items: Sequence[Candidate], size: int) -> Iterable[Sequence[Candidate]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
