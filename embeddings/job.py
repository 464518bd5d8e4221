"""`synthwatch embed`: embed every catalog image that lacks vectors for a backbone id."""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

from synthwatch.embeddings.backbone import Backbone
from synthwatch.embeddings.engine import EngineOptions, Rows, WorkItem, run_engine
from synthwatch.embeddings.views import PATCH_VIEWS_FROM, patch_views
from synthwatch.store.catalog import Batch, Catalog, QuarantineRecord
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.lock import job_lock
from synthwatch.store.vectors import VectorStore

log = logging.getLogger(__name__)
MIN_CHUNKS = 16  # a fan-out makes at least this many chunks when it has the images


@dataclass
class EmbedReport:
    """What one run did; ``as_dict`` is the ``embed --json`` contract."""

    backbone_id: str
    dim: int
    weights: str
    embedded: int = 0
    skipped: int = 0
    failed: int = 0
    images: int = 0
    shards: int = 0
    elapsed_s: float = 0.0
    failures: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "backbone_id": self.backbone_id, "dim": self.dim, "weights": self.weights,
            "embedded": self.embedded, "skipped": self.skipped, "failed": self.failed,
            "images": self.images, "shards": self.shards, "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": round(self.images / self.elapsed_s, 2) if self.elapsed_s > 0 and self.images else None,
            "failures": self.failures,
        }


