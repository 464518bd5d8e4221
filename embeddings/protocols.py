"""Measurement protocols that treat real and synthetic files alike, so a detector cannot score the file
instead of the image.

Public real-photo sets are mostly JPEG-born and resized, and generators' samples are pristine PNG
at their native size (Grommelt et al., "Fake or JPEG? Revealing Common Biases in Generated Image
Detection Datasets", 2024; Guillaro et al., "A Bias-Free Training Paradigm for More General
AI-generated Image Detection", CVPR 2025): a detector trained on them can learn the format and the
size. Under a controlled protocol every image, whatever its class, goes through the same steps:

- ``clean``: the file as it is (biased; for comparison only).
- ``controlled``: the centre ``CROP`` x ``CROP`` pixels at native resolution (smaller images whole),
  re-encoded as JPEG at a quality drawn from 75-95 by the image's id (both classes alike).
- ``downscaled``: the image downscaled 0.5x (bilinear, antialiased), then the centre
  ``CROP // 2`` pixels, re-encoded as ``controlled`` is: a resampling history for both classes,
  and the earlier JPEG grid of JPEG-born photos moved off the 8-pixel lattice.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

PROTOCOLS = ("clean", "controlled", "downscaled")
CROP = 256
JPEG_QUALITIES = (75, 95)

__all__ = ["CROP", "JPEG_QUALITIES", "PROTOCOLS", "apply_protocol", "protocol_quality"]


def protocol_quality(key: str) -> int:
    """The JPEG quality (75-95) an image re-encodes at, drawn from ``key`` (its sha256): the same on
    every run and machine, independent of class."""
    seed = int(hashlib.sha256(f"synthwatch-protocol\0{key}".encode()).hexdigest()[:16], 16)
    return int(np.random.default_rng(seed).integers(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1))


def apply_protocol(image: Image.Image, protocol: str, key: str) -> bytes | None:
    """The file an RGB ``image`` becomes under ``protocol`` (JPEG bytes), or None for ``clean``
    (the original file is used as it is)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Expected a protocol in {', '.join(PROTOCOLS)}, but got {protocol!r}.")
    if protocol == "clean":
        return None
    side = CROP
    if protocol == "downscaled":
        image = image.resize((max(1, round(image.width / 2)), max(1, round(image.height / 2))),
                             Image.Resampling.BILINEAR)
        side = CROP // 2
    buffer = io.BytesIO()
    _centre(image, side).save(buffer, format="JPEG", quality=protocol_quality(key))
    return buffer.getvalue()


def _centre(image: Image.Image, side: int) -> Image.Image:
    width, height = min(side, image.width), min(side, image.height)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))
