"""The argument parser of ``synthwatch``: every command, its flags and help text, and its handler."""

from __future__ import annotations

import argparse
from typing import Callable

from synthwatch.embeddings.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE
from synthwatch.limits import SERVICE_MAX_PIXELS
from synthwatch.embeddings.registry import DEFAULT_BACKBONE, REGISTRY
from synthwatch.heads.config import CONFIG_FILE
from synthwatch.heads.defaults import DEFAULT_ALPHA, DEFAULT_TARGET_FPR, EMBEDDING_HEADS
from synthwatch.heads.gate import CORRECTIONS, GatePolicy
from synthwatch.heads.network_kinds import NETWORK_HEADS, NETWORK_KINDS
from synthwatch.heads.presets import PRESETS
from synthwatch.heads.replay import DEFAULT_MAX_EVAL, DEFAULT_MAX_TRAIN
from synthwatch.store.layouts import LAYOUT_NAMES, LAYOUTS
from synthwatch import __version__
from synthwatch.cli.config_flags import cmd_init
from synthwatch.cli.loop_commands import cmd_benchmark, cmd_demo, cmd_deploy, cmd_run, cmd_sources
from synthwatch.cli.model_commands import (
    cmd_detect, cmd_drift, cmd_evaluate, cmd_models, cmd_retrain, cmd_serve, cmd_train,
)
from synthwatch.cli.traffic_commands import cmd_discover
from synthwatch.cli.store_commands import (
    cmd_corpus_build, cmd_duplicates, cmd_embed, cmd_index, cmd_ingest, cmd_restore, cmd_similar, cmd_status,
)


IN_CONFIG = f", or the store's {CONFIG_FILE}"


def _network_flags(command: argparse.ArgumentParser) -> None:
    group = command.add_argument_group("image networks (--head npr|convnext)")
    defaults = {kind.head: kind.defaults for kind in NETWORK_KINDS.values()}
    group.add_argument("--steps", type=int,
                       help="optimiser steps (default " + ", ".join(f"{head} {d['steps']}" for head, d in defaults.items()) + ")")
    group.add_argument("--batch-size", type=int, default=32, help="images per step, half real (default 32)")
    group.add_argument("--learning-rate", type=float,
                       help="AdamW's (default " + ", ".join(f"{head} {d['learning_rate']:g}" for head, d in defaults.items()) + ")")
    group.add_argument("--checkpoint-every", type=int, default=100,
                       help="steps between safetensors checkpoints; a killed run resumes from the last")
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where the network trains (auto: a GPU when there is one)")
    group.add_argument("--allow-random-weights", action="store_true",
                       help="convnext: start from random weights when pretrained ones cannot be had (plumbing only)")


