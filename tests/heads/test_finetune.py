"""ConvNeXt fine-tuning on CPU with test-tiny-convnext: a few steps, resumable, usable by detect."""

from __future__ import annotations

import json

import pytest
import torch

from synthwatch.heads.network_kinds import NetworkOptions
from synthwatch.heads.network_train import ImageItem, train_network
from synthwatch.store.training_data import catalog_images
from synthwatch.store.layout import StoreLayout

TINY = ("--head", "convnext", "--backbone", "test-tiny-convnext", "--steps", "4", "--batch-size", "8",
        "--n-boot", "50")


def test_fine_tuned_head_is_registered_measured_and_detects(cli, proxy_store):
    store, corpus = proxy_store
    code, out, err = cli("--store", store, "train", *TINY, "--holdout", "ae-noise", "--json")
    assert code == (3 if out["decision"] == "rejected" else 0), err  # 3: the gate rejected it
    assert out["training"]["steps"] == 4 and out["training"]["device"] == "cpu"
    assert out["metrics"]["per_generator"]["ae-noise"]["held_out"] is True
    record = json.loads((store / "heads" / out["version"] / "record.json").read_text())
    assert record["kind"] == "convnext-finetune" and set(record["files"]) == {"network.safetensors"}
    assert not (store / "finetune").exists() or not any((store / "finetune").iterdir())  # checkpoints cleaned up
    image = next((corpus.out / "synthetic" / "ae-noise").rglob("*.png"))
    code, found, err = cli("--store", store, "detect", image, "--head", out["version"], "-k", "2", "--json")
    assert code == 0, err
    result = found["results"][0]
    assert 0 <= result["score"] <= 1 and result["head_version"] == out["version"]
    assert result["attribution"]["generator"] is None and len(result["neighbors"]) == 2
    code, evaluated, _ = cli("--store", store, "evaluate", "--head", out["version"], "--n-boot", "50", "--json")
    assert code == 0 and evaluated["threshold"] == out["threshold"]


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_uninterrupted_one_does(proxy_store, tmp_path):
    store, _ = proxy_store
    table = catalog_images(StoreLayout(store))
    items = [ImageItem(i, p, int(g != "")) for i, g, p in zip(table.column("image_id").to_pylist(),
                                                             table.column("generator").to_pylist(),
                                                             table.column("path").to_pylist())][::4]
    options = NetworkOptions(head="convnext", backbone="test-tiny-convnext", steps=6, batch_size=4, checkpoint_every=3)

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
