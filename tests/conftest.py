"""Shared fixtures: image makers, a store root, and running the CLI in-process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthwatch.cli import main


def image_bytes(size=(64, 48), mode="RGB", fmt="PNG", seed=0, **params) -> bytes:
    """Deterministic noise image of ``size`` (width, height) encoded as ``fmt``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def write_image(path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(**kwargs))
    return path


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def cli(capsys):
    """Run ``synthwatch ARGS --json`` in-process; return (exit code, parsed JSON or None, stderr)."""

    def run(*args: str):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        payload = json.loads(captured.out) if captured.out.strip().startswith("{") else None
        return code, payload, captured.err

    return run
