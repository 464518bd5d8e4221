"""Turn ingest arguments (folders, files, manifests) into a plan: what to ingest, with what label."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from store.errors import StoreError

LABELS = ("real", "synthetic")
IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".bmp", ".dib", ".tif", ".tiff",
    ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k", ".jpx", ".avif",
    ".heic", ".heif", ".dds", ".psd",
})
MANIFEST_SUFFIXES = frozenset({".csv", ".jsonl", ".ndjson", ".parquet"})


@dataclass(frozen=True)
class Candidate:
    """A file to ingest, with the label and generator its source gives it."""

    path: Path
    label: str
    generator: str | None
    source: str
    origin: str | None = None  # where the file came from, when ``path`` is a staged copy (an object-store URI)


@dataclass(frozen=True)
class Invalid:
    """An entry refused before its bytes were read (bad label, escaping path, missing file)."""

    path: str
    reason: str


@dataclass
class Plan:
    """What one ingest run will look at."""

    candidates: list[Candidate] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def extend(self, other: "Plan") -> None:
        self.candidates += other.candidates
        self.invalid += other.invalid
        self.skipped += other.skipped


def is_image_name(path: Path) -> bool:
    """True for names with an image extension (any case) that are not hidden files."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def check_label(label: str | None, generator: str | None) -> tuple[str, str | None]:
    """Normalise a (label, generator) pair or raise ``ValueError`` saying what is wrong."""
    label = (label or "").strip().lower()
    generator = (generator or "").strip() or None
    if label not in LABELS:
        raise ValueError(f"label {label!r} is not one of real, synthetic")
    if label == "synthetic" and generator is None:
        raise ValueError("a synthetic image needs a generator name")
    if label == "real" and generator is not None:
        raise ValueError(f"a real image cannot have a generator (got {generator!r})")
    return label, generator


def plan_sources(
    paths: Iterable[str | Path],
    *,
    label: str | None = None,
    generator: str | None = None,
    source: str | None = None,
    manifest_root: str | Path | None = None,
) -> Plan:
    """Expand ``paths`` into a :class:`Plan`.

    A folder follows the convention ``real/**`` and ``synthetic/<generator>/**`` unless
    ``label`` is given, in which case every image below it gets that label (and
    ``generator``). A ``.csv``, ``.jsonl`` or ``.parquet`` file is a manifest. Raises
    ``StoreError`` when an argument cannot be used at all (missing path, no label).
    """
    from store.manifests import plan_manifest  # manifests build on this module

    if label is not None:
        try:
            label, generator = check_label(label, generator)
        except ValueError as error:
            raise StoreError(
                f"Expected --label real, or --label synthetic with --generator NAME, but {error}."
            ) from None
    elif generator is not None:
        raise StoreError("Expected --label synthetic with --generator, but --label is missing.")
    plan = Plan()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise StoreError(f"Expected an existing file or folder, but {path} does not exist.")
        path = path.resolve()
        if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            root = Path(manifest_root).resolve() if manifest_root else path.parent
            plan.extend(plan_manifest(path, root=root))
        elif label is not None:
            plan.extend(_plan_flat(path, label, generator, source))
        elif path.is_dir() and ((path / "real").is_dir() or (path / "synthetic").is_dir()):
            plan.extend(_plan_convention(path, source))
        else:
            raise StoreError(
                f"Expected {path} to hold real/ or synthetic/<generator>/ folders, or to be a "
                "manifest (.csv, .jsonl, .parquet), but it is neither. Pass --label real, or "
                "--label synthetic --generator NAME, to ingest it as one flat folder."
            )
    return plan


def _walk(folder: Path) -> Iterable[Path]:
    """Files below ``folder`` in a stable order, not descending into hidden folders."""
    if folder.is_file():
        yield folder
        return
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            yield Path(current) / name


def _source_for(file: Path, top: Path, fallback: str) -> str:
    """The folder a file sits in, relative to its label folder; ``fallback`` at the top."""
    relative = file.parent.relative_to(top) if file.parent != top else Path()
    return relative.as_posix() if relative.parts else fallback


def _plan_flat(path: Path, label: str, generator: str | None, source: str | None) -> Plan:
    plan = Plan()
    top = path if path.is_dir() else path.parent
    for file in _walk(path):
        if is_image_name(file):
            plan.candidates.append(
                Candidate(file, label, generator, source or _source_for(file, top, top.name))
            )
        else:
            plan.skipped.append(str(file))
    return plan


def _plan_convention(path: Path, source: str | None) -> Plan:
    plan = Plan()
    real, synthetic = path / "real", path / "synthetic"
    for file in _walk(path):
        if not is_image_name(file):
            plan.skipped.append(str(file))
        elif file.is_relative_to(real):
            plan.candidates.append(
                Candidate(file, "real", None, source or _source_for(file, real, path.name))
            )
        elif file.is_relative_to(synthetic) and file.parent != synthetic:
            generator_dir = synthetic / file.relative_to(synthetic).parts[0]
            plan.candidates.append(
                Candidate(
                    file, "synthetic", generator_dir.name,
                    source or _source_for(file, generator_dir, path.name),
                )
            )
        else:
            plan.invalid.append(Invalid(
                str(file),
                "no label: expected the file under real/ or synthetic/<generator>/",
            ))
    return plan
