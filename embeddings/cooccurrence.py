"""The forensic ``srm`` backbone: co-occurrences of quantised high-pass residuals, a compact spatial rich
model (Fridrich and Kodovský, "Rich Models for Steganalysis of Digital Images", IEEE TIFS 2012),
computed over the whole crop at native resolution (no weights, deterministic).

A camera's sensor noise, demosaicing and a generator's decoder each leave their own local
statistics in the finest scales of an image. Each block takes one high-pass residual of the
luminance (ITU-R BT.601 weights, 0-255), quantises it at one step and truncates it to
``-T..T`` (T = 2), and counts the 125 triples of horizontally and of vertically adjacent values;
the two counts are summed, made sign-symmetric (a triple and its negation count together, 63
distinct bins), turned into frequencies and square-rooted (so each block has unit length and a
linear head compares them as Hellinger distances). Every count is over the crop's valid region,
so a histogram aggregates every patch of the image rather than one fixed-size crop.

Residual families (``--layers`` picks them, 1-based; default all):

1. ``d1``: first differences, horizontal and vertical, steps 1 and 2 (4 blocks);
2. ``d2``: second differences ``[1, -2, 1]``, both directions, steps 2 and 4 (4 blocks);
3. ``d3``: third differences ``[1, -3, 3, -1]``, both directions, steps 3 and 6 (4 blocks);
4. ``kb``: the 3x3 "KB" kernel, steps 4 and 8 (2 blocks);
5. ``kv``: the 5x5 "KV" kernel (divided by 4), steps 3 and 6 (2 blocks).

On the real-world set under the format-controlled protocol (``benchmarks/realworld.py``) these
blocks carry more than the spectrum's azimuthal profiles; README and RESULTS.md give the figures.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from synthwatch.embeddings.registry import SRM_BINS, SRM_FAMILIES  # the registry owns the feature spec

_LUMA = (0.299, 0.587, 0.114)
TRUNCATION = 2
_KV = [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]]
_STEPS = {"d1": (1.0, 2.0), "d2": (2.0, 4.0), "d3": (3.0, 6.0), "kb": (4.0, 8.0), "kv": (3.0, 6.0)}


def _difference(x: torch.Tensor, order: int, dim: int) -> torch.Tensor:
    """The ``order``-th difference of ``x`` along ``dim`` (1: [-1, 1], 2: [1, -2, 1], 3: [-1, 3, -3, 1])."""
    for _ in range(order):
        x = x.narrow(dim, 1, x.shape[dim] - 1) - x.narrow(dim, 0, x.shape[dim] - 1)
    return x


def _residuals(luma: torch.Tensor, family: str) -> list[torch.Tensor]:
    """The (N, h', w') residuals of a family over (N, h, w) luminance: line kernels in both
    directions; KB is the second difference across both axes (its sign does not matter: every
    histogram is sign-symmetric); KV a 5x5 convolution."""
    if family in ("d1", "d2", "d3"):
        order = int(family[1])
        return [_difference(luma, order, 2), _difference(luma, order, 1)]
    if family == "kb":
        return [_difference(_difference(luma, 2, 2), 2, 1)]
    kernel = torch.tensor(_KV, dtype=torch.float32, device=luma.device)[None, None] / 4.0
    return [nn.functional.conv2d(luma[:, None], kernel)[:, 0]]


def block_widths() -> tuple[int, ...]:
    """Vector width of each residual family: residuals x steps x ``SRM_BINS``."""
    counts = {"d1": 2, "d2": 2, "d3": 2, "kb": 1, "kv": 1}
    return tuple(counts[family] * len(_STEPS[family]) * SRM_BINS for family in SRM_FAMILIES)


class CooccurrenceFeatures(nn.Module):
    """Blocks of sign-symmetric co-occurrence frequencies of quantised residuals; no parameters."""

    def forward(self, crops: torch.Tensor, sizes: torch.Tensor | None = None,
                blocks: tuple[int, ...] = tuple(range(1, len(SRM_FAMILIES) + 1))) -> list[torch.Tensor]:
        """``crops`` (N, S, S, 3) RGB, uint8 as ``views.crop`` makes them; ``sizes`` (N, 2) the valid
        (height, width) of each crop, or None for all of it. Returns one (N, width) float32 tensor
        per family in ``blocks`` (1-based, in ``SRM_FAMILIES`` order), each row's sub-blocks of
        unit length."""
        n, height, width, _ = crops.shape
        if sizes is None:
            sizes = torch.tensor([[height, width]] * n)
        luma = crops.float() @ torch.tensor(_LUMA, device=crops.device)
        widths = block_widths()
        out = [torch.zeros(n, widths[block - 1], device=crops.device) for block in blocks]
        for size in torch.unique(sizes.cpu(), dim=0).tolist():
            rows = torch.nonzero((sizes.cpu() == torch.tensor(size)).all(dim=1)).flatten().to(crops.device)
            valid = luma[rows, : size[0], : size[1]]
            for position, block in enumerate(blocks):
                out[position][rows] = _family_features(valid, SRM_FAMILIES[block - 1])
        return out


def _family_features(luma: torch.Tensor, family: str) -> torch.Tensor:
    """(N, width) of one residual family over (N, h, w) luminance (a crop too small for the
    kernel counts as flat)."""
    if min(luma.shape[1:]) < 7:
        luma = torch.zeros(luma.shape[0], 7, 7, device=luma.device)
    parts = []
    for residual in _residuals(luma, family):
        for step in _STEPS[family]:
            codes = torch.clamp(torch.round(residual / step), -TRUNCATION, TRUNCATION).to(torch.int32) + TRUNCATION
            parts.append(_symmetric_frequencies(codes))
    return torch.cat(parts, dim=1)


def _symmetric_frequencies(codes: torch.Tensor) -> torch.Tensor:
    """(N, SRM_BINS): square roots of the frequencies of horizontal and vertical triples of
    ``codes`` (N, h, w) in 0..2T, a triple and its negation counted as one bin."""
    levels = 2 * TRUNCATION + 1
    n = codes.shape[0]
    # Image k's triples fall in bins 125 k .. 125 k + 124, so one bincount counts the whole batch.
    first = (torch.arange(n, device=codes.device, dtype=torch.int32) * levels).view(n, 1, 1)
    counts = torch.zeros(n * levels ** 3, device=codes.device)
    for a, b, c in ((codes[:, :, :-2], codes[:, :, 1:-1], codes[:, :, 2:]),
                    (codes[:, :-2, :], codes[:, 1:-1, :], codes[:, 2:, :])):
        triples = (a + first).mul_(levels).add_(b).mul_(levels).add_(c)
        counts += torch.bincount(triples.flatten(), minlength=n * levels ** 3).float()
    counts = counts.view(n, levels ** 3)
    folded = counts @ _fold_matrix(str(codes.device))
    return torch.sqrt(folded / folded.sum(dim=1, keepdim=True).clamp(min=1.0))


@functools.lru_cache(maxsize=4)
def _fold_matrix(device: str) -> torch.Tensor:
    """(125, SRM_BINS) 0/1: sums each triple with its negation into one bin (the all-zero triple
    is its own negation)."""
    levels = 2 * TRUNCATION + 1
    triples = torch.cartesian_prod(*[torch.arange(levels)] * 3)
    negated = 2 * TRUNCATION - triples
    index = lambda t: (t[:, 0] * levels + t[:, 1]) * levels + t[:, 2]  # noqa: E731
    own, other = index(triples), index(negated)
    representative = torch.minimum(own, other)
    bins = {value: position for position, value in enumerate(sorted(set(representative.tolist())))}
    fold = torch.zeros(levels ** 3, len(bins))
    for row, value in enumerate(representative.tolist()):
        fold[row, bins[value]] = 1.0
    return fold.to(device)
