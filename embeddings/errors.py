"""Errors raised when a backbone cannot be built or used as asked."""


class EmbeddingError(RuntimeError):
    """A backbone, its weights, or its options cannot be used; the message says what to do."""


class WeightsUnavailable(EmbeddingError):
    """Pretrained weights are neither on disk nor reachable."""
