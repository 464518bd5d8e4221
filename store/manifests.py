"""Read ingest manifests (CSV, JSONL, Parquet) with columns path, label, generator, source."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq

from synthwatch.store.errors import StoreError
from synthwatch.store.candidates import Candidate, Invalid, Plan, check_label, check_source, is_image_name

REQUIRED_COLUMNS = ("path", "label")
KNOWN_COLUMNS = ("path", "label", "generator", "source")


def plan_manifest(manifest: Path, *, root: Path) -> Plan:
    """Plan the rows of ``manifest``; every path must resolve inside ``root``.

    Relative paths are taken from the manifest's folder. A row with a bad label, a missing
    file, or a path escaping ``root`` (``..``, absolute paths, symlinks) becomes an
    :class:`Invalid` entry and the other rows go on. A manifest that cannot be read at all
    raises ``StoreError``.
    """
    plan = Plan()
    root = root.resolve()
    for where, row in _rows(manifest):
        entry = f"{manifest.name}:{where}"
        if "_error" in row:
            plan.invalid.append(Invalid(entry, f"{entry}: {row['_error']}"))
            continue
        if not isinstance(row.get("path"), (str, type(None))):
            plan.invalid.append(Invalid(entry, f"{entry}: path must be text, but got {type(row['path']).__name__}"))
            continue
        raw_path = (row.get("path") or "").strip()
        if not raw_path:
            plan.invalid.append(Invalid(entry, f"{entry}: empty path"))
            continue
        if "://" in raw_path:
            plan.invalid.append(Invalid(
                raw_path, f"{entry}: object-store paths are not supported by ingest yet"
            ))
            continue
        target = (manifest.parent / raw_path).resolve()
        if not target.is_relative_to(root):
            plan.invalid.append(Invalid(
                raw_path, f"{entry}: path escapes the allowed root {root} (pass --root to widen it)"
            ))
            continue
        try:
            label, generator = check_label(row.get("label"), row.get("generator"))
            source = manifest.stem if row.get("source") in (None, "") else check_source(row["source"])
        except ValueError as error:
            plan.invalid.append(Invalid(str(target), f"{entry}: {error}"))
            continue
        if not target.exists():
            plan.invalid.append(Invalid(str(target), f"{entry}: file not found"))
        elif not target.is_file() or not is_image_name(target):
            plan.skipped.append(str(target))
        else:
            plan.candidates.append(Candidate(target, label, generator, source))
    return plan


def _rows(manifest: Path) -> Iterator[tuple[str, dict]]:
    """Yield (``row N`` / ``line N``, row dict) from any supported manifest format."""
    suffix = manifest.suffix.lower()
    try:
        if suffix == ".csv":
            yield from _csv_rows(manifest)
        elif suffix in (".jsonl", ".ndjson"):
            yield from _jsonl_rows(manifest)
        else:
            yield from _parquet_rows(manifest)
    except StoreError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as error:
        raise StoreError(
            f"Expected a readable {suffix.lstrip('.').upper()} manifest, but {manifest} could "
            f"not be read ({error}). Fix or re-export the file."
        ) from None


def _require_columns(manifest: Path, columns: list[str]) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise StoreError(
            f"Expected manifest columns {', '.join(KNOWN_COLUMNS)} (generator and source "
            f"optional), but {manifest} lacks {', '.join(missing)} (it has: "
            f"{', '.join(columns) or 'no columns'}). Add the missing columns."
        )


def _csv_rows(manifest: Path) -> Iterator[tuple[str, dict]]:
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _require_columns(manifest, [name.strip() for name in reader.fieldnames or []])
        for number, row in enumerate(reader, start=2):
            yield f"row {number}", {(k or "").strip(): v for k, v in row.items()}


def _jsonl_rows(manifest: Path) -> Iterator[tuple[str, dict]]:
    checked = False
    with open(manifest, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield f"line {number}", {"_error": f"invalid JSON ({error})"}
                continue
            if not isinstance(row, dict):
                yield f"line {number}", {"_error": "expected a JSON object per line"}
                continue
            if not checked:
                _require_columns(manifest, list(row))
                checked = True
            yield f"line {number}", row


def _parquet_rows(manifest: Path) -> Iterator[tuple[str, dict]]:
    parquet = pq.ParquetFile(manifest)
    columns = parquet.schema_arrow.names
    _require_columns(manifest, columns)
    wanted = [name for name in KNOWN_COLUMNS if name in columns]
    number = 0
    for batch in parquet.iter_batches(columns=wanted, batch_size=4096):
        for row in batch.to_pylist():
            number += 1
            yield f"row {number}", row
