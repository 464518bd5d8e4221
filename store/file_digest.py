"""Digests that tell a file is still the one written: the whole file's sha256 (writers and
``status --verify``), and a sampled one that costs the same whatever the file's size (readers).

Index files are written once under their name (atomically) and never changed, so what a check has
to catch is damage after the fact: a truncated copy, a file replaced, bytes gone bad on disk. The
sampled digest hashes the size and ``SAMPLE_BLOCKS`` blocks of ``SAMPLE_BYTES`` at even offsets
(the whole file when it is not much larger): it catches truncation, replacement and damage in the
blocks it reads at 4 MiB per file, where the full digest of a 100 M-image index reads 30 GB and more
before a reader can answer. Damage elsewhere in a large file is found by the full digest of
``synthwatch status --verify`` and by the next ``synthwatch index``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SAMPLE_BLOCKS = 256
SAMPLE_BYTES = 1 << 14


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """The sha256 of the whole file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sampled_sha256(path: Path) -> str:
    """The sha256 of the file's size and of ``SAMPLE_BLOCKS`` evenly spaced blocks (first and last
    included), or of its size and all of it when it is under twice their total."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        digest = hashlib.sha256(f"{size}\0".encode())
        if size < 2 * SAMPLE_BLOCKS * SAMPLE_BYTES:
            handle.seek(0)
            digest.update(handle.read())
            return digest.hexdigest()
        for block in range(SAMPLE_BLOCKS):
            handle.seek(block * (size - SAMPLE_BYTES) // (SAMPLE_BLOCKS - 1))
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()
