"""The forensic spectrum backbone and fused backbones: contract over the registry's names and
fused ids, and a fused id flowing through embed, index, train, detect, similar and the service."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch

from synthwatch.embeddings.backbone import backbone_from_description, create_backbone
from synthwatch.embeddings.errors import EmbeddingError
from synthwatch.embeddings.registry import REGISTRY
from tests.synthwatch.serving import TOKEN, running_service

FUSED = "test-tiny-dinov2+spectrum"
CHEAP = sorted(name for name in REGISTRY if name.startswith("test-tiny") or REGISTRY[name].weightless)


def _crops(count: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    pixels = torch.from_numpy(rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8))
    sizes = torch.tensor([[size, size], [size // 2, size], [size, size // 3]][:count] + [[size, size]] * (count - 3))
    return pixels, sizes


@pytest.mark.parametrize("name", CHEAP + [f"{a}+spectrum" for a in CHEAP if a != "spectrum"])
def test_every_cheap_name_and_its_fusion_with_spectrum_keeps_the_contract(name):
    backbone = create_backbone(name)
    pixels, sizes = _crops(4, backbone.spec.input_size)
    vectors = backbone.embed_crops(pixels, sizes).cpu()
    assert vectors.shape == (4, backbone.dim) and torch.isfinite(vectors).all()
    assert torch.allclose(vectors.norm(dim=1), torch.ones(4), atol=1e-5)
    again = backbone_from_description(backbone.describe()).embed_crops(pixels, sizes).cpu()
    assert torch.equal(vectors, again)  # deterministic, and rebuilt from its description alike
    if "+" in name:
        parts = backbone.parts
        assert backbone.backbone_id == "+".join(part.backbone_id for part in parts)  # names every part
        offset = 0
        for part in parts:  # each part's share is its own unit vector, scaled by 1/sqrt(parts)
            share = vectors[:, offset:offset + part.dim] * np.sqrt(len(parts))
            assert torch.allclose(share.norm(dim=1), torch.ones(4), atol=1e-5)
            assert torch.allclose(share, part.embed_crops(pixels, sizes).cpu(), atol=1e-5)
            offset += part.dim


def test_spectrum_needs_no_weights_and_reads_only_the_valid_region():
    spectrum = create_backbone("spectrum")
    assert spectrum.weights.startswith("none") and spectrum.random_parts == []
    assert spectrum.backbone_id == "spectrum@v1.crop224.F2-3" and spectrum.dim == 64
    pixels, _ = _crops(1, 224, seed=3)
    padded = torch.zeros_like(pixels)
    padded[:, :100, :80] = pixels[:, :100, :80]
    noisy = padded.clone()
    noisy[:, 100:, :] = 255  # whatever lies outside the valid region is not image
    sizes = torch.tensor([[100, 80]])
    assert torch.equal(spectrum.embed_crops(padded, sizes), spectrum.embed_crops(noisy, sizes))
    assert create_backbone("spectrum", layers=(1, 2, 3)).dim == 96


def test_fused_parts_must_agree_on_size_and_mode():
    with pytest.raises(EmbeddingError, match="one input size"):
        create_backbone("test-tiny-dinov2+test-tiny-convnext+convnext-tiny", allow_random_weights=True)
    with pytest.raises(EmbeddingError, match="no --layers"):
        create_backbone(FUSED, layers=(1,))


def test_a_fused_id_flows_through_embed_index_train_detect_similar_and_the_service(cli, proxy_store, tmp_path):
    store, corpus = proxy_store
    code, embedded, err = cli("--store", store, "embed", "--backbone", FUSED, "--workers", "0", "--json")
    assert code == 0, err
    backbone_id = embedded["backbone_id"]
    assert backbone_id == "test-tiny-dinov2@main.crop32.L4+spectrum@v1.crop32.F2-3" and embedded["embedded"] == 168
    code, indexed, _ = cli("--store", store, "index", "--backbone", FUSED, "--json")
    assert code == 0 and indexed["backbone_id"] == backbone_id and indexed["ntotal"] == 168
    code, trained, err = cli("--store", store, "train", "--backbone", FUSED, "--auroc-floor", "0", "--tpr-floor", "0",
                             "--n-boot", "100", "--json")
    assert code == 0, err
    assert trained["backbone_id"] == backbone_id and trained["decision"] == "promoted"
    query = sorted((corpus.out / "synthetic" / "ae-tconv").rglob("*.png"))[0]
    code, detected, _ = cli("--store", store, "detect", query, "--json")
    assert code == 0
    result = detected["results"][0]
    assert result["head_version"] == trained["version"] and 0 <= result["score"] <= 1 and result["neighbors"]
    code, similar, _ = cli("--store", store, "similar", query, "-k", "1", "--json")
    assert code == 0 and similar["backbone_id"] == backbone_id  # the champion's backbone is the default
    assert similar["results"][0]["neighbors"][0]["score"] == pytest.approx(1.0, abs=1e-5)

    with running_service(store) as base:
        answer = httpx.post(f"{base}/detect", headers={"Authorization": f"Bearer {TOKEN}"},
                            files={"file": (query.name, query.read_bytes(), "image/png")}, timeout=60)
    assert answer.status_code == 200, answer.text
    served = answer.json()["results"][0]
    assert served["head_version"] == trained["version"] and served["score"] == pytest.approx(result["score"], abs=1e-6)


def test_a_fused_id_with_a_random_part_says_so_in_the_part():
    fused = create_backbone("dinov2-small+spectrum", allow_random_weights=True)
    assert fused.backbone_id == "dinov2-small@main.crop224.L12+random-weights+spectrum@v1.crop224.F2-3"
    assert fused.random_parts == ["dinov2-small"] and fused.dim == 768 + 64


def test_spectrum_keeps_unit_length_on_flat_images_and_one_pixel_sides():
    spectrum = create_backbone("spectrum")
    pixels = torch.full((3, 224, 224, 3), 128, dtype=torch.uint8)  # flat: no frequencies at all
    pixels[1:, :64, :64] = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    sizes = torch.tensor([[224, 224], [64, 1], [1, 64]])  # and crops one pixel high or wide
    vectors = spectrum.embed_crops(pixels, sizes)
    assert torch.isfinite(vectors).all() and torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)


def test_a_fused_name_with_an_empty_part_is_refused():
    with pytest.raises(EmbeddingError, match=r"both sides of each '\+', but got 'spectrum\+'"):
        create_backbone("spectrum+")


def test_no_images_embed_to_no_rows():
    from synthwatch.embeddings.query import embed_images

    assert embed_images(create_backbone("spectrum"), []).shape == (0, 64)