def build_parser() -> argparse.ArgumentParser:
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

    init_cmd = _add(commands, "init", cmd_init, common,
                    f"write the store's settings file, {CONFIG_FILE} (backbone, gate policy, alpha, target FPR, "
                    "schedule); flags and SYNTHWATCH_* variables override it")
    init_cmd.add_argument("--backbone", help="the backbone embed, run, deploy and benchmark use (default: unset)")
    init_cmd.add_argument("--force", action="store_true", help="write the defaults over an existing file")
    init_cmd.add_argument("--print", action="store_true", help="print the default file and write nothing")

    ingest_cmd = _add(commands, "ingest", cmd_ingest, common,
                      "validate, deduplicate and register images in the catalog")
    ingest_cmd.add_argument("paths", nargs="*", metavar="PATH",
                            help="folder (real/, synthetic/<generator>/), image file, or "
                                 "manifest (.csv, .jsonl, .parquet)")
    ingest_cmd.add_argument("--from-discovery", metavar="GROUP",
                            help="instead of PATHs: the kept uploads of a group `synthwatch discover` found, as "
                                 "fakes of --generator NAME (source group discovery-GROUP)")
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
    ingest_cmd.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                            help=f"reject larger files without reading them (default {DEFAULT_MAX_BYTES:,})")
    ingest_cmd.add_argument("--batch-size", type=int, default=128,
                            help="images per catalog transaction (default 128)")
    ingest_cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest_cmd.add_argument("--layout", choices=LAYOUT_NAMES,
                            help="read each PATH as a public benchmark's tree (auto: recognise it): " +
                                 "; ".join(f"{name}: {layout.tree}" for name, layout in LAYOUTS.items()))
    ingest_cmd.add_argument("--dry-run", action="store_true",
                            help="print what would be ingested (counts per label, generator and source group) "
                                 "and write nothing")

    status_cmd = _add(commands, "status", cmd_status, common, "show what the store holds")
    status_cmd.add_argument("--verify", action="store_true",
                            help="also re-hash every stored original, check the counts, read every vector "
                                 "shard whole and check index files' checksums (exit 1 if a problem is found)")
    status_cmd.add_argument("--repair", action="store_true",
                            help="verify, then set damaged vector shards aside and re-embed their images, and "
                                 "rebuild damaged indexes (exit 1 if a problem is left)")

    restore_cmd = _add(commands, "restore", cmd_restore, common,
                       "rebuild a damaged catalog from the latest snapshot (the damaged file is kept)")
    restore_cmd.add_argument("--snapshot", metavar="DIR", help="a snapshot folder under snapshots/ (default: the latest)")

    embed_cmd = _add(commands, "embed", cmd_embed, common,
                     "embed every catalog image that lacks vectors for a backbone")
    embed_cmd.add_argument("--backbone",
                           help=f"registry name, Hugging Face id or local model directory (default: the store's "
                                f"synthwatch.toml, else {DEFAULT_BACKBONE}; names: {', '.join(REGISTRY)})")
    embed_cmd.add_argument("--revision", help="model revision on the Hub (default main)")
    embed_cmd.add_argument("--layers", metavar="L,L,...",
                           help="DINOv2 blocks (1-based, negative from the end) or ConvNeXt stages 0-3 "
                                "to pool and concatenate (default: the last)")
    embed_cmd.add_argument("--mode", choices=("crop", "resize"),
                           help="crop: native-resolution centre crop, small images padded (default; or the "
                                "champion's mode when it reads this backbone); resize: shorter side resized, "
                                "then centre crop")
    embed_cmd.add_argument("--views", type=int,
                           help="augmented views per image besides the clean one (default: synthwatch.toml's "
                                "views, 0 unless the offline recipe set it)")
    embed_cmd.add_argument("--patches", type=int,
                           help="native-resolution patch views per image, half its shorter side each, for "
                                "training (default: synthwatch.toml's patches, 0 unless the offline recipe set it)")
    embed_cmd.add_argument("--seed", type=int, default=0, help="seed of the augmented views")
    embed_cmd.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                           help="where the backbone runs (auto: a GPU when there is one)")
    embed_cmd.add_argument("--batch-size", type=int,
                           help="views per forward pass (default 256 on CUDA, 32 on CPU)")
    embed_cmd.add_argument("--workers", type=int,
                           help="decoding processes (default: cores - 1, at most 32 on CUDA and 8 on CPU)")
    embed_cmd.add_argument("--shard-images", type=int, default=1024,
                           help="images per Parquet shard (default 1024)")
    embed_cmd.add_argument("--allow-random-weights", action="store_true",
                           help="if pretrained weights cannot be had, use random ones (timing and plumbing only)")
    embed_cmd.add_argument("--quiet", action="store_true", help="no progress bar")

    index_cmd = _add(commands, "index", cmd_index, common,
                     "build or update the FAISS index of a backbone's vectors")
    index_cmd.add_argument("--backbone", help="backbone id or name (default: the only one with vectors)")
    index_cmd.add_argument("--codes", choices=("flat", "sq8", "pq"),
                           help="vector codes once the index is large enough for IVF: flat (full vectors, "
                                "default), sq8 (8-bit, 4x smaller), pq (product quantiser, 16x smaller, lower "
                                "recall); remembered for later updates")
    index_cmd.add_argument("--rebuild", action="store_true", help="build from scratch")

    similar_cmd = _add(commands, "similar", cmd_similar, common, "find the most similar known images")
    similar_cmd.add_argument("images", nargs="+", metavar="IMAGE", help="image files to look up")
    similar_cmd.add_argument("-k", type=int, default=10, help="neighbours per image (default 10)")
    similar_cmd.add_argument("--label", choices=("real", "synthetic"), help="only neighbours with this label")
    similar_cmd.add_argument("--generator", help="only neighbours from this generator")
    similar_cmd.add_argument("--backbone", help="backbone id or name (default: the store's)")

    duplicates_cmd = _add(commands, "duplicates", cmd_duplicates, common,
                          "list groups of near-identical images")
    duplicates_cmd.add_argument("--threshold", type=float, default=0.95,
                                help="cosine similarity at or above which images are near-duplicates (default 0.95)")
    duplicates_cmd.add_argument("--backbone", help="backbone id or name (default: the store's)")

    evaluation_flags = argparse.ArgumentParser(add_help=False)
    evaluation_flags.add_argument("--target-fpr", type=float,
                                  help="false-positive rate the threshold is set for, on validation real images "
                                       f"(default {DEFAULT_TARGET_FPR}{IN_CONFIG})")
    evaluation_flags.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of each interval (default 1000)")
    evaluation_flags.add_argument("--seed", type=int, default=0,
                                  help="seed of the bootstrap and of sampling (splits are stored in the catalog)")
    evaluation_flags.add_argument("--dedup-threshold", type=float, default=0.95,
                                  help="cosine similarity from which a test image counts as a near-duplicate of a "
                                       "training image and is dropped (default 0.95; raised automatically when "
                                       "unrelated images already score that high)")
    evaluation_flags.add_argument("--no-robustness", action="store_true",
                                  help="skip embedding and measuring the JPEG and 0.5x views")
    gate_flags = argparse.ArgumentParser(add_help=False)
    gate_flags.add_argument("--auroc-floor", type=float,
                            help="lowest lower end of the AUROC interval on each held-out generator "
                                 f"(default {GatePolicy.auroc_floor}{IN_CONFIG})")
    gate_flags.add_argument("--tpr-floor", type=float,
                            help="lowest lower end of the TPR-at-1%%-FPR interval on each held-out generator "
                                 f"(default {GatePolicy.tpr_floor}{IN_CONFIG})")
    gate_flags.add_argument("--regression-tolerance", type=float,
                            help="non-inferiority margin: on each generator the champion knew, the lower end of the "
                                 "interval of (candidate - champion AUROC) on the same test images must be above "
                                 f"minus this (default {GatePolicy.regression_tolerance}: what about 10 test fakes per "
                                 f"generator can resolve; large stores resolve 0.01{IN_CONFIG})")
    gate_flags.add_argument("--tpr-tolerance", type=float,
                            help=f"also require TPR at 1%% FPR non-inferior to the champion's by this margin{IN_CONFIG}")
    gate_flags.add_argument("--confidence", type=float,
                            help=f"two-sided level of those intervals (default {GatePolicy.confidence}: a one-sided "
                                 f"{50 * (1 + GatePolicy.confidence):.0f}%% non-inferiority test{IN_CONFIG})")
    gate_flags.add_argument("--correction", choices=CORRECTIONS,
                            help="holm: judge the backward-transfer checks together (Holm's step-down on their "
                                 "p-values); stricter than promotion needs, for reading per-generator verdicts on "
                                 f"their own (default none{IN_CONFIG}; needs --n-boot of at least 20 x the checks at --confidence 0.90)")
    gate_flags.add_argument("--fpr-bound", choices=("lower", "point", "upper"),
                            help="which false-positive rate on held-out reals must be within target: the lower end "
                                 "of its interval (default: reject on evidence of excess), the measured rate, or the "
                                 f"upper end (promote on evidence it holds){IN_CONFIG}")

    train_cmd = _add(commands, "train", cmd_train, common,
                     "train a head on the stored embeddings, evaluate it on held-out generators, register it, "
                     "and promote it if it passes the gate", parents=[evaluation_flags, gate_flags])
    train_cmd.add_argument("--head", choices=(*EMBEDDING_HEADS, *NETWORK_HEADS),
                           help="logreg, svm (linear, calibrated), mlp, knn (nearest-neighbour vote), attribution "
                                "(which generator, or real), on stored embeddings; or an image network: npr (a forensic "
                                "CNN trained from scratch on neighbouring-pixel residuals, no weights needed) or "
                                f"convnext (fine-tune a whole ConvNeXt; use a GPU). Default: the store's "
                                f"{CONFIG_FILE} head, else logreg")
    train_cmd.add_argument("--holdout", metavar="G1,G2", help="generators to hold out of training and evaluate on "
                                                             "(default: leave each generator out in turn)")
    train_cmd.add_argument("--backbone", help="backbone id or name (default: the champion's, else the only one); "
                                              "with --head convnext the ConvNeXt to fine-tune (default convnext-tiny)")
    train_cmd.add_argument("--reason", help="why this head is trained (kept in the registry)")
    _network_flags(train_cmd)

    retrain_cmd = _add(commands, "retrain", cmd_retrain, common,
                       "check drift, train a candidate on everything stored, gate it: promote or reject",
                       parents=[evaluation_flags, gate_flags])
    retrain_cmd.add_argument("--head", choices=EMBEDDING_HEADS,
                             help=f"the head to fit (default: the store's {CONFIG_FILE} head when it is one of these, else logreg)")
    retrain_cmd.add_argument("--reason", help="why (kept with the candidate and in the audit log)")
    retrain_cmd.add_argument("--alpha", type=float,
                             help=f"false-alarm rate of each drift check (default {DEFAULT_ALPHA}{IN_CONFIG})")
    retrain_cmd.add_argument("--max-train", type=int, metavar="N",
                             help="train on at most N rows: a replay set balanced over labels and generators, "
                                  "recent images more likely, every generator kept, seeded by --seed and recorded "
                                  f"with the candidate; only the drawn images' vectors are read (default {DEFAULT_MAX_TRAIN:,}{IN_CONFIG})")
    retrain_cmd.add_argument("--max-eval", type=int, metavar="N",
                             help="read at most N rows of each of the validation and test splits: a sample balanced "
                                  "over real images and generators that changes little as the store grows, recorded "
                                  f"with the candidate; metrics are the sample's (default {DEFAULT_MAX_EVAL:,}{IN_CONFIG})")

    drift_cmd = _add(commands, "drift", cmd_drift, common,
                     "check drift: of the synthetic images that arrived since the last head was trained, or with "
                     "--traffic of production traffic in the prediction log")
    drift_cmd.add_argument("--traffic", action="store_true",
                           help="the prediction log's recent window against the traffic the same champion answered "
                                "before: flag rate, score distribution, distance to the nearest known fake, "
                                "embeddings (MMD)")
    drift_cmd.add_argument("--since", metavar="DURATION", help="with --traffic: the window (30m, 6h, 1d; default 1d)")
    drift_cmd.add_argument("--report", metavar="PATH.html",
                           help="with --traffic: write the figures of the last --windows windows over time there "
                                "(and PATH.json)")
    drift_cmd.add_argument("--windows", type=int, default=14, help="windows in the report (default 14)")
    drift_cmd.add_argument("--alpha", type=float,
                           help=f"false-alarm rate of each check (default {DEFAULT_ALPHA}{IN_CONFIG})")

    discover_cmd = _add(commands, "discover", cmd_discover, common,
                        "find groups of recent traffic that look synthetic but like no known generator (from the "
                        "prediction log's embeddings), to name and ingest with `ingest --from-discovery`")
    discover_cmd.add_argument("--since", metavar="DURATION", default="7d",
                              help="the window of the prediction log (30m, 6h, 1d; default 7d)")
    discover_cmd.add_argument("--near", type=float, default=0.1,
                              help="images scored this far under the threshold are candidates too (default 0.1)")
    discover_cmd.add_argument("--min-group", type=int, default=5, help="the smallest group reported (default 5)")
    discover_cmd.add_argument("--alpha", type=float, default=0.01,
                              help="false-alarm rate of calling a known generator's group unfamiliar, over all "
                                   "groups (default 0.01)")
    discover_cmd.add_argument("--report", metavar="PATH.html",
                              help="write each group's figures and thumbnails of its kept uploads there (and PATH.json)")

    models_cmd = commands.add_parser("models", help="the head registry: list, show, promote, rollback, repair")
    models_commands = models_cmd.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    _add(models_commands, "list", cmd_models, common, "every head version, the champion marked *")
    show_cmd = _add(models_commands, "show", cmd_models, common, "a version's lineage, metrics, gate record, audit")
    show_cmd.add_argument("version", metavar="VERSION", help="a head version (`models list` shows them)")
    promote_cmd = _add(models_commands, "promote", cmd_models, common,
                       "make VERSION the champion (one that failed the gate needs --force and --reason)")
    promote_cmd.add_argument("version", metavar="VERSION", help="the head version to make champion")
    promote_cmd.add_argument("--force", action="store_true", help="promote even though the gate rejected it")
    promote_cmd.add_argument("--reason", help="why (required with --force; kept in the audit log)")
    rollback_cmd = _add(models_commands, "rollback", cmd_models, common, "return to the champion before this one")
    rollback_cmd.add_argument("--reason", help="why (kept in the audit log)")
    repair_cmd = _add(models_commands, "repair", cmd_models, common,
                      "bring the audit log and the champion alias back into agreement (recorded)")
    repair_cmd.add_argument("--trust", choices=("alias", "log"), required=True,
                            help="alias: keep the current champion and record it in the log; log: follow the log")
    repair_cmd.add_argument("--reason", help="why (kept in the audit log)")

    evaluate_cmd = _add(commands, "evaluate", cmd_evaluate, common,
                        "evaluate a head on generators it never saw; write an HTML report", parents=[evaluation_flags])
    evaluate_cmd.add_argument("--head", metavar="VERSION", help="head version (default: the champion)")
    evaluate_cmd.add_argument("--protocol", choices=("logo", "holdout"),
                              help="holdout: the head itself on generators it never saw (default with a head); "
                                   "logo: retrain its kind leaving each generator out (default without one)")
    evaluate_cmd.add_argument("--holdout", metavar="G1,G2", help="generators to hold out when no head is registered")
    evaluate_cmd.add_argument("--train-on", metavar="G1,G2",
                              help="train a fresh default head on these generators (and real images) and test it on "
                                   "every other generator: the protocol papers report")
    evaluate_cmd.add_argument("--preset", choices=sorted(PRESETS),
                              help="a published protocol by name (" + "; ".join(
                                  f"{name}: {preset.description}" for name, preset in sorted(PRESETS.items())) + ")")
    evaluate_cmd.add_argument("--learning-curve", metavar="G",
                              help="how many fakes of generator G it takes: train the champion's kind with 0, 8, 16, "
                                   "32, ... of G's training fakes, test on G's test split, and report the fewest "
                                   "that clear --auroc-floor and --tpr-floor")
    evaluate_cmd.add_argument("--auroc-floor", type=float, default=None,
                              help=f"with --learning-curve: the gate's AUROC floor (default {GatePolicy.auroc_floor})")
    evaluate_cmd.add_argument("--tpr-floor", type=float, default=None,
                              help=f"with --learning-curve: the gate's TPR floor (default {GatePolicy.tpr_floor})")
    evaluate_cmd.add_argument("--backbone", help="backbone id or name (default: the champion's, else the only one)")
    evaluate_cmd.add_argument("--report", metavar="PATH.html", help="write the HTML report there, and PATH.json")
    evaluate_cmd.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                              help="where an image network head's folds train and score (--protocol logo)")

    benchmark_cmd = _add(commands, "benchmark", cmd_benchmark, common,
                         "a published protocol in one command: ingest the dataset (if given), embed, train on the "
                         "preset's generators, test on the rest, and write the table beside the paper's numbers",
                         parents=[evaluation_flags])
    benchmark_cmd.add_argument("data", nargs="?", metavar="PATH",
                               help="the dataset's folder, as it is published (ingested with the preset's layout; "
                                    "images already stored are not added again). Without it, the store must hold "
                                    "the dataset.")
    benchmark_cmd.add_argument("--preset", choices=sorted(PRESETS), required=True,
                               help="; ".join(f"{name}: {preset.description}" for name, preset in sorted(PRESETS.items())))
    benchmark_cmd.add_argument("--head", choices=("logreg", "svm", "mlp", "knn", "attribution"), default="logreg",
                               help="the head trained on the preset's generators (default logreg)")
    benchmark_cmd.add_argument("--backbone", help="backbone to embed with (default: the store's synthwatch.toml, else "
                                                  "the champion's, else the only one stored, else dinov2-small)")
    benchmark_cmd.add_argument("--allow-random-weights", action="store_true",
                               help="embed with random weights when pretrained ones cannot be had (plumbing only)")
    benchmark_cmd.add_argument("--report", metavar="PATH.html",
                               help="where to write the HTML report, and PATH.json (default: "
                                    "<store>/benchmarks/<preset>.html)")
    benchmark_cmd.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                               help="where backbones and networks run (auto: a GPU when there is one)")
    benchmark_cmd.add_argument("--workers", type=int,
                               help="decoding processes (default: cores - 1, at most 32 on CUDA and 8 on CPU)")

    detect_cmd = _add(commands, "detect", cmd_detect, common,
                      "score images with the champion head, with the nearest known fakes as evidence")
    detect_cmd.add_argument("images", nargs="+", metavar="IMAGE", help="image files to score")
    detect_cmd.add_argument("--head", metavar="VERSION", help="head version (default: the champion)")
    detect_cmd.add_argument("-k", type=int, default=5, help="nearest known fakes per image (default 5; 0 for none)")
    detect_cmd.add_argument("--log", action="store_true",
                            help="append each verdict to the store's prediction log (predictions/*.parquet), as "
                                 "the service does for /detect")
    detect_cmd.add_argument("--source", metavar="TAG", help="with --log: where the images came from (kept with each row)")

    serve_cmd = _add(commands, "serve", cmd_serve, common,
                     "HTTP service and the analysts' web page at / (drop an image: verdict and nearest known "
                     "fakes; head versions and their checks): POST /detect, POST /similar, GET /thumbnail/ID, "
                     "GET /models, GET /reports/VERSION, GET /health; requests send Authorization: Bearer "
                     "$SYNTHWATCH_API_TOKEN (the page asks for it once)")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    serve_cmd.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve_cmd.add_argument("--backbone", help="backbone id or name (default: the store's)")
    serve_cmd.add_argument("--no-auth", action="store_true",
                           help="serve without a token (loopback addresses only)")
    serve_cmd.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload accepted (default 20)")
    serve_cmd.add_argument("--max-pixels", type=int, default=SERVICE_MAX_PIXELS,
                           help=f"largest image decoded, checked from its header (default {SERVICE_MAX_PIXELS:,})")
    serve_cmd.add_argument("--decoders", type=int, default=2,
                           help="uploads decoded and embedded at once; more wait (default 2)")
    serve_cmd.add_argument("--no-log", action="store_true",
                           help="do not append /detect verdicts to the prediction log (predictions/*.parquet)")
    serve_cmd.add_argument("--log-max-mb", type=float, default=1024.0,
                           help="the prediction log's budget on disk; the oldest files go first (default 1024)")
    serve_cmd.add_argument("--access-log", action="store_true",
                           help="print one line per request on stderr: client, method, path and query, status "
                                "(never the token or the image)")
    serve_cmd.add_argument("--keep-uploads", action="store_true",
                           help="also keep each image sent to /detect under uploads/ in the store, by its sha256, "
                                "for labelling later (default: only the verdict and the sha256 are logged)")
    serve_cmd.add_argument("--workers", type=int, default=1, metavar="N",
                           help="worker processes answering on one port, each reading the store and writing its "
                                "own prediction log files; /metrics counts for all of them (default 1: one process)")

    corpus_cmd = commands.add_parser("corpus", help="the reproducible proxy corpus")
    corpus_commands = corpus_cmd.add_subparsers(dest="corpus_command", required=True, metavar="COMMAND")
    build_cmd = _add(corpus_commands, "build", cmd_corpus_build, common,
                     "write real crops and autoencoder fakes to OUT, with a manifest")
    build_cmd.add_argument("out", metavar="OUT", help="folder to write (created; a previous corpus is replaced)")
    build_cmd.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    build_cmd.add_argument("--size", choices=("small", "medium"), default="small",
                           help="small: 120 real + 6 x 40 fakes, 96 px; medium: 600 + 6 x 200, 128 px")
    build_cmd.add_argument("--cache", metavar="DIR",
                           help="where trained generators are cached "
                                "(default $SYNTHWATCH_CACHE/corpus, else ~/.cache/synthwatch/corpus)")

    demo_cmd = _add(commands, "demo", cmd_demo, common,
                    "the whole loop offline on the proxy corpus: two cycles, a new generator, the gate, a report")
    demo_cmd.add_argument("--data", default="demo-data", metavar="DIR",
                          help="where to write the corpus, the inbox and the report (default ./demo-data)")
    demo_cmd.add_argument("--seed", type=int, default=0, help="seed of the proxy corpus the demo builds (default 0)")
    demo_cmd.add_argument("--backbone", default=None,
                          help="backbone (default dinov2-small+spectrum, or the training-free spectrum when DINOv2's "
                               "weights are not here; a named backbone without weights runs on random ones, said loudly)")

    pipeline_flags = argparse.ArgumentParser(add_help=False)
    pipeline_flags.add_argument("--backbone", help="backbone to embed with (default: the store's synthwatch.toml, else "
                                                   "the champion's, else the only one stored, else dinov2-small)")
    pipeline_flags.add_argument("--allow-random-weights", action="store_true",
                                help="embed with random weights when pretrained ones cannot be had (plumbing only)")
    pipeline_flags.add_argument("--dask", metavar="ADDRESS",
                                help="fan embedding out over this Dask scheduler (tcp://host:8786)")
    pipeline_flags.add_argument("--alpha", type=float,
                                help=f"false-alarm rate of each drift check (default {DEFAULT_ALPHA}{IN_CONFIG})")
    _add(commands, "run", cmd_run, common,
         "run one cycle now: ingest watched sources, embed, index, check drift, retrain and gate if needed",
         parents=[pipeline_flags, gate_flags])
    _add(commands, "deploy", cmd_deploy, common,
         "serve the Prefect deployments (continual on the sources' schedules, retrain on new-generator and drift "
         "events) until interrupted", parents=[pipeline_flags, gate_flags])

    completion_cmd = commands.add_parser("completion", help="print a shell completion script",
                                         description="print a completion script for every command and flag: "
                                                     "eval \"$(synthwatch completion bash)\" in ~/.bashrc (zsh: "
                                                     "autoload -U bashcompinit && bashcompinit first)")
    completion_cmd.add_argument("shell", choices=("bash",), help="the shell to print a completion script for")
    completion_cmd.set_defaults(handler=lambda args, settings: _print_completion(parser))

    sources_cmd = commands.add_parser("sources", help="watched sources: where new images land")
    sources_commands = sources_cmd.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")
    add_cmd = _add(sources_commands, "add", cmd_sources, common,
                   "watch a folder, a manifest, or an object-store prefix (s3://, gs://, abfs://, file://, "
                   "hf://datasets/..., any fsspec scheme)")
    add_cmd.add_argument("location", metavar="PATH|URI",
                         help="a folder, a manifest, or an object-store prefix (s3://, gs://, hf://, ...) to watch")
    when = add_cmd.add_mutually_exclusive_group()
    when.add_argument("--schedule", metavar="CRON", help="cron expression for `deploy` (for example '0 * * * *')")
    when.add_argument("--every", metavar="DURATION", help="interval for `deploy`: 30s, 15m, 6h, 1d")
    add_cmd.add_argument("--label", choices=("real", "synthetic"), help="label every image (a flat folder)")
    add_cmd.add_argument("--generator", help="generator of a flat folder of synthetic images")
    add_cmd.add_argument("--source", help="source group recorded for every image")
    _add(sources_commands, "list", cmd_sources, common, "the watched sources")
    remove_cmd = _add(sources_commands, "remove", cmd_sources, common, "stop watching a source")
    remove_cmd.add_argument("location", metavar="PATH|URI", help="a watched location, as `sources list` shows it")
    return parser


def _print_completion(parser: argparse.ArgumentParser) -> int:
    from synthwatch.cli.completion import bash_script

    print(bash_script(parser), end="")
    return 0


def _add(commands, name: str, handler: Callable, common: argparse.ArgumentParser, help_text: str, parents=()):
    command = commands.add_parser(name, parents=[common, *parents], help=help_text, description=help_text)
    command.set_defaults(handler=handler)
    return command
