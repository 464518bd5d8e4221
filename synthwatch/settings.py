"""Typed settings for the front door: where the store is and how strict ingestion is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from synthwatch.store.layout import StoreLayout

STORE_ENV = "SYNTHWATCH_STORE"
DEFAULT_STORE = "synthwatch-store"


def resolve_store_root(flag: str | None) -> Path:
    """``--store DIR``, else ``$SYNTHWATCH_STORE``, else ``./synthwatch-store``."""
    chosen = flag or os.environ.get(STORE_ENV) or DEFAULT_STORE
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    """Settings shared by every command."""

    store_root: Path

    @classmethod
    def from_args(cls, store: str | None) -> "Settings":
        return cls(store_root=resolve_store_root(store))

    @property
    def layout(self) -> StoreLayout:
        return StoreLayout(self.store_root)
