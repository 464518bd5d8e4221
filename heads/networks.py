"""Image networks a head can be (kinds in ``synthwatch.heads.network_kinds``): building them, and how
a decoded image becomes their input.

Each kind turns a decoded RGB image into a ``(tiles, 3, S, S)`` float tensor; a network's score of
an image is the sigmoid of the mean logit over its tiles. The ``npr`` network (:class:`ResidualCNN`)
sees the neighbouring-pixel-relationship residual (the image minus its 2x nearest
down-and-up-sampled copy; Tan et al., "Rethinking the Up-Sampling Operations in CNN-based
Generative Network for Generalizable Deepfake Detection", CVPR 2024, train such a network from
scratch and find it generalises across generators).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from synthwatch.embeddings.registry import BackboneSpec
from synthwatch.embeddings.views import augment, prepare
from synthwatch.heads.network_kinds import NetworkKind, NetworkOptions

__all__ = ["ConvNeXtDetector", "ResidualCNN", "build_network", "describe_network", "npr_residual", "scoring_pixels",
           "training_pixels"]


class ConvNeXtDetector(nn.Module):
    """A ConvNeXt trunk (pooled features) and one logit of "synthetic"."""

    def __init__(self, trunk: nn.Module, width: int, seed: int = 0) -> None:
        super().__init__()
        self.trunk = trunk
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.classifier = nn.Linear(width, 1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk(pixels)).squeeze(1)


def npr_residual(pixels: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) minus its 2x nearest down-and-up-sampled copy (H and W even)."""
    coarse = pixels[:, :, ::2, ::2]
    return pixels - coarse.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


class ResidualCNN(nn.Module):
    """Three stages of two 3x3 convolutions (batch norm, ReLU) on the NPR residual, the first at
    full resolution (no early down-sampling: the traces are a pixel wide), global average pooling
    and one logit. ``width`` channels in the first stage, doubling at each of the next two.

    Input (N, 3, S, S) in [0, 1], S even; output (N,) logits. Fully convolutional: any even S.
    """

    def __init__(self, width: int = 32, residual_scale: float = 4.0, seed: int = 0) -> None:
        super().__init__()
        self.residual_scale = residual_scale
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            stages, channels = [], 3
            for stage in range(3):
                out = width * 2 ** stage
                stages += [nn.Conv2d(channels, out, 3, 1 if stage == 0 else 2, 1, bias=False), nn.BatchNorm2d(out),
                           nn.ReLU(inplace=True), nn.Conv2d(out, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out),
                           nn.ReLU(inplace=True)]
                channels = out
            self.features = nn.Sequential(*stages)
            self.classifier = nn.Linear(channels, 1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = self.features(npr_residual(pixels) * self.residual_scale)
        return self.classifier(features.mean(dim=(2, 3))).squeeze(1)


def build_network(kind: NetworkKind, options: NetworkOptions, *, pretrained: bool) -> nn.Module:
    """The network to train (ConvNeXt: pretrained trunk) or to load saved weights into."""
    if kind.head == "npr":
        return ResidualCNN(**kind.arch, seed=options.seed)
    from synthwatch.embeddings.loading import build_architecture, load_model

    spec = kind.spec(options)
    trunk = load_model(spec, allow_random_weights=options.allow_random_weights)[0] if pretrained \
        else build_architecture(spec)
    return ConvNeXtDetector(trunk, spec.widths[-1])


def training_pixels(kind: NetworkKind, image: Image.Image, rng: np.random.Generator,
                    spec: BackboneSpec | None) -> torch.Tensor:
    """(3, S, S) float32: ``image`` augmented as the embedding views are (downscale, blur, JPEG),
    then cropped at a random place. ``npr`` first takes a random region of twice the patch (enough
    for the strongest downscale), augments that instead of the whole image (the same operations,
    on a fraction of the pixels), crops the patch from it and flips it at random; an image smaller
    than the patch is padded by reflection to it, so a batch stacks."""
    if spec is not None:
        image, _ = augment(image, rng)
        return torch.from_numpy(prepare(image, spec, "crop", rng)[0])
    region, _ = augment(_random_patch(image, 2 * kind.patch, rng), rng)
    patch = _unit_pixels(_random_patch(region, kind.patch, rng))
    return torch.flip(patch, dims=[2]) if rng.random() < 0.5 else patch


def scoring_pixels(kind: NetworkKind, image: Image.Image, spec: BackboneSpec | None) -> torch.Tensor:
    """(tiles, 3, S, S) float32: the centre crop (ConvNeXt), or up to ``max_tiles`` tiles of the
    image's centre at native resolution (``npr``; an image smaller than a tile is one square tile of
    its shorter side, so S varies between images)."""
    if spec is not None:
        return torch.from_numpy(prepare(image, spec, "crop")[0])[None]
    return torch.stack([_unit_pixels(tile) for tile in _centre_tiles(image, kind.tile, kind.max_tiles)])


def describe_network(kind: NetworkKind, options: NetworkOptions) -> dict:
    """What ``record.network`` keeps besides the training figures."""
    spec = kind.spec(options)
    if spec is not None:
        return {"kind": kind.name, "backbone": spec.name, "mode": "crop", "input_size": spec.input_size}
    return {"kind": kind.name, "arch": dict(kind.arch), "input": "npr residual of RGB in [0, 1]",
            "patch": kind.patch, "tile": kind.tile, "max_tiles": kind.max_tiles}


def _unit_pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def _even_padded(image: Image.Image, side: int) -> Image.Image:
    """``image`` at least ``side`` wide and high (reflection padding), sides even."""
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    pad_h, pad_w = max(0, side - height), max(0, side - width)
    if pad_h or pad_w:
        pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect" if min(height, width) > 1 else "edge")
    height, width = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    return Image.fromarray(np.ascontiguousarray(pixels[:height, :width]))


def _side_for(image: Image.Image, side: int) -> int:
    """``side``, or the image's shorter side (even, at least 2) when it is smaller: small images are
    seen whole, not padded."""
    return max(2, min(side, min(image.size) // 2 * 2))


def _random_patch(image: Image.Image, side: int, rng: np.random.Generator) -> Image.Image:
    image = _even_padded(image, side)
    left = int(rng.integers(0, image.width - side + 1))
    top = int(rng.integers(0, image.height - side + 1))
    return image.crop((left, top, left + side, top + side))


def _centre_tiles(image: Image.Image, side: int, most: int) -> list[Image.Image]:
    """Up to ``most`` non-overlapping ``side`` px tiles of a grid centred on the image (as many
    rows and columns as fit, the grid trimmed to ``most`` tiles from its centre outwards); an image
    smaller than a tile is one tile of its shorter side."""
    side = _side_for(image, side)
    image = _even_padded(image, side)
    rows, columns = image.height // side, image.width // side
    top0, left0 = (image.height - rows * side) // 2, (image.width - columns * side) // 2
    cells = [(r, c) for r in range(rows) for c in range(columns)]
    centre = ((rows - 1) / 2, (columns - 1) / 2)
    cells = sorted(cells, key=lambda rc: ((rc[0] - centre[0]) ** 2 + (rc[1] - centre[1]) ** 2, rc))[:most]
    return [image.crop((left0 + c * side, top0 + r * side, left0 + (c + 1) * side, top0 + (r + 1) * side))
            for r, c in sorted(cells)]
