"""Bounded retraining: heads train on a replay set of at most ``max_rows`` training rows,
balanced over labels and generators and leaning towards recent arrivals, so the fit costs the
same at a million images as at ten million. Only training is bounded: training-split images left
out of the set stay in the data under the split ``UNSAMPLED`` (no head trains on them; a held-out
generator is still tested on all its images; near-duplicates of them are still kept out of test
sets), and every validation and test row is kept.

The rule (``balanced-recent-v1``): half the budget goes to real images and half to synthetic
ones, the synthetic half shared equally by the generators; a class with fewer rows than its share
gives all of them and its leftover goes to the others (water-filling), so every generator is
kept, with at least its first-drawn image even when its share is smaller than one image's rows.
Within a class, images are drawn without replacement with weights rising linearly with their
arrival rank, the newest four times as likely as the oldest (Efraimidis-Spirakis keys), whole
images at a time (an image brings all its training views; robustness views are never trained on
and do not count). Seeded; the record says how to draw it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from synthwatch.heads.dataset import REAL, ROBUSTNESS_FROM, UNSAMPLED, EmbeddingSet, rows_with_ids, split_of_rows

RULE = "balanced-recent-v1"
DEFAULT_MAX_TRAIN = 200_000  # rows; benchmarks/heads.py --bounded: held-out AUROC flat from 25,000
NEWEST_WEIGHT = 4.0  # the newest image of a class is this many times as likely as its oldest


@dataclass(frozen=True)
class ReplaySample:
    """Which training images were drawn (their ids, and their positions in the input), and the
    record kept with the head."""

    image_ids: np.ndarray
    positions: np.ndarray
    record: dict


def water_fill(capacities: list[int], budget: int) -> list[int]:
    """Shares of ``budget`` as equal as the capacities allow: a capacity below its share is filled,
    and what it leaves is shared by the others."""
    shares = [0] * len(capacities)
    left, remaining = budget, len(capacities)
    for i in sorted(range(len(capacities)), key=lambda i: capacities[i]):
        shares[i] = min(capacities[i], left // remaining)
        left -= shares[i]
        remaining -= 1
    return shares


def draw_replay(image_ids: np.ndarray, generators: np.ndarray, rows: np.ndarray, arrivals: np.ndarray, *,
                max_rows: int, seed: int) -> ReplaySample:
    """Draw training images (one entry per image: its generator, ``REAL`` for real, its number of
    training rows, its arrival time) within ``max_rows`` rows."""
    rng = np.random.default_rng(seed)
    names = sorted(set(generators.tolist()) - {REAL})
    real = generators == REAL
    label_shares = water_fill([int(rows[real].sum()), int(rows[~real].sum())], max_rows)
    generator_shares = water_fill([int(rows[generators == name].sum()) for name in names], label_shares[1])
    chosen, per_class = [], {}
    for name, share in [(REAL, label_shares[0]), *zip(names, generator_shares)]:
        members = np.flatnonzero(generators == name)
        picked = members[_draw_within(rows[members], arrivals[members], share, rng)]
        chosen.append(picked)
        per_class["real" if name == REAL else name] = {"images": len(picked), "rows": int(rows[picked].sum()),
                                                       "of_images": len(members)}
    positions = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    ids = np.sort(image_ids[positions])
    record = {"rule": RULE, "max_train": max_rows, "seed": seed, "images": len(ids),
              "rows": int(sum(c["rows"] for c in per_class.values())), "of_images": len(image_ids),
              "of_rows": int(rows.sum()), "per_class": per_class,
              "ids_sha256": hashlib.sha256("\n".join(ids.tolist()).encode()).hexdigest()}
    return ReplaySample(ids, positions, record)


def _draw_within(rows: np.ndarray, arrivals: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the images drawn from one class: weighted keys, then whole images in key order
    while they fit the budget."""
    if len(rows) == 0 or budget <= 0:
        return np.zeros(0, np.int64)
    rank = np.argsort(np.argsort(arrivals, kind="stable"), kind="stable") / max(1, len(rows) - 1)
    weights = 1.0 + (NEWEST_WEIGHT - 1.0) * rank
    keys = rng.random(len(rows)) ** (1.0 / weights)
    order = np.argsort(-keys, kind="stable")
    fits = np.cumsum(rows[order]) <= budget
    fits[0] = True  # every class keeps at least one image
    return np.sort(order[fits])


def trainable_rows(data: EmbeddingSet) -> np.ndarray:
    """Rows a head may train on: training split, below the robustness views."""
    return (split_of_rows(data) == "train") & (data.views < ROBUSTNESS_FROM)


def bound_training(data: EmbeddingSet, arrivals: dict[str, float], *, max_rows: int,
                   seed: int) -> tuple[EmbeddingSet, dict | None]:
    """``data`` with the training-split images outside a replay set of at most ``max_rows``
    trainable rows moved to the split ``UNSAMPLED``, and the set's record; unchanged (record
    None) when the trainable rows already fit."""
    if max_rows < 1:
        raise ValueError(f"Expected --max-train of at least 1 row, but got {max_rows}. Give a positive number "
                         f"(default {DEFAULT_MAX_TRAIN:,}).")
    split = split_of_rows(data)
    trainable = trainable_rows(data)
    if trainable.sum() <= max_rows:
        return data, None
    ids, first, inverse, counts = np.unique(data.image_ids[trainable], return_index=True, return_inverse=True,
                                            return_counts=True)
    generators = data.generators[trainable][first]
    times = np.array([arrivals.get(i, 0.0) for i in ids.tolist()], np.float64)
    sample = draw_replay(ids, generators, counts, times, max_rows=max_rows, seed=seed)
    left_out = (split == "train") & ~rows_with_ids(data.image_ids, sample.image_ids.tolist())
    return replace(data, splits=np.where(left_out, UNSAMPLED, split).astype(object)), sample.record


def bounded(prepared, arrivals, *, max_rows: int | None, seed: int):
    """An ``EvaluationData`` whose training is bounded (see :func:`bound_training`); ``arrivals``
    returns {image id: arrival time}, asked only when the bound bites."""
    if max_rows is None or 0 < trainable_rows(prepared.data).sum() <= max_rows:
        return prepared
    data, record = bound_training(prepared.data, arrivals(), max_rows=max_rows, seed=seed)
    return prepared if record is None else replace(prepared, data=data, training_sample=record)
