"""Every head passes scikit-learn's estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from synthwatch.heads.knn import KNNHead
from synthwatch.heads.linear import LinearSVMHead, LogisticHead
from synthwatch.heads.mlp import MLPHead


@parametrize_with_checks([LogisticHead(), LinearSVMHead(), MLPHead(max_steps=200), KNNHead(n_neighbors=3)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
