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


@pytest.fixture(scope="session")
def proxy_store_template(tmp_path_factory):
    """A store holding a small proxy corpus (6 generators), embedded with test-tiny-dinov2 and
    indexed; built once per session. Tests take a copy (``proxy_store``)."""
    from synthwatch.corpus import build_corpus
    from synthwatch.corpus.build import CorpusSize

    base = tmp_path_factory.mktemp("proxy")
    corpus = build_corpus(base / "corpus", seed=0, size=CorpusSize(side=64, real=72, fakes_per_generator=16,
                                                                    train_steps=20), cache_dir=base / "cache")
    store = base / "store"
    for args in (["ingest", corpus.out, "--quiet"], ["embed", "--backbone", "test-tiny-dinov2", "--workers", "0",
                                                      "--quiet"], ["index"]):
        assert main(["--store", str(store), *map(str, args), "--json"]) == 0
    return store, corpus


@pytest.fixture
def proxy_store(proxy_store_template, tmp_path, capsys):
    """A private copy of the session's proxy store, and the corpus it was made from."""
    import shutil

    template, corpus = proxy_store_template
    capsys.readouterr()
    store = tmp_path / "store"
    shutil.copytree(template, store)
    return store, corpus


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the whole session (it takes about 15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def online_loads(monkeypatch):
    """Calls that would fetch weights from the Hub through the libraries' own online path (which
    retries for 30-50 s when the Hub is unreachable): recorded, and refused at once."""
    import timm
    import transformers

    calls: list[str] = []

    def refusing(name, original, goes_online):
        def wrapper(*args, **kwargs):
            if goes_online(kwargs):
                calls.append(name)
                raise OSError(f"{name} tried to reach the Hub")
            return original(*args, **kwargs)
        return wrapper

    for owner, attribute in ((transformers.AutoConfig, "from_pretrained"), (transformers.AutoModel, "from_pretrained")):
        monkeypatch.setattr(owner, attribute, refusing(f"{owner.__name__}.{attribute}", getattr(owner, attribute),
                                                       lambda kwargs: kwargs.get("local_files_only") is False))
    monkeypatch.setattr(timm, "create_model", refusing("timm.create_model", timm.create_model,
                                                       lambda kwargs: kwargs.get("pretrained") and
                                                       "pretrained_cfg_overlay" not in kwargs))
    return calls
