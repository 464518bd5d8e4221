"""Detection of real generators' output: leave-one-generator-out on a real-world set, for every recipe,
clean and under protocols that treat real and synthetic files alike, beside the proxy-trained
champion (a detector trained on the demo's proxy corpus only, scored off the shelf).

Usage: python benchmarks/realworld.py [--manifest CSV ...] [--recipes NAME,...] [--protocols P,...]
                                      [--proxy-recipes NAME,...] [--steps N] [--n-boot 1000]
                                      [--work DIR] [--out FILE.json] [--json]

``--manifest`` (repeatable) takes manifests in ingest's format (path, label, generator, source;
paths relative to the manifest); default ``../shared/data/realworld-dev/manifest.csv``. For each
protocol (``embeddings.protocols``: ``clean``, ``controlled``, ``downscaled``) every image is
prepared as the protocol says (real and synthetic alike) into ``--work``, ingested into a fresh
store, and for each recipe (``heads.recipes``) embedded and evaluated leaving each generator out
in turn: a head trained on the other generators' and the real images' training split, its
threshold set on validation real images at 1 % FPR, tested on every image of the generator it
never saw against held-out real images. Robustness rows (``<protocol>+jpeg75``,
``<protocol>+0.5x``) re-encode or downscale the test images of both classes. Each row gives AUROC,
TPR at 1 % FPR and the FPR at the head's own threshold, with 95 % bootstrap intervals.

``--json`` prints one object: ``rows`` (each ``recipe``, ``generator``, ``protocol``, ``auroc``,
``auroc_ci``, ``tpr_at_1pct_fpr``, ``tpr_at_1pct_fpr_ci``, ``fpr_at_threshold``,
``fpr_at_threshold_ci``, ``n_real``, ``n_fake``), ``sources``, ``recipes``, ``machine``, ``seconds``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from synthwatch.api import Store  # noqa: E402
from synthwatch.embeddings.decode import decode_image, read_image_file  # noqa: E402
from synthwatch.embeddings.engine import EngineOptions  # noqa: E402
from synthwatch.embeddings.job import wanted_views  # noqa: E402
from synthwatch.embeddings.protocols import PROTOCOLS, apply_protocol  # noqa: E402
from synthwatch.heads.dataset import ROBUSTNESS_FROM  # noqa: E402
from synthwatch.heads.detector import HeadSpec  # noqa: E402
from synthwatch.heads.evaluation import EvalOptions, Evaluation, evaluate_protocol  # noqa: E402
from synthwatch.heads.metrics import evaluate_scores  # noqa: E402
from synthwatch.heads.network_job import evaluate_network_logo  # noqa: E402
from synthwatch.heads.network_kinds import NetworkOptions  # noqa: E402
from synthwatch.heads.pipeline import prepare_for  # noqa: E402
from synthwatch.heads.recipes import RECIPES, Recipe  # noqa: E402
from synthwatch.heads.scorers import load_scorer  # noqa: E402
from synthwatch.heads.training import TrainOptions  # noqa: E402
from synthwatch.store.atomic import atomic_write_bytes  # noqa: E402

DEV_MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "realworld-dev" / "manifest.csv"
ROBUSTNESS_ROWS = {"jpeg75": "jpeg75", "downscale": "0.5x"}  # evaluation's condition -> the row's suffix
DEFAULT_RECIPES = ("spectrum+logreg", "srm+logreg", "srm+logreg+patches", "srm+logreg+views", "srm+logreg+patches+views",
                   "npr")
DEFAULT_PROXY_RECIPES = ("spectrum+logreg", "srm+logreg")


def read_manifests(paths: list[Path]) -> list[dict]:
    """Rows of the manifests (path made absolute), each image once (by its sha256 when given)."""
    rows, seen = [], set()
    for manifest in paths:
        if not manifest.is_file():
            raise SystemExit(f"Expected a manifest at {manifest}, but there is none. Give one with --manifest, "
                             "or put ../shared beside the checkout.")
        with manifest.open(newline="") as handle:
            for row in csv.DictReader(handle):
                path = (manifest.parent / row["path"]).resolve()
                key = row.get("sha256") or hashlib.sha256(path.read_bytes()).hexdigest()
                if key not in seen:
                    seen.add(key)
                    rows.append({**row, "path": str(path), "sha256": key, "manifest": str(manifest)})
    return rows


def prepared_manifest(rows: list[dict], protocol: str, folder: Path) -> Path:
    """A manifest of the images as ``protocol`` prepares them (written under ``folder``; ``clean``
    names the original files)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "manifest.csv"
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "generator", "source"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"path": protocol_path(row, protocol, folder), "label": row["label"],
                             "generator": row.get("generator") or "", "source": row.get("source") or ""})
    return out


