"""Which backbone a command works on: the one resolver the CLI, the service, the flows and the
heads call."""

from __future__ import annotations

import re

from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import HeadRegistry

NEEDS = ("vectors", "indexes")


def backbones_with(layout: StoreLayout, what: str) -> list[str]:
    """Backbone ids that have ``vectors`` or ``indexes`` in the store."""
    folder = layout.root / what
    if not folder.exists():
        return []
    if what == "indexes":
        return sorted(p.name for p in folder.iterdir() if (p / "manifest.json").exists())
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


def choose_backbone(layout: StoreLayout, requested: str | None, *, among: str = "indexes",
                    preferred: str | None = None) -> str:
    """The backbone id to use: ``requested`` (an id, or a name matching one id), else
    ``preferred`` (the champion head's) when the store has it, else the only one the store has.
    Raises ``StoreError`` listing the choices when it is ambiguous."""
    candidates = backbones_with(layout, among)
    what = "an index" if among == "indexes" else "vectors"
    hint = "Run `synthwatch index`." if among == "indexes" else "Run `synthwatch embed`."
    if requested:
        matches = [c for c in candidates if c == requested] or [c for c in candidates if _named(c, requested)]
    elif preferred in candidates:
        matches = [preferred]
    else:
        matches = candidates
    if len(matches) == 1:
        return matches[0]
    if not matches:
        wanted = f"{requested!r} to have {what}" if requested else f"a backbone with {what}"
        have = ", ".join(candidates) or "none"
        raise StoreError(f"Expected {wanted} in {layout.root}, but found none (have: {have}). {hint}")
    raise StoreError(
        f"Expected one backbone, but {len(matches)} have {what}: {', '.join(matches)}. "
        "Choose one with --backbone."
    )


def names_backbone(backbone_id: str, requested: str) -> bool:
    """Whether ``requested`` (an id, or a backbone name) names the backbone ``backbone_id``."""
    return backbone_id == requested or _named(backbone_id, requested)


def _named(backbone_id: str, name: str) -> bool:
    """Whether ``backbone_id`` was made by the backbone ``name`` (fused: ``a+b``, part by part)."""
    part = r"@[^+]*(\+random-weights)?"
    return re.fullmatch(r"\+".join(re.escape(piece) + part for piece in name.split("+")), backbone_id) is not None


def resolve_backbone(layout: StoreLayout, requested: str | None = None, *, need: str = "vectors") -> str:
    """``requested`` (an id, or a name matching one id), else the champion head's backbone when
    the store has its ``need`` (``vectors`` or ``indexes``), else the only backbone that has it."""
    if need not in NEEDS:
        raise ValueError(f"Expected need in {', '.join(NEEDS)}, but got {need!r}.")
    return choose_backbone(layout, requested, among=need, preferred=HeadRegistry(layout).champion_backbone())
