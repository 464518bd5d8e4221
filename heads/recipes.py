"""Detection recipes by name: a backbone and a head (or an image network) that are measured together
(``benchmarks/realworld.py``), and the one choice of what a new store uses by default.

Without pretrained weights on the machine, a store's first writing command (and ``synthwatch
init``) records ``OFFLINE_RECIPE`` in its synthwatch.toml: the weight-free recipe that measured best
on real generators' output under the format-controlled protocol. With DINOv2's weights here, the
default stays DINOv2 (``embeddings.registry.DEFAULT_BACKBONE``) with the default head.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OFFLINE_RECIPE", "RECIPES", "Recipe", "default_recipe"]


@dataclass(frozen=True)
class Recipe:
    """A backbone to embed with (None for an image network) and the head trained on it; ``views``
    augmented training views embedded per image (downscale, blur, JPEG), ``patches`` clean
    native-resolution patch views (``embeddings.views.random_patch``)."""

    name: str
    head: str
    backbone: str | None = None
    views: int = 0
    patches: int = 0
    description: str = ""

    @property
    def network(self) -> bool:
        """Whether the head is an image network, trained on the images rather than on vectors."""
        return self.backbone is None

    def as_dict(self) -> dict:
        return {"name": self.name, "backbone": self.backbone, "head": self.head, "views": self.views,
                "patches": self.patches, "description": self.description}


RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (
    Recipe("spectrum+logreg", "logreg", "spectrum",
           description="azimuthal spectra of two residuals on a 224 px crop (the offline default before srm)"),
    Recipe("srm+logreg", "logreg", "srm",
           description="co-occurrences of quantised luma, chroma and half-scale residuals over the whole crop (up to 512 px)"),
    Recipe("srm+logreg+patches", "logreg", "srm", patches=4,
           description="srm, trained on 4 random native-resolution patches (half the shorter side) per image too"),
    Recipe("srm+logreg+views", "logreg", "srm", views=4,
           description="srm, with 4 augmented training views per image (downscale 0.5-0.9x, blur, JPEG 50-95)"),
    Recipe("srm+logreg+patches+views", "logreg", "srm", views=4, patches=4,
           description="srm, with both the 4 patches and the 4 augmented views per image"),
    Recipe("srm+spectrum+logreg", "logreg", "srm+spectrum", description="srm fused with the spectrum backbone"),
    Recipe("npr", "npr", description="the NPR residual CNN trained from scratch on native-resolution patches"),
)}
OFFLINE_RECIPE = RECIPES["srm+logreg+patches+views"]


def default_recipe(weights_here: bool) -> Recipe | None:
    """The recipe a new store records: ``OFFLINE_RECIPE`` without pretrained weights on the machine,
    else None (DINOv2 and the default head, the built-in defaults)."""
    return None if weights_here else OFFLINE_RECIPE

