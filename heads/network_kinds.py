"""The kinds of image network a head can be, by name, with their defaults and input geometry
(torch-free, so the command line can name them; ``synthwatch.heads.networks`` builds them).

- ``convnext`` (record kind ``convnext-finetune``): a pretrained ConvNeXt fine-tuned end to end on
  one normalised crop of the backbone's input size, for users with a GPU.
- ``npr`` (record kind ``npr``): a small forensic CNN trained from scratch, on no downloaded weights,
  on the neighbouring-pixel-relationship residual of the image (Tan et al., CVPR 2024). It trains
  on random native-resolution patches and scores an image by the mean logit of up to
  ``max_tiles`` native-resolution tiles around its centre (a fixed-size crop would see a fraction
  of a large image).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from synthwatch.embeddings.registry import BackboneSpec, resolve_spec

__all__ = ["NETWORK_HEADS", "NETWORK_KINDS", "NetworkKind", "NetworkOptions", "kind_for_head", "network_kind"]


@dataclass(frozen=True)
class NetworkOptions:
    """What to train (``head``: ``convnext`` or ``npr``), optimisation, checkpoints and device.
    ``None`` takes the kind's default (see ``NetworkKind.defaults``)."""

    head: str = "npr"
    backbone: str | None = None  # convnext: the ConvNeXt to fine-tune (default convnext-tiny)
    steps: int | None = None
    batch_size: int = 32
    learning_rate: float | None = None
    weight_decay: float | None = None
    checkpoint_every: int = 100
    device: str = "auto"
    workers: int = 0
    allow_random_weights: bool = False
    seed: int = 0
    mixed_precision: bool = True  # bf16 autocast on CUDA

    def resolved(self) -> "NetworkOptions":
        """These options with every ``None`` replaced by the kind's default."""
        kind = kind_for_head(self.head)
        return replace(self, **{key: value for key, value in kind.defaults.items() if getattr(self, key) is None})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class NetworkKind:
    """One kind of image network: its names, defaults, and input geometry.

    ``name`` is the record's ``kind``; ``head`` the ``train --head`` value. ``patch`` is the side of
    a training draw and ``tile`` of a scoring tile (``max_tiles`` of them at most), in pixels at
    the image's native resolution; ConvNeXt instead takes its backbone's input crop.
    """

    name: str
    head: str
    description: str
    defaults: dict = field(default_factory=dict)
    arch: dict = field(default_factory=dict)
    patch: int = 0
    tile: int = 0
    max_tiles: int = 1

    def spec(self, options: NetworkOptions) -> BackboneSpec | None:
        """The ConvNeXt spec a ``convnext`` network is built from (None for ``npr``)."""
        if self.head != "convnext":
            return None
        spec = resolve_spec(options.backbone or "convnext-tiny")
        if spec.family != "convnext":
            raise ValueError(f"Expected a ConvNeXt backbone to fine-tune (convnext-tiny, -small, -base, "
                             f"test-tiny-convnext), but got {options.backbone!r}.")
        return spec


NETWORK_KINDS: dict[str, NetworkKind] = {kind.name: kind for kind in (
    NetworkKind("convnext-finetune", "convnext", "a pretrained ConvNeXt fine-tuned end to end (GPU)",
                defaults={"steps": 500, "learning_rate": 1e-4, "weight_decay": 0.05}),
    NetworkKind("npr", "npr", "a forensic CNN trained from scratch on neighbouring-pixel residuals (no weights)",
                defaults={"steps": 1500, "learning_rate": 1e-3, "weight_decay": 1e-4},
                arch={"width": 32}, patch=64, tile=256, max_tiles=4),
)}
NETWORK_HEADS = tuple(kind.head for kind in NETWORK_KINDS.values())


def kind_for_head(head: str) -> NetworkKind:
    """The network kind ``train --head`` names."""
    for kind in NETWORK_KINDS.values():
        if kind.head == head:
            return kind
    raise ValueError(f"Expected a network head in {', '.join(NETWORK_HEADS)}, but got {head!r}.")


def network_kind(record_kind: str) -> NetworkKind:
    """The network kind of a stored record's ``kind``."""
    if record_kind not in NETWORK_KINDS:
        raise ValueError(f"Expected a network kind in {', '.join(NETWORK_KINDS)}, but the record says {record_kind!r}.")
    return NETWORK_KINDS[record_kind]
