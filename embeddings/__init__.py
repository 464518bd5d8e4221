"""Embeddings: safe image decoding, backbones, views, and the batched extraction engine."""
