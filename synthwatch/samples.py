"""Small generated image sets for the demo, tests and benchmarks (not a detection corpus).

Real pictures are crops of photographs bundled inside installed packages (scikit-image and
scikit-learn sample images). The "synthetic" ones are crops passed through simple resampling
pipelines standing in for generators until the proxy corpus exists; their only purpose is to
exercise ingestion.
"""

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

# name -> (downscale factor, resampling used to come back up)
TOY_GENERATORS = {
    "toy-nearest": (2, Image.Resampling.NEAREST),
    "toy-bilinear": (2, Image.Resampling.BILINEAR),
    "toy-bicubic-x4": (4, Image.Resampling.BICUBIC),
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
    """Yield ``count`` (photo name, square crop of side ``size``) at random places and scales."""
    names = sorted(photos)
    for index in range(count):
        name = names[index % len(names)]
        photo = photos[name]
        scale = rng.uniform(0.6, 1.0)
        side = max(8, int(min(photo.size) * scale))
        left = int(rng.integers(0, photo.width - side + 1))
        top = int(rng.integers(0, photo.height - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize(
            (size, size), Image.Resampling.LANCZOS
        )
        yield name, crop


def toy_generate(crop: Image.Image, generator: str) -> Image.Image:
    """A crop passed through the toy generator's down/up-sampling pipeline."""
    factor, resample = TOY_GENERATORS[generator]
    small = crop.resize((crop.width // factor, crop.height // factor), Image.Resampling.BOX)
    return small.resize(crop.size, resample)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def write_demo_corpus(out: Path, *, seed: int = 0, per_class: int = 24, size: int = 96) -> dict:
    """Write ``out/real/<photo>/*`` and ``out/synthetic/<toy generator>/*``, plus a few bad files.

    Returns the counts written, by label and generator.
    """
    rng = np.random.default_rng(seed)
    photos = bundled_photos()
    counts: dict = {"real": 0, "synthetic": {}}
    for index, (name, crop) in enumerate(random_crops(photos, per_class, size, rng)):
        fmt, suffix = ("JPEG", "jpg") if index % 2 else ("PNG", "png")
        _write(out / "real" / name / f"{index:04d}.{suffix}", encode(crop, fmt))
        counts["real"] += 1
    for generator in TOY_GENERATORS:
        crops = random_crops(photos, per_class, size, rng)
        for index, (name, crop) in enumerate(crops):
            _write(out / "synthetic" / generator / f"{name}-{index:04d}.png",
                   encode(toy_generate(crop, generator), "PNG"))
        counts["synthetic"][generator] = per_class
    _write_bad_examples(out / "real" / "unsorted")
    return counts


def _write_bad_examples(folder: Path) -> None:
    """Files a real pile of images contains: each is rejected or skipped, with its reason."""
    good = encode(Image.new("RGB", (64, 64), (120, 30, 200)), "PNG")
    _write(folder / "empty.jpg", b"")
    _write(folder / "truncated.png", good[: len(good) // 2])
    _write(folder / "not-really.jpg", b"this is a text file with an image extension\n")
    _write(folder / "tiny.png", encode(Image.new("RGB", (16, 16)), "PNG"))
    _write(folder / "notes.txt", b"not an image, skipped\n")


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
