"""Heads to bytes and back: learned arrays as safetensors, everything else as JSON.

Loading looks the head's type up in ``HEAD_TYPES`` and sets plain arrays on a freshly built
instance: nothing stored is ever executed or unpickled.
"""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from synthwatch.heads.base import EmbeddingHead
from synthwatch.heads.detector import HEAD_TYPES


def encode_head(head: EmbeddingHead) -> tuple[dict, bytes]:
    """``(config, safetensors bytes)`` of a fitted head; ``config`` is JSON-ready."""
    name = next((key for key, cls in HEAD_TYPES.items() if type(head) is cls), None)
    if name is None:
        raise TypeError(f"Expected a head of a registered type ({', '.join(HEAD_TYPES)}), but got {type(head).__name__}.")
    config = {
        "type": name,
        "params": head.get_params(),
        "classes": np.asarray(head.classes_).tolist(),
        "n_features": int(head.n_features_in_),
    }
    return config, save_arrays({key: np.ascontiguousarray(value) for key, value in head.state().items()})


def decode_head(config: dict, data: bytes) -> EmbeddingHead:
    """The head that :func:`encode_head` saved."""
    kind = config.get("type")
    if kind not in HEAD_TYPES:
        raise ValueError(f"Expected a head type in {', '.join(HEAD_TYPES)}, but the saved head says {kind!r}.")
    head = HEAD_TYPES[kind](**config.get("params", {}))
    return head.restore(config["classes"], config["n_features"], load_arrays(data))


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    return save_arrays({key: np.ascontiguousarray(value) for key, value in arrays.items()})


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    return load_arrays(data)
