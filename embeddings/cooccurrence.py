"""The forensic ``srm`` backbone: co-occurrences of quantised high-pass residuals, a compact spatial rich
model (Fridrich and Kodovský, "Rich Models for Steganalysis of Digital Images", IEEE TIFS 2012),
computed over the whole crop at native resolution (no weights, deterministic).

A camera's sensor noise, demosaicing and a generator's decoder each leave their own local
statistics in the finest scales of an image. Each block takes one high-pass residual of a plane
(the luminance, ITU-R BT.601 weights, 0-255, unless its family says otherwise), quantises it at
one step and truncates it to ``-T..T`` (T = 2), and counts the 125 triples of horizontally and of vertically adjacent values;
the two counts are summed, made sign-symmetric (a triple and its negation count together, 63
distinct bins), turned into frequencies and square-rooted (so each block has unit length and a
linear head compares them as Hellinger distances). Every count is over the crop's valid region,
so a histogram aggregates every patch of the image rather than one fixed-size crop.

Residual families (``--layers`` picks them, 1-based; default all):

1. ``d1``: first differences, horizontal and vertical, steps 1 and 2 (4 blocks);
2. ``d2``: second differences ``[1, -2, 1]``, both directions, steps 2 and 4 (4 blocks);
3. ``d3``: third differences ``[1, -3, 3, -1]``, both directions, steps 3 and 6 (4 blocks);
4. ``kb``: the 3x3 "KB" kernel, steps 4 and 8 (2 blocks);
5. ``kv``: the 5x5 "KV" kernel (divided by 4), steps 3 and 6 (2 blocks);
6. ``chroma``: ``d1`` and ``d2`` of the two chroma planes (JPEG's Cb and Cr weights), where a
   camera's demosaicing and a decoder's colour up-sampling differ (16 blocks);
7. ``half``: families 1-5 of the luminance averaged over 2 x 2 pixels, the next octave's
   statistics, which a 0.5x downscale moves into the finest scale (16 blocks).

On the real-world set under the format-controlled protocol (``benchmarks/realworld.py``) families
6 and 7 lift the mean held-out AUROC from 0.79 (families 1-5 alone, the old default, still
``--layers 1,2,3,4,5``) to 0.83; README and RESULTS.md give the figures.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from synthwatch.embeddings.registry import SRM_BINS, SRM_BLOCKS, SRM_FAMILIES  # the registry owns the feature spec

_LUMA = (0.299, 0.587, 0.114)
_CHROMA = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))  # Cb, Cr (offsets: residuals drop them)
CHUNK_PIXELS = 2 ** 18  # pixels per plane computed together on CPU: more spills out of the caches (measured)
TRUNCATION = 2
_KV = [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]]
_STEPS = {"d1": (1.0, 2.0), "d2": (2.0, 4.0), "d3": (3.0, 6.0), "kb": (4.0, 8.0), "kv": (3.0, 6.0)}
_LUMA_FAMILIES = tuple(_STEPS)  # the residual kernels; "half" runs them all again one octave down
_CHROMA_FAMILIES = ("d1", "d2")


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
        weights = torch.tensor((_LUMA, *_CHROMA), device=crops.device)
        # (3, N, S, S): each plane contiguous, so the residuals run on dense memory.
        planes = torch.einsum("nhwc,pc->pnhw", crops.float(), weights).contiguous()
        out = [torch.zeros(n, SRM_BLOCKS[SRM_FAMILIES[block - 1]] * SRM_BINS, device=crops.device) for block in blocks]
        for size in torch.unique(sizes.cpu(), dim=0).tolist():
            matching = torch.nonzero((sizes.cpu() == torch.tensor(size)).all(dim=1)).flatten().to(crops.device)
            for rows in torch.split(matching, _chunk_rows(size, len(matching), crops.device)):
                valid = planes[:, rows, : size[0], : size[1]].contiguous()
                for position, block in enumerate(blocks):
                    out[position][rows] = _block_features(valid, SRM_FAMILIES[block - 1])
        return out


def _chunk_rows(size: list[int], count: int, device: torch.device) -> int:
    """How many of the ``count`` crops of ``size`` are computed together: on CPU as many as
    ``CHUNK_PIXELS`` hold (larger batches spill out of the caches); on a GPU all of them (each
    chunk waits on its bincounts)."""
    return max(1, CHUNK_PIXELS // max(1, size[0] * size[1])) if device.type == "cpu" else count


def _block_features(planes: torch.Tensor, block: str) -> torch.Tensor:
    """(N, width) of one block over (3, N, h, w) luminance, Cb and Cr."""
    if block == "chroma":
        return torch.cat([_family_features(planes[plane], family)
                          for plane in (1, 2) for family in _CHROMA_FAMILIES], dim=1)
    luma = planes[0]
    if block == "half":
        height, width = luma.shape[1] // 2 * 2, luma.shape[2] // 2 * 2
        halved = luma[:, :height, :width].reshape(luma.shape[0], height // 2, 2, width // 2, 2).mean(dim=(2, 4))
        return torch.cat([_family_features(halved, family) for family in _LUMA_FAMILIES], dim=1)
    return _family_features(luma, block)


def _family_features(luma: torch.Tensor, family: str) -> torch.Tensor:
    """(N, width) of one residual family over (N, h, w) planes (a crop too small for the kernel
    counts as flat)."""
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
