"""The store commands: ingest, status, corpus build, embed, index, similar and duplicates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synthwatch.embeddings.decode import DecodeLimits
from synthwatch.embeddings.errors import EmbeddingError
from synthwatch.store.errors import StoreError
from synthwatch.store.ingest import IngestOptions
from synthwatch.store.verify import verify_store
from synthwatch.api import Store, open_neighbors
from synthwatch.cli.output import print_corpus, print_ingest, print_json, print_status
from synthwatch.settings import Settings


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.api import plan_ingest
    from synthwatch.store.layouts import summarise

    if args.dry_run:
        plan, layout = plan_ingest(args.paths, label=args.label, generator=args.generator, source=args.source,
                                   root=args.root, layout=args.layout, discovery=args.from_discovery,
                                   store=settings.layout)
        summary = summarise(layout, plan)
        if args.json:
            print_json(summary)
        else:
            print(f"would ingest ({layout}): {summary['real']} real, "
                  f"{sum(summary['synthetic'].values())} synthetic in {summary['sources']} source groups; "
                  f"{summary['skipped']} files skipped, {summary['invalid']} refused")
            for generator, count in summary["synthetic"].items():
                print(f"  {count:8d}  {generator}")
        return 0
    options = IngestOptions(copy=not args.no_copy, limits=_limits(args), batch_size=args.batch_size)
    report = Store(settings.store_root).ingest(
        *args.paths, label=args.label, generator=args.generator, source=args.source, root=args.root,
        layout=args.layout, discovery=args.from_discovery, options=options,
        progress_factory=None if args.json or args.quiet else _progress_bar("ingest", "file")).as_dict()
    if args.json:
        print_json(report)
    else:
        print_ingest(report)
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    status = Store(settings.store_root).status()
    repairs = _repair(settings.layout) if args.repair else []  # finds what is damaged itself
    if repairs:
        status["repairs"] = repairs
    if args.verify or args.repair:
        status["problems"] = verify_store(settings.layout)  # with --repair: what is left
    if args.json:
        print_json(status)
    else:
        print_status(status, settings)
    return 1 if status.get("problems") else 0


def _repair(layout) -> list[str]:
    """Set damaged vector shards aside and re-embed their images; rebuild damaged indexes."""
    from synthwatch.embeddings.job import reembed_set_aside
    from synthwatch.store.indexing import sync_index
    from synthwatch.store.verify import damaged_indexes, set_aside_damaged_shards

    done = []
    for backbone_id, moved in set_aside_damaged_shards(layout).items():
        done += [f"set aside {path}" for path in moved]
        report = reembed_set_aside(layout, backbone_id, moved)
        done.append(f"re-embedded {report.images} images ({report.embedded} rows) for {backbone_id}")
    for backbone_id in damaged_indexes(layout):
        result = sync_index(layout, backbone_id, rebuild=True)
        done.append(f"rebuilt the index of {backbone_id} ({result['ntotal']} vectors)")
    return done


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.store.snapshots import restore_catalog

    result = restore_catalog(settings.layout, Path(args.snapshot) if args.snapshot else None)
    if args.json:
        print_json(result)
        return 0
    rows = result["rows"]
    print(f"restored the catalog from {result['snapshot']} (taken {result['taken_at'][:19]} UTC): "
          f"{rows.get('images', 0)} images, {rows.get('events', 0)} events, {rows.get('runs', 0)} runs")
    if result["damaged_catalog_kept"]:
        print(f"the damaged catalog is kept as {result['damaged_catalog_kept']}")
    if result["originals_not_in_catalog"]:
        print(f"{result['originals_not_in_catalog']} stored originals are not in it (ingested after the snapshot): "
              "run those ingests again")
    return 0


def cmd_corpus_build(args: argparse.Namespace, settings: Settings) -> int:
    summary = _build_corpus(args.out, seed=args.seed, size=args.size, cache=args.cache)
    if args.json:
        print_json(summary)
    else:
        print_corpus(summary)
    return 0


def cmd_embed(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.embeddings.engine import EngineOptions

    options = EngineOptions(seed=args.seed, batch_size=args.batch_size, workers=args.workers,
                            device=args.device, shard_images=args.shard_images)
    report = Store(settings.store_root).embed(
        args.backbone, views=args.views, patches=args.patches, layers=_parse_layers(args.layers), mode=args.mode,
        revision=args.revision, allow_random_weights=args.allow_random_weights, options=options,
        progress_factory=None if args.json or args.quiet else _progress_bar("embed", "image"))
    result = report.as_dict()
    if args.json:
        print_json(result)
    else:
        rate = f", {result['images_per_s']:.1f} images/s" if result["images_per_s"] else ""
        print(f"embed {result['backbone_id']}: {result['embedded']} rows written "
              f"({result['images']} images, {result['shards']} shards), {result['skipped']} already "
              f"present, {result['failed']} failed, dim {result['dim']}{rate}")
        for failure in result["failures"]:
            print(f"  failed  {failure['path']}: {failure['reason']}")
    return 0


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.store.backbones import resolve_backbone
    from synthwatch.store.indexing import sync_index

    backbone_id = resolve_backbone(settings.layout, args.backbone)
    result = sync_index(settings.layout, backbone_id, codes=args.codes, rebuild=args.rebuild)
    if args.json:
        print_json(result)
    else:
        search = f", nprobe {result['nprobe']} of {result['nlist']} lists" if result["nlist"] else ", exact search"
        print(f"index {result['backbone_id']}: {result['action']}, {result['ntotal']} vectors, "
              f"{result['index_type']} ({result['factory']}{search}), +{result['added']} -{result['removed']}")
    return 0


def cmd_similar(args: argparse.Namespace, settings: Settings) -> int:
    payload = Store(settings.store_root).similar(args.images, k=args.k, label=args.label, generator=args.generator,
                                                 backbone=args.backbone).as_dict()
    results = payload["results"]
    if args.json:
        print_json(payload)
    else:
        for entry in results:
            print(f"{entry['query']}:" + (f" rejected: {entry['error']}" if "error" in entry else ""))
            for rank, n in enumerate(entry["neighbors"], start=1):
                print(f"  {rank:2d}. {n['score']:.4f}  {n['label']:<9} {n['generator'] or '-':<16} {n['path']}")
            if "matching" in entry and entry["matching"] < args.k:
                print(f"  (only {entry['matching']} indexed images match the filters)")
    return 0


def cmd_duplicates(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.store.neighbors import near_duplicate_groups

    neighbors = open_neighbors(settings.layout, args.backbone)
    pairs = neighbors.pairs_above(args.threshold)
    info = neighbors.catalog.image_labels()
    splits, seed = neighbors.catalog.group_splits(), neighbors.catalog.split_seed()
    groups = []
    for group in near_duplicate_groups(pairs):
        images = [{"image_id": i, "label": info[i][0], "generator": info[i][1], "path": info[i][2],
                   "split": splits.get(info[i][3])} for i in group["image_ids"]]
        groups.append({"images": images, "min_score": group["min_score"],
                       "straddles_splits": len({image["split"] for image in images}) > 1})
    payload = {"backbone_id": neighbors.backbone_id, "threshold": args.threshold, "split_seed": seed,
               "groups": groups, "pairs": len(pairs), "straddling_groups": sum(g["straddles_splits"] for g in groups)}
    if args.json:
        print_json(payload)
    else:
        print(f"{len(groups)} groups of near-duplicates (similarity >= {args.threshold}) in {neighbors.backbone_id}; "
              f"{payload['straddling_groups']} straddle the train/val/test splits (evaluation drops their "
              "held-out members)")
        for number, group in enumerate(groups, start=1):
            flag = "  STRADDLES SPLITS" if group["straddles_splits"] else ""
            print(f"group {number} (min similarity {group['min_score']:.4f}){flag}:")
            for image in group["images"]:
                print(f"  {image['label']:<9} {image['generator'] or '-':<16} {image['split'] or '-':<5} {image['path']}")
    return 0


def _parse_layers(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise EmbeddingError(f"Expected --layers as comma-separated integers such as 4,8,12, but got {text!r}.") from None


def _progress_bar(desc: str, unit: str):
    """A factory of tqdm progress callbacks (shown only on a terminal)."""
    from tqdm import tqdm

    def factory(total: int):
        bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, disable=not sys.stderr.isatty())
        return bar.update

    return factory


def _limits(args: argparse.Namespace) -> DecodeLimits:
    try:
        return DecodeLimits(max_pixels=args.max_pixels, min_side=args.min_side, max_bytes=args.max_bytes)
    except ValueError as error:
        raise StoreError(f"{error} (--max-pixels, --min-side, --max-bytes)") from None


def _build_corpus(out: str, *, seed: int, size: str, cache: str | None) -> dict:
    from synthwatch.corpus import build_corpus

    try:
        summary = build_corpus(Path(out), seed=seed, size=size,
                               cache_dir=Path(cache) if cache else None)
    except FileExistsError as error:
        raise StoreError(str(error)) from None
    return summary.as_dict()
