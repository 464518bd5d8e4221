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


def test_demo_runs_two_cycles_gates_looks_up_and_reports(small, cache, cli, tmp_path, monkeypatch, prefect_server):
    monkeypatch.setenv("SYNTHWATCH_CACHE", str(cache.parent))
    store = tmp_path / "store"
    code, out, err = cli("--store", store, "demo", "--data", tmp_path / "data", "--backbone", "test-tiny-dinov2",
                         "--json")
    assert code == 0, err
    first, second = out["cycles"]
    assert first["new_generators"] == ["ae-bilinear", "ae-nearest", "ae-tconv"] and first["decision"] == "promoted"
    assert second["new_generators"] == ["ae-pixelshuffle"] and second["retrained"]
    assert second["decision"] in ("promoted", "rejected") and second["reasons"] and second["drift"]["checked"]
    assert out["lookup"]["neighbors"] and all(n["label"] == "synthetic" for n in out["lookup"]["neighbors"])
    assert Path(out["report"]).read_text().count("<svg") >= 2
    assert "seeded random weights" in err  # said loudly
    code, again, _ = cli("--store", store, "run", "--json")
    assert code == 0 and (again["ingested"], again["retrained"], again["decision"]) == (0, False, "none")


def test_the_demo_without_weights_falls_back_to_random_ones_and_says_so(tmp_path):
    import json
    import os
    import subprocess
    import sys

    # A fresh process, so the Hugging Face libraries read this empty cache: what `make demo` meets
    # on a fresh machine, whatever this machine has cached.
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty-hf-cache"), "HF_HUB_OFFLINE": "1"}
    script = ("import json, sys\nfrom synthwatch.demo import RANDOM_WEIGHTS_GATE, demo_weights\n"
              "said = []\nresult = demo_weights('dinov2-small', said.append)\n"
              "print(json.dumps({'result': list(result), 'random_gate': RANDOM_WEIGHTS_GATE, 'said': said}))")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["result"] == [False, True, out["random_gate"]]
    notice = "\n".join(out["said"])
    assert "NO PRETRAINED WEIGHTS for dinov2-small" in notice and "NOT meaningful" in notice
    assert "--backbone DIR" in notice
