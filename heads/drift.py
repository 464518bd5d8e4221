"""Drift checks: has the world moved away from what the champion was trained on?

(a) Embedding drift: a kernel two-sample test (maximum mean discrepancy, Gaussian kernel with
the median-distance bandwidth) between newly arrived synthetic images and the champion's
reference sample of training fakes, with a permutation p-value. (b) Score drift: the champion's
detection rate at its threshold on the new fakes against its validation fakes, with a one-sided
exact (hypergeometric) p-value that the rate fell. Each check reports its statistic, p-value,
threshold (alpha) and verdict; p-values are valid, so with no drift a check alarms at most
``alpha`` of the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import hypergeom

from synthwatch.heads.defaults import DEFAULT_ALPHA

MAX_SAMPLE = 1000  # per side: the kernel matrix of 2,000 points is 16 MB


@dataclass(frozen=True)
class DriftResult:
    """One check's outcome."""

    name: str
    statistic: float
    p_value: float
    threshold: float
    drift: bool
    detail: dict

    def as_dict(self) -> dict:
        return {"name": self.name, "statistic": round(self.statistic, 6), "p_value": round(self.p_value, 6),
                "threshold": self.threshold, "drift": self.drift, **self.detail}


def mmd_test(new: np.ndarray, reference: np.ndarray, *, alpha: float = DEFAULT_ALPHA, permutations: int = 500,
             seed: int = 0) -> DriftResult:
    """Kernel two-sample test of ``new`` (n, dim) against ``reference`` (m, dim).

    The statistic is the unbiased squared MMD; its p-value is the share of label permutations
    (plus the observed one) whose MMD is at least as large.
    """
    rng = np.random.default_rng(seed)
    new, reference = _subsample(new, rng), _subsample(reference, rng)
    if len(new) < 2 or len(reference) < 2:
        raise ValueError(f"Expected at least 2 vectors on each side, but got {len(new)} new and {len(reference)} reference.")
    pooled = np.concatenate([new, reference]).astype(np.float64)
    squared = np.maximum(np.sum(pooled**2, 1)[:, None] + np.sum(pooled**2, 1)[None, :] - 2 * pooled @ pooled.T, 0)
    bandwidth = float(np.median(squared[np.triu_indices(len(pooled), 1)])) or 1.0
    kernel = np.exp(-squared / bandwidth)
    np.fill_diagonal(kernel, 0.0)
    n, total = len(new), len(pooled)
    assignments = np.zeros((permutations + 1, total), np.float64)
    assignments[0, :n] = 1.0
    for row in range(1, permutations + 1):
        assignments[row, rng.permutation(total)[:n]] = 1.0
    statistics = _mmd2(kernel, assignments, n, total - n)
    observed = float(statistics[0])
    p_value = float((1 + np.sum(statistics[1:] >= observed)) / (permutations + 1))
    return DriftResult("embedding_mmd", observed, p_value, alpha, p_value < alpha,
                       {"new": n, "reference": total - n, "bandwidth": round(bandwidth, 6),
                        "permutations": permutations})


def _mmd2(kernel: np.ndarray, assignments: np.ndarray, n: int, m: int) -> np.ndarray:
    """Unbiased MMD^2 for each row of 0/1 ``assignments`` (1 = first sample); diagonal zeroed."""
    within_first = np.einsum("pi,pi->p", assignments @ kernel, assignments)
    other = 1.0 - assignments
    within_second = np.einsum("pi,pi->p", other @ kernel, other)
    across = np.einsum("pi,pi->p", assignments @ kernel, other)
    return within_first / (n * (n - 1)) + within_second / (m * (m - 1)) - 2 * across / (n * m)


def _subsample(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(vectors) <= MAX_SAMPLE:
        return vectors
    return vectors[np.sort(rng.choice(len(vectors), MAX_SAMPLE, replace=False))]


def score_drift(new_scores: np.ndarray, validation_scores: np.ndarray, threshold: float, *,
                alpha: float = DEFAULT_ALPHA) -> DriftResult:
    """Whether the detection rate at ``threshold`` fell on the new fakes against the validation
    fakes: one-sided exact test on the 2x2 table of (set, detected), conditioned on its margins."""
    new_scores, validation_scores = np.asarray(new_scores), np.asarray(validation_scores)
    if len(new_scores) == 0 or len(validation_scores) == 0:
        raise ValueError(f"Expected scores on both sides, but got {len(new_scores)} new and "
                         f"{len(validation_scores)} validation.")
    caught_new = int(np.sum(new_scores >= threshold))
    caught_val = int(np.sum(validation_scores >= threshold))
    n_new, n_val = len(new_scores), len(validation_scores)
    # P(X <= caught_new) for X ~ hypergeometric(population, successes, draws): few detections
    # among the new fakes, given how many were detected overall.
    p_value = float(hypergeom.cdf(caught_new, n_new + n_val, caught_new + caught_val, n_new))
    rate_new, rate_val = caught_new / n_new, caught_val / n_val
    return DriftResult("score_detection_rate", rate_val - rate_new, p_value, alpha, p_value < alpha,
                       {"detection_rate_new": round(rate_new, 6), "detection_rate_validation": round(rate_val, 6),
                        "mean_score_new": round(float(new_scores.mean()), 6),
                        "mean_score_validation": round(float(validation_scores.mean()), 6),
                        "new": n_new, "validation": n_val})