def wanted_views(views: int, patches: int = 0, extra_views: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The view numbers an embedding wants: 0..``views`` (clean and augmented), ``patches`` patch
    views (``embeddings.views.patch_views``) and ``extra_views``."""
    if not 0 <= views < PATCH_VIEWS_FROM:
        raise ValueError(f"Expected 0..{PATCH_VIEWS_FROM - 1} augmented views, but got {views}. "
                         "Give --views in that range.")
    return tuple(range(views + 1)) + patch_views(patches) + tuple(extra_views)


def plan_embedding(layout: StoreLayout, vectors: VectorStore, views: int, *, patches: int = 0,
                   extra_views: tuple[int, ...] = (), only: set[str] | None = None) -> tuple[list[WorkItem], int]:
    """Work items for images lacking any of :func:`wanted_views`, and the rows already stored;
    ``only`` restricts the plan to those image ids."""
    present = vectors.present_views()
    files = Catalog(layout).image_files()
    rows = zip(*(files.column(name).to_pylist() for name in ("image_id", "stored", "original_path")))
    wanted = wanted_views(views, patches, extra_views)
    items, skipped = [], 0
    for image_id, stored, original in rows:
        if only is not None and image_id not in only:
            continue
        have = present.get(image_id, 0)
        skipped += sum(1 for view in wanted if have >> view & 1)
        missing = tuple(view for view in wanted if not have >> view & 1)
        if missing:
            path = layout.blob_path(image_id) if stored else original
            items.append(WorkItem(image_id, str(path), missing))
    return items, skipped


def embed_store(
    layout: StoreLayout,
    backbone: Backbone,
    *,
    views: int = 0,
    patches: int = 0,
    extra_views: tuple[int, ...] = (),
    only: set[str] | None = None,
    options: EngineOptions = EngineOptions(),
    progress_factory: Callable[[int], Callable[[int], None]] | None = None,
    lock: bool = True,
) -> EmbedReport:
    """Embed what the store lacks for ``backbone``; resumable after a crash at any point.

    ``patches`` adds that many patch views, ``extra_views`` view numbers beyond them (the
    robustness views), and ``only`` restricts the work to some image ids (evaluation embeds its
    test images that way). ``lock`` False is for workers of a fan-out whose coordinator holds
    :func:`embedding_lock`: they write shards only and leave the catalog to the coordinator (its
    one writer), which commits the failures they report (:func:`record_fan_out`).
    """
    wanted_views(views, patches)  # refuses counts out of range before anything starts
    report = EmbedReport(backbone.backbone_id, backbone.dim, backbone.weights)
    if not layout.exists():
        return report
    started = time.perf_counter()
    catalog = Catalog(layout)
    vectors = VectorStore(layout, backbone.backbone_id)
    description = backbone.describe()
    with embedding_lock(layout, backbone.backbone_id) if lock else nullcontext():
        if lock:
            vectors.clean_temporaries()
        items, report.skipped = plan_embedding(layout, vectors, views, patches=patches, extra_views=extra_views,
                                                  only=only)
        run_id = catalog.start_run("embed") if lock else None
        failures: list[QuarantineRecord] = []

        def on_failure(item: WorkItem, reason: str) -> None:
            failures.append(QuarantineRecord(item.path, reason, image_id=item.image_id))
            report.failures.append({"image_id": item.image_id, "path": item.path, "reason": reason})

        def sink(rows: Rows) -> None:
            vectors.write_shard(rows.image_ids, rows.views, rows.augmentations, rows.vectors, description)
            if lock:
                _record_failures(catalog, failures, run_id)

        progress = progress_factory(len(items)) if progress_factory else None
        counts = run_engine(items, backbone, options, sink=sink, on_failure=on_failure, progress=progress)
        report.embedded, report.failed = counts["rows"], counts["failed"]
        report.images, report.shards = counts["images"], counts["shards"]
        report.elapsed_s = time.perf_counter() - started
        if lock:
            _record_failures(catalog, failures, run_id)
            catalog.finish_run(run_id, {k: v for k, v in report.as_dict().items() if k != "failures"})
    log.info("embedded %d images (%d rows, %d failed) with %s in %.1f s", report.images, report.embedded,
             report.failed, backbone.backbone_id, report.elapsed_s)
    return report


def record_fan_out(layout: StoreLayout, reports: list[dict]) -> str:
    """The coordinator of a fan-out commits what its workers report (their failures, quarantined,
    and one run record): the catalog keeps one writer. Returns the run's id."""
    catalog = Catalog(layout)
    run_id = catalog.start_run("embed")
    failures = [QuarantineRecord(f["path"], f["reason"], image_id=f["image_id"]) for r in reports for f in r["failures"]]
    _record_failures(catalog, failures, run_id)
    totals = {key: sum(r[key] for r in reports) for key in ("embedded", "skipped", "failed", "images", "shards")}
    catalog.finish_run(run_id, {**totals, "chunks": len(reports), "workers": len({r["worker"] for r in reports})})
    return run_id


def embedding_lock(layout: StoreLayout, backbone_id: str):
    """The lock one embedding job (or the coordinator of a fan-out) holds for a backbone id."""
    return job_lock(layout, f"embed-{backbone_id}")


def plan_chunks(layout: StoreLayout, backbone_id: str, *, views: int = 0, patches: int = 0,
                chunk_images: int = 1024) -> list[list[str]]:
    """Image ids lacking vectors for ``backbone_id``, in chunks for workers of a fan-out: at most
    ``chunk_images`` each, and at least ``MIN_CHUNKS`` chunks when there are enough images, so a
    small batch still spreads over the workers (and a lost worker loses one small chunk)."""
    items, _ = plan_embedding(layout, VectorStore(layout, backbone_id), views, patches=patches)
    ids = [item.image_id for item in items]
    size = max(1, min(chunk_images, -(-len(ids) // MIN_CHUNKS)))
    return [ids[start:start + size] for start in range(0, len(ids), size)]


def resolve_pipeline_backbone(layout: StoreLayout, requested: str | None = None, *,
                              allow_random_weights: bool = False) -> Backbone:
    """The backbone a pipeline cycle embeds with: ``requested`` (:func:`embedding_backbone`), else the
    champion head's, else the only one the store has vectors of, else the default (``dinov2-small``)."""
    from synthwatch.embeddings.backbone import backbone_from_description, create_backbone
    from synthwatch.embeddings.registry import DEFAULT_BACKBONE
    from synthwatch.store.backbones import resolve_backbone

    if requested:
        return embedding_backbone(layout, requested, allow_random_weights=allow_random_weights)
    description = _champion_backbone(layout)
    if not description:
        try:
            description = VectorStore(layout, resolve_backbone(layout)).shape_and_description()[1]
        except StoreError:  # no vectors yet, or several backbones' and no champion to choose
            return create_backbone(DEFAULT_BACKBONE, allow_random_weights=allow_random_weights)
    return backbone_from_description(description)


def embedding_backbone(layout: StoreLayout, name: str, *, layers: tuple[int, ...] | None = None,
                       mode: str | None = None, revision: str | None = None,
                       allow_random_weights: bool = False) -> Backbone:
    """The backbone that embeds ``name``: the champion head's own (its layers, mode and revision)
    when it is ``name``'s and none of them is asked for, so a store keeps making the vectors its
    champion reads when a backbone's defaults change; else ``name`` as asked."""
    from synthwatch.embeddings.backbone import backbone_from_description, create_backbone

    description = _champion_backbone(layout) if layers is None and mode is None and revision is None else None
    if description and description.get("name") == name:
        return backbone_from_description(description)
    return create_backbone(name, layers=layers, mode=mode or "crop", revision=revision,
                           allow_random_weights=allow_random_weights)


def _champion_backbone(layout: StoreLayout) -> dict | None:
    from synthwatch.store.registry import HeadRegistry

    registry = HeadRegistry(layout)
    champion = registry.champion()
    return registry.record(champion).get("backbone") if champion else None


def _record_failures(catalog: Catalog, failures: list[QuarantineRecord], run_id: str) -> None:
    if failures:
        catalog.commit(Batch(quarantine=list(failures)), run_id)
        failures.clear()


def reembed_set_aside(layout: StoreLayout, backbone_id: str, set_aside: list, *,
                      options: EngineOptions = EngineOptions()) -> EmbedReport:
    """Recompute the rows of shards set aside as damaged, with the backbone that made them (from
    the shards' own metadata): the images they held where their ids can still be read, else every
    image missing one of the views they held."""
    import pyarrow.parquet as pq

    from synthwatch.embeddings.backbone import backbone_from_description
    from synthwatch.store.vectors import METADATA_KEY

    description, ids, views = None, set(), set()
    for shard in [*set_aside, *VectorStore(layout, backbone_id).shards()]:
        try:
            description = description or json.loads(pq.read_schema(shard).metadata[METADATA_KEY])
            table = pq.read_table(shard, columns=["image_id", "view"])
        except Exception:  # noqa: BLE001 - a damaged shard may keep its footer but not its columns
            continue
        if shard in set_aside:
            ids |= set(table.column("image_id").to_pylist())
        views |= set(table.column("view").to_pylist())
    if description is None:
        raise StoreError(f"Expected the description of {backbone_id} in its shards' metadata, but none could be "
                         f"read. Run `synthwatch embed --backbone NAME` with the backbone that made them.")
    augmented = max((v for v in views if v < PATCH_VIEWS_FROM), default=0)
    others = tuple(sorted(v for v in views if v >= PATCH_VIEWS_FROM))  # patch and robustness views
    return embed_store(layout, backbone_from_description(description), views=augmented, extra_views=others,
                       only=ids or None, options=options)
