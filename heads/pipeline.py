"""`synthwatch train` and `synthwatch evaluate` over a store: make the store ready (robustness
views, index), prepare the evaluation data once, run the protocol, fit and register the head."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from synthwatch.heads.detector import HeadSpec
from synthwatch.heads.evaluation import Evaluation, evaluate_protocol
from synthwatch.heads.learning_curve import LearningCurve, learning_curve
from synthwatch.heads.prepare import EvaluationData, make_ready, prepare_data
from synthwatch.heads.records import read_record, register
from synthwatch.heads.scorers import EmbeddingScorer, load_scorer
from synthwatch.heads.training import TrainOptions, TrainResult, fit_final, threshold_notes, use_final_threshold
from synthwatch.store.backbones import names_backbone, resolve_backbone
from synthwatch.store.catalog import Catalog
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import HeadRegistry

__all__ = ["EvaluationReport", "evaluate_registered", "learning_curve_of", "prepare_for", "train_and_register"]


@dataclass(frozen=True)
class EvaluationReport:
    """What ``synthwatch evaluate`` measured; :meth:`as_dict` is its ``--json`` (before report paths)."""

    head_version: str | None
    backbone_id: str | None
    evaluation: Evaluation
    notes: tuple[str, ...] = ()
    train_on: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        out = {"head_version": self.head_version, "backbone_id": self.backbone_id, **self.evaluation.as_dict(),
               "notes": list(self.notes)}
        return {**out, "train_on": list(self.train_on)} if self.train_on else out


def prepare_for(layout: StoreLayout, backbone_id: str, options: TrainOptions) -> EvaluationData:
    """The one preparation of a decision: the explicit steps that write (robustness views, the
    index), then the read."""
    notes = make_ready(layout, backbone_id, robustness=options.robustness, index=options.max_train is None)
    return prepare_data(layout, backbone_id, dedup_threshold=options.dedup_threshold, seed=options.evaluation.seed,
                        notes=tuple(notes), max_train=options.max_train, max_eval=options.max_eval)


def train_and_register(layout: StoreLayout, spec: HeadSpec, *, backbone: str | None = None,
                       options: TrainOptions = TrainOptions()) -> tuple[TrainResult, Evaluation]:
    """Evaluate ``spec`` on held-out generators, fit the final head and register it as a new
    version (not promoted). The result carries the evaluation data for the gate."""
    prepared = prepare_for(layout, resolve_backbone(layout, backbone), options)
    protocol = "holdout" if options.holdout else "logo"
    evaluation = evaluate_protocol(spec, prepared.data, protocol=protocol, holdout=options.holdout,
                                   options=options.evaluation, near_duplicates=prepared.pairs)
    trained = fit_final(spec, prepared, options)
    use_final_threshold(evaluation, trained.threshold)
    record, files = trained.record_and_files(prepared, options, evaluation, Catalog(layout).split_seed())
    version = register(layout, record, files)
    notes = [*prepared.notes, *threshold_notes(trained.counts["val_real"], options.evaluation.target_fpr)]
    result = TrainResult(version, spec.kind, prepared.backbone_id, trained.threshold, options.evaluation.target_fpr,
                         record.generators_seen, record.holdout, trained.counts, evaluation.as_dict(), notes)
    return replace(result, prepared=prepared), evaluation


def evaluate_registered(layout: StoreLayout, *, version: str | None, protocol: str | None,
                        options: TrainOptions = TrainOptions(), prepared: EvaluationData | None = None,
                        train_on: tuple[str, ...] = (), backbone: str | None = None,
                        spec: HeadSpec = HeadSpec(), device: str = "auto") -> EvaluationReport:
    """``synthwatch evaluate``: ``holdout`` measures the registered head itself on generators it
    never saw and on the test split of those it did; ``logo`` re-runs leave-one-generator-out
    with its kind and parameters. Without a head in the registry, the default head is evaluated.
    ``prepared`` is the decision's evaluation data when the caller has it (the gate).
    ``train_on`` trains a fresh head of ``spec`` on those generators and tests it on every other.
    An image network head's ``logo`` trains one network per fold (on ``device``)."""
    if train_on:
        return _evaluate_trained_on(layout, train_on, version=version, protocol=protocol, options=options,
                                    backbone=backbone, spec=spec)
    registry = HeadRegistry(layout)
    version = version or registry.champion() or (registry.versions()[-1]["version"] if registry.versions() else None)
    if version is None:
        prepared = prepared or prepare_for(layout, resolve_backbone(layout, backbone), options)
        evaluation = evaluate_protocol(HeadSpec(), prepared.data, protocol=protocol or "logo",
                                       holdout=options.holdout, options=options.evaluation,
                                       near_duplicates=prepared.pairs)
        if evaluation.protocol == "logo":
            use_final_threshold(evaluation, fit_final(HeadSpec(), prepared, options).threshold)
        return EvaluationReport(None, prepared.backbone_id, evaluation, prepared.notes)
    scorer = load_scorer(layout, version)
    record = scorer.record
    if backbone and not names_backbone(record.backbone_id or "", backbone):
        raise ValueError(f"Expected --backbone to match head {version}'s backbone ({record.backbone_id or 'images'}), "
                         f"but got {backbone}. A registered head is measured on its own vectors: drop --backbone, "
                         "or use --train-on to evaluate a fresh head on other vectors.")
    if not isinstance(scorer, EmbeddingScorer):
        if protocol == "logo":
            from synthwatch.heads.network_job import evaluate_network_logo, network_options_of

            evaluation_options = replace(options.evaluation, target_fpr=record.target_fpr)
            network = replace(network_options_of(record), device=device)
            evaluation = evaluate_network_logo(layout, network, evaluation_options)
            use_final_threshold(evaluation, scorer.threshold)
            notes = (f"leave-one-generator-out trained one {network.head} network per generator "
                     f"({network.steps} steps each), as head {version} was trained",)
            return EvaluationReport(version, None, evaluation, notes)
        evaluation = scorer.evaluate(layout, options.evaluation)
        return EvaluationReport(version, None, evaluation)
    if options.holdout and sorted(options.holdout) != sorted(record.holdout):
        raise ValueError(f"Expected --holdout only without a registered head, but head {version} is evaluated on "
                         f"what it never saw ({', '.join(record.holdout) or 'no held-out generator'} and "
                         "generators newer than it). To hold out others, train a head with `synthwatch train "
                         "--holdout G1,G2`.")
    if prepared is None or prepared.backbone_id != record.backbone_id:
        prepared = prepare_for(layout, record.backbone_id, replace(options, dedup_threshold=record.dedup_threshold))
    if (protocol or "holdout") == "holdout":
        evaluation = scorer.evaluate(layout, options.evaluation, prepared)
    else:
        evaluation_options = replace(options.evaluation, target_fpr=record.target_fpr)
        evaluation = evaluate_protocol(HeadSpec(record.kind, record.head["params"]), prepared.data, protocol="logo",
                                       options=evaluation_options, near_duplicates=prepared.pairs)
        use_final_threshold(evaluation, scorer.threshold)
    return EvaluationReport(version, record.backbone_id, evaluation, prepared.notes)


