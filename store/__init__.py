"""The store: everything synthwatch persists (catalog, blobs, and later vectors, indexes, heads)."""

from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout

__all__ = ["StoreError", "StoreLayout"]
