"""Contract tests over every registry entry, plus weights loading and layer selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthwatch.embeddings.backbone import create_backbone
from synthwatch.embeddings.errors import EmbeddingError, WeightsUnavailable
from synthwatch.embeddings.registry import REGISTRY, resolve_spec
from synthwatch.embeddings.views import prepare
from PIL import Image

# Building these with random weights works offline but costs GBs and minutes on 2 cores;
# their entries are checked at the configuration level instead.
EXPENSIVE = {name for name in REGISTRY if "large" in name or "giant" in name or name.startswith(("clip-", "siglip-"))}


@pytest.fixture(autouse=True)
def offline_hub(tmp_path, monkeypatch):
    """No Hub and an empty cache, whatever machine the tests run on."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def _batch(size: int, count: int = 3, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal((count, 3, size, size)).astype(np.float32))


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - EXPENSIVE))
def test_contract(name):
    first = create_backbone(name, allow_random_weights=True)
    size = min(first.spec.input_size, 56)  # small inputs keep CI cheap; positions interpolate
    vectors = first.embed(_batch(size))
    assert vectors.shape == (3, first.dim) and vectors.dtype == torch.float32
    assert torch.isfinite(vectors).all()
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    again = create_backbone(name, allow_random_weights=True).embed(_batch(size))
    assert torch.equal(vectors, again)  # same weights, same input, same vector
    assert first.backbone_id.startswith(name)


@pytest.mark.parametrize("name", sorted(EXPENSIVE))
def test_expensive_entries_are_consistent(name):
    from transformers import CLIPVisionConfig, Dinov2Config, Dinov2WithRegistersConfig, SiglipVisionConfig

    spec = REGISTRY[name]
    config_class = {"clip": CLIPVisionConfig, "siglip": SiglipVisionConfig}.get(
        spec.family, Dinov2WithRegistersConfig if spec.registers else Dinov2Config)
    config = config_class(**spec.arch)
    assert (config.hidden_size, config.num_hidden_layers) == (spec.widths[0], spec.depth)
    assert (config.image_size, config.patch_size) == (spec.input_size if spec.family != "dinov2" else 518, spec.patch_size)
    tokens = 1 if spec.family == "siglip" else 2  # SigLIP has no class token: the mean of patch tokens only
    assert spec.embedding_dim((spec.depth,)) == tokens * config.hidden_size


def test_missing_weights_fail_fast_with_directions(online_loads):
    with pytest.raises(WeightsUnavailable, match=r"dinov2-small .*facebook/dinov2-small.*--backbone DIR"):
        create_backbone("dinov2-small")
    with pytest.raises(WeightsUnavailable, match=r"convnext-tiny .*timm convnext_tiny"):
        create_backbone("convnext-tiny")
    with pytest.raises(WeightsUnavailable, match=r"clip-vit-l14 .*openai/clip-vit-large-patch14.*--backbone DIR"):
        create_backbone("clip-vit-l14")
    with pytest.raises(WeightsUnavailable, match=r"siglip-so400m .*google/siglip-so400m-patch14-384"):
        create_backbone("siglip-so400m")
    assert online_loads == []  # never the libraries' retrying online path: the failure comes at once


def test_random_weights_are_never_silent_and_never_mix():
    backbone = create_backbone("dinov2-small", allow_random_weights=True)
    assert backbone.weights == "random"
    assert backbone.backbone_id.endswith("+random-weights")


def test_local_directory_of_a_saved_model(tmp_path):
    builtin = create_backbone("test-tiny-dinov2")
    builtin.model.save_pretrained(tmp_path / "my-dino")
    local = create_backbone(str(tmp_path / "my-dino"))
    assert local.weights == "pretrained" and local.spec.local
    assert local.dim == builtin.dim and local.backbone_id.startswith("local-my-dino-")
    pixels = _batch(32)
    assert torch.allclose(local.embed(pixels), builtin.embed(pixels), atol=1e-6)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_a_saved_vision_tower_loads_from_its_directory(family, tmp_path):
    builtin = create_backbone(f"test-tiny-{family}")
    builtin.model.save_pretrained(tmp_path / f"my-{family}")
    local = create_backbone(str(tmp_path / f"my-{family}"))
    assert local.weights == "pretrained" and local.spec.family == family and local.dim == builtin.dim
    pixels = _batch(32)
    assert torch.allclose(local.embed(pixels), builtin.embed(pixels), atol=1e-5)


def test_a_directory_without_a_model_is_refused(tmp_path):
    with pytest.raises(EmbeddingError, match="has no config.json"):
        create_backbone(str(tmp_path))


