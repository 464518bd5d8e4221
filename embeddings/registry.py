"""Backbones by name: each entry says where weights come from and how images are prepared.

Preprocessing (input size, mean/std, interpolation) and embedding widths are derived from the
entry, never hard-coded at call sites. Besides the named entries, any Hugging Face id
(``org/name``) or local directory of a saved DINOv2 model resolves to a spec.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from synthwatch.embeddings.errors import EmbeddingError

# The spectrum backbone's features (embeddings/spectrum.py computes them; kept here so that naming
# a backbone never imports torch). SPECTRUM_VERSION is the revision in its backbone id: change it
# whenever the features change.
SPECTRUM_BINS = 32
SPECTRUM_BLOCKS = ("luminance", "residual", "npr")
SPECTRUM_VERSION = "v1"
# The srm backbone's features (embeddings/cooccurrence.py): residual families (luminance's five, the
# two chroma planes' first and second differences, luminance's five at half scale), bins per block.
SRM_FAMILIES = ("d1", "d2", "d3", "kb", "kv", "chroma", "half")
SRM_BINS = 63  # triples of -2..2, a triple and its negation in one bin
SRM_BLOCKS = {"d1": 4, "d2": 4, "d3": 4, "kb": 2, "kv": 2,  # kernels x quantisation steps
              "chroma": 16, "half": 16}  # 2 planes x (d1 + d2); d1 .. kv again
SRM_VERSION = "v1"
WEIGHTLESS_FAMILIES = ("spectrum", "srm")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TRANSFORMER_FAMILIES = ("dinov2", "clip", "siglip")


@dataclass(frozen=True)
class BackboneSpec:
    """Where a backbone comes from and what it expects.

    ``family`` is ``dinov2``, ``clip`` or ``siglip`` (tokens from transformer blocks 1..depth),
    ``convnext`` (pooled stages 0..3), ``spectrum`` (training-free spectral blocks 1..depth,
    see ``synthwatch.embeddings.spectrum``) or ``srm`` (training-free residual co-occurrences,
    families 1..depth, see ``synthwatch.embeddings.cooccurrence``). ``arch`` holds the architecture's hyper-parameters, enough to build
    it with random weights offline. ``widths`` is the token width per block (DINOv2: one
    value) or the channel width per stage (ConvNeXt: four values).
    """

    name: str
    family: str
    source: str
    depth: int
    widths: tuple[int, ...]
    revision: str = "main"
    input_size: int = 224
    patch_size: int = 14
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    registers: int = 0
    builtin: bool = False
    local: bool = False
    arch: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def transformer(self) -> bool:
        """A vision transformer: its layers are blocks 1..depth of tokens."""
        return self.family in TRANSFORMER_FAMILIES

    @property
    def default_layers(self) -> tuple[int, ...]:
        if self.family == "spectrum":
            return (2, 3)  # the residual blocks (see synthwatch.embeddings.spectrum)
        if self.family == "srm":
            return tuple(range(1, self.depth + 1))  # every residual family
        return (self.depth,) if self.transformer else (3,)

    @property
    def weightless(self) -> bool:
        """Computed, not learned: no weights to load, the same on every machine."""
        return self.family in WEIGHTLESS_FAMILIES

    def embedding_dim(self, layers: tuple[int, ...]) -> int:
        """Width of the vector for ``layers``: DINOv2 and CLIP 2 x hidden per block (class token and
        mean of patch tokens), SigLIP hidden per block (mean of patch tokens: it has no class token),
        ConvNeXt stage widths, spectrum block widths."""
        if self.family in ("dinov2", "clip"):
            return 2 * self.widths[0] * len(layers)
        if self.family == "siglip":
            return self.widths[0] * len(layers)
        if self.weightless:
            return sum(self.widths[block - 1] for block in layers)
        return sum(self.widths[stage] for stage in layers)

    def check_layers(self, layers: tuple[int, ...] | None) -> tuple[int, ...]:
        """Normalise ``layers`` (negative counts from the end) or raise ``EmbeddingError``."""
        if not layers:
            return self.default_layers
        lowest, top = (1, self.depth) if self.transformer or self.weightless else (0, 3)
        what = "stages" if self.family == "convnext" else "blocks"
        normalised = []
        for layer in layers:
            value = layer + top + 1 if layer < 0 else layer
            if not lowest <= value <= top:
                raise EmbeddingError(
                    f"Expected --layers among {what} {lowest}..{top} of {self.name} (or "
                    f"negative, counting from the end), but got {layer}."
                )
            normalised.append(value)
        if len(set(normalised)) != len(normalised):
            raise EmbeddingError(f"Expected distinct --layers, but got {list(layers)}.")
        return tuple(sorted(normalised))


_DINOV2_SIZES = {
    # name: (hidden, blocks, heads, extra config)
    "small": (384, 12, 6, {}),
    "base": (768, 12, 12, {}),
    "large": (1024, 24, 16, {}),
    "giant": (1536, 40, 24, {"use_swiglu_ffn": True}),
}
_CONVNEXT_SIZES = {
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
}


def _dinov2(size: str, registers: bool) -> BackboneSpec:
    hidden, blocks, heads, extra = _DINOV2_SIZES[size]
    repo = f"facebook/dinov2-with-registers-{size}" if registers else f"facebook/dinov2-{size}"
    arch = {"hidden_size": hidden, "num_hidden_layers": blocks, "num_attention_heads": heads,
            "intermediate_size": 4 * hidden, "image_size": 518, "patch_size": 14, **extra}
    if registers:
        arch["num_register_tokens"] = 4
    return BackboneSpec(
        name=f"dinov2-{size}{'-reg' if registers else ''}", family="dinov2", source=repo,
        depth=blocks, widths=(hidden,), registers=4 if registers else 0, arch=arch,
    )


def _convnext(size: str) -> BackboneSpec:
    depths, dims = _CONVNEXT_SIZES[size]
    return BackboneSpec(
        name=f"convnext-{size}", family="convnext", source=f"convnext_{size}.fb_in1k",
        depth=sum(depths), widths=dims, patch_size=32, arch={"depths": depths, "dims": dims},
    )


# Vision towers of image-text models: CLIP ViT-L/14 is the backbone of UnivFD (Ojha et al., CVPR
# 2023), the most cited linear-probe detector; SigLIP is its stronger successor.
_VISION_TOWERS = {
    # name: (family, Hugging Face id, input size, patch, hidden, blocks, heads, intermediate, mean, std)
    "clip-vit-l14": ("clip", "openai/clip-vit-large-patch14", 224, 14, 1024, 24, 16, 4096, CLIP_MEAN, CLIP_STD),
    "clip-vit-b16": ("clip", "openai/clip-vit-base-patch16", 224, 16, 768, 12, 12, 3072, CLIP_MEAN, CLIP_STD),
    "siglip-so400m": ("siglip", "google/siglip-so400m-patch14-384", 384, 14, 1152, 27, 16, 4304, (0.5,) * 3, (0.5,) * 3),
    "siglip-base": ("siglip", "google/siglip-base-patch16-224", 224, 16, 768, 12, 12, 3072, (0.5,) * 3, (0.5,) * 3),
}


def _vision_tower(name: str) -> BackboneSpec:
    family, repo, size, patch, hidden, blocks, heads, intermediate, mean, std = _VISION_TOWERS[name]
    arch = {"hidden_size": hidden, "num_hidden_layers": blocks, "num_attention_heads": heads,
            "intermediate_size": intermediate, "image_size": size, "patch_size": patch}
    return BackboneSpec(name=name, family=family, source=repo, depth=blocks, widths=(hidden,), input_size=size,
                        patch_size=patch, mean=mean, std=std, arch=arch)


def _tiny_tower(family: str) -> BackboneSpec:
    return BackboneSpec(
        name=f"test-tiny-{family}", family=family, source="builtin", depth=2, widths=(32,), input_size=32,
        patch_size=8, builtin=True, mean=CLIP_MEAN if family == "clip" else (0.5,) * 3,
        std=CLIP_STD if family == "clip" else (0.5,) * 3,
        arch={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "image_size": 32, "patch_size": 8},
    )


REGISTRY: dict[str, BackboneSpec] = {
    **{name: _vision_tower(name) for name in _VISION_TOWERS},
    "test-tiny-clip": _tiny_tower("clip"),
    "test-tiny-siglip": _tiny_tower("siglip"),
    **{f"dinov2-{s}": _dinov2(s, False) for s in _DINOV2_SIZES},
    **{f"dinov2-{s}-reg": _dinov2(s, True) for s in _DINOV2_SIZES},
    **{f"convnext-{s}": _convnext(s) for s in _CONVNEXT_SIZES},
    "test-tiny-dinov2": BackboneSpec(
        name="test-tiny-dinov2", family="dinov2", source="builtin", depth=4, widths=(32,),
        input_size=32, patch_size=8, builtin=True,
        arch={"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
              "intermediate_size": 64, "image_size": 32, "patch_size": 8},
    ),
    "test-tiny-convnext": BackboneSpec(
        name="test-tiny-convnext", family="convnext", source="builtin", depth=4,
        widths=(8, 16, 32, 64), input_size=32, patch_size=32, builtin=True,
        arch={"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64)},
    ),
}

REGISTRY["spectrum"] = BackboneSpec(
    name="spectrum", family="spectrum", source="computed", depth=len(SPECTRUM_BLOCKS),
    widths=(SPECTRUM_BINS,) * len(SPECTRUM_BLOCKS), revision=SPECTRUM_VERSION, input_size=224, patch_size=1,
    mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), arch={"bins": SPECTRUM_BINS, "blocks": list(SPECTRUM_BLOCKS)},
)

REGISTRY["srm"] = BackboneSpec(
    name="srm", family="srm", source="computed", depth=len(SRM_FAMILIES),
    widths=tuple(SRM_BLOCKS[family] * SRM_BINS for family in SRM_FAMILIES), revision=SRM_VERSION, input_size=512,
    patch_size=1, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
    arch={"families": list(SRM_FAMILIES), "bins": SRM_BINS, "truncation": 2},
)

DEFAULT_BACKBONE = "dinov2-small"


def resolve_spec(name: str, *, revision: str | None = None) -> BackboneSpec:
    """The spec for a registry name, a local model directory, or a Hugging Face id."""
    if name in REGISTRY:
        spec = REGISTRY[name]
        return replace(spec, revision=revision) if revision and not (spec.builtin or spec.weightless) else spec
    path = Path(name).expanduser()
    if path.is_dir():
        return _local_spec(path.resolve())
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return BackboneSpec(name=name, family="dinov2", source=name, depth=0, widths=(0,),
                            revision=revision or "main")  # depth and width come with the config
    raise EmbeddingError(
        f"Expected a backbone name ({', '.join(sorted(REGISTRY))}), a Hugging Face id such as "
        f"facebook/dinov2-small, or a local model directory, but got {name!r}."
    )


def _local_spec(path: Path) -> BackboneSpec:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise EmbeddingError(
            f"Expected {path} to hold a saved Hugging Face model (config.json and weights), but "
            "it has no config.json. Save one with model.save_pretrained(DIR)."
        )
    config = json.loads(config_file.read_text())
    digest = hashlib.sha256(config_file.read_bytes()).hexdigest()[:8]
    spec = spec_from_hf_config(config, name=f"local-{path.name}-{digest}", source=str(path))
    return replace(spec, local=True, revision=digest)


_TOWER_TYPES = {"clip": "clip", "clip_vision_model": "clip", "siglip": "siglip", "siglip_vision_model": "siglip"}


def spec_from_hf_config(config: dict, *, name: str, source: str) -> BackboneSpec:
    """A spec for a DINOv2 checkpoint, or a CLIP / SigLIP one (the image-text model or its vision
    tower), described by its ``config.json`` contents."""
    model_type = config.get("model_type")
    if model_type in _TOWER_TYPES:
        family = _TOWER_TYPES[model_type]
        vision = config.get("vision_config", config)
        keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "image_size",
                "patch_size")
        clip = family == "clip"
        return BackboneSpec(
            name=name, family=family, source=source, depth=int(vision["num_hidden_layers"]),
            widths=(int(vision["hidden_size"]),), input_size=int(vision["image_size"]),
            patch_size=int(vision["patch_size"]), mean=CLIP_MEAN if clip else (0.5,) * 3,
            std=CLIP_STD if clip else (0.5,) * 3, arch={key: vision[key] for key in keys if key in vision})
    if model_type not in ("dinov2", "dinov2_with_registers"):
        raise EmbeddingError(
            f"Expected a DINOv2, CLIP or SigLIP checkpoint (model_type dinov2, dinov2_with_registers, clip, "
            f"clip_vision_model, siglip or siglip_vision_model), but {source} has model_type {model_type!r}. "
            "Use a registry name for ConvNeXt."
        )
    return BackboneSpec(
        name=name, family="dinov2", source=source, depth=int(config["num_hidden_layers"]),
        widths=(int(config["hidden_size"]),), patch_size=int(config.get("patch_size", 14)),
        registers=int(config.get("num_register_tokens", 0) or 0),
    )
