"""`synthwatch benchmark`: a published protocol in one command. Ingest the dataset's folder when
given (its preset's layout; images already stored are counted as duplicates, not added again),
embed what lacks vectors, train a fresh head on the preset's generators, test it on every other,
and write the table beside the paper's published numbers (HTML and JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from synthwatch.embeddings.engine import EngineOptions
from synthwatch.heads.training import TrainOptions
from synthwatch.store.ingest import IngestOptions
from synthwatch.store.layout import StoreLayout


@dataclass(frozen=True)
class BenchmarkOptions:
    preset: str
    data: Path | None = None  # the dataset's folder, laid out as the preset's dataset publishes it
    head: str = "logreg"
    backbone: str | None = None  # None: the champion's, else the only one stored, else dinov2-small
    allow_random_weights: bool = False
    report: Path | None = None  # None: <store>/benchmarks/<preset>.html
    train: TrainOptions = field(default_factory=TrainOptions)
    engine: EngineOptions = field(default_factory=EngineOptions)
    ingest: IngestOptions = field(default_factory=IngestOptions)


def run_benchmark(layout: StoreLayout, options: BenchmarkOptions, say=print) -> dict:
    """Run the preset's protocol over the store; returns the ``benchmark --json`` payload: the
    evaluation's keys (``per_generator`` ...), ``preset``, ``head``, ``ingest`` (None when no
    folder was given), ``embed``, ``comparison``, ``references``, ``report`` and ``report_json``."""
    from synthwatch.embeddings.job import embed_store, resolve_pipeline_backbone
    from synthwatch.heads.detector import HeadSpec
    from synthwatch.heads.embedding_map import embedding_map_of
    from synthwatch.heads.pipeline import evaluate_registered
    from synthwatch.heads.presets import PRESETS, preset_train_on
    from synthwatch.heads.references import compare, load_references
    from synthwatch.heads.report import write_report
    from synthwatch.store.catalog import Catalog
    from synthwatch.store.ingest import ingest
    from synthwatch.store.layouts import plan_layout

    if options.preset not in PRESETS:
        raise ValueError(f"Expected --preset in {', '.join(PRESETS)}, but got {options.preset!r}.")
    preset = PRESETS[options.preset]
    spec = HeadSpec(options.head)
    ingested = None
    if options.data is not None:
        name, plan = plan_layout(options.data, preset.layout)
        say(f"benchmark: ingesting {options.data} as {name} ({len(plan.candidates)} images)")
        ingested = ingest(layout, plan, options.ingest).as_dict()
    train_on = preset_train_on(preset.name, sorted(Catalog(layout).status()["generators"]))
    backbone = resolve_pipeline_backbone(layout, options.backbone, allow_random_weights=options.allow_random_weights)
    if backbone.random_parts:
        say(f"benchmark: RANDOM WEIGHTS for {', '.join(backbone.random_parts)}: the measured columns mean nothing")
    say(f"benchmark: embedding with {backbone.backbone_id}")
    embedded = embed_store(layout, backbone, options=options.engine).as_dict()
    say(f"benchmark: training a {spec.kind} head on {', '.join(train_on)}; testing on every other generator")
    report = evaluate_registered(layout, version=None, protocol=None, options=options.train, train_on=train_on,
                                 backbone=backbone.backbone_id, spec=spec)
    references = load_references(preset.name)
    comparison = None if references is None else compare(report.evaluation, references,
                                                         n_boot=options.train.evaluation.n_boot,
                                                         seed=options.train.evaluation.seed)
    context = {"preset": preset.name, "protocol description": preset.description, "backbone_id": report.backbone_id,
               "head": spec.kind, "trained on": ", ".join(train_on),
               "random weights": ", ".join(backbone.random_parts) or "none"}
    path = options.report or layout.root / "benchmarks" / f"{preset.name}.html"
    html_path, json_path = write_report(path, report.evaluation, context, comparison=comparison,
                                        references=None if references is None else references.as_dict(),
                                        embedding_map=embedding_map_of(layout, report.backbone_id))
    return {**report.as_dict(), "preset": preset.name, "head": spec.kind, "ingest": ingested,
            "embed": {key: value for key, value in embedded.items() if key != "failures"},
            "random_weights": list(backbone.random_parts), "comparison": comparison,
            "references": None if references is None else references.as_dict(),
            "report": str(html_path.resolve()), "report_json": str(json_path.resolve())}
