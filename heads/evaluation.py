"""Held-out-generator evaluation: leave-one-generator-out, or an explicit held-out set.

For each protocol fold a head is trained on the training split of the real images and of every
generator not held out (clean and augmented views), its threshold is set on validation real
images at the target false-positive rate, and it is measured on held-out real images against
every image of each held-out generator (and, for known generators, their test split). Test and
validation images with a near-duplicate on the training side are dropped first. Metrics carry
bootstrap intervals, and are repeated on the robustness views (JPEG, 0.5x) where embedded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from synthwatch.heads.defaults import DEFAULT_TARGET_FPR
from synthwatch.embeddings.views import ROBUSTNESS_VIEWS
from synthwatch.heads.base import EmbeddingHead
from synthwatch.heads.dataset import (
    CLEAN_VIEW, REAL, ROBUSTNESS_FROM, EmbeddingSet, rows_with_ids, split_of_rows,
)
from synthwatch.heads.detector import HeadSpec, fit_head, synthetic_scores
from synthwatch.heads.metrics import PairedDifference, evaluate_scores, paired_difference, threshold_at_fpr

PROTOCOLS = ("logo", "holdout")
ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EvalOptions:
    """Target false-positive rate, bootstrap resamples and their seed, and the fewest test images
    a generator needs to be measured. (Splits are not seeded here: they are stored data.)"""

    target_fpr: float = DEFAULT_TARGET_FPR
    n_boot: int = 1000
    seed: int = 0
    min_images: int = 5


@dataclass
class GeneratorResult:
    """One generator's metrics (with intervals), its robustness, and the scores behind them."""

    generator: str
    held_out: bool
    threshold: float
    metrics: dict
    robustness: dict[str, dict] = field(default_factory=dict)
    real_scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    fake_scores: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    real_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, object), repr=False)  # of the scores above
    fake_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, object), repr=False)


@dataclass
class Evaluation:
    """Everything one protocol run measured; ``as_dict`` is the ``evaluate --json`` contract."""

    protocol: str
    target_fpr: float
    threshold: float | None
    results: list[GeneratorResult]
    skipped: dict[str, str] = field(default_factory=dict)
    dropped_near_duplicates: int = 0
    threshold_source: str = "fold"  # "fold": the tested head's own; "head": the final head's (logo)
    notes: list[str] = field(default_factory=list)  # what the measurement could not do as asked, and why

    def per_generator(self) -> dict[str, dict]:
        return {r.generator: {**r.metrics, "threshold": round(r.threshold, 6), "held_out": r.held_out}
                for r in self.results}

    def summary(self) -> dict:
        held = [r.metrics for r in self.results if r.held_out]
        if not held:
            return {"held_out_generators": 0}
        return {
            "held_out_generators": len(held),
            "mean_auroc": round(float(np.mean([m["auroc"] for m in held])), 6),
            "min_auroc": round(float(min(m["auroc"] for m in held)), 6),
            "mean_tpr_at_1fpr": round(float(np.mean([m["tpr_at_1fpr"] for m in held])), 6),
            "min_tpr_at_1fpr": round(float(min(m["tpr_at_1fpr"] for m in held)), 6),
            "max_fpr": round(float(max(m["fpr"] for m in held)), 6),
        }

    def as_dict(self) -> dict:
        return {
            "protocol": self.protocol, "target_fpr": self.target_fpr,
            "threshold": None if self.threshold is None else round(self.threshold, 6),
            "threshold_source": self.threshold_source,
            "per_generator": self.per_generator(),
            "robustness": {r.generator: r.robustness for r in self.results if r.robustness},
            "summary": self.summary(), "skipped": self.skipped,
            "dropped_near_duplicates": self.dropped_near_duplicates,
        }


@dataclass(frozen=True)
class Fold:
    """The rows one protocol fold trains, calibrates and tests on."""

    holdout: frozenset[str]
    train: EmbeddingSet
    val_real: EmbeddingSet
    val_fake: EmbeddingSet
    test_real: EmbeddingSet  # clean and robustness views
    test_fake: dict[str, EmbeddingSet]  # generator -> its test rows (clean and robustness views)
    dropped: int