def protocol_path(row: dict, protocol: str, folder: Path) -> str:
    """The file of ``row``'s image as ``protocol`` prepares it: the original for ``clean``, else
    ``folder/images/<sha256>.jpg``, written once (the protocol is deterministic per image)."""
    if protocol == "clean":
        return row["path"]
    path = folder / "images" / f"{row['sha256']}.jpg"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, apply_protocol(_decoded(row["path"]), protocol, row["sha256"]))
    return str(path)


def _decoded(path: str) -> Image.Image:
    return decode_image(read_image_file(path))[0]


def logo_rows(store: Store, recipe: Recipe, protocol: str, *, options: EvalOptions, steps: int | None) -> list[dict]:
    """Leave-one-generator-out rows of ``recipe`` on the store's images."""
    if recipe.network:
        evaluation = evaluate_network_logo(store.layout, NetworkOptions(head=recipe.head, steps=steps), options)
    else:
        store.embed(recipe.backbone, views=recipe.views, patches=recipe.patches, options=EngineOptions(workers=0))
        prepared = prepare_for(store.layout, _backbone_id(store, recipe), TrainOptions(evaluation=options))
        # The store keeps every recipe's views of this backbone; each recipe trains on its own only.
        views = prepared.data.views
        own = np.isin(views, wanted_views(recipe.views, recipe.patches)) | (views >= ROBUSTNESS_FROM)
        evaluation = evaluate_protocol(HeadSpec(recipe.head), prepared.data.take(own), protocol="logo",
                                       options=options, near_duplicates=prepared.pairs)
    return _rows(evaluation, recipe.name, protocol)


def _backbone_id(store: Store, recipe: Recipe) -> str:
    from synthwatch.store.backbones import resolve_backbone

    backbone_id = resolve_backbone(store.layout, recipe.backbone)
    return backbone_id


def _rows(evaluation: Evaluation, recipe: str, protocol: str) -> list[dict]:
    rows = []
    for result in evaluation.results:
        rows.append(_row(recipe, result.generator, protocol, result.metrics))
        for condition, suffix in ROBUSTNESS_ROWS.items():
            if condition in result.robustness:
                rows.append(_row(recipe, result.generator, f"{protocol}+{suffix}", result.robustness[condition]))
    return rows


def _row(recipe: str, generator: str, protocol: str, metrics: dict) -> dict:
    return {"recipe": recipe, "generator": generator, "protocol": protocol, "auroc": metrics["auroc"],
            "auroc_ci": metrics["auroc_ci"], "tpr_at_1pct_fpr": metrics["tpr_at_1fpr"],
            "tpr_at_1pct_fpr_ci": metrics["tpr_at_1fpr_ci"], "fpr_at_threshold": metrics["fpr"],
            "fpr_at_threshold_ci": metrics["fpr_ci"], "n_real": metrics.get("n_real"), "n_fake": metrics.get("n_fake")}


def proxy_rows(recipe: Recipe, rows: list[dict], protocols: list[str], work: Path, *,
               options: EvalOptions) -> list[dict]:
    """The demo's way: a head of ``recipe`` trained on the proxy corpus alone (every generator), then
    every real-world image scored off the shelf at its own threshold, each generator's images
    against every real photo."""
    from synthwatch.corpus import build_corpus
    from synthwatch.demo import FIRST_GENERATORS, NEW_GENERATOR

    corpus = build_corpus(work / "proxy-corpus", seed=0, size="small")
    store = Store(work / f"proxy-{recipe.name}")
    store.ingest(corpus.out / "real", label="real")
    for generator in (*FIRST_GENERATORS, NEW_GENERATOR):
        store.ingest(corpus.out / "synthetic" / generator, label="synthetic", generator=generator)
    store.embed(recipe.backbone, views=recipe.views, patches=recipe.patches, options=EngineOptions(workers=0))
    train = TrainOptions(evaluation=options, robustness=False)
    trained = store.train(recipe.head, backbone=recipe.backbone, options=train)
    scorer = load_scorer(store.layout, trained.version)
    out = []
    for protocol in protocols:
        prepared = {row["sha256"]: _decoded(protocol_path(row, protocol, work / protocol)) for row in rows}
        scores = {key: float(s) for key, s in zip(prepared, _score(scorer, list(prepared.values())))}
        real = np.array([scores[row["sha256"]] for row in rows if row["label"] == "real"])
        for generator in sorted({row["generator"] for row in rows if row["label"] == "synthetic"}):
            fake = np.array([scores[row["sha256"]] for row in rows if row.get("generator") == generator])
            metrics = evaluate_scores(real, fake, threshold=scorer.threshold, n_boot=options.n_boot, seed=options.seed)
            out.append(_row(f"proxy-trained {recipe.name}", generator, protocol, metrics))
    return out


def _score(scorer, images: list[Image.Image], batch: int = 32) -> np.ndarray:
    backbones: dict = {}
    return np.concatenate([scorer.score_images(images[i:i + batch], backbones)[0] for i in range(0, len(images), batch)])


