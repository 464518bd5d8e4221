"""Linear heads on standardised embeddings: logistic regression, and a linear SVM with Platt
calibration."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_sample_weight

from synthwatch.heads.base import EmbeddingHead, linear_proba, standardise


class LogisticHead(EmbeddingHead):
    """L2-regularised logistic regression (multinomial for more than two classes).

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    class_weight : "balanced" or None
        "balanced" weighs classes inversely to their frequency, so a large real set does not
        drown a small generator.
    max_iter : int
        L-BFGS iterations.
    """

    _state_names = ("mean_", "scale_", "coef_", "intercept_")

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced", max_iter: int = 300) -> None:
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter

    def _fit(self, X: np.ndarray, codes: np.ndarray) -> None:
        self.mean_, self.scale_ = standardise(X)
        model = LogisticRegression(C=self.C, class_weight=self._code_class_weight(self.class_weight),
                                   max_iter=self.max_iter, tol=1e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit((X - self.mean_) / self.scale_, codes)
        self.n_iter_ = int(np.max(model.n_iter_))
        self.coef_ = model.coef_.astype(np.float32)
        self.intercept_ = model.intercept_.astype(np.float32)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        return linear_proba((X - self.mean_) / self.scale_, self.coef_, self.intercept_)


class LinearSVMHead(EmbeddingHead):
    """Linear SVM whose margins become probabilities by Platt scaling fitted on
    cross-validated margins (one sigmoid per class, normalised for more than two classes).

    Parameters
    ----------
    C : float
        Inverse regularisation strength.
    class_weight : "balanced" or None
    cv : int
        Folds for the calibration margins (fewer when a class is smaller).
    """

    _state_names = ("mean_", "scale_", "coef_", "intercept_", "platt_")

    def __init__(self, C: float = 0.1, class_weight: str | None = "balanced", cv: int = 3, max_iter: int = 2000) -> None:
        self.C = C
        self.class_weight = class_weight
        self.cv = cv
        self.max_iter = max_iter

    def _svm(self) -> LinearSVC:
        return LinearSVC(C=self.C, class_weight=self._code_class_weight(self.class_weight),
                         max_iter=self.max_iter, dual="auto")

    def _fit(self, X: np.ndarray, codes: np.ndarray) -> None:
        self.mean_, self.scale_ = standardise(X)
        Z = (X - self.mean_) / self.scale_
        folds = min(self.cv, int(np.bincount(codes).min()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            svm = self._svm().fit(Z, codes)
            if folds >= 2:
                margins = cross_val_predict(self._svm(), Z, codes, method="decision_function",
                                            cv=StratifiedKFold(folds, shuffle=True, random_state=0))
            else:
                margins = svm.decision_function(Z)
        margins = margins.reshape(len(Z), -1)
        targets = [codes == 1] if margins.shape[1] == 1 else [codes == k for k in range(margins.shape[1])]
        weights = compute_sample_weight(self._code_class_weight(self.class_weight), codes)
        self.platt_ = np.array([_platt(margins[:, k], target, weights) for k, target in enumerate(targets)],
                               np.float32)
        self.n_iter_ = int(svm.n_iter_)
        self.coef_ = svm.coef_.astype(np.float32)
        self.intercept_ = svm.intercept_.astype(np.float32)

    def _proba(self, X: np.ndarray) -> np.ndarray:
        margins = (((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_).astype(np.float64)
        calibrated = 1.0 / (1.0 + np.exp(-np.clip(margins * self.platt_[:, 0] + self.platt_[:, 1], -500, 500)))
        if calibrated.shape[1] == 1:
            return np.column_stack([1.0 - calibrated[:, 0], calibrated[:, 0]])
        calibrated = np.maximum(calibrated, 1e-12)
        return calibrated / calibrated.sum(axis=1, keepdims=True)


def _platt(margins: np.ndarray, target: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Slope and offset of the sigmoid mapping margins to P(target), samples weighted."""
    if target.all() or not target.any():
        return 0.0, 10.0 if target.all() else -10.0
    model = LogisticRegression(C=1e4, max_iter=200).fit(margins[:, None], target, sample_weight=weights)
    return float(model.coef_[0, 0]), float(model.intercept_[0])
