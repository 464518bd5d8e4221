"""One interface over every backbone: images in, L2-normalised float32 vectors out."""

from __future__ import annotations

import re
import threading

import torch
from torch import nn

from synthwatch.embeddings.errors import EmbeddingError
from synthwatch.embeddings.loading import RANDOM, load_model
from synthwatch.embeddings.registry import BackboneSpec, resolve_spec
from synthwatch.embeddings.views import normalise

MODES = ("crop", "resize")
_POOLING = {"dinov2": "class token + mean of patch tokens per block", "convnext": "global average of each stage",
            "clip": "class token + mean of patch tokens per block (after the final layer norm)",
            "siglip": "mean of patch tokens per block (after the final layer norm)",
            "spectrum": "azimuthal average of the log power spectrum per block",
            "srm": "sign-symmetric co-occurrence frequencies of quantised residuals over the crop, per family"}

# Models are loaded one at a time: transformers' lazy imports fail when several threads trigger
# them at once (``cannot import name 'Dinov2Config'``), and two first requests would load twice.
_BUILDING = threading.RLock()


class Backbone:
    """A loaded model with its layers and preprocessing mode; see :func:`create_backbone`."""

    def __init__(self, spec: BackboneSpec, model: nn.Module, layers: tuple[int, ...], mode: str, weights: str) -> None:
        self.spec = spec
        self.model = model
        self.layers = layers
        self.mode = mode
        self.weights = weights
        self.device = torch.device("cpu")
        self.mixed_precision = True  # bf16 autocast on CUDA; fp32 on CPU, where bf16 is slower
        self.channels_last = False  # ConvNeXt only: NHWC activations

    @property
    def dim(self) -> int:
        return self.spec.embedding_dim(self.layers)

    @property
    def backbone_id(self) -> str:
        """Names model, revision, preprocessing and layers, so differently made vectors never mix."""
        family_tag = "L" if self.spec.transformer else {"convnext": "S", "spectrum": "F", "srm": "F"}[self.spec.family]
        raw = (f"{self.spec.name}@{self.spec.revision}.{self.mode}{self.spec.input_size}."
               f"{family_tag}{'-'.join(map(str, self.layers))}")
        if self.weights == RANDOM:
            raw += "+random-weights"
        return re.sub(r"[^A-Za-z0-9._@+-]", "_", raw.replace("/", "__"))

    @property
    def random_parts(self) -> list[str]:
        """Names of the parts running on random weights (this backbone, or none)."""
        return [self.spec.name] if self.weights == RANDOM else []

    def describe(self) -> dict:
        """What made these vectors, for Parquet metadata and reports."""
        spec = self.spec
        return {
            "backbone_id": self.backbone_id, "name": spec.name, "family": spec.family,
            "source": spec.source, "revision": spec.revision, "weights": self.weights,
            "local": spec.local,
            "layers": list(self.layers), "mode": self.mode, "input_size": spec.input_size,
            "mean": list(spec.mean), "std": list(spec.std), "interpolation": spec.interpolation,
            "dim": self.dim,
            "pooling": _POOLING[spec.family],
        }

    def to(self, device: torch.device | str) -> "Backbone":
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def use_channels_last(self, enabled: bool) -> "Backbone":
        """ConvNeXt: keep weights and activations NHWC (faster convolutions on some GPUs)."""
        if self.spec.family == "convnext":
            self.channels_last = enabled
            self.model.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        return self

    @torch.inference_mode()
    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Vectors for a batch.

        Parameters
        ----------
        pixels : torch.Tensor
            (N, 3, input_size, input_size), normalised with the spec's mean and std.

        Returns
        -------
        torch.Tensor
            (N, dim) float32 on the CPU, each row of unit L2 norm.
        """
        pixels = pixels.to(self.device, non_blocking=True)
        if self.spec.weightless:  # computed backbones normalise with mean 0 and std 1: pixels / 255
            return self._computed(pixels.permute(0, 2, 3, 1) * 255.0, None).cpu()
        return self._vectors(pixels).cpu()

    @torch.inference_mode()
    def embed_crops(self, pixels: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """Vectors for crops as :func:`embeddings.views.crop` makes them ((N, S, S, 3) uint8 and
        (N, 2) sizes), normalised on the model's device; (N, dim) float32 left on that device,
        so the caller decides when to wait for the copy back."""
        pixels = pixels.to(self.device, non_blocking=True)
        if self.spec.weightless:
            return self._computed(pixels, sizes)
        return self._vectors(normalise(pixels, sizes.to(self.device, non_blocking=True), self.spec))

    def _computed(self, crops: torch.Tensor, sizes: torch.Tensor | None) -> torch.Tensor:
        """Blocks of a computed backbone (spectra, co-occurrences) of (N, S, S, 3) crops over their
        valid ``sizes``, joined and unit-normalised; float32."""
        return nn.functional.normalize(torch.cat(self.model(crops, sizes, self.layers), dim=1), dim=1)

    def _vectors(self, pixels: torch.Tensor) -> torch.Tensor:
        autocast = self.mixed_precision and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            family = self.spec.family
            parts = (self._dinov2(pixels) if family == "dinov2" else self._convnext(pixels) if family == "convnext"
                     else self._tower(pixels))
        return nn.functional.normalize(torch.cat(parts, dim=1).float(), dim=1)

    def _dinov2(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states
        first_patch = 1 + self.spec.registers
        parts = []
        for layer in self.layers:
            tokens = self.model.layernorm(hidden[layer])
            parts += [tokens[:, 0], tokens[:, first_patch:].mean(dim=1)]
        return parts

    def _tower(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """CLIP / SigLIP vision towers: each chosen block's tokens through the final layer norm;
        CLIP's class token and mean patch token, SigLIP's mean token (it has no class token)."""
        size = self.model.config.image_size
        hidden = self.model(pixel_values=pixels, output_hidden_states=True,
                            interpolate_pos_encoding=pixels.shape[-1] != size).hidden_states
        norm = self.model.post_layernorm if hasattr(self.model, "post_layernorm") else \
            self.model.vision_model.post_layernorm
        parts = []
        for layer in self.layers:
            tokens = norm(hidden[layer])
            parts += [tokens[:, 0], tokens[:, 1:].mean(dim=1)] if self.spec.family == "clip" else [tokens.mean(dim=1)]
        return parts

    def _convnext(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        stages = self.model.forward_intermediates(pixels, indices=list(self.layers), intermediates_only=True)
        return [stage.mean(dim=(2, 3)) for stage in stages]


def create_backbone(
    name: str,
    *,
    layers: tuple[int, ...] | None = None,
    mode: str = "crop",
    revision: str | None = None,
    allow_random_weights: bool = False,
) -> Backbone:
    """Build a backbone by registry name, Hugging Face id, or local directory; names joined by
    ``+`` build a fused backbone (``synthwatch.embeddings.fused``)."""
    if mode not in MODES:
        raise EmbeddingError(f"Expected --mode in {', '.join(MODES)}, but got {mode!r}.")
    if "+" in name:
        from synthwatch.embeddings.fused import FusedBackbone

        if not all(part.strip() for part in name.split("+")):
            raise EmbeddingError(f"Expected backbone names on both sides of each '+', but got {name!r}. "
                                 "Remove the stray '+'.")
        if layers or revision:
            raise EmbeddingError(f"Expected no --layers or --revision with the fused backbone {name}, but got some: "
                                 "each part uses its defaults.")
        return FusedBackbone([create_backbone(part, mode=mode, allow_random_weights=allow_random_weights)
                              for part in name.split("+")])
    spec = resolve_spec(name, revision=revision)
    with _BUILDING:  # transformers' lazy imports fail when several threads trigger them at once
        model, spec, weights = load_model(spec, allow_random_weights=allow_random_weights)
    return Backbone(spec, model, spec.check_layers(layers), mode, weights)


def backbone_from_description(description: dict) -> Backbone:
    """Rebuild the backbone that made stored vectors, from the description stored with them."""
    backbone = _rebuilt(description)
    if backbone.backbone_id != description["backbone_id"]:
        raise EmbeddingError(
            f"Expected to rebuild backbone {description['backbone_id']} to embed queries as the "
            f"stored vectors were made, but got {backbone.backbone_id}: the model at "
            f"{description.get('source', description['name'])} changed. Re-embed the store with the current model."
        )
    return backbone


def _rebuilt(description: dict) -> Backbone:
    if description.get("family") == "fused":
        from synthwatch.embeddings.fused import FusedBackbone

        return FusedBackbone([_rebuilt(part) for part in description["parts"]])
    local = description.get("local", False)
    return create_backbone(
        description["source"] if local else description["name"],
        layers=tuple(description["layers"]),
        mode=description["mode"],
        revision=None if local else description["revision"],
        allow_random_weights=description["weights"] == RANDOM,
    )


def cached_backbone(description: dict, cache: dict[str, Backbone]) -> Backbone:
    """The backbone ``description`` names, built on first use and kept in ``cache`` by id (one
    model per backbone id, however many heads, indexes or tasks use it). Built by one thread at
    a time, so concurrent first requests build it once."""
    backbone_id = description["backbone_id"]
    if backbone_id not in cache:
        with _BUILDING:
            if backbone_id not in cache:
                cache[backbone_id] = backbone_from_description(description)
    return cache[backbone_id]
