"""Preprocessing (``crop`` at native resolution or ``resize``) and seeded augmented views.

View 0 is the clean view: centre crop (``crop``) or shorter side resized then centre crop
(``resize``). Views 1..N are drawn from a generator seeded by (seed, image id, view), so the
same image always gets the same views: each may downscale, blur and re-encode as JPEG, and
takes its crop at a random place. The parameters are returned for the row's ``augmentation``.
Views from ``PATCH_VIEWS_FROM`` (500) up are clean patches at native resolution: a seeded random
square of ``PATCH_FRACTION`` of the image's shorter side, nothing else changed (``--patches``),
so a detector that reads the whole crop, like ``srm``, trains on more, smaller samples of each
image's statistics than one per image. Views from 1000 up are the fixed perturbations that
evaluation measures robustness under (``ROBUSTNESS_VIEWS``): JPEG re-encoding at a seeded quality
of 50-95, 0.5x downscaling, and JPEG re-encoding at quality 75.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageFilter

from synthwatch.embeddings.registry import BackboneSpec

_RESAMPLING = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}
JPEG_QUALITY = (50, 95)
DOWNSCALE = (0.5, 0.9)
BLUR_SIGMA = (0.3, 1.2)
ROBUSTNESS_VIEWS = {"jpeg": 1000, "downscale": 1001, "jpeg75": 1002}
PATCH_VIEWS_FROM = 500
PATCH_FRACTION = 0.5
FIXED_JPEG_QUALITY = 75  # the "jpeg75" view: the fixed quality papers report robustness at


def view_rng(seed: int, image_id: str, view: int) -> np.random.Generator:
    """The generator for one (image, view): independent of batch order and worker."""
    return np.random.default_rng([seed, int(image_id[:16], 16), view])


def augment(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """Apply a random subset of downscale, blur and JPEG re-encoding; return image and params."""
    params: dict = {}
    if rng.random() < 0.5:
        factor = float(rng.uniform(*DOWNSCALE))
        image = downscale(image, factor)
        params["downscale"] = round(factor, 4)
    if rng.random() < 0.3:
        sigma = float(rng.uniform(*BLUR_SIGMA))
        image = image.filter(ImageFilter.GaussianBlur(sigma))
        params["blur_sigma"] = round(sigma, 4)
    if rng.random() < 0.5:
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        image = jpeg(image, quality)
        params["jpeg_quality"] = quality
    return image, params


def downscale(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BILINEAR)


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """``image`` after one round trip through JPEG at ``quality``."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def perturb(image: Image.Image, view: int, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """The robustness perturbation numbered ``view`` (see ``ROBUSTNESS_VIEWS``)."""
    if view == ROBUSTNESS_VIEWS["jpeg"]:
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        return jpeg(image, quality), {"robustness": "jpeg", "jpeg_quality": quality}
    if view == ROBUSTNESS_VIEWS["downscale"]:
        return downscale(image, 0.5), {"robustness": "downscale", "downscale": 0.5}
    if view == ROBUSTNESS_VIEWS["jpeg75"]:
        return jpeg(image, FIXED_JPEG_QUALITY), {"robustness": "jpeg75", "jpeg_quality": FIXED_JPEG_QUALITY}
    raise ValueError(f"Expected a view number in 0..999 or {sorted(ROBUSTNESS_VIEWS.values())}, but got {view}.")


def crop(image: Image.Image, spec: BackboneSpec, mode: str, rng: np.random.Generator | None = None) -> tuple[np.ndarray, tuple[int, int], dict]:
    """Bring an RGB image to the backbone's input size, still as bytes.

    Returns ``(pixels, (height, width), params)``: pixels are (S, S, 3) uint8 with the image in
    the top-left ``height`` x ``width`` and zeros elsewhere (an image smaller than S is padded,
    and the padding becomes exactly 0 once normalised). ``rng`` None gives the centre crop;
    otherwise the crop is placed at random and its top-left corner is returned in the params.
    Bytes travel 4x lighter than floats from decoding workers to the model.
    """
    size = spec.input_size
    if mode == "resize":
        scale = size / min(image.size)
        resized = (max(size, round(image.width * scale)), max(size, round(image.height * scale)))
        image = image.resize(resized, _RESAMPLING[spec.interpolation])
    left, top = _offset(image.width, size, rng), _offset(image.height, size, rng)
    cropped = np.asarray(image.crop((left, top, left + min(size, image.width), top + min(size, image.height))),
                         dtype=np.uint8)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[: cropped.shape[0], : cropped.shape[1]] = cropped
    params = {} if rng is None else {"crop": [left, top]}
    return canvas, cropped.shape[:2], params


def normalise(pixels: torch.Tensor, sizes: torch.Tensor, spec: BackboneSpec) -> torch.Tensor:
    """Crops from :func:`crop` as the model's input, on the crops' device.

    ``pixels`` (N, S, S, 3) uint8 and ``sizes`` (N, 2) (height, width) become (N, 3, S, S)
    float32 scaled to [0, 1], normalised with the spec's mean and std, with padding at 0.
    """
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    values = (pixels.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    positions = torch.arange(pixels.shape[1], device=pixels.device)
    sizes = sizes.to(pixels.device)
    inside = (positions.view(1, -1, 1) < sizes[:, 0].view(-1, 1, 1)) & (positions.view(1, 1, -1) < sizes[:, 1].view(-1, 1, 1))
    return values * inside.unsqueeze(1)


def prepare(image: Image.Image, spec: BackboneSpec, mode: str, rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict]:
    """:func:`crop` then :func:`normalise` for one image: (3, S, S) float32, and the params."""
    pixels, size, params = crop(image, spec, mode, rng)
    values = normalise(torch.from_numpy(pixels)[None], torch.tensor([size]), spec)
    return values[0].numpy(), params


def make_views(image: Image.Image, spec: BackboneSpec, mode: str, views: list[int], *, seed: int, image_id: str):
    """Yield ``(view, params, pixels, (height, width))`` for each requested view number (0 =
    clean), pixels as :func:`crop` gives them."""
    for view in views:
        if view == 0:
            pixels, size, params = crop(image, spec, mode)
        elif view >= min(ROBUSTNESS_VIEWS.values()):
            perturbed, params = perturb(image, view, view_rng(seed, image_id, view))
            pixels, size, _ = crop(perturbed, spec, mode)
        elif view >= PATCH_VIEWS_FROM:
            patch, params = random_patch(image, view_rng(seed, image_id, view))
            pixels, size, _ = crop(patch, spec, mode)
        else:
            rng = view_rng(seed, image_id, view)
            augmented, params = augment(image, rng)
            pixels, size, placement = crop(augmented, spec, mode, rng)
            params.update(placement)
        yield view, params, pixels, size


def patch_views(count: int) -> tuple[int, ...]:
    """The view numbers of ``count`` patch views."""
    most = min(ROBUSTNESS_VIEWS.values()) - PATCH_VIEWS_FROM
    if not 0 <= count <= most:
        raise ValueError(f"Expected 0..{most} patch views, but got {count}. Give --patches in that range.")
    return tuple(range(PATCH_VIEWS_FROM, PATCH_VIEWS_FROM + count))


def random_patch(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """A random square of ``PATCH_FRACTION`` of the image's shorter side (at least 1 px), and its
    ``patch`` params (left, top, side)."""
    side = max(1, int(min(image.size) * PATCH_FRACTION))
    left, top = int(rng.integers(0, image.width - side + 1)), int(rng.integers(0, image.height - side + 1))
    return image.crop((left, top, left + side, top + side)), {"patch": [left, top, side]}


def _offset(length: int, size: int, rng: np.random.Generator | None) -> int:
    if length <= size:
        return 0
    return (length - size) // 2 if rng is None else int(rng.integers(0, length - size + 1))
