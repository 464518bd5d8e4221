"""Detection metrics with stratified bootstrap intervals, computed without a Python loop per resample.

Scores are sorted once; a bootstrap resample is then a vector of counts (how often each real
and each fake was drawn), and every metric is a cumulative sum over the sorted scores weighted by
those counts, so ``B`` resamples cost a few (B, n) array passes. Real and fake images are
resampled separately, so every resample keeps the class sizes of the data.

Conventions: a higher score means "more likely synthetic"; an image is called synthetic when its
score is >= the threshold, so the false-positive rate at ``t`` is the share of real scores >= t.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRICS = ("auroc", "ap", "tpr_at_1fpr", "tpr_at_5fpr", "accuracy", "fpr")


def threshold_at_fpr(real_scores: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold whose false-positive rate on ``real_scores`` is <= ``target_fpr``.

    Parameters
    ----------
    real_scores : ndarray of shape (n_real,)
    target_fpr : float in [0, 1)
    """
    if not 0 <= target_fpr < 1:
        raise ValueError(f"Expected a target false-positive rate in [0, 1), but got {target_fpr}.")
    scores = np.sort(np.asarray(real_scores, dtype=np.float64))
    if len(scores) == 0:
        raise ValueError("Expected real scores to set a threshold on, but got none.")
    allowed = int(np.floor(target_fpr * len(scores) + 1e-9))  # reals that may score >= threshold
    if allowed == 0:
        return float(np.nextafter(scores[-1], np.inf))
    candidate = scores[len(scores) - allowed]
    # Ties: every real equal to the candidate counts as a false positive; step above them if needed.
    while np.sum(scores >= candidate) > allowed:
        above = scores[scores > candidate]
        candidate = above[0] if len(above) else np.nextafter(scores[-1], np.inf)
    return float(candidate)


@dataclass(frozen=True)
class _Sorted:
    """Real and fake scores, each sorted ascending, with where each fake falls among the reals."""

    real: np.ndarray  # (n_real,) ascending
    fake: np.ndarray  # (n_fake,) ascending
    reals_below_fake: np.ndarray  # (n_fake,) count of reals < each fake
    reals_upto_fake: np.ndarray  # (n_fake,) count of reals <= each fake
    fakes_below_fake: np.ndarray  # (n_fake,) count of fakes < each fake (ties share a threshold)
    fakes_below_real: np.ndarray  # (n_real,) count of fakes < each real
    real_group_start: np.ndarray  # (n_real,) first index of each real's run of equal scores


def _sort(real: np.ndarray, fake: np.ndarray) -> _Sorted:
    real, fake = np.sort(real), np.sort(fake)
    return _Sorted(
        real, fake,
        np.searchsorted(real, fake, "left"), np.searchsorted(real, fake, "right"),
        np.searchsorted(fake, fake, "left"), np.searchsorted(fake, real, "left"),
        np.searchsorted(real, real, "left"),
    )


def _running(counts: np.ndarray) -> np.ndarray:
    """(B, n + 1) running sums with a leading 0: ``out[:, i]`` = weight of the first i items."""
    out = np.zeros((counts.shape[0], counts.shape[1] + 1), np.float64)
    np.cumsum(counts, axis=1, out=out[:, 1:])
    return out