def _evaluate_trained_on(layout: StoreLayout, train_on: tuple[str, ...], *, version: str | None, protocol: str | None,
                         options: TrainOptions, backbone: str | None, spec: HeadSpec) -> EvaluationReport:
    """The protocol papers report: a head of ``spec`` trained on ``train_on`` (and real images), then
    every other generator held out (all its images) and ``train_on`` on its test split."""
    if version or protocol or options.holdout:
        raise ValueError("Expected --train-on alone, but got --head, --protocol or --holdout with it: --train-on "
                         "trains a fresh default head and holds out every other generator.")
    prepared = prepare_for(layout, resolve_backbone(layout, backbone), options)
    stored = prepared.data.generator_names()
    unknown = sorted(set(train_on) - set(stored))
    if unknown:
        raise ValueError(f"Expected --train-on generators among those stored ({', '.join(stored)}), but got "
                         f"{', '.join(unknown)}. Name generators from that list.")
    others = tuple(name for name in stored if name not in train_on)
    if not others:
        raise ValueError(f"Expected a generator left to test on, but --train-on names all of them ({', '.join(stored)}). "
                         "Leave at least one out.")
    shipped = Catalog(layout).shipped_groups()
    on_test_split = bool(shipped) and set(prepared.data.sources[np.isin(prepared.data.generators, others)]) <= shipped
    evaluation = evaluate_protocol(spec, prepared.data, protocol="holdout", holdout=others,
                                   options=options.evaluation, near_duplicates=prepared.pairs,
                                   held_out_on_test_split=on_test_split)
    notes = [*prepared.notes, *evaluation.notes]
    if on_test_split:
        notes.append("the dataset ships its splits: trained on its training folders, each held-out generator tested "
                     "on its test folders only, as the paper did")
    return EvaluationReport(None, prepared.backbone_id, evaluation, tuple(notes), train_on=tuple(sorted(train_on)))


def learning_curve_of(layout: StoreLayout, generator: str, *, options: TrainOptions = TrainOptions(),
                      backbone: str | None = None, auroc_floor: float = 0.70,
                      tpr_floor: float = 0.05) -> tuple[LearningCurve, EvaluationData, HeadSpec]:
    """``evaluate --learning-curve G``: the curve of ``generator`` with the champion's kind and
    parameters (the default head without a champion), on the champion's backbone or ``backbone``."""
    registry = HeadRegistry(layout)
    champion = registry.champion()
    record = read_record(registry, champion) if champion else None
    spec = HeadSpec(record.kind, record.head["params"]) if record is not None and record.embeds else HeadSpec()
    prepared = prepare_for(layout, resolve_backbone(layout, backbone), options)
    curve = learning_curve(prepared.data, generator, spec=spec, options=options.evaluation, auroc_floor=auroc_floor,
                           tpr_floor=tpr_floor, near_duplicates=prepared.pairs)
    return curve, prepared, spec
