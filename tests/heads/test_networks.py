"""Image network heads (the npr residual CNN trained from scratch, the fine-tuned ConvNeXt): registered,
gated, scored and evaluated like any head; resumable when killed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from synthwatch.heads.network_kinds import NETWORK_HEADS, NetworkOptions, kind_for_head
from synthwatch.heads.network_train import ImageItem, score_images, train_network
from synthwatch.heads.networks import ResidualCNN, _centre_tiles, npr_residual, scoring_pixels
from synthwatch.heads.scorers import NetworkScorer, load_scorer
from synthwatch.store.layout import StoreLayout
from synthwatch.store.training_data import catalog_images



def test_the_residual_erases_nearest_upsampling_and_the_network_takes_any_even_size():
    coarse = torch.rand(2, 3, 8, 8)
    upsampled = coarse.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.count_nonzero(npr_residual(upsampled)) == 0
    assert torch.count_nonzero(npr_residual(torch.rand(2, 3, 16, 16))) > 0
    network = ResidualCNN(width=4).eval()
    for side in (16, 64, 98):
        assert network(torch.rand(3, 3, side, side)).shape == (3,)


def test_an_image_is_scored_on_native_resolution_tiles_around_its_centre():
    kind = kind_for_head("npr")
    large = Image.new("RGB", (1100, 700))
    tiles = scoring_pixels(kind, large, None)
    assert tiles.shape == (kind.max_tiles, 3, kind.tile, kind.tile)  # 2 x 4 fit; the 4 nearest the centre
    assert scoring_pixels(kind, Image.new("RGB", (90, 61)), None).shape == (1, 3, 60, 60)  # seen whole
    marked = np.zeros((512, 512, 3), np.uint8)
    marked[256:, 256:] = 255  # the bottom-right quadrant
    quadrants = _centre_tiles(Image.fromarray(marked), 256, 4)
    assert [int(np.asarray(q).mean() > 0) for q in quadrants] == [0, 0, 0, 1]  # row by row, nothing resampled


NETWORK_HEADS_TINY = {
    "npr": ("--head", "npr", "--steps", "4", "--batch-size", "8", "--n-boot", "50"),
    "convnext": ("--head", "convnext", "--backbone", "test-tiny-convnext", "--steps", "4", "--batch-size", "8",
                 "--n-boot", "50"),
}
RECORD_KIND = {"npr": "npr", "convnext": "convnext-finetune"}


@pytest.mark.parametrize("head", sorted(NETWORK_HEADS_TINY))
def test_a_network_head_is_registered_gated_scored_and_measured_on_what_it_never_saw(cli, proxy_store, head):
    store, corpus = proxy_store
    code, out, err = cli("--store", store, "train", *NETWORK_HEADS_TINY[head], "--holdout", "ae-noise", "--json")
    assert code == (3 if out["decision"] == "rejected" else 0), err  # 3: the gate rejected it
    assert out["head"] == head and out["backbone_id"] is None
    assert out["training"]["steps"] == 4 and out["training"]["device"] == "cpu"
    assert out["metrics"]["per_generator"]["ae-noise"]["held_out"] is True
    assert set(out["metrics"]["robustness"]["ae-noise"]) == {"jpeg", "downscale", "jpeg75"}
    record = json.loads((store / "heads" / out["version"] / "record.json").read_text())
    assert record["kind"] == RECORD_KIND[head] and set(record["files"]) == {"network.safetensors"}
    assert record["network"]["options"]["steps"] == 4
    assert not (store / "finetune").exists() or not any((store / "finetune").iterdir())  # checkpoints cleaned up
    image = next((corpus.out / "synthetic" / "ae-noise").rglob("*.png"))
    code, found, err = cli("--store", store, "detect", image, "--head", out["version"], "-k", "2", "--json")
    assert code == 0, err
    result = found["results"][0]
    assert 0 <= result["score"] <= 1 and result["head_version"] == out["version"]
    assert result["attribution"]["generator"] is None and len(result["neighbors"]) == 2
    code, evaluated, _ = cli("--store", store, "evaluate", "--head", out["version"], "--n-boot", "50", "--json")
    assert code == 0 and evaluated["threshold"] == out["threshold"]


def test_an_npr_head_is_evaluated_leaving_each_generator_out_one_network_per_fold(cli, proxy_store):
    store, _ = proxy_store
    code, out, err = cli("--store", store, "train", *NETWORK_HEADS_TINY["npr"], "--no-robustness", "--json")
    assert code in (0, 3), err
    assert out["head"] == "npr" and record_tile(store, out["version"]) == 256
    code, logo, err = cli("--store", store, "evaluate", "--head", out["version"], "--protocol", "logo",
                          "--n-boot", "50", "--no-robustness", "--json")
    assert code == 0, err
    assert logo["protocol"] == "logo" and logo["threshold_source"] == "head"
    per_generator = logo["per_generator"]
    assert set(per_generator) | set(logo["skipped"]) == {"ae-bilinear", "ae-f8-tconv", "ae-nearest", "ae-noise",
                                                         "ae-pixelshuffle", "ae-tconv"}
    assert all(entry["held_out"] for entry in per_generator.values()) and per_generator
    assert not any((store / "finetune").iterdir())  # each fold's checkpoints removed once measured


def record_tile(store, version: str) -> int:
    return json.loads((store / "heads" / version / "record.json").read_text())["network"]["tile"]


def test_a_saved_npr_head_scores_as_the_trained_network_did(cli, proxy_store, tmp_path):
    store, corpus = proxy_store
    layout = StoreLayout(store)
    code, out, err = cli("--store", store, "train", *NETWORK_HEADS_TINY["npr"], "--holdout", "ae-noise",
                         "--no-robustness", "--json")
    assert code in (0, 3), err
    images = [Image.open(path).convert("RGB") for path in sorted((corpus.out / "synthetic").rglob("*.png"))[:6]]
    loaded = load_scorer(layout, out["version"])
    assert isinstance(loaded, NetworkScorer)
    items = _items(layout)
    retrained = train_network(items, NetworkOptions(head="npr", steps=4, batch_size=8),
                              checkpoint_dir=tmp_path / "again")
    scores = loaded.score_images(images, {})[0]
    np.testing.assert_allclose(scores, score_images(retrained, images), rtol=1e-5)  # same seed, same draws
    assert len(set(np.round(scores, 6))) > 1


@pytest.mark.parametrize("options", [NetworkOptions(head="npr", steps=6, batch_size=4, checkpoint_every=3),
                                     NetworkOptions(head="convnext", backbone="test-tiny-convnext", steps=6,
                                                    batch_size=4, checkpoint_every=3)], ids=["npr", "convnext"])
def test_a_killed_run_of_every_network_kind_resumes_and_ends_where_an_uninterrupted_one_does(proxy_store, tmp_path,
                                                                                           options):
    store, _ = proxy_store
    items = _items(StoreLayout(store))[::3]

    class Killed(Exception):
        pass

    def die_after_step_4(step, loss):
        if step == 4:
            raise Killed

    with pytest.raises(Killed):
        train_network(items, options, checkpoint_dir=tmp_path / "run", progress=die_after_step_4)
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["step"] == 3
    resumed = train_network(items, options, checkpoint_dir=tmp_path / "run")
    assert resumed.info["resumed_from"] == 3 and resumed.info["steps"] == 6
    straight = train_network(items, options, checkpoint_dir=tmp_path / "straight")
    for (name, a), (_, b) in zip(resumed.network.state_dict().items(), straight.network.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_network_flags_are_refused_with_an_embedding_head_and_a_backbone_with_npr(cli, proxy_store):
    store, _ = proxy_store
    code, _, err = cli("--store", store, "train", "--head", "logreg", "--steps", "10", "--json")
    assert code == 1 and "--steps only with an image network head" in err
    code, _, err = cli("--store", store, "train", *NETWORK_HEADS_TINY["npr"], "--backbone", "spectrum", "--json")
    assert code == 1 and "no backbone with the npr head" in err
    assert "npr" in NETWORK_HEADS


def _items(layout: StoreLayout) -> list[ImageItem]:
    """The training-split images the CLI trained on with ae-noise held out, in catalog order."""
    from synthwatch.store.catalog import Catalog

    table = catalog_images(layout)
    splits = Catalog(layout).group_splits()
    return [ImageItem(i, p, int(g != "")) for i, g, s, p in zip(
        table.column("image_id").to_pylist(), table.column("generator").to_pylist(),
        table.column("source").to_pylist(), table.column("path").to_pylist())
        if splits[s] == "train" and g != "ae-noise"]
