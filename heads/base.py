"""What every embedding head shares: scikit-learn's classifier contract and plain-array state.

A head is fitted on vectors (n_samples, n_features) and labels of any kind; its learned state
is a dict of numpy arrays (saved as safetensors) plus ``classes_`` and its parameters (saved as
JSON), so a saved head is restored without running any stored code.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class EmbeddingHead(ClassifierMixin, BaseEstimator):
    """Base class: subclasses implement ``_fit(X, y_codes)``, ``_proba(X)`` and name their
    learned arrays in ``_state_names``."""

    _state_names: tuple[str, ...] = ()

    def fit(self, X, y):
        """Fit on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,); returns self."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"Expected at least 2 classes to tell apart, but got 1 class: {self.classes_[0]!r}.")
        self._fit(np.asarray(X, dtype=np.float32), codes)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self._proba(np.asarray(X, dtype=np.float32))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row, (n_samples,)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _code_class_weight(self, class_weight):
        """``class_weight`` ("balanced", None, or a dict keyed by label) keyed by class code."""
        if isinstance(class_weight, dict):
            return {code: class_weight.get(label, 1.0) for code, label in enumerate(self.classes_.tolist())}
        return class_weight

    def state(self) -> dict[str, np.ndarray]:
        """The learned arrays, for saving."""
        check_is_fitted(self)
        return {name: np.ascontiguousarray(getattr(self, name)) for name in self._state_names}

    def restore(self, classes: list, n_features: int, arrays: dict[str, np.ndarray]) -> "EmbeddingHead":
        """Set the learned state saved by :meth:`state` (classes and width from the JSON)."""
        missing = set(self._state_names) - set(arrays)
        if missing:
            raise ValueError(f"Expected arrays {sorted(self._state_names)} for {type(self).__name__}, "
                             f"but {sorted(missing)} are missing.")
        self.classes_ = np.asarray(classes)
        self.n_features_in_ = int(n_features)
        for name in self._state_names:
            setattr(self, name, arrays[name])
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale (1 where a feature is constant), each (n_features,) float32."""
    mean = X.mean(axis=0, dtype=np.float64)
    scale = X.std(axis=0, dtype=np.float64)
    scale[scale < 1e-12] = 1.0
    return mean.astype(np.float32), scale.astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, (n, classes) float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def linear_proba(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Probabilities of a linear model: one column of logits is a binary model (sigmoid).

    Computed in float64 so a row's score does not depend on the batch it was scored in."""
    logits = np.asarray(X, dtype=np.float64) @ np.asarray(coef, dtype=np.float64).T + intercept
    if coef.shape[0] == 1:
        positive = 1.0 / (1.0 + np.exp(-np.clip(logits[:, 0], -500, 500)))
        return np.column_stack([1.0 - positive, positive])
    return softmax(logits)