def table(rows: list[dict]) -> str:
    lines = ["| recipe | protocol | held-out generator | real / fake | AUROC [95 % CI] | TPR @ 1 % FPR | FPR at threshold |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['protocol']} | {r['generator']} | {r['n_real']} / {r['n_fake']} | "
                     f"{r['auroc']:.3f} [{r['auroc_ci'][0]:.3f}, {r['auroc_ci'][1]:.3f}] | "
                     f"{r['tpr_at_1pct_fpr']:.2f} [{r['tpr_at_1pct_fpr_ci'][0]:.2f}, {r['tpr_at_1pct_fpr_ci'][1]:.2f}] | "
                     f"{r['fpr_at_threshold']:.3f} [{r['fpr_at_threshold_ci'][0]:.3f}, {r['fpr_at_threshold_ci'][1]:.3f}] |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """One line per recipe and protocol: the mean held-out AUROC, the lowest generator's AUROC and
    lower bound, the mean TPR at 1 % FPR and the highest FPR at the head's threshold."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["recipe"], row["protocol"]), []).append(row)
    lines = ["| recipe | protocol | generators | mean AUROC | lowest AUROC (its lower bound) | mean TPR @ 1 % FPR | "
             "highest FPR at threshold |", "|---|---|---|---|---|---|---|"]
    for (recipe, protocol), group in groups.items():
        lowest = min(group, key=lambda r: r["auroc"])
        lines.append(f"| {recipe} | {protocol} | {len(group)} | {np.mean([r['auroc'] for r in group]):.3f} | "
                     f"{lowest['auroc']:.3f} ({lowest['auroc_ci'][0]:.3f}, {lowest['generator']}) | "
                     f"{np.mean([r['tpr_at_1pct_fpr'] for r in group]):.2f} | "
                     f"{max(r['fpr_at_threshold'] for r in group):.3f} |")
    return "\n".join(lines)


def _recipes(names: str, flag: str) -> list[Recipe]:
    chosen = [name for name in names.split(",") if name]
    unknown = [name for name in chosen if name not in RECIPES]
    if unknown:
        raise SystemExit(f"Expected {flag} among {', '.join(RECIPES)}, but got {', '.join(unknown)}.")
    return [RECIPES[name] for name in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, action="append", help=f"(repeatable; default {DEV_MANIFEST})")
    parser.add_argument("--recipes", default=",".join(DEFAULT_RECIPES), help=f"among {', '.join(RECIPES)}")
    parser.add_argument("--protocols", default="clean,controlled", help=f"among {', '.join(PROTOCOLS)}")
    parser.add_argument("--proxy-recipes", default=",".join(DEFAULT_PROXY_RECIPES),
                        help="recipes also trained on the proxy corpus alone and scored off the shelf ('' for none)")
    parser.add_argument("--steps", type=int, help="training steps of image network recipes (default: the kind's)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--work", type=Path, help="where prepared images and stores go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="also write the JSON there")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    recipes, proxies = _recipes(args.recipes, "--recipes"), _recipes(args.proxy_recipes, "--proxy-recipes")
    protocols = [name for name in args.protocols.split(",") if name]
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise SystemExit(f"Expected protocols among {', '.join(PROTOCOLS)}, but got {', '.join(unknown)}.")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = time.perf_counter()
    rows = read_manifests(args.manifest or [DEV_MANIFEST])
    options = EvalOptions(n_boot=args.n_boot)
    with tempfile.TemporaryDirectory(prefix="synthwatch-realworld-") as scratch:
        work = args.work or Path(scratch)
        results, seconds = [], {}
        for protocol in protocols:
            manifest = prepared_manifest(rows, protocol, work / protocol)
            store = Store(work / protocol / "store")
            store.ingest(manifest, root=manifest.parent.anchor)
            for recipe in recipes:
                began = time.perf_counter()
                results += logo_rows(store, recipe, protocol, options=options, steps=args.steps)
                seconds[f"{recipe.name} {protocol}"] = round(time.perf_counter() - began, 1)
                print(f"realworld: {recipe.name} under {protocol}: {seconds[f'{recipe.name} {protocol}']} s",
                      file=sys.stderr)
        for recipe in proxies:
            began = time.perf_counter()
            results += proxy_rows(recipe, rows, protocols, work, options=options)
            seconds[f"proxy-trained {recipe.name}"] = round(time.perf_counter() - began, 1)
    payload = {"rows": results, "recipes": [r.as_dict() for r in recipes],
               "sources": sorted({row["manifest"] for row in rows}),
               "images": {"real": sum(r["label"] == "real" for r in rows),
                          "synthetic": sum(r["label"] == "synthetic" for r in rows)},
               "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
               "seconds": {**seconds, "total": round(time.perf_counter() - started, 1)}}
    if args.out:
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps(payload) if args.json else f"{summary(results)}\n\n{table(results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