def make_fold(data: EmbeddingSet, holdout: Iterable[str], *,
              near_duplicates: Iterable[tuple[str, str]] = (), held_out_on_test_split: bool = False) -> Fold:
    """Split ``data`` for a fold holding out the generators in ``holdout``.

    Training takes the training split of real images and of generators not held out (every
    view below the robustness views); validation and test take clean and robustness views.
    Held-out generators are tested on all their images (with ``held_out_on_test_split``, as a
    dataset that ships its splits is tested, on their test split only), known ones on their test
    split.
    """
    holdout = frozenset(holdout)
    split = split_of_rows(data)
    generators = data.generators
    held = np.isin(generators, list(holdout)) if holdout else np.zeros(len(data), bool)
    trainable = data.views < ROBUSTNESS_FROM
    train_mask = (split == "train") & ~held & trainable
    # Test images near-duplicating any training-split image are dropped (the champion may have trained on it).
    train_split = (split == "train") & ~held & trainable
    leaked = _leaked(data.image_ids, set(data.image_ids[train_split].tolist()), near_duplicates)
    evaluable = ((data.views == CLEAN_VIEW) | (data.views >= ROBUSTNESS_FROM)) & ~leaked
    real = generators == REAL
    val_rows = (split == "val") & evaluable & (data.views == CLEAN_VIEW)
    test_fake = {}
    for name in sorted(set(generators.tolist()) - {REAL}):
        tested = (split == "test") if held_out_on_test_split else (held | (split == "test"))
        rows = evaluable & (generators == name) & tested
        test_fake[name] = data.take(rows)
    dropped = len(set(data.image_ids[leaked & ~train_mask].tolist()))
    return Fold(holdout, data.take(train_mask), data.take(val_rows & real), data.take(val_rows & ~real & ~held),
                data.take(evaluable & real & (split == "test")), test_fake, dropped)


def _leaked(image_ids: np.ndarray, train_ids: set[str], pairs: Iterable[tuple[str, str]]) -> np.ndarray:
    """(n,) bool: rows whose image has a near-duplicate among the training images (but is not one)."""
    partners: set[str] = set()
    for a, b, *_ in pairs:
        if a in train_ids and b not in train_ids:
            partners.add(b)
        elif b in train_ids and a not in train_ids:
            partners.add(a)
    return rows_with_ids(image_ids, partners)


def measure(fold: Fold, score: ScoreFn, threshold: float, generators: Iterable[str], *,
            held_out: bool, options: EvalOptions) -> tuple[list[GeneratorResult], dict[str, str]]:
    """Metrics of ``score`` at ``threshold`` for each of ``generators`` on the fold's test rows."""
    real = fold.test_real
    real_clean = score(real.vectors[real.views == CLEAN_VIEW])
    real_ids = real.image_ids[real.views == CLEAN_VIEW]
    results, skipped = [], {}
    for name in generators:
        fakes = fold.test_fake.get(name)
        clean = fakes.views == CLEAN_VIEW if fakes is not None else None
        if fakes is None or clean.sum() < options.min_images or len(real_clean) < options.min_images:
            have = 0 if fakes is None else int(clean.sum())
            skipped[name] = (f"too few test images: {have} of the generator and {len(real_clean)} real, "
                             f"at least {options.min_images} of each are needed")
            continue
        fake_clean = score(fakes.vectors[clean])
        metrics = evaluate_scores(real_clean, fake_clean, threshold=threshold, n_boot=options.n_boot,
                                  seed=options.seed)
        result = GeneratorResult(name, held_out, threshold, metrics, real_scores=real_clean, fake_scores=fake_clean,
                                 real_ids=real_ids, fake_ids=fakes.image_ids[clean])
        for condition, view in ROBUSTNESS_VIEWS.items():
            real_rows, fake_rows = real.views == view, fakes.views == view
            if real_rows.sum() >= options.min_images and fake_rows.sum() >= options.min_images:
                result.robustness[condition] = evaluate_scores(
                    score(real.vectors[real_rows]), score(fakes.vectors[fake_rows]), threshold=threshold,
                    n_boot=options.n_boot, seed=options.seed)
        results.append(result)
    return results, skipped


def calibrate(score: ScoreFn, fold: Fold, target_fpr: float) -> float:
    """The threshold at ``target_fpr`` on the fold's validation real images."""
    if len(fold.val_real) == 0:
        raise ValueError("Expected validation real images to set the threshold on, but the validation "
                         "split has none. Ingest real images from more source groups (at least 3).")
    return threshold_at_fpr(score(fold.val_real.vectors), target_fpr)


PAPERS_THRESHOLD = 0.5  # P(synthetic) 0.5: the decision the papers' classifiers make


def measurable_threshold(score: ScoreFn, fold: Fold, target_fpr: float) -> tuple[float, str | None]:
    """:func:`calibrate`, or where the validation split holds no real image (a dataset tree too
    small), ``PAPERS_THRESHOLD`` and a note saying what is missing: AUROC and the TPRs need no
    threshold, so they are still measured."""
    if len(fold.val_real):
        return calibrate(score, fold, target_fpr), None
    needed = int(round(1 / target_fpr))
    return PAPERS_THRESHOLD, (
        f"no validation real images to set a threshold at {target_fpr:.0%} FPR on, so accuracy and FPR are at "
        f"P(synthetic) {PAPERS_THRESHOLD} (the papers' decision); AUROC, AP and the TPRs need no threshold. Ingest "
        f"real images in validation groups (a dataset's val/ folder, or more groups in its train/ folder, a fifth of "
        f"which validate): at least {needed} to resolve a {target_fpr:.0%} false-positive rate")


