"""`synthwatch detect` and `POST /detect`: score images with a registered head and back each
verdict with the nearest known fakes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from embeddings.decode import ImageRejected
from heads.detector import attribute
from heads.jobs import LoadedHead, load_registered
from store.layout import StoreLayout


@dataclass
class Detector:
    """A loaded head with the backbone that embeds queries as its training vectors were made.

    ``neighbors`` (a ``store.neighbors.NeighborIndex`` of the same backbone) supplies the
    evidence; without one, results carry no neighbours.
    """

    loaded: LoadedHead
    backbone: object = field(default=None, repr=False)

    @classmethod
    def open(cls, layout: StoreLayout, version: str | None = None) -> "Detector":
        return cls(load_registered(layout, version))

    @property
    def version(self) -> str:
        return self.loaded.version

    @property
    def backbone_id(self) -> str:
        return self.loaded.record["backbone_id"]

    def ensure_backbone(self):
        if self.backbone is None:
            from embeddings.backbone import backbone_from_description

            self.backbone = backbone_from_description(self.loaded.record["backbone"])
        return self.backbone

    def detect(self, images: list[tuple[str, bytes]], *, k: int = 5, neighbors=None) -> list[dict]:
        """One result per ``(name, bytes)``: score, decision, attribution and nearest known fakes;
        an image that cannot be decoded gets ``error`` with the reason instead."""
        from embeddings.query import embed_query

        backbone = self.ensure_backbone()
        results, vectors, rows = [], [], []
        for name, data in images:
            try:
                vectors.append(embed_query(backbone, data))
                rows.append(len(results))
                results.append({"query": name})
            except ImageRejected as rejection:
                results.append({"query": name, "error": rejection.reason})
        if not vectors:
            return results
        matrix = np.stack(vectors)
        scores = self.loaded.scores(matrix)
        attributions = attribute(self.loaded.attribution, matrix)
        evidence = neighbors.search(matrix, k, label="synthetic")[0] if neighbors is not None and k > 0 else None
        threshold = self.loaded.threshold
        for position, row in enumerate(rows):
            results[row].update({
                "score": round(float(scores[position]), 6),
                "synthetic": bool(scores[position] >= threshold),
                "threshold": round(threshold, 6),
                "head_version": self.version,
                "attribution": attributions[position],
                "neighbors": [n.as_dict() for n in evidence[position]] if evidence is not None else [],
            })
        return results
