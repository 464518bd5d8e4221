"""Defaults that several parts of the heads layer share, each set once here (a store's
synthwatch.toml, `heads.config`, overrides them)."""

DEFAULT_TARGET_FPR = 0.01  # false-positive rate on validation real images that thresholds are set for
DEFAULT_ALPHA = 0.01  # false-alarm rate of each drift check
EMBEDDING_HEADS = ("logreg", "svm", "mlp", "knn", "attribution")  # heads on stored embeddings (heads.detector)
DEFAULT_HEAD = "logreg"  # what train and retrain fit unless a flag or synthwatch.toml names another
