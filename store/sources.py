"""Turn ingest arguments (folders, files, manifests) into a plan: what to ingest, with what label."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from synthwatch.store.errors import StoreError

LABELS = ("real", "synthetic")
IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".bmp", ".dib", ".tif", ".tiff",
    ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k", ".jpx", ".avif",
    ".heic", ".heif", ".dds", ".psd",
})
MANIFEST_SUFFIXES = frozenset({".csv", ".jsonl", ".ndjson", ".parquet"})
MAX_NAME_LENGTH = 255
# Control characters (escape sequences, newlines), format characters (bidirectional overrides,
# zero-width joiners), separators other than the plain space, surrogates, private use, unassigned.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


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


def check_name(value: object, what: str) -> str:
    """A generator or source-group name as it is stored: text of 1 to ``MAX_NAME_LENGTH``
    printable characters (any script; spaces allowed, no control or format characters),
    surrounding spaces removed. Raises ``ValueError`` saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, but got {type(value).__name__} {value!r}")
    name = value.strip()
    if not name:
        raise ValueError(f"{what} is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} has {len(name):,} characters, at most {MAX_NAME_LENGTH} are allowed")
    bad = next((c for c in name if unicodedata.category(c) in _UNPRINTABLE or (c.isspace() and c != " ")), None)
    if bad is not None:
        raise ValueError(f"{what} {name!r} holds the unprintable character U+{ord(bad):04X}")
    return name


def check_label(label: object, generator: object) -> tuple[str, str | None]:
    """Normalise a (label, generator) pair or raise ``ValueError`` saying what is wrong."""
    if label is not None and not isinstance(label, str):
        raise ValueError(f"label must be text (real or synthetic), but got {type(label).__name__} {label!r}")
    label = (label or "").strip().lower()
    if isinstance(generator, str) and not generator.strip():
        generator = None
    if label not in LABELS:
        raise ValueError(f"label {label!r} is not one of real, synthetic")
    if label == "synthetic" and generator is None:
        raise ValueError("a synthetic image needs a generator name")
    if label == "real" and generator is not None:
        raise ValueError(f"a real image cannot have a generator (got {generator!r})")
    return label, None if generator is None else check_name(generator, "the generator name")


def check_source(value: object) -> str:
    """A source-group name (integers, such as class numbers, are taken as their text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return check_name(value, "the source name")


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
    from synthwatch.store.manifests import plan_manifest  # manifests build on this module

    if label is not None:
        try:
            label, generator = check_label(label, generator)
        except ValueError as error:
            raise StoreError(
                f"Expected --label real, or --label synthetic with --generator NAME, but {error}."
            ) from None
    elif generator is not None:
        raise StoreError("Expected --label synthetic with --generator, but --label is missing.")
    if source is not None:
        try:
            source = check_source(source)
        except ValueError as error:
            raise StoreError(f"Expected --source to name a source group, but {error}.") from None
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


def _add(plan: Plan, file: Path, label: str, generator: str | None, source: str) -> None:
    """A candidate, or an invalid entry if a name taken from its folders breaks the name rule."""
    try:
        names = (None if generator is None else check_name(generator, "the generator folder name"),
                 check_source(source))
    except ValueError as error:
        plan.invalid.append(Invalid(str(file), str(error)))
        return
    plan.candidates.append(Candidate(file, label, *names))


def _plan_flat(path: Path, label: str, generator: str | None, source: str | None) -> Plan:
    plan = Plan()
    top = path if path.is_dir() else path.parent
    for file in _walk(path):
        if is_image_name(file):
            _add(plan, file, label, generator, source or _source_for(file, top, top.name))
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
            _add(plan, file, "real", None, source or _source_for(file, real, path.name))
        elif file.is_relative_to(synthetic) and file.parent != synthetic:
            generator_dir = synthetic / file.relative_to(synthetic).parts[0]
            _add(plan, file, "synthetic", generator_dir.name, source or _source_for(file, generator_dir, path.name))
        else:
            plan.invalid.append(Invalid(
                str(file),
                "no label: expected the file under real/ or synthetic/<generator>/",
            ))
    return plan
