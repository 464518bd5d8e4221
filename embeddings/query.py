"""Embed query images exactly as stored images were embedded (clean view)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from synthwatch.embeddings.backbone import Backbone
from synthwatch.embeddings.decode import DecodeLimits, decode_image
from synthwatch.embeddings.views import prepare


def embed_query(backbone: Backbone, data: bytes, limits: DecodeLimits = DecodeLimits()) -> np.ndarray:
    """The clean-view vector (dim,) float32 of one image's bytes; raises ``ImageRejected``."""
    image, _ = decode_image(data, limits)
    return embed_images(backbone, [image])[0]


def embed_images(backbone: Backbone, images: Sequence[Image.Image]) -> np.ndarray:
    """Clean-view vectors (n, dim) float32 of decoded RGB images, in one batch."""
    pixels = np.stack([prepare(image, backbone.spec, backbone.mode)[0] for image in images])
    return backbone.embed(torch.from_numpy(pixels)).numpy()
