"""`synthwatch demo`: the whole loop on the embedded proxy corpus, offline, in a few minutes.

Cycle 1 watches an inbox holding real photos and three generators, and promotes a first champion
through the gate. Then a fourth generator's images land in the inbox; cycle 2 sees the new
generator, checks drift, retrains, and the gate promotes or rejects the candidate with its
reasons. Finally one of the new fakes is looked up among the known fakes, and the champion's
evaluation report is written.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from synthwatch.store.layout import StoreLayout

FIRST_GENERATORS = ("ae-tconv", "ae-nearest", "ae-bilinear")
NEW_GENERATOR = "ae-pixelshuffle"
DEMO_BACKBONE = "dinov2-small"
# With random weights nothing clears real floors; the other checks still run.
RANDOM_WEIGHTS_GATE = {"auroc_floor": 0.0, "tpr_floor": 0.0, "regression_tolerance": 0.02}


@dataclass
class DemoOptions:
    data: Path
    seed: int = 0
    backbone: str = DEMO_BACKBONE
    quiet: bool = False


def demo_weights(backbone: str, say=print) -> tuple[bool, bool, dict]:
    """``(pretrained, allow_random_weights, gate)`` for the demo's backbone: pretrained weights when
    they can be had, else random weights of the same architecture, announced loudly, with the
    gate's floors at 0."""
    from synthwatch.embeddings.backbone import create_backbone
    from synthwatch.embeddings.errors import WeightsUnavailable
    from synthwatch.embeddings.loading import PRETRAINED
    from synthwatch.flows.cycle import DEFAULT_GATE

    try:
        pretrained = create_backbone(backbone).weights == PRETRAINED
        allow_random = False
    except WeightsUnavailable:
        pretrained, allow_random = False, True
    gate = DEFAULT_GATE if pretrained else RANDOM_WEIGHTS_GATE
    if allow_random:
        say("demo: " + "!" * 78)
        say(f"demo: NO PRETRAINED WEIGHTS for {backbone}: running the same architecture with RANDOM "
            "weights.\ndemo: Scores, AUROCs and verdicts below are NOT meaningful; the gate's floors are set to 0 "
            "for this run\ndemo: (backward transfer, false-positive rate and leakage are still checked).\n"
            f"demo: Point at real weights (HF_HOME with a cached {backbone}, or --backbone DIR) for a "
            "meaningful run.")
        say("demo: " + "!" * 78)
    elif not pretrained:
        say(f"demo: {backbone} has seeded random weights (a test model): scores are not meaningful and the "
            "gate's floors are set to 0")
    return pretrained, allow_random, gate


def run_demo(layout: StoreLayout, options: DemoOptions, say=print) -> dict:
    """Run both cycles; returns ``{"cycles": [...], "report": path, ...}``."""
    from synthwatch.flows.cycle import continual_flow
    from synthwatch.store.watched import add_source
    from synthwatch.corpus import build_corpus

    corpus = build_corpus(options.data / "corpus", seed=options.seed, size="small")
    say(f"demo: proxy corpus in {corpus.out} ({corpus.real} real, {sum(corpus.synthetic.values())} synthetic)")
    pretrained, allow_random, gate = demo_weights(options.backbone, say)
    inbox = options.data / "inbox"
    if inbox.exists():
        shutil.rmtree(inbox)
    _copy(corpus.out / "real", inbox / "real")
    for name in FIRST_GENERATORS:
        _copy(corpus.out / "synthetic" / name, inbox / "synthetic" / name)
    add_source(layout, str(inbox))
    common = {"store": str(layout.root), "backbone": options.backbone, "allow_random_weights": allow_random,
              "gate": gate}
    say(f"demo: cycle 1: real photos and {', '.join(FIRST_GENERATORS)} land in {inbox}")
    first = continual_flow(**common)
    _say_cycle(say, 1, first)
    say(f"demo: cycle 2: a new generator, {NEW_GENERATOR}, lands in the inbox")
    _copy(corpus.out / "synthetic" / NEW_GENERATOR, inbox / "synthetic" / NEW_GENERATOR)
    second = continual_flow(**common)
    _say_cycle(say, 2, second)
    lookup = _lookup(layout, inbox, say)
    report = _report(layout, options.data / "report.html", say)
    return {"cycles": [first, second], "report": report, "lookup": lookup, "pretrained_weights": pretrained,
            "corpus": str(corpus.out)}


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


def _report(layout: StoreLayout, path: Path, say) -> str | None:
    from synthwatch.heads.pipeline import evaluate_registered
    from synthwatch.heads.report import write_report
    from synthwatch.store.registry import HeadRegistry

    champion = HeadRegistry(layout).champion()
    if champion is None:
        say("demo: no champion, so no report")
        return None
    report = evaluate_registered(layout, version=champion, protocol="holdout")
    html_path, _ = write_report(path, report.evaluation, {"head_version": champion, "backbone_id": report.backbone_id})
    say(f"demo: report of the champion: {html_path.resolve()}")
    return str(html_path.resolve())


def stderr_say(message: str) -> None:
    print(message, file=sys.stderr)
