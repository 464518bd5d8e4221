"""Turn ingest arguments (folders, files, manifests) into a plan: what to ingest, with what label."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from synthwatch.store.candidates import (
    MANIFEST_SUFFIXES, Candidate, Invalid, Plan, check_label, check_name, check_source, is_image_name,
)
from synthwatch.store.errors import StoreError
from synthwatch.store.manifests import plan_manifest


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
