"""Fixtures of the front door's tests: one served store with a trained champion per session."""

from __future__ import annotations

import pytest

from tests.synthwatch.serving import build_trained_store, running_service


@pytest.fixture(scope="session")
def trained_service(tmp_path_factory):
    """``(base URL, store root, originals folder)`` of `synthwatch serve` over a small store
    with a champion head. Shared by every test of the session: read it, never write to it."""
    folder = tmp_path_factory.mktemp("served")
    store = build_trained_store(folder)
    with running_service(store) as base:
        yield base, store, folder / "in"