@pytest.mark.parametrize(
    "name, layers, dim, tag",
    [("test-tiny-dinov2", (2, 4), 2 * 32 * 2, "L2-4"),
     ("test-tiny-dinov2", (-1,), 64, "L4"),
     ("test-tiny-dinov2", (1, 2, 3, 4), 256, "L1-2-3-4"),
     ("test-tiny-convnext", (1, 3), 16 + 64, "S1-3"),
     ("test-tiny-convnext", (0,), 8, "S0")],
)
def test_layers_choose_and_concatenate(name, layers, dim, tag):
    backbone = create_backbone(name, layers=layers)
    assert backbone.dim == dim and backbone.backbone_id.endswith(tag)
    assert backbone.embed(_batch(32)).shape == (3, dim)


def test_intermediate_layers_differ_from_the_last():
    last = create_backbone("test-tiny-dinov2").embed(_batch(32))
    both = create_backbone("test-tiny-dinov2", layers=(2, 4)).embed(_batch(32))
    assert not torch.allclose(both[:, :64] / both[:, :64].norm(dim=1, keepdim=True), last, atol=1e-3)


@pytest.mark.parametrize("layers, message", [((5,), "blocks 1..4"), ((0,), "blocks 1..4"), ((2, 2), "distinct")])
def test_bad_layers_are_refused(layers, message):
    with pytest.raises(EmbeddingError, match=message):
        create_backbone("test-tiny-dinov2", layers=layers)


def test_unknown_backbone_name():
    with pytest.raises(EmbeddingError, match="Expected a backbone name"):
        resolve_spec("dinov3-mega")


def test_modes_prepare_differently_and_pad_small_images():
    spec = REGISTRY["test-tiny-dinov2"]
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8))
    cropped, _ = prepare(photo, spec, "crop")
    resized, _ = prepare(photo, spec, "resize")
    assert cropped.shape == resized.shape == (3, 32, 32)
    centre = np.asarray(photo, np.float32)[24:56, 44:76] / 255.0  # native pixels, no resampling
    expected = (centre - np.asarray(spec.mean)) / np.asarray(spec.std)
    assert np.allclose(cropped.transpose(1, 2, 0), expected, atol=1e-5)
    assert not np.allclose(cropped, resized)
    small, _ = prepare(photo.crop((0, 0, 20, 10)), spec, "crop")
    assert np.all(small[:, 10:, :] == 0) and np.all(small[:, :, 20:] == 0)  # padding is the mean
    assert np.any(small[:, :10, :20] != 0)


def test_mode_is_part_of_the_backbone_id():
    crop = create_backbone("test-tiny-dinov2", mode="crop").backbone_id
    resize = create_backbone("test-tiny-dinov2", mode="resize").backbone_id
    assert crop != resize and "crop32" in crop and "resize32" in resize


@pytest.mark.parametrize("name", ["test-tiny-dinov2", "test-tiny-convnext"])
def test_crops_normalised_by_the_backbone_give_the_vectors_of_prepared_pixels(name):
    """Workers send uint8 crops and the backbone normalises them (padding included) exactly as
    ``prepare`` does for a query image."""
    from synthwatch.embeddings.views import crop

    backbone = create_backbone(name)
    rng = np.random.default_rng(3)
    photos = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(50, 70), (20, 10), (32, 32)]]
    prepared = torch.from_numpy(np.stack([prepare(photo, backbone.spec, "crop")[0] for photo in photos]))
    crops = [crop(photo, backbone.spec, "crop") for photo in photos]
    pixels = torch.from_numpy(np.stack([pixels for pixels, _, _ in crops]))
    sizes = torch.tensor([size for _, size, _ in crops])
    assert sizes.tolist() == [[32, 32], [20, 10], [32, 32]]
    assert torch.allclose(backbone.embed_crops(pixels, sizes), backbone.embed(prepared), atol=1e-6)


def test_the_hub_probe_goes_where_the_hub_libraries_would(monkeypatch):
    """HF_ENDPOINT (a mirror) and HTTPS_PROXY are honoured, NO_PROXY exempts a host, so users
    behind a proxy or with a mirror are not told their weights are unreachable."""
    import socket

    from synthwatch.embeddings.loading import hub_address, hub_reachable

    for name in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert hub_address() == ("huggingface.co", 443)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with listener:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        assert hub_address() == ("127.0.0.1", port) and hub_reachable(timeout_s=2)
        monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.internal")
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        assert hub_address() == ("127.0.0.1", port) and hub_reachable(timeout_s=2)
        monkeypatch.setenv("NO_PROXY", "hub.example.internal")
        assert hub_address() == ("hub.example.internal", 443)
