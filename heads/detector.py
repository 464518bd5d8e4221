"""Heads by name, what each is trained to tell apart, and how a score of "synthetic" is read off it.

Binary heads learn real (0) against synthetic (1); the attribution head learns which generator
made an image, with real images as one more class, and its synthetic score is 1 - P(real).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthwatch.heads.base import EmbeddingHead
from synthwatch.heads.dataset import REAL, EmbeddingSet
from synthwatch.heads.defaults import DEFAULT_HEAD, EMBEDDING_HEADS
from synthwatch.heads.knn import KNNHead
from synthwatch.heads.linear import LinearSVMHead, LogisticHead
from synthwatch.heads.mlp import MLPHead

HEAD_TYPES: dict[str, type[EmbeddingHead]] = {
    "logreg": LogisticHead,
    "svm": LinearSVMHead,
    "mlp": MLPHead,
    "knn": KNNHead,
}
HEAD_KINDS = EMBEDDING_HEADS  # the types above and "attribution" (tests/heads keep the two lists equal)


@dataclass(frozen=True)
class HeadSpec:
    """A head kind and its parameters: enough to build an untrained head."""

    kind: str = DEFAULT_HEAD
    params: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"Expected a head in {', '.join(HEAD_KINDS)}, but got {self.kind!r}.")

    @property
    def estimator_type(self) -> str:
        return "logreg" if self.kind == "attribution" else self.kind

    @property
    def target(self) -> str:
        """``binary`` (real / synthetic) or ``generator`` (attribution)."""
        return "generator" if self.kind == "attribution" else "binary"

    def build(self) -> EmbeddingHead:
        return HEAD_TYPES[self.estimator_type](**self.params)


def targets(data: EmbeddingSet, target: str) -> np.ndarray:
    """What a head of ``target`` learns from each row."""
    return data.labels if target == "binary" else data.generators.astype(str)


def fit_head(spec: HeadSpec, data: EmbeddingSet) -> EmbeddingHead:
    """A head of ``spec`` fitted on every row of ``data``."""
    return spec.build().fit(data.vectors, targets(data, spec.target))


def synthetic_scores(head: EmbeddingHead, target: str, vectors: np.ndarray) -> np.ndarray:
    """P(synthetic) of each vector, (n,) float64."""
    if len(vectors) == 0:
        return np.zeros(0)
    proba = head.predict_proba(vectors)
    classes = head.classes_.tolist()
    if target == "binary":
        return proba[:, classes.index(1)].astype(np.float64)
    return 1.0 - (proba[:, classes.index(REAL)] if REAL in classes else 0.0)


def attribute(head: EmbeddingHead, vectors: np.ndarray, top: int = 3) -> list[dict]:
    """For each vector, the most likely generators of an attribution head, with P(real)."""
    proba = head.predict_proba(vectors)
    classes = head.classes_.tolist()
    out = []
    for row in proba:
        ranked = [(classes[i], float(row[i])) for i in np.argsort(-row) if classes[i] != REAL]
        p_real = float(row[classes.index(REAL)]) if REAL in classes else 0.0
        out.append({
            "generator": ranked[0][0] if ranked else None,
            "probability": round(ranked[0][1], 6) if ranked else 0.0,
            "real_probability": round(p_real, 6),
            "top": [{"generator": name, "probability": round(p, 6)} for name, p in ranked[:top]],
        })
    return out
