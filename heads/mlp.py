"""A small multilayer perceptron head, trained with torch and applied with numpy."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from synthwatch.heads.base import EmbeddingHead, softmax, standardise


class MLPHead(EmbeddingHead):
    """One hidden ReLU layer on standardised embeddings, trained with Adam on class-weighted
    cross-entropy for a fixed number of steps (deterministic for a given ``random_state``).

    Parameters
    ----------
    hidden_units : int
    alpha : float
        Weight decay.
    learning_rate : float
    max_steps : int
        Optimiser steps, each on a mini-batch of ``batch_size``.
    batch_size : int
    random_state : int
    """

    _state_names = ("mean_", "scale_", "w1_", "b1_", "w2_", "b2_")

    def __init__(self, hidden_units: int = 256, alpha: float = 1e-4, learning_rate: float = 1e-3,
                 max_steps: int = 600, batch_size: int = 256, random_state: int = 0) -> None:
        self.hidden_units = hidden_units
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.random_state = random_state

    def _fit(self, X: np.ndarray, codes: np.ndarray) -> None:
        self.mean_, self.scale_ = standardise(X)
        generator = torch.Generator().manual_seed(self.random_state)
        inputs = torch.from_numpy((X - self.mean_) / self.scale_)
        targets = torch.from_numpy(codes.astype(np.int64))
        classes = int(codes.max()) + 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            model = nn.Sequential(nn.Linear(X.shape[1], self.hidden_units), nn.ReLU(),
                                  nn.Linear(self.hidden_units, classes))
        counts = np.bincount(codes, minlength=classes).astype(np.float32)
        loss_fn = nn.CrossEntropyLoss(weight=torch.from_numpy(len(codes) / (classes * counts)))  # balanced
        optimiser = torch.optim.Adam(model.parameters(), lr=self.learning_rate, weight_decay=self.alpha)
        batch = min(self.batch_size, len(codes))
        for _ in range(self.max_steps):
            rows = torch.randint(0, len(codes), (batch,), generator=generator)
            optimiser.zero_grad()
            loss_fn(model(inputs[rows]), targets[rows]).backward()
            optimiser.step()
        first, second = model[0], model[2]
        self.w1_, self.b1_ = first.weight.detach().numpy().copy(), first.bias.detach().numpy().copy()
        self.w2_, self.b2_ = second.weight.detach().numpy().copy(), second.bias.detach().numpy().copy()

    def _proba(self, X: np.ndarray) -> np.ndarray:
        # float64 throughout: float32 BLAS sums depend on the batch's size, and a row's score
        # must not depend on which other rows were scored with it.
        w1, b1, w2, b2 = (np.asarray(a, dtype=np.float64) for a in (self.w1_, self.b1_, self.w2_, self.b2_))
        standardised = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        hidden = np.maximum(standardised @ w1.T + b1, 0.0)
        return softmax(hidden @ w2.T + b2)
