"""The proxy corpus: layout, manifest, determinism, distinct generators, clean ingestion."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from synthwatch.corpus import build_corpus
from synthwatch.corpus.build import CorpusSize
from synthwatch.demo import FIRST_GENERATORS, NEW_GENERATOR

TINY = CorpusSize(side=64, real=18, fakes_per_generator=4, train_steps=5)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """Laid out like the default: ``$SYNTHWATCH_CACHE/corpus``."""
    return tmp_path_factory.mktemp("cache-base") / "corpus"


@pytest.fixture(scope="module")
def small(tmp_path_factory, cache):
    """The `small` corpus, built once for this module (trains every generator)."""
    out = tmp_path_factory.mktemp("corpus") / "small"
    return build_corpus(out, seed=0, size="small", cache_dir=cache)


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_manifest_agree_with_the_files(small):
    out = small.out
    assert small.real == 120 and len(small.synthetic) >= 5
    assert all(count == 40 for count in small.synthetic.values())
    with open(small.manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["path"] for row in rows} == set(_digests(out)) - {"manifest.csv", ".synthwatch-corpus"}
    for row in rows:
        parts = row["path"].split("/")
        if row["label"] == "real":
            assert parts[0] == "real" and row["generator"] == "" and row["source"] == parts[1]
        else:
            assert parts[:2] == ["synthetic", row["generator"]] and row["source"] == parts[2]
    suffixes = {g: {Path(r["path"]).suffix for r in rows if r["generator"] == g} for g in small.synthetic}
    assert suffixes["ae-tconv"] == {".png", ".jpg"}  # some fakes are JPEG, as real-world fakes often are
    assert suffixes["ae-nearest"] == {".png"}
    sizes = {Image.open(out / rows[0]["path"]).size, Image.open(out / rows[-1]["path"]).size}
    assert sizes == {(96, 96)}


def test_cli_contract_and_cached_rebuild_is_byte_identical(small, cache, cli, tmp_path):
    code, out, _ = cli("corpus", "build", tmp_path / "again", "--seed", "0", "--cache", cache, "--json")
    assert code == 0
    assert out["real"] == 120 and out["synthetic"] == small.synthetic
    assert Path(out["manifest"]) == tmp_path / "again" / "manifest.csv"
    assert sorted(out["cached"]) == sorted(small.synthetic) and out["trained"] == []
    assert _digests(tmp_path / "again") == _digests(small.out)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = build_corpus(tmp_path / "a", seed=3, size=TINY, cache_dir=tmp_path / "cache-a")
    second = build_corpus(tmp_path / "b", seed=3, size=TINY, cache_dir=tmp_path / "cache-b")
    other = build_corpus(tmp_path / "c", seed=4, size=TINY, cache_dir=tmp_path / "cache-a")
    assert first.trained == second.trained == other.trained  # all trained from scratch
    assert _digests(first.out) == _digests(second.out)
    assert _digests(first.out) != _digests(other.out)


def test_rebuild_replaces_a_corpus_but_refuses_other_folders(tmp_path, cli):
    build_corpus(tmp_path / "c", seed=1, size=TINY, cache_dir=tmp_path / "cache")
    build_corpus(tmp_path / "c", seed=1, size=TINY, cache_dir=tmp_path / "cache")
    (tmp_path / "c" / "manifest.csv").unlink()  # what a build killed before its last write leaves
    build_corpus(tmp_path / "c", seed=1, size=TINY, cache_dir=tmp_path / "cache")
    assert (tmp_path / "c" / "manifest.csv").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    code, _, err = cli("corpus", "build", tmp_path / "mine", "--json")
    assert code == 1 and "holds thesis.tex" in err
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def _high_frequency_spectrum(path: Path) -> np.ndarray:
    """Log power spectrum of the image minus its blur, pooled 4 x 4: (576,) for 96 px."""
    image = Image.open(path).convert("L")
    residual = np.asarray(image, float) - np.asarray(image.filter(ImageFilter.GaussianBlur(2)), float)
    power = np.log(np.abs(np.fft.fft2(residual)) ** 2 + 1e-6)
    side = power.shape[0] // 4
    return power.reshape(side, 4, side, 4).mean(axis=(1, 3)).ravel()


def test_generators_leave_distinguishable_spectra(small):
    names = sorted(small.synthetic)
    features, labels = [], []
    for name in names:
        for path in sorted((small.out / "synthetic" / name).rglob("*.png")):
            features.append(_high_frequency_spectrum(path))
            labels.append(name)
    features, labels = np.stack(features), np.array(labels)
    fit = np.arange(len(labels)) % 2 == 0
    centroids = np.stack([features[fit & (labels == name)].mean(axis=0) for name in names])
    distances = ((features[~fit][:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    predicted = np.array(names)[distances.argmin(axis=1)]
    accuracy = (predicted == labels[~fit]).mean()
    # Chance is 1/6: a nearest-centroid rule on spectra alone tells the generators apart.
    assert accuracy >= 0.5, f"held-out accuracy {accuracy:.2f}"


def test_corpus_ingests_cleanly_by_folder_and_by_manifest(small, cli, tmp_path):
    expected = small.real + sum(small.synthetic.values())
    for store, path in [(tmp_path / "s1", small.out), (tmp_path / "s2", small.manifest)]:
        code, out, _ = cli("--store", store, "ingest", path, "--json")
        assert code == 0
        assert (out["ingested"], out["rejected"], out["conflicts"], out["duplicates"]) == (expected, 0, 0, 0)
        assert sorted(out["new_generators"]) == sorted(small.synthetic)
    _, one, _ = cli("--store", tmp_path / "s1", "status", "--json")
    _, two, _ = cli("--store", tmp_path / "s2", "status", "--json")
    assert one["images"] == two["images"] == {"real": 120, "synthetic": expected - 120}
    assert one["generators"] == two["generators"] == small.synthetic


def test_the_demo_detects_offline_at_the_gates_default_floors(small, cache, cli, tmp_path, monkeypatch, prefect_server):
    from synthwatch.heads.gate import GatePolicy

    monkeypatch.setenv("SYNTHWATCH_CACHE", str(cache.parent))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no DINOv2 weights: the demo's offline path, as on a fresh machine
    store = tmp_path / "store"
    code, out, err = cli("--store", store, "demo", "--data", tmp_path / "data", "--json")
    assert code == 0, err
    defaults = GatePolicy()
    assert out["backbone"]["name"] == "spectrum" and out["backbone"]["meaningful"]
    assert (out["backbone"]["gate"]["auroc_floor"], out["backbone"]["gate"]["tpr_floor"]) == \
        (defaults.auroc_floor, defaults.tpr_floor) and defaults.auroc_floor > 0 and defaults.tpr_floor > 0
    assert out["backbone_id"].startswith("spectrum@")
    first, second = out["cycles"]
    assert first["new_generators"] == ["ae-bilinear", "ae-nearest", "ae-tconv"] and first["decision"] == "promoted"
    assert second["new_generators"] == ["ae-pixelshuffle"] and second["retrained"] and second["drift"]["checked"]
    assert second["decision"] == "promoted", second["reasons"]
    assert [curve["generator"] for curve in second["learning_curves"]] == ["ae-pixelshuffle"]
    assert f"demo: cycle 2: {second['learning_curve_lines'][0]}" in err and "ae-pixelshuffle: caught" in err
    transfer = [c for c in second["checks"] if c["name"].startswith("backward_transfer")]
    assert len(transfer) == 3 and all(c["interval"][0] <= c["value"] <= c["interval"][1] for c in transfer)
    assert out["lookup"]["neighbors"] and all(n["label"] == "synthetic" for n in out["lookup"]["neighbors"])
    report = Path(out["report"]).read_text()
    assert "Held-out generators: ROC curves" in report and "No held-out generator" not in report
    assert "How many fakes of a new generator it takes" in report
    assert "training-free spectrum" in err
    code, logo, _ = cli("--store", store, "evaluate", "--protocol", "logo", "--json")
    assert code == 0 and set(logo["per_generator"]) == {*FIRST_GENERATORS, NEW_GENERATOR}
    assert all(m["auroc_ci"][0] >= 0.85 for m in logo["per_generator"].values()), logo["per_generator"]
    code, again, _ = cli("--store", store, "run", "--json")
    assert code == 0 and (again["ingested"], again["retrained"], again["decision"]) == (0, False, "none")


def test_the_demo_says_which_part_is_random_and_keeps_floors_only_where_something_is_meaningful(tmp_path):
    import json
    import os
    import subprocess
    import sys

    # A fresh process, so the Hugging Face libraries read this empty cache: what `make demo` meets
    # on a fresh machine, whatever this machine has cached.
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty-hf-cache"), "HF_HUB_OFFLINE": "1"}
    script = ("import json\nfrom synthwatch.demo import demo_backbone\nout = {}\n"
              "for name in (None, 'dinov2-small', 'dinov2-small+spectrum'):\n"
              "    said = []\n    out[str(name)] = {**demo_backbone(name, said.append).as_dict(), 'said': '\\n'.join(said)}\n"
              "print(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    default, alone, fused = out["None"], out["dinov2-small"], out["dinov2-small+spectrum"]
    assert default["name"] == "spectrum" and default["random_parts"] == [] and default["gate"]["auroc_floor"] > 0
    assert "RANDOM" not in default["said"] and "dinov2-small+spectrum" in default["said"]
    assert alone["allow_random_weights"] and not alone["meaningful"] and alone["gate"]["auroc_floor"] == 0
    assert "RANDOM WEIGHTS for dinov2-small" in alone["said"] and "NOT meaningful" in alone["said"]
    assert "--backbone DIR" in alone["said"]
    assert fused["random_parts"] == ["dinov2-small"] and fused["meaningful"] and fused["gate"]["auroc_floor"] > 0
    assert "RANDOM WEIGHTS for dinov2-small" in fused["said"] and "that part carries no information" in fused["said"]
