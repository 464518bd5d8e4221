"""The model commands: train, retrain, models, evaluate, detect and serve."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from synthwatch.store.errors import StoreError
from synthwatch.cli.output import print_decision, print_drift, print_evaluation, print_json, print_notes
from synthwatch.settings import Settings


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.api import Store

    from synthwatch.heads.network_kinds import NETWORK_HEADS

    store, options, policy = Store(settings.store_root), train_options(args), gate_policy(args)
    head = args.head or store.config().head
    if head in NETWORK_HEADS:
        network, bar = _network_options(args, head)
        progress = (lambda step, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.3f}"))) if bar else None
        trained = store.train(head, backbone=args.backbone, options=options, policy=policy, network=network,
                              progress=progress)
        if bar:
            bar.close()
    else:
        _refuse_network_flags(args, head)
        trained = store.train(head, backbone=args.backbone, options=options, policy=policy)
    payload = trained.as_dict()
    if args.json:
        print_json(payload)
    else:
        print_notes(payload["notes"])
        print(f"trained {payload['head']} head {payload['version']} on {payload['backbone_id'] or 'images'}: "
              f"threshold {payload['threshold']:.6f} for {payload['target_fpr']:.2%} FPR on validation real images")
        print_evaluation(payload["metrics"])
        print_decision(payload)
    return gate_exit_code(payload["decision"])


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.heads.detector import HeadSpec
    from synthwatch.heads.promotion import retrain

    from synthwatch.heads.config import load_config

    head = args.head or load_config(settings.store_root).embedding_head
    result = retrain(settings.layout, spec=HeadSpec(head), options=train_options(args), policy=gate_policy(args),
                     alpha=args.alpha, write_report_file=True)
    if args.json:
        print_json(result)
    else:
        print_notes(result["notes"])
        print_drift(result["drift"])
        sample = result["training_sample"]
        if sample:
            print(f"trained on a replay set of {sample['rows']:,} of {sample['of_rows']:,} training rows "
                  f"({sample['rule']}, seed {sample['seed']}; --max-train {sample['max_train']:,})")
        sample = result["evaluation_sample"]
        if sample:
            print(f"evaluated on {sample['val']['images']:,} of {sample['val']['of_images']:,} validation and "
                  f"{sample['test']['images']:,} of {sample['test']['of_images']:,} test images "
                  f"({sample['rule']}, seed {sample['seed']}; --max-eval {sample['max_eval']:,})")
        print(f"candidate {result['candidate']}:")
        print_evaluation(result["metrics"])
        print_decision(result)
        for line in result["learning_curve_lines"]:
            print(f"learning curve: {line}")
        print(f"report: {result['report']}")
    return gate_exit_code(result["decision"])


def cmd_drift(args: argparse.Namespace, settings: Settings) -> int:
    if not args.traffic:
        from synthwatch.heads.promotion import check_drift

        given = [flag for flag, value in (("--since", args.since), ("--report", args.report)) if value]
        if given:
            raise ValueError(f"Expected {', '.join(given)} only with --traffic, but got it alone. Add --traffic, "
                             "or drop it.")
        result = check_drift(settings.layout, alpha=args.alpha)
        if args.json:
            print_json(result)
        else:
            print_drift(result)
        return 0
    from datetime import timedelta

    from synthwatch.heads.traffic import check_traffic
    from synthwatch.store.watched import parse_duration

    since = timedelta(seconds=parse_duration(args.since or "1d"))
    history = check_traffic(settings.layout, since=since, alpha=args.alpha, windows=args.windows if args.report else 1)
    result = dict(history[-1])
    if args.report:
        from synthwatch.heads.report import write_traffic_report

        context = {"store": str(settings.store_root), "window": args.since or "1d", "alpha": args.alpha}
        html_path, json_path = write_traffic_report(Path(args.report), history, context)
        result.update(report=str(html_path.resolve()), report_json=str(json_path.resolve()))
    if args.json:
        print_json(result)
        return 0
    window, baseline = result["window"], result["baseline"]
    print(f"traffic drift of head {result['head_version'] or '-'}: {window['images']} images from {window['from'][:19]} "
          f"to {window['to'][:19]} UTC against {baseline['images']} before")
    if not result["checked"]:
        print(f"  not checked: {result['reason']}")
    for check in result["checks"]:
        print(f"  {check['name']:<22} statistic {check['statistic']:.4f}  p {check['p_value']:.4f}  "
              f"{'DRIFT' if check['drift'] else 'no drift'} (alpha {check['threshold']})  {check['detail']}")
    if args.report:
        print(f"report: {result['report']} (numbers: {result['report_json']})")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.store.head_listing import list_models, show_model
    from synthwatch.store.registry import HeadRegistry  # records only: no model stack to load

    registry = HeadRegistry(settings.layout)
    if args.models_command == "list":
        payload = list_models(registry)
        models = payload["models"]
        if args.json:
            print_json(payload)
        elif not models:
            print("no head versions yet: train one with `synthwatch train`")
        else:
            print(f"  {'version':<24} {'kind':<17} {'decision':<9}  {'created (UTC)':<19}  (* champion)")
            for m in models:
                summary = m["metrics"]
                auroc = f"held-out AUROC mean {summary['mean_auroc']:.3f}" if summary.get("held_out_generators") else ""
                print(f"{'*' if m['champion'] else ' '} {m['version']}  {m['kind']:<17} {m['decision'] or 'undecided':<9}"
                      f"{' (forced)' if m['forced'] else ''}  {m['created_at'][:19]}  {auroc}")
        return 0
    if args.models_command == "show":
        record = show_model(registry, args.version)
        if args.json:
            print_json(record)
        else:
            print(json.dumps(record, indent=1, ensure_ascii=False, default=str))
        return 0
    if args.models_command == "promote":
        record = registry.record(args.version)
        passed = record.get("gate", {}).get("decision") == "promoted"
        if args.force:
            from synthwatch.heads.promotion import force_promote

            moved = force_promote(settings.layout, args.version, reason=args.reason or "")
        elif passed:
            moved = registry.promote(args.version, reason=args.reason or "promoted by hand (it passed the gate)")
        else:
            raise StoreError(f"Expected a version that passed the gate, but {args.version} was "
                             f"{record.get('gate', {}).get('decision', 'never gated')}. Promote it anyway with "
                             "--force --reason TEXT (recorded as forced).")
        payload = {**moved, "forced": bool(args.force)}
    elif args.models_command == "repair":
        payload = registry.repair(trust=args.trust, reason=args.reason or "")
        if args.json:
            print_json(payload)
        else:
            print(f"champion: {payload['champion']} (the log named {payload['log_named']}, the alias "
                  f"{payload['alias_named']}); the repair is in the audit log"
                  + (f"; damaged log kept as {payload['damaged_log_kept']}" if payload["damaged_log_kept"] else ""))
        return 0
    else:  # rollback
        payload = registry.rollback(reason=args.reason or "rolled back by hand")
    if args.json:
        print_json(payload)
    else:
        print(f"champion: {payload['before']} -> {payload['after']}" + (" (forced)" if payload.get("forced") else ""))
    return 0


def _network_options(args: argparse.Namespace, head: str):
    """The image network's options from the flags, and a progress bar on a terminal (else None)."""
    from synthwatch.heads.network_kinds import NetworkOptions

    options = NetworkOptions(head=head, steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                             device=args.device, allow_random_weights=args.allow_random_weights, seed=args.seed,
                             checkpoint_every=args.checkpoint_every).resolved()
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=options.steps, unit="step", desc=f"train {head}", file=sys.stderr)
    return options, bar


