"""An inbox of proxy-corpus images for the flow tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def inbox(proxy_store_template, tmp_path):
    """An empty store and an inbox holding the proxy corpus's real images and two generators."""
    _, corpus = proxy_store_template
    folder = tmp_path / "inbox"
    shutil.copytree(corpus.out / "real", folder / "real")
    for name in ("ae-tconv", "ae-nearest"):
        shutil.copytree(corpus.out / "synthetic" / name, folder / "synthetic" / name)
    return tmp_path / "store", folder, corpus
