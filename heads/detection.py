"""`synthwatch detect` and `POST /detect`: score images with a registered head and back each
verdict with the nearest known fakes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from synthwatch.embeddings.decode import DecodeLimits, ImageRejected, decode_image
from synthwatch.heads.scorers import EmbeddingScorer, NetworkScorer, load_scorer
from synthwatch.store.layout import StoreLayout


@dataclass
class Detector:
    """A registered head (any :class:`~synthwatch.heads.scorers.Scorer`) and the backbones that
    embed queries: the head's own, and the evidence index's (for the nearest known fakes).
    Backbones are built on first use, or shared by the caller through ``backbones``."""

    scorer: EmbeddingScorer | NetworkScorer
    backbones: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, layout: StoreLayout, version: str | None = None) -> "Detector":
        return cls(load_scorer(layout, version))

    @property
    def version(self) -> str:
        return self.scorer.version

    @property
    def backbone_id(self) -> str | None:
        """The backbone the head scores embeddings of (None for a fine-tuned network)."""
        return self.scorer.record.backbone_id

    def detect(self, images: list[tuple[str, bytes]], *, k: int = 5, neighbors=None,
               limits: DecodeLimits = DecodeLimits()) -> tuple[list[dict], list]:
        """One result per ``(name, bytes)``: score, decision, attribution and nearest known fakes
        (from ``neighbors``, a ``store.neighbors.NeighborIndex``), or ``error`` with the reason for
        an image that cannot be decoded; and per result the ``(unit vector, backbone id)`` it was
        scored or looked up with (the evidence index's space when there is one; None for a refused
        image, or a fine-tuned network without an index): what the prediction log keeps."""
        from synthwatch.embeddings.backbone import cached_backbone
        from synthwatch.embeddings.query import embed_images

        results, decoded = [], []
        for name, data in images:
            try:
                decoded.append(decode_image(data, limits)[0])
                results.append({"query": name})
            except ImageRejected as rejection:
                results.append({"query": name, "error": rejection.reason})
        good = [entry for entry in results if "error" not in entry]
        embeddings = [None] * len(results)
        if not decoded:
            return results, embeddings
        scores, attributions, vectors = self.scorer.score_images(decoded, self.backbones)
        vectors_of = self.backbone_id
        evidence = None
        if neighbors is not None and k > 0:
            if vectors is None or neighbors.backbone_id != self.backbone_id:
                vectors = embed_images(cached_backbone(neighbors.description, self.backbones), decoded)
                vectors_of = neighbors.backbone_id
            evidence = neighbors.search(vectors, k, label="synthetic")[0]
        threshold = self.scorer.threshold
        good_positions = [position for position, entry in enumerate(results) if "error" not in entry]
        for position, entry in enumerate(good):
            entry.update({
                "score": round(float(scores[position]), 6),
                "synthetic": bool(scores[position] >= threshold),
                "threshold": round(threshold, 6),
                "head_version": self.version,
                "attribution": attributions[position],
                "neighbors": [n.as_dict() for n in evidence[position]] if evidence is not None else [],
            })
            if vectors is not None:  # backbones give unit vectors
                embeddings[good_positions[position]] = (np.asarray(vectors[position], np.float32), vectors_of)
        return results, embeddings


def prediction_row(entry: dict, data: bytes, *, backbone_id: str | None, source: str | None, channel: str,
                   embedding: tuple | None = None) -> dict:
    """The prediction-log row (``store.predictions.SCHEMA``) of one answer of :meth:`Detector.detect`
    for the image ``data``, with its ``(vector, backbone id)`` from
    :meth:`Detector.detect` when given."""
    attribution = entry.get("attribution") or {}
    nearest = entry["neighbors"][0] if entry.get("neighbors") else None
    return {"image_id": hashlib.sha256(data).hexdigest(), "score": entry["score"], "synthetic": entry["synthetic"],
            "threshold": entry["threshold"], "head_version": entry["head_version"], "backbone_id": backbone_id,
            "attribution": attribution.get("generator"), "attribution_probability": attribution.get("probability"),
            "nearest_fake_distance": None if nearest is None else round(1.0 - nearest["score"], 6),
            "nearest_fake_generator": None if nearest is None else nearest["generator"],
            "source": source, "channel": channel,
            "embedding": None if embedding is None else embedding[0].tolist(),
            "embedding_backbone": None if embedding is None else embedding[1]}
