"""Atomic file writes: write to a temporary name beside the target, then ``os.replace``."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

_TMP_MARK = ".tmp-"


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or the whole file.

    A crash leaves at most a stray ``.tmp-*`` file beside the target, never a partial target.
    For a power loss too, flush before recording that the file exists (:func:`sync_filesystem`
    after a batch of writes, :func:`fsync_folder` after a rename that must last).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
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


def sync_filesystem(path: Path) -> None:
    """Flush every written file and name of the file system holding ``path`` to the disk, in
    one call (Linux ``syncfs``; elsewhere ``sync``): far cheaper than an fsync per file when a
    batch wrote many."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        descriptor = os.open(path, os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).syncfs(descriptor) == 0:
                return
        finally:
            os.close(descriptor)
    os.sync()
