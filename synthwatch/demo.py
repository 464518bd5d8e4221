"""`synthwatch demo`: the whole loop on the embedded proxy corpus, offline, in a few minutes.

Cycle 1 watches an inbox holding real photos and three generators, and promotes a first champion
through the gate at its default floors. Then a fourth generator's images land in the inbox; cycle 2 sees the new
generator, checks drift, retrains, and the gate promotes or rejects the candidate with its
reasons. Finally one of the new fakes is looked up among the known fakes, and the champion's
evaluation report (leave-one-generator-out: every generator held out in turn, and the new
generator's learning curve: how many of its fakes it takes to catch it) is written.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from synthwatch.store.layout import StoreLayout

FIRST_GENERATORS = ("ae-tconv", "ae-nearest", "ae-bilinear")
NEW_GENERATOR = "ae-pixelshuffle"
DEMO_BACKBONE = "dinov2-small+spectrum"  # with DINOv2's pretrained weights on the machine
# Without them: the spectrum backbone, which detects the proxy's autoencoders at the default floors.
# (A store of the user's own images defaults to heads.recipes.OFFLINE_RECIPE, measured best on real
# generators; on the proxy's 96 px crops, a third of them JPEG, srm fails the demo's FPR check.)
OFFLINE_BACKBONE = "spectrum"
# Where no part of the backbone means anything (an explicit random or seeded test model), nothing
# clears real floors: they are set to 0 and the other checks still run.
NO_FLOORS_GATE = {"auroc_floor": 0.0, "tpr_floor": 0.0}


@dataclass
class DemoOptions:
    data: Path
    seed: int = 0
    backbone: str | None = None  # None: DEMO_BACKBONE, else OFFLINE_BACKBONE without weights
    quiet: bool = False


@dataclass(frozen=True)
class DemoBackbone:
    """The backbone the demo embeds with, whether random weights stand in for missing ones, the
    gate it runs, and which parts are random."""

    name: str
    allow_random_weights: bool
    gate: dict
    random_parts: tuple[str, ...]
    meaningful: bool  # some part carries information: pretrained weights, or computed features

    def as_dict(self) -> dict:
        return {"name": self.name, "allow_random_weights": self.allow_random_weights, "gate": self.gate,
                "random_parts": list(self.random_parts), "meaningful": self.meaningful}


def demo_backbone(requested: str | None = None, say=print, gate: dict | None = None) -> DemoBackbone:
    """The demo's backbone: ``requested``, else ``dinov2-small+spectrum`` when DINOv2's weights are
    here, else the training-free ``spectrum``. An explicit backbone whose weights are missing runs
    with random weights, announced loudly. The gate runs at its default floors whenever some part
    of the backbone means something, else at 0."""
    from synthwatch.embeddings.backbone import create_backbone
    from synthwatch.embeddings.errors import WeightsUnavailable
    from synthwatch.embeddings.loading import BUILTIN, RANDOM
    from synthwatch.heads.gate import GatePolicy

    name, allow_random = requested or DEMO_BACKBONE, False
    try:
        backbone = create_backbone(name)
    except WeightsUnavailable:
        if requested is None:
            say(f"demo: no pretrained DINOv2 weights here: the demo detects with the training-free {OFFLINE_BACKBONE} "
                "backbone (frequency statistics, no download). Point at real weights (HF_HOME with a cached "
                f"dinov2-small, or --backbone DIR) to run {DEMO_BACKBONE}.")
            name = OFFLINE_BACKBONE
        else:
            allow_random = True
        backbone = create_backbone(name, allow_random_weights=allow_random)
    parts = getattr(backbone, "parts", [backbone])
    random_parts = tuple(part.spec.name for part in parts if part.weights in (RANDOM, BUILTIN))
    meaningful = len(random_parts) < len(parts)
    if random_parts:
        say("demo: " + "!" * 78)
        say(f"demo: RANDOM WEIGHTS for {', '.join(random_parts)}: no pretrained weights, so "
            f"{'that part' if meaningful else 'the backbone'} carries no information.")
        say("demo: " + ("Its share of each vector is noise; the rest of the backbone does the detecting, and the gate "
                        "keeps its default floors." if meaningful else
                        "Scores, AUROCs and verdicts below are NOT meaningful; the gate's floors are set to 0 for "
                        "this run\ndemo: (backward transfer, false-positive rate and leakage are still checked)."))
        say("demo: Point at real weights (HF_HOME with a cached model, or --backbone DIR) for a meaningful run.")
        say("demo: " + "!" * 78)
    gate = (gate or GatePolicy().as_dict()) if meaningful else NO_FLOORS_GATE
    return DemoBackbone(name, allow_random, gate, random_parts, meaningful)


def run_demo(layout: StoreLayout, options: DemoOptions, say=print) -> dict:
    """Run both cycles; returns ``{"cycles": [...], "report": path, ...}``."""
    from synthwatch.flows.cycle import continual_flow
    from synthwatch.heads.config import load_config, write_default_config
    from synthwatch.store.watched import add_source
    from synthwatch.corpus import build_corpus

    corpus = build_corpus(options.data / "corpus", seed=options.seed, size="small")
    say(f"demo: proxy corpus in {corpus.out} ({corpus.real} real, {sum(corpus.synthetic.values())} synthetic)")
    chosen = demo_backbone(options.backbone, say, load_config(layout.root).gate.as_dict())
    write_default_config(layout.root, backbone=chosen.name)  # later commands on this store embed as the demo did
    say(f"demo: backbone {chosen.name}; gate floors: AUROC {chosen.gate['auroc_floor']}, TPR {chosen.gate['tpr_floor']}")
    inbox = options.data / "inbox"
    if inbox.exists():
        shutil.rmtree(inbox)
    _copy(corpus.out / "real", inbox / "real")
    for name in FIRST_GENERATORS:
        _copy(corpus.out / "synthetic" / name, inbox / "synthetic" / name)
    add_source(layout, str(inbox))
    common = {"store": str(layout.root), "backbone": chosen.name, "allow_random_weights": chosen.allow_random_weights,
              "gate": chosen.gate}
    say(f"demo: cycle 1: real photos and {', '.join(FIRST_GENERATORS)} land in {inbox}")
    first = continual_flow(**common)
    _say_cycle(say, 1, first)
    say(f"demo: cycle 2: a new generator, {NEW_GENERATOR}, lands in the inbox")
    _copy(corpus.out / "synthetic" / NEW_GENERATOR, inbox / "synthetic" / NEW_GENERATOR)
    second = continual_flow(**common)
    _say_cycle(say, 2, second)
    lookup = _lookup(layout, inbox, say)
    report = _report(layout, options.data / "report.html", say, second["learning_curves"])
    return {"cycles": [first, second], "report": report, "lookup": lookup, "backbone": chosen.as_dict(),
            "backbone_id": second.get("backbone_id") or first.get("backbone_id"), "corpus": str(corpus.out)}


def _copy(source: Path, target: Path) -> None:
    shutil.copytree(source, target, dirs_exist_ok=True)


def _say_cycle(say, number: int, cycle: dict) -> None:
    say(f"demo: cycle {number}: ingested {cycle['ingested']}, embedded {cycle['embedded']}, new generators: "
        f"{', '.join(cycle['new_generators']) or 'none'}")
    drift = cycle["drift"]
    if drift.get("checked"):
        checks = ", ".join(f"{c['name']} p={c['p_value']:.4f}{' DRIFT' if c['drift'] else ''}" for c in drift["checks"])
        say(f"demo: cycle {number}: drift on {drift['new_synthetic']} new fakes: {checks}")
    else:
        say(f"demo: cycle {number}: drift not checked ({drift.get('reason')})")
    if cycle["retrained"]:
        say(f"demo: cycle {number}: retrained ({'; '.join(cycle['retrain_wanted'])}): candidate {cycle['candidate']} "
            f"{cycle['decision'].upper()}")
        for reason in cycle["reasons"]:
            say(f"demo:   {reason}")
        for line in cycle["learning_curve_lines"]:
            say(f"demo: cycle {number}: {line}")
    say(f"demo: cycle {number}: champion {cycle['champion']}")


def _lookup(layout: StoreLayout, inbox: Path, say) -> dict:
    from synthwatch.embeddings.backbone import backbone_from_description
    from synthwatch.embeddings.query import embed_query
    from synthwatch.store.neighbors import open_for_reading

    query = sorted((inbox / "synthetic" / NEW_GENERATOR).rglob("*.*"))[0]
    neighbors, _ = open_for_reading(layout)
    vector = embed_query(backbone_from_description(neighbors.description), query.read_bytes())
    found, _ = neighbors.search(vector[None], 6, label="synthetic")
    others = [n.as_dict() for n in found[0] if n.path != str(query)][:5]
    say(f"demo: nearest known fakes of {query}:")
    for n in others:
        say(f"demo:   {n['score']:.4f}  {n['generator']:<16} {n['path']}")
    return {"query": str(query), "neighbors": others}


def _report(layout: StoreLayout, path: Path, say, learning_curves: list[dict]) -> str | None:
    from synthwatch.heads.embedding_map import embedding_map_of
    from synthwatch.heads.pipeline import evaluate_registered
    from synthwatch.heads.report import write_report
    from synthwatch.store.registry import HeadRegistry

    champion = HeadRegistry(layout).champion()
    if champion is None:
        say("demo: no champion, so no report")
        return None
    report = evaluate_registered(layout, version=champion, protocol="logo")  # every generator held out in turn
    html_path, _ = write_report(path, report.evaluation, {"head_version": champion, "backbone_id": report.backbone_id},
                                learning_curves=learning_curves,
                                embedding_map=embedding_map_of(layout, report.backbone_id))
    say(f"demo: report of the champion: {html_path.resolve()}")
    return str(html_path.resolve())


def stderr_say(message: str) -> None:
    print(message, file=sys.stderr)
