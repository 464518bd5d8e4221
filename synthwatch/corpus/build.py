"""`synthwatch corpus build`: a reproducible proxy corpus of real crops and autoencoder fakes.

Real images are crops, at several places and scales, of the photographs bundled inside
scikit-image and scikit-learn. Each generator of the zoo is trained briefly on those crops and
then reconstructs its own held-back crops (never in the real set), so real and fake share the
photos' content and differ in the decoder's traces. Trained weights are cached as safetensors.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from synthwatch.store.atomic import atomic_write_bytes
from synthwatch.corpus.generators import (
    GENERATORS, build_autoencoder, reconstruct, train_autoencoder,
)
from synthwatch.corpus.photos import bundled_photos, encode, random_crops

MANIFEST_NAME = "manifest.csv"
MARKER_NAME = ".synthwatch-corpus"  # written before anything else: a half-built corpus is still ours
CACHE_ENV = "SYNTHWATCH_CACHE"


@dataclass(frozen=True)
class CorpusSize:
    """How much to build: crop side, real crops, fakes per generator, training steps."""

    side: int
    real: int
    fakes_per_generator: int
    train_steps: int


SIZES = {
    "small": CorpusSize(side=96, real=120, fakes_per_generator=40, train_steps=300),
    "medium": CorpusSize(side=128, real=600, fakes_per_generator=200, train_steps=900),
}


@dataclass
class CorpusSummary:
    """What a build wrote; ``as_dict`` is the ``corpus build --json`` contract."""

    out: Path
    manifest: Path
    real: int = 0
    synthetic: dict[str, int] = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "out": str(self.out),
            "manifest": str(self.manifest),
            "real": self.real,
            "synthetic": self.synthetic,
            "trained": self.trained,
            "cached": self.cached,
            "elapsed_s": round(self.elapsed_s, 2),
        }


def default_cache_dir() -> Path:
    """``$SYNTHWATCH_CACHE/corpus``, else ``~/.cache/synthwatch/corpus``."""
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "synthwatch"
    return Path(base) / "corpus"


def build_corpus(
    out: Path, *, seed: int = 0, size: str | CorpusSize = "small", cache_dir: Path | None = None,
) -> CorpusSummary:
    """Write ``out/real/<photo>/*.{png,jpg}``, ``out/synthetic/<generator>/<photo>/*`` and
    ``out/manifest.csv``. The same seed and size give byte-identical files on the same kind of
    machine and torch release. A previous corpus in ``out`` is replaced; any other content
    there is refused.
    """
    if isinstance(size, str) and size not in SIZES:
        raise ValueError(f"Expected size in {sorted(SIZES)}, but got {size!r}.")
    started = time.perf_counter()
    spec = SIZES[size] if isinstance(size, str) else size
    out = Path(out).resolve()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER_NAME).touch()
    rng = np.random.default_rng(seed)
    photos = bundled_photos()
    real = list(random_crops(photos, spec.real, spec.side, rng))
    rows: list[tuple[str, str, str, str]] = []
    summary = CorpusSummary(out=out, manifest=out / MANIFEST_NAME)
    for index, (photo, crop) in enumerate(real):
        quality = int(rng.integers(75, 96))
        fmt = "JPEG" if index % 3 == 2 else "PNG"
        rows.append(_save(out, f"real/{photo}/{index:05d}", crop, fmt, quality, "real", "", photo))
    summary.real = len(real)
    training = np.stack([np.asarray(crop) for _, crop in real])
    with _fixed_threads(2):
        for number, (name, config) in enumerate(GENERATORS.items()):
            model, from_cache = _trained(name, config, training, seed + 1000 * (number + 1), spec, cache_dir)
            (summary.cached if from_cache else summary.trained).append(name)
            held_back = list(random_crops(photos, spec.fakes_per_generator, spec.side, rng))
            fakes = reconstruct(model, np.stack([np.asarray(c) for _, c in held_back]), seed=seed)
            for index, ((photo, _), pixels) in enumerate(zip(held_back, fakes)):
                as_jpeg = rng.random() < config.jpeg_share
                quality = int(rng.integers(70, 96))
                rows.append(_save(out, f"synthetic/{name}/{photo}/{index:05d}", Image.fromarray(pixels),
                                  "JPEG" if as_jpeg else "PNG", quality, "synthetic", name, photo))
            summary.synthetic[name] = len(held_back)
    _write_manifest(summary.manifest, rows)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _save(out: Path, stem: str, image: Image.Image, fmt: str, quality: int,
          label: str, generator: str, source: str) -> tuple[str, str, str, str]:
    relative = f"{stem}.{'jpg' if fmt == 'JPEG' else 'png'}"
    params = {"quality": quality} if fmt == "JPEG" else {}
    target = out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encode(image, fmt, **params))
    return relative, label, generator, source


def _write_manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "generator", "source"])
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def _clear_previous(out: Path) -> None:
    """Remove a previous corpus from ``out``; refuse to touch a folder holding anything else."""
    if not out.exists():
        return
    ours = {"real", "synthetic", MANIFEST_NAME, MARKER_NAME}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
    marked = (out / MANIFEST_NAME).exists() or (out / MARKER_NAME).exists()
    if foreign or (any(out.iterdir()) and not marked):
        raise FileExistsError(
            f"Expected {out} to be empty or to hold a corpus built earlier, but it holds "
            f"{', '.join(foreign) or 'files without a ' + MANIFEST_NAME}. Choose another OUT folder."
        )
    (out / MARKER_NAME).touch()  # first, so a half-cleared folder is still ours
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    for name in ("real", "synthetic"):
        shutil.rmtree(out / name, ignore_errors=True)


def _trained(name, config, training: np.ndarray, seed: int, spec: CorpusSize, cache_dir: Path):
    """The generator's trained autoencoder, from the cache when this exact training was done before."""
    key_material = json.dumps({
        "name": name, "config": config.as_dict(), "seed": seed, "steps": spec.train_steps,
        "torch": torch.__version__, "data": hashlib.sha256(training.tobytes()).hexdigest(),
    }, sort_keys=True)
    key = hashlib.sha256(key_material.encode()).hexdigest()[:24]
    weights = cache_dir / f"{name}-{key}.safetensors"
    model = build_autoencoder(config, seed=seed)
    if weights.exists():
        try:
            model.load_state_dict(load_file(weights))
            return model, True
        except (OSError, RuntimeError, ValueError, SafetensorError):
            weights.unlink(missing_ok=True)  # damaged cache entry: train again
    train_autoencoder(model, training, steps=spec.train_steps, seed=seed, patch=min(32, spec.side))
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_name(weights.name + f".tmp-{os.getpid()}")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, weights)
    return model, False


@contextmanager
def _fixed_threads(count: int) -> Iterator[None]:
    """A fixed intra-op thread count, so float results (and the bytes written) do not depend
    on how many cores the machine has."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
