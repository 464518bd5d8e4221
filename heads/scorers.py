"""Registered heads ready to score: one protocol that embedding heads and fine-tuned networks
both implement, so callers never branch on what a head is made of."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from synthwatch.heads.detector import attribute, synthetic_scores
from synthwatch.heads.evaluation import EvalOptions, Evaluation, evaluate_fitted
from synthwatch.heads.network_train import network_from_bytes, score_images
from synthwatch.heads.network_kinds import NETWORK_KINDS
from synthwatch.heads.persist import decode_arrays, decode_head
from synthwatch.heads.records import ATTRIBUTION_FILE, HEAD_FILE, NETWORK_FILE, REFERENCE_FILE, HeadRecord, read_record
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import HeadRegistry

__all__ = ["EmbeddingScorer", "NetworkScorer", "Scorer", "load_scorer"]

NO_ATTRIBUTION = {"generator": None, "probability": None, "real_probability": None, "top": [],
                  "note": "an image network does not attribute generators"}


class Scorer(Protocol):
    """A registered head: P(synthetic) of decoded images, and its measurement on the store."""

    record: HeadRecord

    @property
    def version(self) -> str: ...

    @property
    def threshold(self) -> float: ...

    def score_images(self, images: list, backbones: dict) -> tuple[np.ndarray, list[dict], np.ndarray | None]:
        """``(scores (n,), attributions, vectors (n, dim) or None)`` of decoded images; ``backbones``
        caches models by backbone id."""

    def evaluate(self, layout: StoreLayout, options: EvalOptions, prepared=None) -> Evaluation:
        """Measured on generators it never saw and on the test split of the others."""


@dataclass
class _Registered:
    record: HeadRecord

    @property
    def version(self) -> str:
        return self.record.version

    @property
    def threshold(self) -> float:
        return float(self.record.threshold)

    def _options(self, options: EvalOptions) -> EvalOptions:
        return replace(options, target_fpr=self.record.target_fpr)


@dataclass
class EmbeddingScorer(_Registered):
    """An embedding head (with its attribution head) over the vectors of its backbone."""

    head: object = None
    attribution: object = None
    reference_bytes: bytes = field(default=b"", repr=False)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """P(synthetic) of (n, dim) vectors, (n,) float64."""
        return synthetic_scores(self.head, self.record.target, vectors)

    def score_images(self, images: list, backbones: dict):
        from synthwatch.embeddings.backbone import cached_backbone
        from synthwatch.embeddings.query import embed_images

        vectors = embed_images(cached_backbone(self.record.backbone, backbones), images)
        return self.scores(vectors), attribute(self.attribution, vectors), vectors

    def reference(self) -> dict[str, np.ndarray]:
        """The training fakes and validation scores kept with the head (drift checks)."""
        return decode_arrays(self.reference_bytes)

    def evaluate(self, layout: StoreLayout, options: EvalOptions, prepared=None) -> Evaluation:
        if prepared is None:
            raise ValueError(f"Expected the evaluation data of {self.record.backbone_id} for head {self.version}, "
                             "but got none. Prepare it with synthwatch.heads.pipeline.prepare_for.")
        return evaluate_fitted(self.scores, self.threshold, prepared.data, seen=self.record.generators_seen,
                               options=self._options(options), near_duplicates=prepared.pairs)


@dataclass
class NetworkScorer(_Registered):
    """An image network (fine-tuned ConvNeXt, or the NPR residual CNN) scoring images itself."""

    trained: object = None  # heads.network_train.TrainedNetwork

    def score_images(self, images: list, backbones: dict):
        scores = score_images(self.trained, images)
        return scores, [dict(NO_ATTRIBUTION) for _ in images], None

    def evaluate(self, layout: StoreLayout, options: EvalOptions, prepared=None) -> Evaluation:
        from synthwatch.heads.network_job import evaluate_network

        return evaluate_network(layout, self, self._options(options))


def load_scorer(layout: StoreLayout, version: str | None = None) -> EmbeddingScorer | NetworkScorer:
    """The head ``version``, or the champion; a clear error says how to train one if none exists."""
    registry = HeadRegistry(layout)
    version = version or registry.champion()
    if version is None:
        trained = registry.versions()
        hint = (f"{len(trained)} versions exist but none is the champion: promote one with "
                "`synthwatch models promote VERSION`, or pass --head VERSION." if trained else
                "Train one with `synthwatch train` (after `synthwatch ingest` and `synthwatch embed`).")
        raise StoreError(f"Expected a champion head in {layout.root}, but there is none. {hint}")
    record = read_record(registry, version)
    if record.kind in NETWORK_KINDS:
        from synthwatch.heads.network_job import network_options_of

        data = registry.read_file(version, NETWORK_FILE)
        return NetworkScorer(record, network_from_bytes(network_options_of(record), data))
    head = decode_head(record.head, registry.read_file(version, HEAD_FILE))
    attribution = head if record.kind == "attribution" else decode_head(
        record.attribution, registry.read_file(version, ATTRIBUTION_FILE))
    return EmbeddingScorer(record, head, attribution, registry.read_file(version, REFERENCE_FILE))
