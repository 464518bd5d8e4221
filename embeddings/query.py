"""Embed query images exactly as stored images were embedded (clean view)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from synthwatch.embeddings.backbone import Backbone
from synthwatch.embeddings.decode import DecodeLimits, decode_image
from synthwatch.embeddings.views import crop


def embed_query(backbone: Backbone, data: bytes, limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
    """The clean-view vector (dim,) float32 of one image's bytes; raises ``ImageRejected``."""
    image, _ = decode_image(data, limits)
    return embed_images(backbone, [image])[0]


def embed_images(backbone: Backbone, images: Sequence[Image.Image]) -> np.ndarray:
    """Clean-view vectors (n, dim) float32 of decoded RGB images, in one batch."""
    if not images:
        return np.zeros((0, backbone.dim), np.float32)
    crops = [crop(image, backbone.spec, backbone.mode) for image in images]
    pixels = torch.from_numpy(np.stack([pixels for pixels, _, _ in crops]))
    sizes = torch.tensor([size for _, size, _ in crops])
    return backbone.embed_crops(pixels, sizes).cpu().numpy()
