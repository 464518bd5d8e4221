"""train, evaluate, detect end to end on a small proxy corpus, as a user runs them."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

GENERATORS = {"ae-tconv", "ae-nearest", "ae-bilinear", "ae-pixelshuffle", "ae-f8-tconv", "ae-noise"}
FAST = ("--n-boot", "200")
NO_FLOORS = ("--auroc-floor", "0", "--tpr-floor", "0")  # a tiny random backbone cannot clear the default floors


def test_train_evaluates_every_generator_held_out_and_registers_a_champion(cli, proxy_store):
    store, _ = proxy_store
    code, out, err = cli("--store", store, "train", *FAST, *NO_FLOORS, "--json")
    assert code == (3 if out["decision"] == "rejected" else 0), err  # 3: the gate rejected it
    assert out["version"] == out["champion"] and out["decision"] == "promoted"  # the first head, judged on the gate
    per = out["metrics"]["per_generator"]
    assert set(per) == GENERATORS and all(m["held_out"] for m in per.values())
    for m in per.values():
        assert 0 <= m["auroc_ci"][0] <= m["auroc"] <= m["auroc_ci"][1] <= 1
        assert m["n_real"] >= 5 and m["n_fake"] >= 5
    assert set(out["metrics"]["robustness"]["ae-tconv"]) == {"jpeg", "downscale", "jpeg75"}
    assert 0 <= out["threshold"] <= 1 and out["target_fpr"] == 0.01
    assert (out["metrics"]["threshold"], out["metrics"]["threshold_source"]) == (out["threshold"], "head")


def test_train_builds_the_index_it_needs(cli, proxy_store):
    import shutil

    store, _ = proxy_store
    shutil.rmtree(store / "indexes")
    code, out, err = cli("--store", store, "train", "--no-robustness", *FAST, *NO_FLOORS, "--json")
    assert code == (3 if out["decision"] == "rejected" else 0), err  # 3: the gate rejected it
    assert any(note.startswith("built the index of test-tiny-dinov2") for note in out["notes"])
    assert cli("--store", store, "index", "--json")[1]["action"] == "unchanged"


def test_holdout_trains_without_the_held_out_generators(cli, proxy_store):
    store, _ = proxy_store
    code, out, err = cli("--store", store, "train", "--head", "svm", "--holdout", "ae-noise,ae-tconv", *FAST, *NO_FLOORS, "--json")
    assert code == (3 if out["decision"] == "rejected" else 0), err  # 3: the gate rejected it
    per = out["metrics"]["per_generator"]
    assert {g for g, m in per.items() if m["held_out"]} == {"ae-noise", "ae-tconv"}
    assert set(out["generators_seen"]) == GENERATORS - {"ae-noise", "ae-tconv"}
    code, evaluated, _ = cli("--store", store, "evaluate", *FAST, "--json")
    assert code == 0 and evaluated["head_version"] == out["version"]
    assert {g for g, m in evaluated["per_generator"].items() if m["held_out"]} == {"ae-noise", "ae-tconv"}
    assert evaluated["threshold"] == out["threshold"]
    code, _, err = cli("--store", store, "evaluate", "--holdout", "ae-noise", *FAST, "--json")
    assert code == 1 and "Expected --holdout only without a registered head" in err


def test_evaluate_writes_a_self_contained_report_and_its_numbers(cli, proxy_store, tmp_path):
    store, _ = proxy_store
    cli("--store", store, "train", *FAST, *NO_FLOORS, "--json")
    report = tmp_path / "out" / "report.html"
    trained = cli("--store", store, "models", "list", "--json")[1]["champion"]
    code, out, err = cli("--store", store, "evaluate", "--protocol", "logo", "--report", report, *FAST, "--json")
    assert code == 0, err
    assert set(out["per_generator"]) == GENERATORS and out["head_version"] == trained
    assert out["threshold_source"] == "head" and isinstance(out["threshold"], float)
    page = report.read_text()
    assert re.findall(r'<svg [^>]*id="([^"]+)"', page) == ["roc", "tpr-at-fpr", "calibration", "score-histograms",
                                                            "embedding-map"]
    assert re.findall(r"""(?:src|href)=["'](?!#)""", page) == []  # nothing fetched from elsewhere (in-page #refs only)
    assert "ae-pixelshuffle" in page and "Robustness" in page
    assert Path(out["report_json"]).exists()


def test_detect_scores_attributes_and_shows_known_fakes(cli, proxy_store):
    store, corpus = proxy_store
    cli("--store", store, "train", *FAST, *NO_FLOORS, "--json")
    fake = next((corpus.out / "synthetic" / "ae-noise").rglob("*.png"))
    code, out, err = cli("--store", store, "detect", fake, corpus.out / "manifest.csv", "-k", "4", "--json")
    assert code == 0, err
    good, bad = out["results"]
    assert bad["query"].endswith("manifest.csv") and "not an image" in bad["error"]
    assert 0 <= good["score"] <= 1 and good["synthetic"] == (good["score"] >= good["threshold"])
    assert good["head_version"] == out["head_version"] and good["attribution"]["generator"] in GENERATORS
    assert len(good["neighbors"]) == 4 and all(n["label"] == "synthetic" for n in good["neighbors"])
    assert good["neighbors"][0]["path"] == str(fake) and good["neighbors"][0]["score"] == pytest.approx(1, abs=1e-5)


def test_detect_without_a_head_says_how_to_train_one(cli, proxy_store):
    store, corpus = proxy_store
    code, _, err = cli("--store", store, "detect", next(corpus.out.rglob("*.png")))
    assert code == 1 and "Expected a champion head" in err and "synthwatch train" in err


def test_no_pickle_is_ever_written_or_read(cli, proxy_store, monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to pickle or unpickle")

    class Refused:  # libraries may subclass pickle's classes at import; using them fails
        __init__ = refuse

    for name in ("load", "loads", "dump", "dumps"):
        monkeypatch.setattr(pickle, name, refuse)
    for name in ("Pickler", "Unpickler"):
        monkeypatch.setattr(pickle, name, Refused)
    monkeypatch.setattr(torch, "save", refuse)
    real_torch_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: real_torch_load(*a, **{**k, "weights_only": True})
                        if k.get("weights_only") else refuse())
    store, corpus = proxy_store
    for head in ("logreg", "svm", "mlp", "knn", "attribution"):
        code, out, err = cli("--store", store, "train", "--head", head, *FAST, *NO_FLOORS, "--json")
        assert code == (3 if out["decision"] == "rejected" else 0), err
    assert cli("--store", store, "evaluate", *FAST, "--json")[0] == 0
    assert cli("--store", store, "detect", next(corpus.out.rglob("*.png")), "--json")[0] == 0
    heads = sorted(p for p in (store / "heads").rglob("*") if p.is_file())
    assert {p.suffix for p in heads} == {".json", ".safetensors", ".jsonl"}
    for path in store.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not (data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), path  # pickle
            assert not data.startswith(b"PK\x03\x04"), path  # a torch.save zip archive
