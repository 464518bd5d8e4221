"""A zoo of small autoencoders whose decoders leave different traces, standing in for generators.

Each generator encodes an image into a small latent (8 or 16 channels, downsampled 4x or 8x, like a
latent-diffusion autoencoder) and decodes it with its own upsampling family: transposed
convolution, nearest or bilinear upsampling followed by convolution, pixel shuffle, a deeper
8x latent, or upsampling with injected noise. Trained briefly on real crops, their
reconstructions look like the photo but carry the decoder's fingerprint.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class GeneratorConfig:
    """One autoencoder: its upsampling family, latent downsampling factor, and width."""

    upsampling: str
    factor: int = 4
    width: int = 24
    latent_channels: int = 8
    jpeg_share: float = 0.0  # share of outputs also saved as JPEG (quality 70-95)

    def as_dict(self) -> dict:
        return asdict(self)


GENERATORS: dict[str, GeneratorConfig] = {
    "ae-tconv": GeneratorConfig("tconv", jpeg_share=0.5),
    "ae-nearest": GeneratorConfig("nearest"),
    "ae-bilinear": GeneratorConfig("bilinear"),
    "ae-pixelshuffle": GeneratorConfig("pixelshuffle", jpeg_share=0.5),
    "ae-f8-tconv": GeneratorConfig("tconv", factor=8, width=32, latent_channels=16),
    "ae-noise": GeneratorConfig("noise"),
}

_UPSAMPLINGS = ("tconv", "nearest", "bilinear", "pixelshuffle", "noise")


class _NoiseInjection(nn.Module):
    """Adds per-pixel Gaussian noise scaled by a learned per-channel weight (StyleGAN-style)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((1, channels, 1, 1), 0.1))
        self.reseed(0)

    def reseed(self, seed: int) -> None:
        """Restart the noise stream: the same seed and inputs give the same outputs."""
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], generator=self.generator)
        return x + self.weight * noise


def _up_block(kind: str, width: int) -> nn.Module:
    if kind == "tconv":
        return nn.Sequential(nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.GELU())
    if kind in ("nearest", "bilinear"):
        mode = {"nearest": "nearest", "bilinear": "bilinear"}[kind]
        return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode), nn.Conv2d(width, width, 3, padding=1), nn.GELU())
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.GELU())
    if kind == "noise":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"),
                             nn.Conv2d(width, width, 3, padding=1), _NoiseInjection(width), nn.GELU())
    raise ValueError(f"Expected an upsampling in {_UPSAMPLINGS}, but got {kind!r}.")


def build_autoencoder(config: GeneratorConfig, *, seed: int) -> nn.Module:
    """The autoencoder for ``config``, initialised from ``seed`` (the global RNG is untouched).

    Maps (N, 3, H, W) in [0, 1] to (N, 3, H, W); H and W must be divisible by the factor.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _autoencoder(config)


def _autoencoder(config: GeneratorConfig) -> nn.Module:
    steps = int(math.log2(config.factor))
    if 2 ** steps != config.factor or steps < 1:
        raise ValueError(f"Expected a latent factor that is a power of two >= 2, but got {config.factor}.")
    width = config.width
    encoder = [nn.Conv2d(3, width, 3, padding=1), nn.GELU()]
    for _ in range(steps):
        encoder += [nn.Conv2d(width, width, 4, stride=2, padding=1), nn.GELU()]
    encoder.append(nn.Conv2d(width, config.latent_channels, 1))
    decoder = [nn.Conv2d(config.latent_channels, width, 1), nn.GELU()]
    decoder += [_up_block(config.upsampling, width) for _ in range(steps)]
    decoder.append(nn.Conv2d(width, 3, 3, padding=1))
    return nn.Sequential(nn.Sequential(*encoder), nn.Sequential(*decoder))


def train_autoencoder(
    model: nn.Module, crops: np.ndarray, *, steps: int, seed: int, patch: int = 32, batch: int = 16,
    lr: float = 5e-3,
) -> list[float]:
    """Fit ``model`` to reconstruct random ``patch`` px patches of ``crops`` (N, H, W, 3) uint8.

    Deterministic for a given seed and thread count. Returns the loss of every step.
    """
    rng = np.random.default_rng(seed)
    for module in model.modules():
        if isinstance(module, _NoiseInjection):
            module.reseed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps)
    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0)
    losses = []
    model.train()
    for _ in range(steps):
        index = rng.integers(0, len(images), batch)
        top, left = rng.integers(0, images.shape[2] - patch + 1, 2)
        x = images[index, :, top:top + patch, left:left + patch]
        loss = nn.functional.mse_loss(model(x), x)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    return losses


@torch.inference_mode()
def reconstruct(model: nn.Module, crops: np.ndarray, *, seed: int) -> np.ndarray:
    """Pass ``crops`` (N, H, W, 3) uint8 through ``model``; return (N, H, W, 3) uint8."""
    model.eval()
    for module in model.modules():
        if isinstance(module, _NoiseInjection):
            module.reseed(seed)
    out = []
    for start in range(0, len(crops), 32):
        x = torch.from_numpy(crops[start:start + 32]).permute(0, 3, 1, 2).float().div(255.0)
        y = model(x).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        out.append(y.permute(0, 2, 3, 1).numpy())
    return np.concatenate(out) if out else np.zeros((0,) + crops.shape[1:], np.uint8)
