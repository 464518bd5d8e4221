"""Build a backbone's model: pretrained weights from disk or the Hub, or seeded random weights.

Offline, the Hugging Face libraries retry for 30-50 s before failing. We look on disk first,
then probe the Hub with a short timeout, so a missing model fails within seconds with a
message naming it and how to point at a local copy.
"""

from __future__ import annotations

import os
import socket
from dataclasses import replace

import torch
from torch import nn

from synthwatch.embeddings.errors import EmbeddingError, WeightsUnavailable
from synthwatch.embeddings.registry import BackboneSpec, spec_from_hf_config

HUB_HOST = "huggingface.co"
PRETRAINED, RANDOM, BUILTIN, COMPUTED = "pretrained", "random", "builtin-seeded", "none (computed features)"


def load_model(spec: BackboneSpec, *, allow_random_weights: bool = False) -> tuple[nn.Module, BackboneSpec, str]:
    """Return ``(model in eval mode, spec completed from the checkpoint, weights provenance)``.

    Raises ``WeightsUnavailable`` when pretrained weights are neither cached nor reachable and
    random weights were not allowed.
    """
    if spec.family == "spectrum":
        from synthwatch.embeddings.spectrum import SpectrumFeatures

        return SpectrumFeatures(spec.arch["bins"]).eval(), spec, COMPUTED
    if spec.family == "srm":
        from synthwatch.embeddings.cooccurrence import CooccurrenceFeatures

        return CooccurrenceFeatures().eval(), spec, COMPUTED
    if spec.builtin:
        return _seeded(spec).eval(), spec, BUILTIN
    if spec.family == "convnext":
        return _load_convnext(spec, allow_random_weights)
    return _load_transformer(spec, allow_random_weights)


def pretrained_weights_here(spec: BackboneSpec) -> bool:
    """Whether ``spec``'s pretrained weights can be had now, without loading them: in the local
    Hugging Face cache, or from a Hub that answers (computed, built-in and local models: always)."""
    if spec.weightless or spec.builtin or spec.local:
        return True
    from huggingface_hub import try_to_load_from_cache

    repo = f"timm/{spec.source}" if spec.family == "convnext" else spec.source
    cached = try_to_load_from_cache(repo, "model.safetensors", revision=spec.revision, cache_dir=_hub_cache())
    return isinstance(cached, str) or hub_reachable()


def _hub_cache() -> str:
    """The Hugging Face cache as the environment names it now (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """True if the Hub (``HF_ENDPOINT`` when set, through ``HTTPS_PROXY`` when one applies)
    accepts a TCP connection quickly; honours ``HF_HUB_OFFLINE``."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(hub_address(), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def hub_address() -> tuple[str, int]:
    """Where a connection to the Hub goes first: the proxy for its scheme unless ``NO_PROXY``
    exempts the host, else the endpoint itself."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or f"https://{HUB_HOST}")
    host = endpoint.hostname or HUB_HOST
    proxy = getproxies().get(endpoint.scheme)
    if proxy and not proxy_bypass(host):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return via.hostname or host, via.port or (443 if via.scheme == "https" else 80)
    return host, endpoint.port or (443 if endpoint.scheme == "https" else 80)


def _missing(spec: BackboneSpec, where: str) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"Expected pretrained weights for {spec.name} ({where}, revision {spec.revision}), but "
        f"they are not on this machine and {':'.join(map(str, hub_address()))} cannot be reached "
        "(HF_ENDPOINT, HTTPS_PROXY and NO_PROXY are honoured). Point at a local copy: "
        "--backbone DIR for a model saved with save_pretrained(DIR), or copy a Hugging Face cache "
        "that holds it and set HF_HOME to it. --allow-random-weights runs the same architecture "
        "with random weights (for timing and plumbing only: its scores mean nothing)."
    )


def _model_class(family: str):
    """The transformers class that loads a family's vision model (CLIP and SigLIP: the vision
    tower alone, from the image-text checkpoint)."""
    import transformers

    return {"dinov2": transformers.AutoModel, "clip": transformers.CLIPVisionModel,
            "siglip": transformers.SiglipVisionModel}[family]


def _load_transformer(spec: BackboneSpec, allow_random: bool):
    from transformers import AutoConfig

    for local_only in (True, False):
        if not local_only and (spec.local or not hub_reachable()):
            break
        try:
            config = AutoConfig.from_pretrained(spec.source, revision=spec.revision, local_files_only=local_only)
        except (OSError, ValueError) as error:
            if spec.local:
                raise EmbeddingError(f"Expected a loadable model in {spec.source}, but loading failed: {error}") from None
            continue
        # The checkpoint says what it is (a Hub id may name a CLIP or SigLIP model, not only DINOv2).
        found = spec_from_hf_config(config.to_dict(), name=spec.name, source=spec.source)
        try:
            model = _model_class(found.family).from_pretrained(
                spec.source, revision=spec.revision, local_files_only=local_only, attn_implementation="sdpa",
                use_safetensors=True)  # never a pickled .bin
        except (OSError, ValueError) as error:
            if spec.local:
                raise EmbeddingError(f"Expected a loadable model in {spec.source}, but loading failed: {error}") from None
            continue
        if found.family == spec.family == "dinov2":
            found = replace(spec, depth=found.depth, widths=found.widths, patch_size=found.patch_size,
                            registers=found.registers)
        elif found.family != spec.family or not spec.arch:  # a Hub id: the checkpoint's own spec
            found = replace(found, revision=spec.revision, local=spec.local)
        else:
            found = spec
        return model.eval(), found, PRETRAINED
    if allow_random and spec.arch:
        return _seeded(spec).eval(), spec, RANDOM
    raise _missing(spec, f"Hugging Face {spec.source}")


def _load_convnext(spec: BackboneSpec, allow_random: bool):
    import timm
    from huggingface_hub import try_to_load_from_cache

    architecture = spec.source.split(".")[0]
    cached = try_to_load_from_cache(f"timm/{spec.source}", "model.safetensors", revision=spec.revision)
    if isinstance(cached, str):
        model = timm.create_model(architecture, pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay={"file": cached})
        return model.eval(), spec, PRETRAINED
    if hub_reachable():
        model = timm.create_model(spec.source, pretrained=True, num_classes=0)
        return model.eval(), spec, PRETRAINED
    if allow_random:
        return _seeded(spec).eval(), spec, RANDOM
    raise _missing(spec, f"timm {spec.source}")


def build_architecture(spec: BackboneSpec, seed: int = 0) -> nn.Module:
    """The architecture of ``spec`` with seeded random weights, to load saved weights into."""
    return _seeded(spec, seed)


def _seeded(spec: BackboneSpec, seed: int = 0) -> nn.Module:
    """The architecture with weights drawn from a fixed seed (the global RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.family == "convnext":
            from timm.models.convnext import ConvNeXt

            return ConvNeXt(depths=spec.arch["depths"], dims=spec.arch["dims"], num_classes=0)
        if spec.family == "clip":
            from transformers import CLIPVisionConfig, CLIPVisionModel

            return CLIPVisionModel(CLIPVisionConfig(**spec.arch))
        if spec.family == "siglip":
            from transformers import SiglipVisionConfig, SiglipVisionModel

            return SiglipVisionModel(SiglipVisionConfig(**spec.arch))
        from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        if spec.registers:
            return Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**spec.arch))
        return Dinov2Model(Dinov2Config(**spec.arch))
