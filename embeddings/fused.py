"""Fused backbones: registered backbones joined by ``+`` (``dinov2-small+spectrum``), their vectors
concatenated with each part unit-normalised and the whole scaled back to unit length.

Every part sees the same crop of each view (one decode, one crop); the crop size is that of the
parts with a fixed input size (they must agree), which size-free parts (``spectrum``) adopt. The
id joins the parts' ids, so fused vectors never share a folder or an index with single ones.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from synthwatch.embeddings.errors import EmbeddingError

SEPARATOR = "+"


class FusedBackbone:
    """The :class:`~synthwatch.embeddings.backbone.Backbone` interface over several backbones."""

    def __init__(self, parts: list) -> None:
        if len(parts) < 2:
            raise EmbeddingError(f"Expected two or more backbones joined by '+', but got {len(parts)}. "
                                 "Name at least two, as in dinov2-small+spectrum.")
        if len({part.mode for part in parts}) > 1:
            raise EmbeddingError(f"Expected the parts of a fused backbone to share one --mode, but got "
                                 f"{', '.join(f'{p.spec.name}: {p.mode}' for p in parts)}. Pass one --mode.")
        fixed = {part.spec.input_size for part in parts if not part.spec.weightless}
        if len(fixed) > 1:
            raise EmbeddingError(f"Expected the parts of a fused backbone to take one input size, but got "
                                 f"{', '.join(f'{p.spec.name}: {p.spec.input_size}' for p in parts)}. "
                                 "Fuse backbones of one size (spectrum adapts to any).")
        size = fixed.pop() if fixed else parts[0].spec.input_size
        for part in parts:
            if part.spec.weightless and part.spec.input_size != size:
                part.spec = replace(part.spec, input_size=size)
        self.parts = parts
        self.mode = parts[0].mode
        self.spec = next((p.spec for p in parts if not p.spec.weightless), parts[0].spec)  # how views are cropped
        self.device = torch.device("cpu")

    @property
    def dim(self) -> int:
        return sum(part.dim for part in self.parts)

    @property
    def backbone_id(self) -> str:
        return SEPARATOR.join(part.backbone_id for part in self.parts)

    @property
    def weights(self) -> str:
        return "; ".join(f"{part.spec.name}: {part.weights}" for part in self.parts)

    @property
    def random_parts(self) -> list[str]:
        from synthwatch.embeddings.loading import RANDOM

        return [part.spec.name for part in self.parts if part.weights == RANDOM]

    @property
    def mixed_precision(self) -> bool:
        return self.parts[0].mixed_precision

    @mixed_precision.setter
    def mixed_precision(self, enabled: bool) -> None:
        for part in self.parts:
            part.mixed_precision = enabled

    def describe(self) -> dict:
        return {"backbone_id": self.backbone_id, "name": SEPARATOR.join(p.spec.name for p in self.parts),
                "family": "fused", "weights": self.weights, "mode": self.mode, "input_size": self.spec.input_size,
                "dim": self.dim, "parts": [part.describe() for part in self.parts]}

    def to(self, device) -> "FusedBackbone":
        self.device = torch.device(device)
        for part in self.parts:
            part.to(device)
        return self

    def use_channels_last(self, enabled: bool) -> "FusedBackbone":
        for part in self.parts:
            part.use_channels_last(enabled)
        return self

    @torch.inference_mode()
    def embed_crops(self, pixels: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """(N, dim) unit vectors of crops ((N, S, S, 3) uint8, (N, 2) sizes): each part's unit
        vector, joined and divided by the square root of the number of parts."""
        joined = torch.cat([part.embed_crops(pixels, sizes) for part in self.parts], dim=1)
        return joined / math.sqrt(len(self.parts))

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        raise EmbeddingError("Expected crops for a fused backbone (its parts normalise pixels each their own way), "
                             "but got normalised pixels. Use embed_crops, as the engine and queries do.")
