"""The store: everything synthwatch persists (catalog, blobs, and later vectors, indexes, heads)."""

from store.errors import StoreError
from store.layout import StoreLayout

__all__ = ["StoreError", "StoreLayout"]