def _refuse_network_flags(args: argparse.Namespace, head: str) -> None:
    given = [flag for flag, value in (("--steps", args.steps), ("--learning-rate", args.learning_rate),
                                      ("--allow-random-weights", args.allow_random_weights)) if value]
    if given:
        raise ValueError(f"Expected {', '.join(given)} only with an image network head (--head npr or convnext), "
                         f"but the head is {head}. Drop them, or choose such a head.")


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.heads.pipeline import evaluate_registered
    from synthwatch.heads.report import write_report

    if args.learning_curve:
        return _learning_curve(args, settings)
    if args.auroc_floor is not None or args.tpr_floor is not None:
        raise ValueError("Expected --auroc-floor and --tpr-floor only with --learning-curve G, but got them without. "
                         "Drop them, or add --learning-curve.")

    train_on = tuple(name for name in (args.train_on or "").split(",") if name)
    if args.preset:
        from synthwatch.heads.presets import preset_train_on
        from synthwatch.store.catalog import Catalog

        if train_on:
            raise ValueError("Expected --preset or --train-on, but got both. Keep one.")
        train_on = preset_train_on(args.preset, sorted(Catalog(settings.layout).status()["generators"]))
    report = evaluate_registered(settings.layout, version=args.head, protocol=args.protocol,
                                 options=train_options(args), train_on=train_on, backbone=args.backbone,
                                 device=args.device)
    payload = report.as_dict()
    if args.report:
        from synthwatch.heads.embedding_map import embedding_map_of

        context = {key: payload[key] for key in ("head_version", "backbone_id") if payload.get(key)}
        points = embedding_map_of(settings.layout, report.backbone_id) if report.backbone_id else None
        html_path, json_path = write_report(Path(args.report), report.evaluation, context, embedding_map=points)
        payload["report"], payload["report_json"] = str(html_path.resolve()), str(json_path.resolve())
    if args.json:
        print_json(payload)
    else:
        print_notes(payload["notes"])
        print(f"evaluated {payload['head_version'] or 'the default head (none registered)'} on "
              f"{payload['backbone_id'] or 'images (a fine-tuned network)'}")
        print_evaluation(payload)
        if args.report:
            print(f"report: {payload['report']} (numbers: {payload['report_json']})")
    return 0


