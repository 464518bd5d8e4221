"""Embed query images exactly as stored images were embedded (clean view)."""

from __future__ import annotations

import numpy as np
import torch

from embeddings.backbone import Backbone
from embeddings.decode import DecodeLimits, decode_image
from embeddings.views import prepare


def embed_query(backbone: Backbone, data: bytes, limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
    """The clean-view vector (dim,) float32 of one image's bytes; raises ``ImageRejected``."""
    image, _ = decode_image(data, limits)
    pixels, _ = prepare(image, backbone.spec, backbone.mode)
    return backbone.embed(torch.from_numpy(pixels[None]))[0].numpy()
