"""JPEG decoding on the model's device (nvjpeg on CUDA), for the clean view in ``crop`` mode.

On a GPU the CPU decoding workers, not the model, bound embedding (see benchmarks/RESULTS.md):
with ``EngineOptions(decode="device")`` the workers only read and verify the bytes and parse
the JPEG header, and the main process decodes whole batches on the device, applies EXIF
orientation and takes the centre crop there. Anything else (other formats, CMYK JPEGs,
augmented or robustness views, ``resize`` mode, bytes nvjpeg rejects) goes the CPU way, so
the device path only ever speeds up, never refuses. Decoders differ by a level or two in some
pixels; vectors stay within the bf16 tolerance of the CPU path (cosine >= 0.999, measured by
benchmarks/gpu_check.py).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import torch
from PIL import Image

from embeddings.decode import DecodeLimits
from embeddings.registry import BackboneSpec

_ORIENTATION_TAG = 0x0112
_DEVICE_MODES = ("RGB", "L")  # what nvjpeg decodes to RGB as libjpeg does


@dataclass(frozen=True)
class JpegHeader:
    """What the device path needs from a JPEG's header: its EXIF orientation (1-8)."""

    orientation: int


def device_decodable(data: bytes, limits: DecodeLimits) -> JpegHeader | None:
    """The header of ``data`` if the device can decode it as the CPU path would, else None.

    Reads the header only (no pixels): the format, the colour mode, the pixel limit and the
    EXIF orientation.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or image.mode not in _DEVICE_MODES:
                return None
            if image.width * image.height > limits.max_pixels:
                return None
            orientation = int(image.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except Exception:  # noqa: BLE001 - anything unusual goes the CPU way, which reports it
        return None
    return JpegHeader(orientation if 1 <= orientation <= 8 else 1)


def orient(pixels: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply an EXIF orientation to a (C, H, W) image, as PIL's ``exif_transpose`` does."""
    if orientation == 2:
        return pixels.flip(2)
    if orientation == 3:
        return pixels.flip(1, 2)
    if orientation == 4:
        return pixels.flip(1)
    if orientation == 5:
        return pixels.transpose(1, 2)
    if orientation == 6:
        return pixels.rot90(-1, (1, 2))
    if orientation == 7:
        return pixels.transpose(1, 2).flip(1, 2)
    if orientation == 8:
        return pixels.rot90(1, (1, 2))
    return pixels


def decode_crops(data: list[torch.Tensor], headers: list[JpegHeader], spec: BackboneSpec,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode JPEG bytes on ``device`` into centre crops as :func:`embeddings.views.crop` makes
    them: ((N, S, S, 3) uint8 on the device, (N, 2) sizes). Raises ``RuntimeError`` if the
    decoder rejects any of them (the caller then takes the CPU way for that batch)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    size = spec.input_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision marks its decoders deprecated for torchcodec
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    crops = torch.zeros((len(images), size, size, 3), dtype=torch.uint8, device=device)
    sizes = []
    for index, (image, header) in enumerate(zip(images, headers)):
        image = orient(image, header.orientation)
        height, width = image.shape[1:]
        top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
        window = image[:, top:top + size, left:left + size]
        crops[index, : window.shape[1], : window.shape[2]] = window.permute(1, 2, 0)
        sizes.append((window.shape[1], window.shape[2]))
    return crops, torch.tensor(sizes, dtype=torch.int32).reshape(-1, 2)
