"""The srm backbone's residual families: chroma reads colour, half reads the next octave."""

from __future__ import annotations

import numpy as np
import torch

from synthwatch.embeddings.backbone import create_backbone
from synthwatch.embeddings.cooccurrence import CooccurrenceFeatures
from synthwatch.embeddings.registry import REGISTRY, SRM_BINS, SRM_FAMILIES

ALL = tuple(range(1, len(SRM_FAMILIES) + 1))
LUMA, CHROMA, HALF = ALL[:5], SRM_FAMILIES.index("chroma") + 1, SRM_FAMILIES.index("half") + 1


def _features(pixels: np.ndarray, blocks=ALL) -> list[np.ndarray]:
    return [block[0].numpy() for block in CooccurrenceFeatures()(torch.from_numpy(pixels)[None], blocks=blocks)]


def _flat(width: int) -> np.ndarray:
    """What a block of a constant plane is: every sub-block's mass on the all-zero triple."""
    sub = np.zeros(SRM_BINS, np.float32)
    sub[-1] = 1.0  # the all-zero triple is its own negation, the highest representative: the last bin
    return np.tile(sub, width // SRM_BINS)


def test_half_scale_block_is_the_luma_families_of_the_image_before_a_2x_nearest_upscale():
    small = np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    doubled = small.repeat(2, axis=0).repeat(2, axis=1)
    half = _features(doubled, (HALF,))[0]
    native = np.concatenate(_features(small, LUMA))
    assert np.allclose(half, native, atol=1e-5)
    assert not np.allclose(half, np.concatenate(_features(doubled, LUMA)), atol=1e-2)  # the native scale differs


def test_chroma_block_reads_colour_not_luminance():
    rng = np.random.default_rng(1)
    grey = np.repeat(rng.integers(0, 256, (48, 48, 1), dtype=np.uint8), 3, axis=2)
    blocks = _features(grey)
    width = REGISTRY["srm"].widths[CHROMA - 1]
    assert np.allclose(blocks[CHROMA - 1], _flat(width), atol=1e-6)  # no colour, no chroma residual
    assert not np.allclose(blocks[0], _flat(len(blocks[0])), atol=1e-2)  # while luminance varies
    coloured = grey.copy()
    coloured[..., 2] = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    assert not np.allclose(_features(coloured)[CHROMA - 1], _flat(width), atol=1e-2)


def test_vectors_are_as_wide_as_the_spec_says():
    backbone = create_backbone("srm")
    assert backbone.layers == ALL
    pixels = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (2, 512, 512, 3), dtype=np.uint8))
    vectors = backbone.embed_crops(pixels, torch.tensor([[512, 512], [300, 211]]))
    assert vectors.shape == (2, REGISTRY["srm"].embedding_dim(ALL)) == (2, 48 * SRM_BINS)
    assert torch.isfinite(vectors).all()


def test_crops_thinner_than_a_kernel_count_as_flat_in_every_family():
    pixels = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8))
    blocks = CooccurrenceFeatures()(pixels, torch.tensor([[1, 40], [40, 40], [3, 1]]))
    for block, width in zip(blocks, REGISTRY["srm"].widths):
        assert np.allclose(block[[0, 2]].numpy(), _flat(width), atol=1e-6)  # a 1 px side: nothing to count
        assert not np.allclose(block[1].numpy(), _flat(width), atol=1e-2)