def _metrics(data: _Sorted, real_w: np.ndarray, fake_w: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Every metric for each row of weights; ``real_w`` (B, n_real), ``fake_w`` (B, n_fake)."""
    n_real, n_fake = real_w.sum(axis=1), fake_w.sum(axis=1)
    cum_real, cum_fake = _running(real_w), _running(fake_w)
    below = cum_real[:, data.reals_below_fake]  # (B, n_fake) weight of reals under each fake
    upto = cum_real[:, data.reals_upto_fake]
    # AUROC = P(fake > real) + 0.5 P(fake == real).
    auroc = ((below + 0.5 * (upto - below)) * fake_w).sum(axis=1) / (n_real * n_fake)
    # Average precision (steps at each distinct fake score, as scikit-learn computes it): at a
    # fake's score, true positives are the fakes at or above it and false positives the reals.
    tp = n_fake[:, None] - cum_fake[:, data.fakes_below_fake]
    fp = n_real[:, None] - below
    ap = (fake_w * tp / np.maximum(tp + fp, 1e-300)).sum(axis=1) / n_fake
    out = {"auroc": auroc, "ap": ap}
    for name, fpr in (("tpr_at_1fpr", 0.01), ("tpr_at_5fpr", 0.05)):
        out[name] = _tpr_at_fpr(data, cum_real, cum_fake, n_real, n_fake, fpr)
    real_called = (data.real >= threshold).astype(np.float64)
    fake_called = (data.fake >= threshold).astype(np.float64)
    false_pos, true_pos = real_w @ real_called, fake_w @ fake_called
    out["accuracy"] = (true_pos + n_real - false_pos) / (n_real + n_fake)
    out["fpr"] = false_pos / n_real
    return out


def _tpr_at_fpr(data: _Sorted, cum_real, cum_fake, n_real, n_fake, fpr: float) -> np.ndarray:
    """TPR at the lowest threshold whose FPR is <= ``fpr`` (:func:`threshold_at_fpr`, per row).

    Candidate thresholds are the real scores (a threshold at a real's score calls every real
    tied with it synthetic) and, when none qualifies, just above the highest real.
    """
    reals_at_or_above = n_real[:, None] - cum_real[:, data.real_group_start]  # (B, n_real)
    allowed = reals_at_or_above <= fpr * n_real[:, None] + 1e-9
    allowed &= cum_real[:, 1:] > cum_real[:, :-1]  # only reals drawn in this resample
    first = np.where(allowed.any(axis=1), allowed.argmax(axis=1), data.real.shape[0])
    # Fakes at or above the threshold: all fakes not below the chosen real (none above the top).
    fakes_below = np.append(data.fakes_below_real, data.fake.shape[0])[first]
    fakes_below = np.where(first < data.real.shape[0], fakes_below, _fakes_at_most(data))
    return (n_fake - cum_fake[np.arange(len(first)), fakes_below]) / n_fake


def _fakes_at_most(data: _Sorted) -> int:
    """How many fakes score <= the highest real (they stay under a threshold above it)."""
    return int(np.searchsorted(data.fake, data.real[-1], "right"))


def evaluate_scores(real_scores: np.ndarray, fake_scores: np.ndarray, *, threshold: float,
                    n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Every metric of ``METRICS`` with a stratified percentile-bootstrap interval.

    Parameters
    ----------
    real_scores : ndarray of shape (n_real,)
        Scores of held-out real images.
    fake_scores : ndarray of shape (n_fake,)
        Scores of the synthetic images being evaluated.
    threshold : float
        The decision threshold (set beforehand on validation real images) for ``accuracy``
        and ``fpr``.

    Returns
    -------
    dict
        ``{metric: value, metric + "_ci": [lo, hi]}`` plus ``n_real`` and ``n_fake``.
    """
    real = np.asarray(real_scores, dtype=np.float64)
    fake = np.asarray(fake_scores, dtype=np.float64)
    if len(real) == 0 or len(fake) == 0:
        raise ValueError(f"Expected real and synthetic scores, but got {len(real)} real and {len(fake)} synthetic.")
    data = _sort(real, fake)
    point = _metrics(data, np.ones((1, len(real))), np.ones((1, len(fake))), threshold)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    chunk = max(1, min(n_boot, 20_000_000 // (len(real) + len(fake))))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        boot = _metrics(data, _resample_counts(rng, len(real), size), _resample_counts(rng, len(fake), size), threshold)
        for name in METRICS:
            draws[name].append(boot[name])
    result: dict = {"n_real": int(len(real)), "n_fake": int(len(fake))}
    for name in METRICS:
        values = np.concatenate(draws[name])
        result[name] = round(float(point[name][0]), 6)
        result[f"{name}_ci"] = [round(end, 6) for end in _interval(values, level)]
    return result


@dataclass(frozen=True)
class PairedDifference:
    """A metric of head A minus the same metric of head B on the same images, with the interval of
    the difference and its bootstrap draws (for p-values)."""

    metric: str
    a: float
    b: float
    difference: float
    interval: tuple[float, float]
    level: float
    draws: np.ndarray = field(repr=False, compare=False)

    def p_at_most(self, margin: float) -> float:
        """Bootstrap p-value of "the difference is at most ``margin``" (the null hypothesis a
        non-inferiority test rejects): the share of resampled differences at or below it."""
        return float((np.count_nonzero(self.draws <= margin) + 1) / (len(self.draws) + 1))

    def as_dict(self) -> dict:
        return {"metric": self.metric, "candidate": round(self.a, 6), "champion": round(self.b, 6),
                "difference": round(self.difference, 6), "interval": [round(v, 6) for v in self.interval],
                "level": self.level}


def paired_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], *,
                      thresholds: tuple[float, float], metrics: tuple[str, ...] = ("auroc", "tpr_at_1fpr"),
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, PairedDifference]:
    """``metrics`` of head A minus head B, each head's ``(real scores, fake scores)`` given in the
    same image order, with a paired stratified bootstrap: every resample draws the same real and
    fake images for both heads, so what the heads share (which images are hard) cancels and the
    interval is that of the difference itself."""
    (real_a, fake_a), (real_b, fake_b) = [(np.asarray(r, np.float64), np.asarray(f, np.float64)) for r, f in (a, b)]
    if real_a.shape != real_b.shape or fake_a.shape != fake_b.shape:
        raise ValueError(f"Expected both heads scored on the same images, but got {len(real_a)}/{len(fake_a)} and "
                         f"{len(real_b)}/{len(fake_b)} real/fake scores.")
    if len(real_a) == 0 or len(fake_a) == 0:
        raise ValueError(f"Expected real and synthetic scores, but got {len(real_a)} real and {len(fake_a)} synthetic.")
    heads = [(_sort(real, fake), np.argsort(real, kind="stable"), np.argsort(fake, kind="stable"), threshold)
             for (real, fake), threshold in zip(((real_a, fake_a), (real_b, fake_b)), thresholds)]
    ones = (np.ones((1, len(real_a))), np.ones((1, len(fake_a))))
    point = [_metrics(data, *ones, threshold) for data, _, _, threshold in heads]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    chunk = max(1, min(n_boot, 10_000_000 // (len(real_a) + len(fake_a))))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        real_w, fake_w = _resample_counts(rng, len(real_a), size), _resample_counts(rng, len(fake_a), size)
        measured = [_metrics(data, real_w[:, real_order], fake_w[:, fake_order], threshold)
                    for data, real_order, fake_order, threshold in heads]
        for name in metrics:
            draws[name].append(measured[0][name] - measured[1][name])
    out = {}
    for name in metrics:
        values = np.concatenate(draws[name])
        a_value, b_value = float(point[0][name][0]), float(point[1][name][0])
        out[name] = PairedDifference(name, a_value, b_value, a_value - b_value,
                                     _interval(values, level), level, values)
    return out


def balanced_accuracy(real_scores: np.ndarray, fake_scores: np.ndarray, *, threshold: float = 0.5,
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """(TNR + TPR) / 2 at ``threshold`` with a stratified bootstrap interval: the accuracy papers
    report on test sets of as many real as fake images, whatever the counts here. A resample's
    count of correct calls is binomial, so the bootstrap draws those counts directly.

    Returns ``{"value": float, "ci": [lo, hi]}``."""
    real, fake = np.asarray(real_scores, np.float64), np.asarray(fake_scores, np.float64)
    if len(real) == 0 or len(fake) == 0:
        raise ValueError(f"Expected real and synthetic scores, but got {len(real)} real and {len(fake)} synthetic.")
    tnr, tpr = float(np.mean(real < threshold)), float(np.mean(fake >= threshold))
    rng = np.random.default_rng(seed)
    draws = (rng.binomial(len(real), tnr, n_boot) / len(real) + rng.binomial(len(fake), tpr, n_boot) / len(fake)) / 2
    return {"value": round((tnr + tpr) / 2, 6), "ci": [round(end, 6) for end in _interval(draws, level)]}


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap draws."""
    tail = (1 - level) / 2 * 100
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def _resample_counts(rng: np.random.Generator, n: int, batch: int) -> np.ndarray:
    """(batch, n) counts of how often each of n items is drawn in n draws with replacement."""
    draws = rng.integers(0, n, size=(batch, n)) + (np.arange(batch) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=batch * n).reshape(batch, n).astype(np.float64)


def roc_curve(real_scores: np.ndarray, fake_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) at every distinct threshold, from (0, 0) to (1, 1)."""
    real, fake = np.sort(np.asarray(real_scores, float)), np.sort(np.asarray(fake_scores, float))
    thresholds = np.unique(np.concatenate([real, fake]))[::-1]
    fpr = (len(real) - np.searchsorted(real, thresholds, "left")) / len(real)
    tpr = (len(fake) - np.searchsorted(fake, thresholds, "left")) / len(fake)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])
