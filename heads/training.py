"""The final head of a training run: fitted on the training split of every generator not held
out, its threshold set on validation real images, with what the registry keeps beside it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthwatch.heads.dataset import CLEAN_VIEW
from synthwatch.heads.detector import HeadSpec, fit_head
from synthwatch.heads.evaluation import EvalOptions, Evaluation, calibrate, make_fold, scorer
from synthwatch.heads.persist import encode_arrays, encode_head
from synthwatch.heads.prepare import DEFAULT_DEDUP_THRESHOLD, EvaluationData
from synthwatch.heads.records import ATTRIBUTION_FILE, HEAD_FILE, REFERENCE_FILE, HeadRecord
from synthwatch.store.errors import StoreError

REFERENCE_SAMPLE = 2000  # training fakes kept with a head, the reference of embedding drift checks

__all__ = ["TrainOptions", "TrainResult", "TrainedHead", "fit_final", "threshold_notes", "use_final_threshold"]


@dataclass(frozen=True)
class TrainOptions:
    """What a training run holds out and how it is evaluated (``evaluation.seed`` seeds resampling)."""

    holdout: tuple[str, ...] = ()
    evaluation: EvalOptions = field(default_factory=EvalOptions)
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD
    robustness: bool = True
    reason: str = ""
    max_train: int | None = None  # training rows at most (a balanced, recent-leaning replay set); None: all
    max_eval: int | None = None  # rows of each evaluation split read at most (a stable sample); None: all


@dataclass(frozen=True)
class TrainedHead:
    """A fitted head with its threshold and what the registry keeps beside it."""

    spec: HeadSpec
    head: object
    attribution: object | None
    threshold: float
    reference: dict[str, np.ndarray]
    counts: dict
    train_groups: list[str]

    def record_and_files(self, prepared: EvaluationData, options: TrainOptions, evaluation: Evaluation,
                         split_seed: int) -> tuple[HeadRecord, dict[str, bytes]]:
        config, weights = encode_head(self.head)
        files = {HEAD_FILE: weights, REFERENCE_FILE: encode_arrays(self.reference)}
        attribution = None
        if self.attribution is not None:
            attribution, files[ATTRIBUTION_FILE] = encode_head(self.attribution)
        record = HeadRecord(
            kind=self.spec.kind, target=self.spec.target, threshold=self.threshold,
            target_fpr=options.evaluation.target_fpr, generators_seen=prepared.generators_seen(options.holdout),
            holdout=sorted(options.holdout), train_groups=self.train_groups, counts=self.counts,
            metrics=evaluation.as_dict(), data_fingerprint=prepared.data.fingerprint(prepared.backbone_id),
            split_seed=split_seed, resample_seed=options.evaluation.seed, reason=options.reason,
            backbone_id=prepared.backbone_id, backbone=prepared.description, head=config, attribution=attribution,
            dedup_threshold=prepared.dedup_threshold, training_sample=prepared.training_sample,
            evaluation_sample=prepared.evaluation_sample)
        return record, files


@dataclass(frozen=True)
class TrainResult:
    """What ``synthwatch train`` reports; :meth:`as_dict` is its ``--json`` (before the gate's keys)."""

    version: str
    head: str
    backbone_id: str | None
    threshold: float
    target_fpr: float
    generators_seen: list[str]
    holdout: list[str]
    counts: dict
    metrics: dict
    notes: list[str]
    training: dict | None = None
    prepared: EvaluationData | None = field(default=None, repr=False, compare=False)  # for the gate

    def as_dict(self) -> dict:
        out = {"version": self.version, "head": self.head, "backbone_id": self.backbone_id,
               "threshold": round(self.threshold, 6), "target_fpr": self.target_fpr,
               "generators_seen": self.generators_seen, "holdout": self.holdout, "counts": self.counts}
        if self.training is not None:
            out["training"] = self.training
        return {**out, "metrics": self.metrics, "notes": self.notes}


def fit_final(spec: HeadSpec, prepared: EvaluationData, options: TrainOptions) -> TrainedHead:
    """The head to register: trained on the training split of every generator not held out,
    its threshold set on validation real images at the target false-positive rate."""
    fold = make_fold(prepared.data, options.holdout, near_duplicates=prepared.pairs)
    labels = fold.train.labels
    if not (labels == 1).any() or not (labels == 0).any():
        raise StoreError("Expected real and synthetic images in the training split, but it holds "
                         f"{int((labels == 0).sum())} real and {int((labels == 1).sum())} synthetic rows. "
                         "Ingest both, from at least 3 source groups, and embed them.")
    head = fit_head(spec, fold.train)
    score = scorer(head, spec.target)
    threshold = calibrate(score, fold, options.evaluation.target_fpr)
    attribution = head if spec.kind == "attribution" else fit_head(HeadSpec("attribution"), fold.train)
    train_fakes = fold.train.take((fold.train.labels == 1) & (fold.train.views == CLEAN_VIEW))
    rng = np.random.default_rng(options.evaluation.seed)
    sample = rng.choice(len(train_fakes), min(REFERENCE_SAMPLE, len(train_fakes)), replace=False)
    val_fake = fold.val_fake.take(fold.val_fake.views == CLEAN_VIEW)
    reference = {
        "train_fake_vectors": train_fakes.vectors[np.sort(sample)],
        "val_real_scores": score(fold.val_real.vectors).astype(np.float32),
        "val_fake_scores": score(val_fake.vectors).astype(np.float32),
    }
    counts = {"train_rows": len(fold.train), "train_real": int((labels == 0).sum()),
              "train_synthetic": int((labels == 1).sum()), "val_real": len(fold.val_real),
              "val_synthetic": len(val_fake)}
    return TrainedHead(spec, head, None if attribution is head else attribution, threshold, reference, counts,
                       sorted(set(fold.train.sources.tolist())))


def use_final_threshold(evaluation: Evaluation, threshold: float) -> None:
    """Leave-one-generator-out measures one head per fold, each at its own threshold (in
    ``per_generator``); the evaluation's ``threshold`` is then the final head's."""
    if evaluation.protocol == "logo":
        evaluation.threshold, evaluation.threshold_source = threshold, "head"


def threshold_notes(validation_reals: int, target_fpr: float) -> list[str]:
    """A warning when too few validation real images exist to place a threshold at the target FPR."""
    if target_fpr > 0 and validation_reals * target_fpr < 1:
        return [f"only {validation_reals} validation real images: a {target_fpr:.0%} false-positive rate cannot be "
                f"resolved (the smallest step is {1 / max(validation_reals, 1):.1%}), so the threshold sits just above "
                f"the highest real score; ingest at least {int(round(1 / target_fpr))} real images in validation "
                "source groups"]
    return []
