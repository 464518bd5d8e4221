"""Real generators' output (../shared/data/realworld-dev: Stable Diffusion 1.x / 2.x and real photos):
the offline default recipe through ingest, embed, train, the gate, detect and the service, and
benchmarks/realworld.py's contract. Skipped, saying so, where ../shared is not beside the checkout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from synthwatch.heads.config import config_path, load_config
from synthwatch.heads.recipes import OFFLINE_RECIPE
from tests.synthwatch.serving import TOKEN, running_service

REPO = Path(__file__).resolve().parents[2]
DEV = REPO.parent / "shared" / "data" / "realworld-dev"
NOTICE = "no pretrained dinov2-small weights here: this store detects with the weight-free"

pytestmark = pytest.mark.skipif(not (DEV / "manifest.csv").is_file(),
                                reason=f"SKIPPED: the real-world set is not at {DEV} (put ../shared beside the checkout)")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No Hub and an empty Hugging Face cache: a machine without pretrained weights."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def test_without_weights_a_new_store_detects_real_generators_with_the_offline_recipe(cli, offline, tmp_path, capsys):
    store = tmp_path / "store"
    manifest = DEV / "manifest.csv"  # all 106: enough held-out real photos to measure on
    code, ingested, err = cli("--store", store, "ingest", manifest, "--json")
    assert code == 0, err
    assert ingested["new_generators"] == ["sd-1.x", "sd-2.x-512"] and ingested["rejected"] == 0
    assert err.count(NOTICE) == 1  # said once, in one line, by the first writing command
    config = load_config(store)
    assert (config.backbone, config.head, config.views, config.patches) == (
        OFFLINE_RECIPE.backbone, OFFLINE_RECIPE.head, OFFLINE_RECIPE.views, OFFLINE_RECIPE.patches)

    code, embedded, err = cli("--store", store, "embed", "--json")  # no flags: the offline default
    assert code == 0, err
    assert embedded["backbone_id"].startswith(f"{OFFLINE_RECIPE.backbone}@") and embedded["failed"] == 0
    assert embedded["embedded"] == 106 * (1 + OFFLINE_RECIPE.views + OFFLINE_RECIPE.patches)  # and the recipe's views
    code, trained, err = cli("--store", store, "train", "--json")
    assert code in (0, 3), err  # 3: the gate rejected it; the version is printed either way
    assert trained["version"] and trained["head"] == OFFLINE_RECIPE.head
    assert trained["backbone_id"] == embedded["backbone_id"]
    assert set(trained["metrics"]["per_generator"]) == {"sd-1.x", "sd-2.x-512"}
    assert all(m["held_out"] for m in trained["metrics"]["per_generator"].values())  # each held out in turn
    assert trained["decision"] in ("promoted", "rejected") and trained["checks"]
    if trained["decision"] == "rejected":
        code, _, err = cli("--store", store, "models", "promote", trained["version"], "--force", "--reason",
                           "the test serves the real-world head whatever the gate said", "--json")
        assert code == 0, err

    fake, photo = DEV / "synthetic" / "sd-2.x-512", DEV / "real"
    images = [next(fake.glob("*.png")), next(photo.glob("*.png"))]
    code, found, err = cli("--store", store, "detect", *images, "-k", "2", "--json")
    assert code == 0, err
    assert [r["head_version"] for r in found["results"]] == [trained["version"]] * 2
    assert all(0 <= r["score"] <= 1 and len(r["neighbors"]) == 2 for r in found["results"])
    with running_service(store) as base:
        answer = httpx.post(f"{base}/detect", params={"k": 2}, headers={"Authorization": f"Bearer {TOKEN}"},
                            files={"file": ("sd.png", images[0].read_bytes(), "image/png")}, timeout=120)
        assert answer.status_code == 200, answer.text
        served = answer.json()["results"][0]
        assert served["head_version"] == trained["version"]
        assert served["score"] == pytest.approx(found["results"][0]["score"], abs=1e-6)  # the same head, the same answer


def test_init_records_the_offline_recipe_without_weights_and_nothing_with_them(cli, offline, tmp_path, monkeypatch):
    code, out, err = cli("--store", tmp_path / "bare", "init", "--json")
    assert code == 0, err
    assert (out["settings"]["backbone"], out["settings"]["head"]) == (OFFLINE_RECIPE.backbone, OFFLINE_RECIPE.head)
    assert NOTICE in err
    cache = tmp_path / "hf-home" / "hub" / "models--facebook--dinov2-small"  # DINOv2-small's weights, cached
    (cache / "refs").mkdir(parents=True)
    (cache / "refs" / "main").write_text("0" * 40)
    (cache / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (cache / "snapshots" / ("0" * 40) / "model.safetensors").write_bytes(b"weights")
    code, out, err = cli("--store", tmp_path / "weighted", "init", "--json")
    assert code == 0, err
    assert out["settings"]["backbone"] is None and out["settings"]["head"] == "logreg"  # DINOv2 stays the default
    assert NOTICE not in err and "backbone = " not in config_path(tmp_path / "weighted").read_text().replace(
        "# backbone =", "")


def test_the_realworld_benchmark_prints_a_row_per_recipe_generator_and_protocol(tmp_path):
    manifest = DEV / "manifest.csv"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "realworld.py"), "--manifest", str(manifest),
                           "--recipes", "srm+logreg", "--protocols", "clean,controlled", "--proxy-recipes", "",
                           "--n-boot", "50", "--json"], capture_output=True, text=True, timeout=600,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    rows = payload["rows"]
    assert {(r["recipe"], r["generator"], r["protocol"]) for r in rows} == {
        ("srm+logreg", generator, protocol) for generator in ("sd-1.x", "sd-2.x-512")
        for protocol in ("clean", "clean+jpeg75", "clean+0.5x", "controlled", "controlled+jpeg75", "controlled+0.5x")}
    for row in rows:
        assert {"auroc", "auroc_ci", "tpr_at_1pct_fpr", "fpr_at_threshold"} <= set(row)
        assert 0 <= row["auroc_ci"][0] <= row["auroc"] <= row["auroc_ci"][1] <= 1
    assert payload["images"]["synthetic"] and payload["images"]["real"]
