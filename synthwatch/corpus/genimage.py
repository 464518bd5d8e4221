"""The proxy corpus laid out as GenImage publishes its data, so `synthwatch benchmark --preset
genimage-sdv14` can be tried (and tested) without the dataset: each autoencoder generator under
one of GenImage's folder names, reals named by a synset-like number of their photo and fakes by
the class index of theirs (as GenImage names them), a third of the real and of the fake images under
val/ (GenImage's test set; its train/ is trained on)."""

from __future__ import annotations

import shutil
from pathlib import Path

# As the GenImage release spells its top folders; the corpus has six generators, so VQDM and
# BigGAN stay absent (the benchmark reports them as not in the store).
GENIMAGE_FOLDERS = ("Midjourney", "stable_diffusion_v_1_4", "Stable Diffusion V1.5", "ADM", "glide", "wukong")


def write_genimage_tree(corpus: Path, root: Path) -> dict[str, str]:
    """Copy the corpus at ``corpus`` into ``root`` in GenImage's layout; returns
    {corpus generator: GenImage folder}."""
    photos = sorted(p.name for p in (corpus / "real").iterdir())
    reals = sorted((corpus / "real").rglob("*.*"))
    generators = sorted(p.name for p in (corpus / "synthetic").iterdir())
    if len(generators) > len(GENIMAGE_FOLDERS):
        raise ValueError(f"Expected at most {len(GENIMAGE_FOLDERS)} generators in {corpus}, but got {len(generators)}.")
    names = dict(zip(generators, GENIMAGE_FOLDERS))
    for number, (generator, name) in enumerate(names.items()):
        top = root / name / f"imagenet_ai_{number}"
        for index, fake in enumerate(sorted((corpus / "synthetic" / generator).rglob("*.*"))):
            _copy(fake, top / _split(index) / "ai" / f"{photos.index(fake.parent.name)}_{index}{fake.suffix.upper()}")
        for index, real in enumerate(reals[number::len(names)]):
            _copy(real, top / _split(index) / "nature" / f"n{photos.index(real.parent.name):08d}_{index}{real.suffix}")
    return names


def _split(index: int) -> str:
    return "val" if index % 3 == 0 else "train"


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
