"""Real photographs bundled inside installed packages, and crops of them."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
from PIL import Image

_PHOTOS = {
    "skimage": ("data", ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                         "motorcycle_left.png", "hubble_deep_field.jpg", "camera.png"]),
    "sklearn": ("datasets/images", ["china.jpg", "flower.jpg"]),
}


def bundled_photos() -> dict[str, Image.Image]:
    """The sample photographs shipped inside installed packages, as RGB images by name."""
    photos: dict[str, Image.Image] = {}
    for package, (folder, names) in _PHOTOS.items():
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        base = Path(spec.origin).parent / folder
        for name in names:
            if (base / name).exists():
                with Image.open(base / name) as image:
                    photos[Path(name).stem] = image.convert("RGB")
    if not photos:
        raise RuntimeError(
            "Expected scikit-image or scikit-learn to be installed (their sample photographs "
            "seed the demo), but neither was found. Run `make demo` to build the environment."
        )
    return photos


def random_crops(photos: dict[str, Image.Image], count: int, size: int, rng: np.random.Generator):
    """Yield ``count`` (photo name, ``size`` px square crop), cycling over the photos.

    Each crop covers between 1x and 2x ``size`` of the photo (so it is at or near native
    resolution) at a random place, and is resized to ``size`` when larger.
    """
    names = sorted(photos)
    for index in range(count):
        name = names[index % len(names)]
        photo = photos[name]
        side = int(min(rng.uniform(1.0, 2.0) * size, min(photo.size)))
        left = int(rng.integers(0, photo.width - side + 1))
        top = int(rng.integers(0, photo.height - side + 1))
        crop = photo.crop((left, top, left + side, top + side))
        if side != size:
            crop = crop.resize((size, size), Image.Resampling.LANCZOS)
        yield name, crop


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def write_jpeg_corpus(out: Path, count: int, *, size: int = 512, seed: int = 0, quality: int = 90) -> list[Path]:
    """Write ``count`` distinct ``size`` px JPEGs under ``out`` (for benchmarks)."""
    rng = np.random.default_rng(seed)
    photos = bundled_photos()
    paths = []
    for index, (_, crop) in enumerate(random_crops(photos, count, size, rng)):
        pixels = np.asarray(crop, dtype=np.int16) + rng.integers(-3, 4, (size, size, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        path = out / f"{index:06d}.jpg"
        _write(path, encode(image, "JPEG", quality=quality))
        paths.append(path)
    return paths


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
