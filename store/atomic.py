"""Atomic file writes: write to a temporary name beside the target, then ``os.replace``."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

_TMP_MARK = ".tmp-"


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or the whole file.

    A crash leaves at most a stray ``.tmp-*`` file beside the target, never a partial target.
    ``durable`` also flushes the bytes to the disk before the rename, so a power loss cannot
    leave the name pointing at lost data; fsync the folder (:func:`fsync_folder`) before
    recording that the file exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> int:
    """Delete ``.tmp-*`` leftovers of crashed writers below ``folder``; return how many."""
    removed = 0
    if not folder.exists():
        return 0
    for leftover in folder.rglob(f"*{_TMP_MARK}*"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def fsync_folder(folder: Path) -> None:
    """Make the names in ``folder`` (renames into it) survive a power loss."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