def scorer(head: EmbeddingHead, target: str) -> ScoreFn:
    return lambda vectors: synthetic_scores(head, target, vectors)


def evaluate_protocol(spec: HeadSpec, data: EmbeddingSet, *, protocol: str, holdout: Iterable[str] = (),
                      options: EvalOptions = EvalOptions(), near_duplicates: Iterable[tuple[str, str]] = (),
                      held_out_on_test_split: bool = False) -> Evaluation:
    """Train heads of ``spec`` fold by fold and measure them on generators they never saw.

    ``logo`` holds out each generator in turn (the others and ``holdout`` train); ``holdout``
    holds out the given generators at once and also measures the known ones on their test split.
    ``held_out_on_test_split`` tests held-out generators on their test split only (a dataset that
    ships its splits, tested as its paper was). Without validation real images the threshold is
    the papers' 0.5, with a note (``Evaluation.notes``).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"Expected protocol in {', '.join(PROTOCOLS)}, but got {protocol!r}.")
    pairs = list(near_duplicates)
    names = data.generator_names()
    holdout = sorted(set(holdout))
    unknown = sorted(set(holdout) - set(names))
    if unknown:
        raise ValueError(f"Expected held-out generators among those stored ({', '.join(names) or 'none'}), "
                         f"but got {', '.join(unknown)}.")
    if protocol == "holdout" and not holdout:
        raise ValueError("Expected at least one generator to hold out with protocol 'holdout', but got none. "
                         "Name them with --holdout G1,G2, or use --protocol logo.")
    evaluation = Evaluation(protocol, options.target_fpr, None, [])
    folds = [[name] for name in names] if protocol == "logo" else [holdout]
    for held in folds:
        fold = make_fold(data, held, near_duplicates=pairs, held_out_on_test_split=held_out_on_test_split)
        if not (fold.train.labels == 1).any() or not (fold.train.labels == 0).any():
            for name in held:
                evaluation.skipped[name] = "no other generator (or no real image) left to train on"
            continue
        head = fit_head(spec, fold.train)
        score = scorer(head, spec.target)
        threshold, note = measurable_threshold(score, fold, options.target_fpr)
        if note and note not in evaluation.notes:
            evaluation.notes.append(note)
        results, skipped = measure(fold, score, threshold, held, held_out=True, options=options)
        if protocol == "holdout":
            known, skipped_known = measure(fold, score, threshold, [n for n in names if n not in held],
                                           held_out=False, options=options)
            results += known
            skipped.update(skipped_known)
            evaluation.threshold = threshold
        evaluation.results += results
        evaluation.skipped.update(skipped)
        evaluation.dropped_near_duplicates = max(evaluation.dropped_near_duplicates, fold.dropped)
    return evaluation


def evaluate_fitted(score: ScoreFn, threshold: float, data: EmbeddingSet, *, seen: Iterable[str],
                    options: EvalOptions = EvalOptions(),
                    near_duplicates: Iterable[tuple[str, str]] = ()) -> Evaluation:
    """Measure an already trained head on the splits it was trained with: generators it never
    saw (held out, or new since) on all their images, the ``seen`` ones on their test split."""
    holdout = sorted(set(data.generator_names()) - set(seen))
    fold = make_fold(data, holdout, near_duplicates=near_duplicates)
    names = data.generator_names()
    held, skipped = measure(fold, score, threshold, [n for n in names if n in holdout], held_out=True,
                            options=options)
    known, skipped_known = measure(fold, score, threshold, [n for n in names if n not in holdout],
                                   held_out=False, options=options)
    evaluation = Evaluation("holdout", options.target_fpr, threshold, held + known, {**skipped, **skipped_known},
                            fold.dropped)
    return evaluation


def paired_results(candidate: GeneratorResult, champion: GeneratorResult, *, metrics: tuple[str, ...],
                   options: EvalOptions = EvalOptions(), level: float = 0.95) -> dict[str, PairedDifference] | None:
    """Candidate minus champion on the test images both were measured on (matched by image id:
    each head drops the near-duplicates of its own training images), or None when fewer than
    ``options.min_images`` real or fake images are shared."""
    real = np.intersect1d(candidate.real_ids, champion.real_ids)
    fake = np.intersect1d(candidate.fake_ids, champion.fake_ids)
    if len(real) < options.min_images or len(fake) < options.min_images:
        return None

    def on(result: GeneratorResult) -> tuple[np.ndarray, np.ndarray]:
        return (result.real_scores[_positions(result.real_ids, real)], result.fake_scores[_positions(result.fake_ids, fake)])

    return paired_difference(on(candidate), on(champion), thresholds=(candidate.threshold, champion.threshold),
                             metrics=metrics, n_boot=options.n_boot, seed=options.seed, level=level)


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    order = np.argsort(ids)
    return order[np.searchsorted(ids[order], wanted)]
