"""What an ingest plan is made of (candidates, refusals) and the checks every entry passes:
image names, labels, generator and source names."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

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
    split: str | None = None  # the split the dataset ships it in (``store.splits.SHIPPED``), else None


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