def _learning_curve(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.heads.pipeline import learning_curve_of
    from synthwatch.heads.report import write_report

    others = [flag for flag, value in (("--train-on", args.train_on), ("--preset", args.preset), ("--head", args.head),
                                       ("--protocol", args.protocol), ("--holdout", args.holdout)) if value]
    if others:
        raise ValueError(f"Expected --learning-curve alone, but got {', '.join(others)} with it: the curve trains the "
                         "champion's kind afresh at each count. Drop them.")
    floors = {"auroc_floor": args.auroc_floor, "tpr_floor": args.tpr_floor}  # given, else synthwatch.toml's
    curve, prepared, spec = learning_curve_of(settings.layout, args.learning_curve, options=train_options(args),
                                              backbone=args.backbone, **floors)
    payload = {**curve.as_dict(), "backbone_id": prepared.backbone_id, "head": spec.kind,
               "notes": list(prepared.notes)}
    if args.report:
        context = {"generator": curve.generator, "backbone_id": prepared.backbone_id, "head": spec.kind}
        html_path, json_path = write_report(Path(args.report), None, context, learning_curves=[curve.as_dict()])
        payload["report"], payload["report_json"] = str(html_path.resolve()), str(json_path.resolve())
    if args.json:
        print_json(payload)
        return 0
    print_notes(payload["notes"])
    print(f"learning curve of {curve.generator} ({spec.kind} head on {prepared.backbone_id}; tested on its test split):")
    for point in curve.points:
        print(f"  {point['fakes']:6d} fakes  AUROC {point['auroc']:.3f} [{point['auroc_ci'][0]:.3f}, "
              f"{point['auroc_ci'][1]:.3f}]  TPR@1%FPR {point['tpr_at_1fpr']:.3f} [{point['tpr_at_1fpr_ci'][0]:.3f}, "
              f"{point['tpr_at_1fpr_ci'][1]:.3f}]")
    print(curve.line())
    if args.report:
        print(f"report: {payload['report']} (numbers: {payload['report_json']})")
    return 0


def cmd_detect(args: argparse.Namespace, settings: Settings) -> int:
    from synthwatch.api import Store

    if args.source and not args.log:
        raise ValueError("Expected --source only with --log, but got it alone. Add --log, or drop --source.")
    detections = Store(settings.store_root).detect(args.images, k=args.k, head=args.head, log=args.log,
                                                   source=args.source).as_dict()
    results = detections["results"]
    if args.json:
        print_json(detections)
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


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from synthwatch.fleet import serve_workers
    from synthwatch.service import create_app
    from synthwatch.store.predictions import PredictionLog

    token = os.environ.get("SYNTHWATCH_API_TOKEN") or None
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if token is None and not args.no_auth:
        raise StoreError("Expected SYNTHWATCH_API_TOKEN to be set (requests must send "
                         "Authorization: Bearer <token>), but it is not. Set it, or pass --no-auth "
                         "to serve without authentication on a loopback address.")
    if args.no_auth and not loopback:
        raise StoreError(f"Expected a loopback --host with --no-auth, but got {args.host}. "
                         "Set SYNTHWATCH_API_TOKEN to serve on other addresses.")
    if args.workers < 1:
        raise StoreError(f"Expected --workers of at least 1, but got {args.workers}. Pass 1 for one process, "
                         "or more to share the load.")
    log_max_bytes = None if args.no_log else int(args.log_max_mb * 1024 * 1024)
    log = None if log_max_bytes is None else PredictionLog(settings.layout, max_bytes=log_max_bytes)  # checked here
    options = dict(backbone=args.backbone, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                   max_pixels=args.max_pixels, decoders=args.decoders, keep_uploads=args.keep_uploads)
    running = dict(host=args.host, port=args.port, log_level="info" if args.access_log else "warning",
                   access_log=args.access_log)
    if args.workers > 1:  # each worker opens its own log and reads the token from the environment
        serve_workers(args.workers, {"store": str(settings.layout.root.resolve()), "auth": not args.no_auth,
                                     "log_max_bytes": log_max_bytes, **options}, **running)
        return 0
    app = create_app(settings.layout, token=None if args.no_auth else token, prediction_log=log, **options)
    uvicorn.run(app, **running)
    return 0


def train_options(args: argparse.Namespace):
    from synthwatch.heads.evaluation import EvalOptions
    from synthwatch.heads.training import TrainOptions

    holdout = tuple(name for name in (getattr(args, "holdout", None) or "").split(",") if name)
    evaluation = EvalOptions(target_fpr=args.target_fpr, n_boot=args.n_boot, seed=args.seed)
    return TrainOptions(holdout=holdout, evaluation=evaluation, dedup_threshold=args.dedup_threshold,
                        robustness=not args.no_robustness, reason=getattr(args, "reason", "") or "",
                        max_train=getattr(args, "max_train", None), max_eval=getattr(args, "max_eval", None))


GATE_REJECTED = 3  # the exit code of a command whose candidate the gate rejected


def gate_exit_code(decision: str) -> int:
    """0, or ``GATE_REJECTED`` when the gate rejected the candidate (scripts and CI can tell)."""
    return GATE_REJECTED if decision == "rejected" else 0


def gate_policy(args: argparse.Namespace):
    from synthwatch.heads.gate import GatePolicy

    return GatePolicy(auroc_floor=args.auroc_floor, tpr_floor=args.tpr_floor,
                      regression_tolerance=args.regression_tolerance, fpr_bound=args.fpr_bound,
                      tpr_tolerance=args.tpr_tolerance, confidence=args.confidence, correction=args.correction)
