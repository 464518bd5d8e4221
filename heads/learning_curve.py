"""How many fakes of a new generator a detector needs: train with 0, 8, 16, 32, ... of its
training-split fakes (the same nested, seeded draw each time), and measure AUROC and TPR at 1 %
FPR on its test split, which none of them ever trains on. ``fakes_needed`` is the smallest count
whose interval lower ends clear the gate's floors."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from synthwatch.heads.dataset import EmbeddingSet, rows_with_ids
from synthwatch.heads.detector import HeadSpec, fit_head
from synthwatch.heads.evaluation import EvalOptions, calibrate, make_fold, measure, scorer

CURVE_KEYS = ("auroc", "auroc_ci", "tpr_at_1fpr", "tpr_at_1fpr_ci", "n_real", "n_fake")


@dataclass(frozen=True)
class LearningCurve:
    """The curve of one generator; :meth:`as_dict` is ``evaluate --learning-curve --json``'s core."""

    generator: str
    points: tuple[dict, ...]  # each: fakes, and CURVE_KEYS
    fakes_needed: int | None
    available: int  # training-split fakes of the generator
    auroc_floor: float
    tpr_floor: float
    skipped: str = ""  # why no curve could be measured

    def as_dict(self) -> dict:
        out = {"generator": self.generator, "curve": list(self.points), "fakes_needed": self.fakes_needed,
               "available": self.available, "floors": {"auroc": self.auroc_floor, "tpr_at_1fpr": self.tpr_floor}}
        return {**out, "skipped": self.skipped} if self.skipped else out

    def line(self) -> str:
        """One sentence for people: "ae-pixelshuffle: caught from 16 fakes"."""
        if self.skipped:
            return f"{self.generator}: no learning curve ({self.skipped})"
        floors = f"AUROC >= {self.auroc_floor} and TPR at 1% FPR >= {self.tpr_floor}, interval lower ends"
        if self.fakes_needed is None:
            return f"{self.generator}: not caught with all {self.available} of its training fakes ({floors})"
        if self.fakes_needed == 0:
            return f"{self.generator}: caught without any of its fakes ({floors})"
        return f"{self.generator}: caught from {self.fakes_needed} fakes ({floors})"


def fake_counts(available: int) -> list[int]:
    """0, 8, 16, 32, ... below ``available``, then ``available`` itself."""
    counts, k = [0], 8
    while k < available:
        counts.append(k)
        k *= 2
    return counts + ([available] if available else [])


def learning_curve(data: EmbeddingSet, generator: str, *, spec: HeadSpec = HeadSpec(),
                   options: EvalOptions = EvalOptions(), auroc_floor: float = 0.70, tpr_floor: float = 0.05,
                   near_duplicates=()) -> LearningCurve:
    """The learning curve of ``generator`` in ``data`` (its rows with their stored splits)."""
    if generator not in data.generator_names():
        raise ValueError(f"Expected a generator among those stored ({', '.join(data.generator_names())}), but got "
                         f"{generator!r}. Name one from that list.")
    fold = make_fold(data, (), near_duplicates=near_duplicates)  # the generator as known: its test split is tested
    own = fold.train.generators == generator
    ids = np.unique(fold.train.image_ids[own])
    order = np.random.default_rng(options.seed).permutation(ids)
    curve = LearningCurve(generator, (), None, len(ids), auroc_floor, tpr_floor)
    points, needed = [], None
    for count in fake_counts(len(ids)):
        train = fold.train.take(~own | rows_with_ids(fold.train.image_ids, order[:count].tolist()))
        if not (train.labels == 1).any():
            continue  # no other generator to train on without this one's fakes
        head = fit_head(spec, train)
        score = scorer(head, spec.target)
        trained_fold = replace(fold, train=train)
        results, skipped = measure(trained_fold, score, calibrate(score, trained_fold, options.target_fpr), [generator],
                                   held_out=count == 0, options=options)
        if not results:
            return replace(curve, skipped=f"its test split: {skipped[generator]}")
        metrics = results[0].metrics
        points.append({"fakes": count, **{key: metrics[key] for key in CURVE_KEYS}})
        if needed is None and metrics["auroc_ci"][0] >= auroc_floor and metrics["tpr_at_1fpr_ci"][0] >= tpr_floor:
            needed = count
    return replace(curve, points=tuple(points), fakes_needed=needed)
