"""The ``synthwatch`` command line: parse arguments, call the libraries, print results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from embeddings.decode import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, DecodeLimits
from embeddings.errors import EmbeddingError
from store.catalog import Catalog
from store.errors import StoreError
from store.ingest import IngestOptions, ingest
from store.sources import plan_sources
from store.vectors import embedding_counts
from store.verify import verify_store
from embeddings.registry import DEFAULT_BACKBONE, REGISTRY
from synthwatch import __version__
from synthwatch.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    settings = Settings.from_args(args.store)
    try:
        return args.handler(args, settings)
    except (StoreError, EmbeddingError, ValueError) as error:
        print(f"synthwatch: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("synthwatch: interrupted; stored batches are kept, run again to continue.",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


# -- commands ----------------------------------------------------------------------------------


def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    plan = plan_sources(
        args.paths, label=args.label, generator=args.generator, source=args.source,
        manifest_root=args.root,
    )
    options = IngestOptions(
        copy=not args.no_copy,
        limits=_limits(args),
        batch_size=args.batch_size,
    )
    report = _run_ingest(settings, plan, options, quiet=args.json or args.quiet)
    if args.json:
        _print_json(report)
    else:
        _print_ingest(report)
    return 0


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    status = _status(settings)
    if args.verify:
        status["problems"] = verify_store(settings.layout)
    if args.json:
        _print_json(status)
    else:
        _print_status(status, settings)
    return 1 if status.get("problems") else 0


def _cmd_corpus_build(args: argparse.Namespace, settings: Settings) -> int:
    summary = _build_corpus(args.out, seed=args.seed, size=args.size, cache=args.cache)
    if args.json:
        _print_json(summary)
    else:
        _print_corpus(summary)
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.demo import DemoOptions, run_demo

    say = (lambda message: print(message, file=sys.stderr)) if args.json else print
    result = run_demo(settings.layout, DemoOptions(data=Path(args.data).resolve(), seed=args.seed,
                                                   backbone=args.backbone), say=say)
    if args.json:
        _print_json(result)
    return 0


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from flows.cycle import continual_flow

    gate = _policy(args).as_dict()
    result = continual_flow(store=str(settings.store_root), backbone=args.backbone,
                            allow_random_weights=args.allow_random_weights, dask_address=args.dask,
                            gate=gate, alpha=args.alpha)
    if args.json:
        _print_json(result)
    else:
        print(f"cycle: ingested {result['ingested']}, embedded {result['embedded']}, new generators: "
              f"{', '.join(result['new_generators']) or 'none'}")
        _print_drift(result["drift"])
        if result["retrained"]:
            print(f"retrained ({'; '.join(result['retrain_wanted'])}): candidate {result['candidate']}")
            _print_decision(result)
        else:
            print(f"no retraining needed; champion: {result['champion']}")
    return 0


def _cmd_sources(args: argparse.Namespace, settings: Settings) -> int:
    from store.watched import add_source, list_sources, remove_source

    if args.sources_command == "add":
        watched = add_source(settings.layout, args.location, label=args.label, generator=args.generator,
                             source=args.source, cron=args.schedule, every=args.every)
        payload = watched.as_dict()
    elif args.sources_command == "remove":
        if not remove_source(settings.layout, args.location):
            raise StoreError(f"Expected a watched source, but {args.location} is not one. See `synthwatch sources list`.")
        payload = {"removed": args.location}
    else:
        payload = {"sources": [s.as_dict() for s in list_sources(settings.layout)]}
    if args.json:
        _print_json(payload)
    elif args.sources_command == "list":
        for source in payload["sources"]:
            when = source["cron"] or (f"every {source['every_s']} s" if source["every_s"] else "on each cycle")
            print(f"{source['kind']:<8} {source['uri']}  ({when})")
    else:
        print(payload)
    return 0


def _cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from flows.deploy import serve_store

    gate = _policy(args).as_dict()
    serve_store(str(settings.store_root), backbone=args.backbone, allow_random_weights=args.allow_random_weights,
                dask_address=args.dask, gate=gate, alpha=args.alpha)
    return 0


def _cmd_embed(args: argparse.Namespace, settings: Settings) -> int:
    from embeddings.backbone import create_backbone
    from embeddings.engine import EngineOptions
    from embeddings.job import embed_store

    backbone = create_backbone(args.backbone, layers=_parse_layers(args.layers), mode=args.mode,
                               revision=args.revision, allow_random_weights=args.allow_random_weights)
    if backbone.weights == "random":
        print("synthwatch: WARNING: no pretrained weights for "
              f"{backbone.spec.name}; embedding with RANDOM weights (--allow-random-weights). "
              f"These vectors are kept apart under {backbone.backbone_id} and are useless for "
              "detection.", file=sys.stderr)
    options = EngineOptions(seed=args.seed, batch_size=args.batch_size, workers=args.workers,
                            device=args.device, shard_images=args.shard_images)
    report = embed_store(settings.layout, backbone, views=args.views, options=options,
                         progress_factory=None if args.json or args.quiet else _progress_bar("embed", "image"))
    result = report.as_dict()
    if args.json:
        _print_json(result)
    else:
        rate = f", {result['images_per_s']:.1f} images/s" if result["images_per_s"] else ""
        print(f"embed {result['backbone_id']}: {result['embedded']} rows written "
              f"({result['images']} images, {result['shards']} shards), {result['skipped']} already "
              f"present, {result['failed']} failed, dim {result['dim']}{rate}")
        for failure in result["failures"]:
            print(f"  failed  {failure['path']}: {failure['reason']}")
    return 0


def _cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from store.indexing import choose_backbone, sync_index

    backbone_id = choose_backbone(settings.layout, args.backbone, among="vectors")
    result = sync_index(settings.layout, backbone_id, codes=args.codes, rebuild=args.rebuild)
    if args.json:
        _print_json(result)
    else:
        search = f", nprobe {result['nprobe']} of {result['nlist']} lists" if result["nlist"] else ", exact search"
        print(f"index {result['backbone_id']}: {result['action']}, {result['ntotal']} vectors, "
              f"{result['index_type']} ({result['factory']}{search}), +{result['added']} -{result['removed']}")
    return 0


def _cmd_similar(args: argparse.Namespace, settings: Settings) -> int:
    from embeddings.backbone import backbone_from_description
    from embeddings.decode import ImageRejected
    from embeddings.query import embed_query

    neighbors = open_neighbor_index(settings.layout, args.backbone)
    backbone = backbone_from_description(neighbors.description)
    results = []
    for path in args.images:
        entry: dict = {"query": str(path)}
        try:
            vector = embed_query(backbone, Path(path).read_bytes())
        except OSError as error:
            raise StoreError(f"Expected a readable image file, but {path} could not be read ({error.strerror or error}).") from None
        except ImageRejected as rejection:
            entry.update(neighbors=[], error=rejection.reason)
            results.append(entry)
            continue
        found, matching = neighbors.search(vector[None], args.k, label=args.label, generator=args.generator)
        entry.update(neighbors=[n.as_dict() for n in found[0]], matching=matching)
        results.append(entry)
    payload = {"backbone_id": neighbors.backbone_id, "k": args.k, "results": results}
    if args.json:
        _print_json(payload)
    else:
        for entry in results:
            print(f"{entry['query']}:" + (f" rejected: {entry['error']}" if "error" in entry else ""))
            for rank, n in enumerate(entry["neighbors"], start=1):
                print(f"  {rank:2d}. {n['score']:.4f}  {n['label']:<9} {n['generator'] or '-':<16} {n['path']}")
            if "matching" in entry and entry["matching"] < args.k:
                print(f"  (only {entry['matching']} indexed images match the filters)")
    return 0


def _cmd_duplicates(args: argparse.Namespace, settings: Settings) -> int:
    from store.neighbors import near_duplicate_groups

    from heads.dataset import split_of_images
    from store.registry import HeadRegistry

    neighbors = open_neighbor_index(settings.layout, args.backbone)
    pairs = neighbors.pairs_above(args.threshold)
    info = {row[0]: row[1:] for row in neighbors.catalog.query(
        "SELECT image_id, label, generator, original_path FROM images")}
    champion = HeadRegistry(settings.layout).champion()
    seed = HeadRegistry(settings.layout).record(champion)["split_seed"] if champion else 0
    split = split_of_images(settings.layout, neighbors.backbone_id, seed=seed)
    groups = []
    for group in near_duplicate_groups(pairs):
        images = [{"image_id": i, "label": info[i][0], "generator": info[i][1], "path": info[i][2],
                   "split": split.get(i)} for i in group["image_ids"]]
        groups.append({"images": images, "min_score": group["min_score"],
                       "straddles_splits": len({image["split"] for image in images}) > 1})
    payload = {"backbone_id": neighbors.backbone_id, "threshold": args.threshold, "split_seed": seed,
               "groups": groups, "pairs": len(pairs), "straddling_groups": sum(g["straddles_splits"] for g in groups)}
    if args.json:
        _print_json(payload)
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


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from heads.detector import HeadSpec
    from heads.jobs import train_and_register
    from heads.promotion import decide

    options = _train_options(args)
    if args.head == "convnext":
        payload = _finetune(args, settings)
    else:
        payload, _ = train_and_register(settings.layout, HeadSpec(args.head), backbone=args.backbone, options=options)
    decision = decide(settings.layout, payload["version"], policy=_policy(args), options=options)
    payload.update({key: decision[key] for key in ("decision", "reasons", "checks", "champion")})
    if args.json:
        _print_json(payload)
    else:
        _print_notes(payload["notes"])
        print(f"trained {payload['head']} head {payload['version']} on {payload['backbone_id'] or 'images'}: "
              f"threshold {payload['threshold']:.6f} for {payload['target_fpr']:.2%} FPR on validation real images")
        _print_evaluation(payload["metrics"])
        _print_decision(payload)
    return 0


def _cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from heads.detector import HeadSpec
    from heads.promotion import retrain

    result = retrain(settings.layout, spec=HeadSpec(args.head), options=_train_options(args), policy=_policy(args),
                     alpha=args.alpha)
    if args.json:
        _print_json(result)
    else:
        _print_notes(result["notes"])
        _print_drift(result["drift"])
        print(f"candidate {result['candidate']}:")
        _print_evaluation(result["metrics"])
        _print_decision(result)
    return 0


def _cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from heads.promotion import force_promote
    from store.registry import HeadRegistry

    registry = HeadRegistry(settings.layout)
    if args.models_command == "list":
        champion = registry.champion()
        models = [{"version": r["version"], "created_at": r["created_at"], "kind": r["kind"],
                   "backbone_id": r.get("backbone_id"), "decision": r.get("gate", {}).get("decision"),
                   "forced": r.get("gate", {}).get("forced", False), "champion": r["version"] == champion,
                   "metrics": r["metrics"]["summary"], "reason": r.get("reason", "")} for r in registry.versions()]
        payload = {"models": models, "champion": champion}
        if args.json:
            _print_json(payload)
        else:
            for m in models:
                summary = m["metrics"]
                auroc = f"held-out AUROC mean {summary['mean_auroc']:.3f}" if summary.get("held_out_generators") else ""
                print(f"{'*' if m['champion'] else ' '} {m['version']}  {m['kind']:<17} {m['decision'] or '-':<9}"
                      f"{' (forced)' if m['forced'] else ''}  {m['created_at'][:19]}  {auroc}")
        return 0
    if args.models_command == "show":
        record = registry.record(args.version)
        record["audit"] = [e for e in registry.audit() if e.get("version") == args.version]
        record["champion"] = registry.champion() == args.version
        if args.json:
            _print_json(record)
        else:
            print(json.dumps(record, indent=1, ensure_ascii=False, default=str))
        return 0
    if args.models_command == "promote":
        record = registry.record(args.version)
        passed = record.get("gate", {}).get("decision") == "promoted"
        if args.force:
            moved = force_promote(settings.layout, args.version, reason=args.reason or "")
        elif passed:
            moved = registry.promote(args.version, reason=args.reason or "promoted by hand (it passed the gate)")
        else:
            raise StoreError(f"Expected a version that passed the gate, but {args.version} was "
                             f"{record.get('gate', {}).get('decision', 'never gated')}. Promote it anyway with "
                             "--force --reason TEXT (recorded as forced).")
        payload = {**moved, "forced": bool(args.force)}
    else:  # rollback
        payload = registry.rollback(reason=args.reason or "rolled back by hand")
    if args.json:
        _print_json(payload)
    else:
        print(f"champion: {payload['before']} -> {payload['after']}" + (" (forced)" if payload.get("forced") else ""))
    return 0


def _finetune(args: argparse.Namespace, settings: Settings) -> dict:
    from heads.finetune import FinetuneOptions
    from heads.finetune_job import finetune_and_register

    options = FinetuneOptions(
        backbone=args.backbone or "convnext-tiny", steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, device=args.device, allow_random_weights=args.allow_random_weights,
        seed=args.seed, checkpoint_every=args.checkpoint_every)
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=options.steps, unit="step", desc="fine-tune", file=sys.stderr)
    progress = (lambda step, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.3f}"))) if bar else None
    payload, _ = finetune_and_register(settings.layout, options, _train_options(args), progress=progress)
    if bar:
        bar.close()
    return payload


def _cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from heads.jobs import evaluate_registered
    from heads.report import write_report

    payload, evaluation = evaluate_registered(settings.layout, version=args.head, protocol=args.protocol,
                                              options=_train_options(args))
    if args.report:
        context = {key: payload[key] for key in ("head_version", "backbone_id") if payload.get(key)}
        html_path, json_path = write_report(Path(args.report), evaluation, context)
        payload["report"], payload["report_json"] = str(html_path.resolve()), str(json_path.resolve())
    if args.json:
        _print_json(payload)
    else:
        _print_notes(payload["notes"])
        print(f"evaluated {payload['head_version'] or 'the default head (none registered)'} on "
              f"{payload['backbone_id'] or 'images (a fine-tuned network)'}")
        _print_evaluation(payload)
        if args.report:
            print(f"report: {payload['report']} (numbers: {payload['report_json']})")
    return 0


def _cmd_detect(args: argparse.Namespace, settings: Settings) -> int:
    from heads.detection import Detector

    detector = Detector.open(settings.layout, args.head)
    neighbors = None
    if args.k:
        try:
            neighbors = open_neighbor_index(settings.layout, detector.backbone_id)
        except StoreError as error:
            print(f"synthwatch: no nearest known fakes: {error}", file=sys.stderr)
    images = [(str(path), _read_image_file(path)) for path in args.images]
    results = detector.detect(images, k=args.k, neighbors=neighbors)
    if args.json:
        _print_json({"head_version": detector.version, "results": results})
        return 0
    for entry in results:
        if "error" in entry:
            print(f"{entry['query']}: rejected: {entry['error']}")
            continue
        verdict = "SYNTHETIC" if entry["synthetic"] else "real"
        attribution = entry["attribution"]
        like = (f"; most like {attribution['generator']} (p {attribution['probability']:.3f}, "
                f"p(real) {attribution['real_probability']:.3f})" if attribution["generator"] else "")
        print(f"{entry['query']}: {verdict}  score {entry['score']:.4f} (threshold {entry['threshold']:.4f}, "
              f"head {entry['head_version']}){like}")
        for rank, n in enumerate(entry["neighbors"], start=1):
            print(f"  {rank:2d}. {n['score']:.4f}  {n['generator'] or '-':<16} {n['path']}")
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from synthwatch.service import create_app

    token = os.environ.get("SYNTHWATCH_API_TOKEN") or None
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if token is None and not args.no_auth:
        raise StoreError("Expected SYNTHWATCH_API_TOKEN to be set (requests must send "
                         "Authorization: Bearer <token>), but it is not. Set it, or pass --no-auth "
                         "to serve without authentication on a loopback address.")
    if args.no_auth and not loopback:
        raise StoreError(f"Expected a loopback --host with --no-auth, but got {args.host}. "
                         "Set SYNTHWATCH_API_TOKEN to serve on other addresses.")
    app = create_app(settings.layout, token=None if args.no_auth else token, backbone=args.backbone,
                     max_upload_bytes=int(args.max_upload_mb * 1024 * 1024))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def open_neighbor_index(layout, requested: str | None):
    """The store's index for the chosen backbone (default: the champion's, else the only one),
    brought up to date first (with a notice)."""
    from store.indexing import open_current_index
    from store.registry import HeadRegistry

    neighbors, notice = open_current_index(layout, requested, preferred=HeadRegistry(layout).champion_backbone())
    if notice:
        print(f"synthwatch: {notice}", file=sys.stderr)
    return neighbors


# -- helpers -----------------------------------------------------------------------------------


def _train_options(args: argparse.Namespace):
    from heads.evaluation import EvalOptions
    from heads.jobs import TrainOptions

    holdout = tuple(name for name in (getattr(args, "holdout", None) or "").split(",") if name)
    evaluation = EvalOptions(target_fpr=args.target_fpr, n_boot=args.n_boot, seed=args.seed)
    return TrainOptions(holdout=holdout, evaluation=evaluation, dedup_threshold=args.dedup_threshold,
                        robustness=not args.no_robustness, reason=getattr(args, "reason", "") or "")


def _policy(args: argparse.Namespace):
    from heads.gate import GatePolicy

    return GatePolicy(auroc_floor=args.auroc_floor, tpr_floor=args.tpr_floor,
                      regression_tolerance=args.regression_tolerance, fpr_bound=args.fpr_bound)


def _print_decision(payload: dict) -> None:
    print(f"decision: {payload['decision'].upper()}; champion: {payload['champion']}")
    for check in payload["checks"]:
        value = "-" if check["value"] is None else f"{check['value']:.4f}"
        threshold = "-" if check["threshold"] is None else f"{check['threshold']:.4f}"
        print(f"  {'pass' if check['passed'] else 'FAIL'}  {check['name']:<40} {value:>8} (threshold {threshold})")
    for reason in payload["reasons"]:
        print(f"  reason: {reason}")


def _print_drift(drift: dict) -> None:
    if not drift.get("checked"):
        print(f"drift: not checked ({drift.get('reason')})")
        return
    print(f"drift: {'DETECTED' if drift['detected'] else 'none'} on {drift['new_synthetic']} new synthetic images "
          f"({', '.join(drift['generators'])}), alpha {drift['alpha']}")
    for check in drift["checks"]:
        print(f"  {check['name']:<22} statistic {check['statistic']:.4f}  p {check['p_value']:.4f}  "
              f"{'drift' if check['drift'] else 'no drift'}")


def _read_image_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise StoreError(f"Expected a readable image file, but {path} could not be read "
                         f"({error.strerror or error}).") from None


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"synthwatch: {note}", file=sys.stderr)


def _print_evaluation(evaluation: dict) -> None:
    protocol = {"logo": "leave one generator out", "holdout": "held-out generators"}[evaluation["protocol"]]
    print(f"evaluation ({protocol}; 95% bootstrap intervals; FPR at the threshold on held-out real images):")
    for name, m in evaluation["per_generator"].items():
        kind = "held out" if m["held_out"] else "known"
        print(f"  {name:<18} {kind:<8} AUROC {m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}, {m['auroc_ci'][1]:.3f}]  "
              f"TPR@1%FPR {m['tpr_at_1fpr']:.3f} [{m['tpr_at_1fpr_ci'][0]:.3f}, {m['tpr_at_1fpr_ci'][1]:.3f}]  "
              f"AP {m['ap']:.3f}  FPR {m['fpr']:.3f}  ({m['n_fake']} fakes, {m['n_real']} real)")
    for name, why in evaluation["skipped"].items():
        print(f"  {name:<18} not measured: {why}")
    for name, conditions in evaluation.get("robustness", {}).items():
        cells = ", ".join(f"{c} AUROC {m['auroc']:.3f} TPR@1%FPR {m['tpr_at_1fpr']:.3f}" for c, m in conditions.items())
        print(f"  robustness {name}: {cells}")


def _status(settings: Settings) -> dict:
    status = Catalog(settings.layout).status()
    status["embeddings"] = embedding_counts(settings.layout)
    status["store"] = str(settings.store_root)
    return status


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
        return DecodeLimits(max_pixels=args.max_pixels, min_side=args.min_side)
    except ValueError as error:
        raise StoreError(f"{error} Pass positive --max-pixels and --min-side.") from None


def _run_ingest(settings: Settings, plan, options: IngestOptions, *, quiet: bool) -> dict:
    from tqdm import tqdm

    bar = tqdm(total=len(plan.candidates), unit="file", desc="ingest", file=sys.stderr,
               disable=quiet or not sys.stderr.isatty())
    with bar:
        report = ingest(settings.layout, plan, options, progress=bar.update)
    return report.as_dict()


def _build_corpus(out: str, *, seed: int, size: str, cache: str | None) -> dict:
    from synthwatch.corpus import build_corpus

    try:
        summary = build_corpus(Path(out), seed=seed, size=size,
                               cache_dir=Path(cache) if cache else None)
    except FileExistsError as error:
        raise StoreError(str(error)) from None
    return summary.as_dict()


def _print_corpus(summary: dict) -> None:
    fakes = sum(summary["synthetic"].values())
    print(f"corpus: {summary['real']} real, {fakes} synthetic from "
          f"{len(summary['synthetic'])} generators in {summary['elapsed_s']:.1f} s "
          f"(trained {len(summary['trained'])}, from cache {len(summary['cached'])})")
    for name, count in summary["synthetic"].items():
        print(f"  {name:<16} {count}")
    print(f"manifest: {summary['manifest']}")


def _print_json(payload: dict) -> None:
    json.dump(payload, sys.stdout, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _print_ingest(report: dict) -> None:
    rate = f" ({report['files_per_s']:.0f} files/s)" if report["files_per_s"] else ""
    print(
        f"ingest: {report['ingested']} new, {report['duplicates']} duplicates, "
        f"{report['rejected']} rejected, {report['conflicts']} conflicts, "
        f"{report['skipped']} skipped (not image files) in {report['elapsed_s']:.1f} s{rate}"
    )
    if report["new_generators"]:
        print("new generators: " + ", ".join(report["new_generators"]))
    for item in report["rejections"]:
        print(f"  rejected  {item['path']}: {item['reason']}")
    for item in report["conflict_details"]:
        print(f"  conflict  {item['path']}: {item['reason']}")


def _print_status(status: dict, settings: Settings) -> None:
    if not settings.layout.exists():
        print(f"no store at {settings.store_root} yet: `synthwatch ingest PATH` creates it")
        return
    images = status["images"]
    print(f"store        {status['store']}")
    print(f"images       {images['real'] + images['synthetic']} "
          f"(real {images['real']}, synthetic {images['synthetic']})")
    print(f"generators   {len(status['generators'])}")
    width = max((len(name) for name in status["generators"]), default=0)
    for name, count in status["generators"].items():
        print(f"  {name:<{width}}  {count}")
    print(f"quarantined  {status['quarantined']} rejected, {status['conflicts']} conflicts")
    print(f"events       {status['events']}")
    for backbone_id, rows in status.get("embeddings", {}).items():
        print(f"embeddings   {backbone_id}: {rows} rows")
    last = status["last_run"]
    if last:
        print(f"last run     {last['command']} {last['status']} (started {last['started_at']})")
    if "problems" in status:
        print(f"verify       {len(status['problems'])} problems")
        for problem in status["problems"]:
            print(f"  {problem}")


# -- parser ------------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", default=argparse.SUPPRESS, metavar="DIR",
                        help="store root (default: $SYNTHWATCH_STORE, else ./synthwatch-store)")
    common.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout instead of text")

    parser = argparse.ArgumentParser(
        prog="synthwatch",
        description="Train, monitor and keep current your own detector of AI-generated images.",
    )
    parser.add_argument("--version", action="version", version=f"synthwatch {__version__}")
    parser.add_argument("--store", default=None, metavar="DIR",
                        help="store root (default: $SYNTHWATCH_STORE, else ./synthwatch-store)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest_cmd = _add(commands, "ingest", _cmd_ingest, common,
                      "validate, deduplicate and register images in the catalog")
    ingest_cmd.add_argument("paths", nargs="+", metavar="PATH",
                            help="folder (real/, synthetic/<generator>/), image file, or "
                                 "manifest (.csv, .jsonl, .parquet)")
    ingest_cmd.add_argument("--label", choices=("real", "synthetic"),
                            help="label every image of a flat folder")
    ingest_cmd.add_argument("--generator", help="generator of a flat folder of synthetic images")
    ingest_cmd.add_argument("--source", help="source group recorded for every image")
    ingest_cmd.add_argument("--root", metavar="DIR",
                            help="folder that manifest paths must stay inside "
                                 "(default: the manifest's folder)")
    ingest_cmd.add_argument("--no-copy", action="store_true",
                            help="reference originals in place instead of copying them into the store")
    ingest_cmd.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                            help=f"reject images with more pixels (default {DEFAULT_MAX_PIXELS:,})")
    ingest_cmd.add_argument("--min-side", type=int, default=DEFAULT_MIN_SIDE,
                            help=f"reject images whose shorter side is smaller (default {DEFAULT_MIN_SIDE})")
    ingest_cmd.add_argument("--batch-size", type=int, default=128,
                            help="images per catalog transaction (default 128)")
    ingest_cmd.add_argument("--quiet", action="store_true", help="no progress bar")

    status_cmd = _add(commands, "status", _cmd_status, common, "show what the store holds")
    status_cmd.add_argument("--verify", action="store_true",
                            help="also re-hash every stored original and check the counts "
                                 "(exit 1 if a problem is found)")

    embed_cmd = _add(commands, "embed", _cmd_embed, common,
                     "embed every catalog image that lacks vectors for a backbone")
    embed_cmd.add_argument("--backbone", default=DEFAULT_BACKBONE,
                           help=f"registry name, Hugging Face id or local model directory (default {DEFAULT_BACKBONE}; "
                                f"names: {', '.join(REGISTRY)})")
    embed_cmd.add_argument("--revision", help="model revision on the Hub (default main)")
    embed_cmd.add_argument("--layers", metavar="L,L,...",
                           help="DINOv2 blocks (1-based, negative from the end) or ConvNeXt stages 0-3 "
                                "to pool and concatenate (default: the last)")
    embed_cmd.add_argument("--mode", choices=("crop", "resize"), default="crop",
                           help="crop: native-resolution centre crop, small images padded (default); "
                                "resize: shorter side resized, then centre crop")
    embed_cmd.add_argument("--views", type=int, default=0,
                           help="augmented views per image besides the clean one (default 0)")
    embed_cmd.add_argument("--seed", type=int, default=0, help="seed of the augmented views")
    embed_cmd.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    embed_cmd.add_argument("--batch-size", type=int, default=32, help="views per forward pass (default 32)")
    embed_cmd.add_argument("--workers", type=int, help="decoding processes (default: cores - 1, at least 1)")
    embed_cmd.add_argument("--shard-images", type=int, default=1024,
                           help="images per Parquet shard (default 1024)")
    embed_cmd.add_argument("--allow-random-weights", action="store_true",
                           help="if pretrained weights cannot be had, use random ones (timing and plumbing only)")
    embed_cmd.add_argument("--quiet", action="store_true", help="no progress bar")

    index_cmd = _add(commands, "index", _cmd_index, common,
                     "build or update the FAISS index of a backbone's vectors")
    index_cmd.add_argument("--backbone", help="backbone id or name (default: the only one with vectors)")
    index_cmd.add_argument("--codes", choices=("flat", "sq8", "pq"),
                           help="vector codes once the index is large enough for IVF: flat (full vectors, "
                                "default), sq8 (8-bit, 4x smaller), pq (product quantiser, 16x smaller, lower "
                                "recall); remembered for later updates")
    index_cmd.add_argument("--rebuild", action="store_true", help="build from scratch")

    similar_cmd = _add(commands, "similar", _cmd_similar, common, "find the most similar known images")
    similar_cmd.add_argument("images", nargs="+", metavar="IMAGE")
    similar_cmd.add_argument("-k", type=int, default=10, help="neighbours per image (default 10)")
    similar_cmd.add_argument("--label", choices=("real", "synthetic"))
    similar_cmd.add_argument("--generator")
    similar_cmd.add_argument("--backbone", help="backbone id or name (default: the store's)")

    duplicates_cmd = _add(commands, "duplicates", _cmd_duplicates, common,
                          "list groups of near-identical images")
    duplicates_cmd.add_argument("--threshold", type=float, default=0.95,
                                help="cosine similarity at or above which images are near-duplicates (default 0.95)")
    duplicates_cmd.add_argument("--backbone", help="backbone id or name (default: the store's)")

    evaluation_flags = argparse.ArgumentParser(add_help=False)
    evaluation_flags.add_argument("--target-fpr", type=float, default=0.01,
                                  help="false-positive rate the threshold is set for, on validation real images (default 0.01)")
    evaluation_flags.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of each interval (default 1000)")
    evaluation_flags.add_argument("--seed", type=int, default=0, help="seed of the splits and the bootstrap")
    evaluation_flags.add_argument("--dedup-threshold", type=float, default=0.95,
                                  help="cosine similarity from which a test image counts as a near-duplicate of a "
                                       "training image and is dropped (default 0.95; raised automatically when "
                                       "unrelated images already score that high)")
    evaluation_flags.add_argument("--no-robustness", action="store_true",
                                  help="skip embedding and measuring the JPEG and 0.5x views")
    gate_flags = argparse.ArgumentParser(add_help=False)
    gate_flags.add_argument("--auroc-floor", type=float, default=0.70,
                            help="lowest lower end of the AUROC interval on each held-out generator (default 0.70)")
    gate_flags.add_argument("--tpr-floor", type=float, default=0.05,
                            help="lowest lower end of the TPR-at-1%%-FPR interval on each held-out generator (default 0.05)")
    gate_flags.add_argument("--regression-tolerance", type=float, default=0.02,
                            help="largest AUROC drop against the champion on a generator it knew (default 0.02)")
    gate_flags.add_argument("--fpr-bound", choices=("lower", "point", "upper"), default="lower",
                            help="which false-positive rate on held-out reals must be within target: the lower end "
                                 "of its interval (default: reject on evidence of excess), the measured rate, or the "
                                 "upper end (promote on evidence it holds)")

    train_cmd = _add(commands, "train", _cmd_train, common,
                     "train a head on the stored embeddings, evaluate it on held-out generators, register it, "
                     "and promote it if it passes the gate", parents=[evaluation_flags, gate_flags])
    train_cmd.add_argument("--head", choices=("logreg", "svm", "mlp", "knn", "attribution", "convnext"),
                           default="logreg",
                           help="logreg (default), svm (linear, calibrated), mlp, knn (nearest-neighbour vote), "
                                "attribution (which generator, or real), on stored embeddings; or convnext: fine-tune "
                                "a whole ConvNeXt on the images (use a GPU)")
    train_cmd.add_argument("--holdout", metavar="G1,G2", help="generators to hold out of training and evaluate on "
                                                             "(default: leave each generator out in turn)")
    train_cmd.add_argument("--backbone", help="backbone id or name (default: the champion's, else the only one); "
                                              "with --head convnext the ConvNeXt to fine-tune (default convnext-tiny)")
    train_cmd.add_argument("--reason", help="why this head is trained (kept in the registry)")
    finetune = train_cmd.add_argument_group("fine-tuning (--head convnext)")
    finetune.add_argument("--steps", type=int, default=500, help="optimiser steps (default 500)")
    finetune.add_argument("--batch-size", type=int, default=32, help="images per step, half real (default 32)")
    finetune.add_argument("--learning-rate", type=float, default=1e-4)
    finetune.add_argument("--checkpoint-every", type=int, default=100,
                          help="steps between safetensors checkpoints; a killed run resumes from the last")
    finetune.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    finetune.add_argument("--allow-random-weights", action="store_true",
                          help="start from random weights when pretrained ones cannot be had (plumbing only)")

    retrain_cmd = _add(commands, "retrain", _cmd_retrain, common,
                       "check drift, train a candidate on everything stored, gate it: promote or reject",
                       parents=[evaluation_flags, gate_flags])
    retrain_cmd.add_argument("--head", choices=("logreg", "svm", "mlp", "knn", "attribution"), default="logreg")
    retrain_cmd.add_argument("--reason", help="why (kept with the candidate and in the audit log)")
    retrain_cmd.add_argument("--alpha", type=float, default=0.01,
                             help="false-alarm rate of each drift check (default 0.01)")

    models_cmd = commands.add_parser("models", help="the head registry: list, show, promote, rollback")
    models_commands = models_cmd.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    _add(models_commands, "list", _cmd_models, common, "every head version, the champion marked *")
    show_cmd = _add(models_commands, "show", _cmd_models, common, "a version's lineage, metrics, gate record, audit")
    show_cmd.add_argument("version", metavar="VERSION")
    promote_cmd = _add(models_commands, "promote", _cmd_models, common,
                       "make VERSION the champion (one that failed the gate needs --force and --reason)")
    promote_cmd.add_argument("version", metavar="VERSION")
    promote_cmd.add_argument("--force", action="store_true", help="promote even though the gate rejected it")
    promote_cmd.add_argument("--reason", help="why (required with --force; kept in the audit log)")
    rollback_cmd = _add(models_commands, "rollback", _cmd_models, common, "return to the champion before this one")
    rollback_cmd.add_argument("--reason", help="why (kept in the audit log)")

    evaluate_cmd = _add(commands, "evaluate", _cmd_evaluate, common,
                        "evaluate a head on generators it never saw; write an HTML report", parents=[evaluation_flags])
    evaluate_cmd.add_argument("--head", metavar="VERSION", help="head version (default: the champion)")
    evaluate_cmd.add_argument("--protocol", choices=("logo", "holdout"),
                              help="holdout: the head itself on generators it never saw (default with a head); "
                                   "logo: retrain its kind leaving each generator out (default without one)")
    evaluate_cmd.add_argument("--holdout", metavar="G1,G2", help="generators to hold out when no head is registered")
    evaluate_cmd.add_argument("--report", metavar="PATH.html", help="write the HTML report there, and PATH.json")

    detect_cmd = _add(commands, "detect", _cmd_detect, common,
                      "score images with the champion head, with the nearest known fakes as evidence")
    detect_cmd.add_argument("images", nargs="+", metavar="IMAGE")
    detect_cmd.add_argument("--head", metavar="VERSION", help="head version (default: the champion)")
    detect_cmd.add_argument("-k", type=int, default=5, help="nearest known fakes per image (default 5; 0 for none)")

    serve_cmd = _add(commands, "serve", _cmd_serve, common,
                     "HTTP service: POST /similar, GET /health, OpenAPI docs at /docs")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--backbone", help="backbone id or name (default: the store's)")
    serve_cmd.add_argument("--no-auth", action="store_true",
                           help="serve without a token (loopback addresses only)")
    serve_cmd.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted (default 20)")

    corpus_cmd = commands.add_parser("corpus", help="the reproducible proxy corpus")
    corpus_commands = corpus_cmd.add_subparsers(dest="corpus_command", required=True, metavar="COMMAND")
    build_cmd = _add(corpus_commands, "build", _cmd_corpus_build, common,
                     "write real crops and autoencoder fakes to OUT, with a manifest")
    build_cmd.add_argument("out", metavar="OUT", help="folder to write (created; a previous corpus is replaced)")
    build_cmd.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    build_cmd.add_argument("--size", choices=("small", "medium"), default="small",
                           help="small: 120 real + 6 x 40 fakes, 96 px; medium: 600 + 6 x 200, 128 px")
    build_cmd.add_argument("--cache", metavar="DIR",
                           help="where trained generators are cached "
                                "(default $SYNTHWATCH_CACHE/corpus, else ~/.cache/synthwatch/corpus)")

    demo_cmd = _add(commands, "demo", _cmd_demo, common,
                    "the whole loop offline on the proxy corpus: two cycles, a new generator, the gate, a report")
    demo_cmd.add_argument("--data", default="demo-data", metavar="DIR",
                          help="where to write the corpus, the inbox and the report (default ./demo-data)")
    demo_cmd.add_argument("--seed", type=int, default=0)
    demo_cmd.add_argument("--backbone", default="dinov2-small",
                          help="backbone (default dinov2-small; random weights with a notice when none are found)")

    pipeline_flags = argparse.ArgumentParser(add_help=False)
    pipeline_flags.add_argument("--backbone", help="backbone to embed with (default: the champion's, else the only "
                                                   "one stored, else dinov2-small)")
    pipeline_flags.add_argument("--allow-random-weights", action="store_true",
                                help="embed with random weights when pretrained ones cannot be had (plumbing only)")
    pipeline_flags.add_argument("--dask", metavar="ADDRESS",
                                help="fan embedding out over this Dask scheduler (tcp://host:8786)")
    pipeline_flags.add_argument("--alpha", type=float, default=0.01, help="false-alarm rate of each drift check")
    _add(commands, "run", _cmd_run, common,
         "run one cycle now: ingest watched sources, embed, index, check drift, retrain and gate if needed",
         parents=[pipeline_flags, gate_flags])
    _add(commands, "deploy", _cmd_deploy, common,
         "serve the Prefect deployments (continual on the sources' schedules, retrain on new-generator and drift "
         "events) until interrupted", parents=[pipeline_flags, gate_flags])

    sources_cmd = commands.add_parser("sources", help="watched sources: where new images land")
    sources_commands = sources_cmd.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")
    add_cmd = _add(sources_commands, "add", _cmd_sources, common,
                   "watch a folder, a manifest, or an object-store prefix (s3://, gs://, abfs://, file://)")
    add_cmd.add_argument("location", metavar="PATH|URI")
    when = add_cmd.add_mutually_exclusive_group()
    when.add_argument("--schedule", metavar="CRON", help="cron expression for `deploy` (for example '0 * * * *')")
    when.add_argument("--every", metavar="DURATION", help="interval for `deploy`: 30s, 15m, 6h, 1d")
    add_cmd.add_argument("--label", choices=("real", "synthetic"), help="label every image (a flat folder)")
    add_cmd.add_argument("--generator", help="generator of a flat folder of synthetic images")
    add_cmd.add_argument("--source", help="source group recorded for every image")
    _add(sources_commands, "list", _cmd_sources, common, "the watched sources")
    remove_cmd = _add(sources_commands, "remove", _cmd_sources, common, "stop watching a source")
    remove_cmd.add_argument("location", metavar="PATH|URI")
    return parser


def _add(commands, name: str, handler: Callable, common: argparse.ArgumentParser, help_text: str, parents=()):
    command = commands.add_parser(name, parents=[common, *parents], help=help_text, description=help_text)
    command.set_defaults(handler=handler)
    return command
