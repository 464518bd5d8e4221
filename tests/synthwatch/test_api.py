"""The Python API against the command line: the same store, the same answers, and each result's
``as_dict()`` equal to what the command prints with ``--json``."""

from __future__ import annotations

import json
import logging

import pytest
from PIL import Image

import synthwatch
from tests.conftest import write_image
from synthwatch.heads.evaluation import EvalOptions
from synthwatch.heads.gate import GatePolicy
from synthwatch.heads.training import TrainOptions


def _json(result) -> dict:
    """What ``print_json`` would print of it, read back."""
    return json.loads(json.dumps(result.as_dict(), default=str))


@pytest.fixture
def trained(proxy_store):
    """The proxy store with a champion trained through the API (small bootstrap, no robustness views)."""
    store, corpus = proxy_store
    api = synthwatch.Store(store)
    result = api.train("logreg", options=TrainOptions(evaluation=EvalOptions(n_boot=100), robustness=False),
                       policy=GatePolicy(auroc_floor=0.0, tpr_floor=0.0))  # a seeded tiny backbone: floors off
    return api, store, corpus, result


def test_train_registers_and_gates_a_head_as_train_does(trained, cli):
    api, store, _, result = trained
    assert result.promoted and result.as_dict()["decision"] == "promoted" and result.as_dict()["version"] == result.version
    code, listed, _ = cli("--store", store, "models", "list", "--json")
    assert code == 0 and listed == _json(api.models)
    assert [m["version"] for m in listed["models"]] == [result.version]
    assert listed["champion"] == result.version
    shown = api.models.show(result.version)
    assert shown["gate"]["decision"] == result.as_dict()["decision"]
    assert shown["gate"]["policy_sha256"] == result.as_dict()["policy_sha256"]
    code, by_cli, _ = cli("--store", store, "train", "--n-boot", "100", "--no-robustness", "--auroc-floor", "0",
                          "--tpr-floor", "0", "--json")
    assert code == 0 and set(by_cli) == set(_json(result))  # the same record, key for key
    assert by_cli["policy"] == result.as_dict()["policy"]
    assert by_cli["metrics"] == _json(result)["metrics"]  # the same data, splits and seed: the same evaluation


def test_detect_takes_paths_bytes_and_pil_images_and_answers_as_detect_does(trained, cli):
    api, store, corpus, result = trained
    fake = next((corpus.out / "synthetic").rglob("*.png"))
    real = next((corpus.out / "real").rglob("*.png"))
    code, printed, _ = cli("--store", store, "detect", fake, real, "-k", "3", "--json")
    detections = api.detect([fake, real], k=3)
    assert code == 0 and _json(detections) == printed
    assert len(detections) == 2 and detections[0].query == str(fake) and len(detections[0].neighbors) == 3
    from_bytes = api.detect(fake.read_bytes(), k=0)[0]
    from_pil = api.detect(Image.open(fake), k=0)[0]
    assert from_bytes.score == from_pil.score == detections[0].score  # PNG in, lossless PNG out: the same pixels
    assert from_bytes.query == "image-0" and from_bytes.neighbors == ()


def test_a_refused_image_is_an_answer_not_an_exception(trained):
    api, *_ = trained
    refused = api.detect([b"not an image"], k=0)[0]
    assert refused.error and refused.score is None and refused.as_dict() == {"query": "image-0", "error": refused.error}
    with pytest.raises(TypeError, match="paths, bytes or PIL images"):
        api.detect([3.5])


def test_similar_answers_as_similar_does(proxy_store, cli):
    store, corpus = proxy_store
    query = next((corpus.out / "synthetic").rglob("*.png"))
    code, printed, _ = cli("--store", store, "similar", query, "-k", "4", "--label", "synthetic", "--json")
    found = synthwatch.Store(store).similar(query, k=4, label="synthetic")
    assert code == 0 and _json(found) == printed
    assert found[0].neighbors[0]["score"] == pytest.approx(1.0, abs=1e-4)  # the stored image itself comes first


def test_ingest_and_embed_store_what_the_commands_store(proxy_store, cli, tmp_path):
    _, corpus = proxy_store
    api = synthwatch.Store(tmp_path / "by-api")
    report = api.ingest(corpus.out / "real", label="real")
    code, printed, _ = cli("--store", tmp_path / "by-cli", "ingest", corpus.out / "real", "--label", "real", "--json")
    timing = {"elapsed_s", "files_per_s", "run_id"}  # differ run to run
    assert code == 0 and {k: v for k, v in _json(report).items() if k not in timing} == \
        {k: v for k, v in printed.items() if k not in timing}
    embedded = api.embed("test-tiny-dinov2", options=_one_process())
    assert embedded.as_dict()["embedded"] == report.as_dict()["ingested"] > 0
    assert api.status()["embeddings"] == {embedded.as_dict()["backbone_id"]: embedded.as_dict()["embedded"]}
    assert api.config().gate.auroc_floor == 0.7 and (api.root / "synthwatch.toml").exists()  # written on first write


def test_the_api_reads_the_stores_settings_and_logs_notices_under_synthwatch(proxy_store, caplog, tmp_path):
    store, corpus = proxy_store
    (store / "synthwatch.toml").write_text("target_fpr = 0.05\n[gate]\nauroc_floor = 0.99\n")
    api = synthwatch.Store(store)
    result = api.train("logreg").as_dict()  # no options, no policy: the file's
    assert result["target_fpr"] == 0.05 and result["policy"]["auroc_floor"] == 0.99 and result["decision"] == "rejected"
    assert api.config(target_fpr=0.02).target_fpr == 0.02
    api.ingest(write_image(tmp_path / "new.png", size=(64, 64), seed=99), label="real")
    api.embed("test-tiny-dinov2", options=_one_process())  # the saved index is now stale: readers catch up, and say so
    logger = logging.getLogger("synthwatch")
    logger.addHandler(caplog.handler)  # directly: once the flows are imported it no longer propagates
    try:
        api.similar(next((corpus.out / "real").rglob("*.png")), k=1)
    finally:
        logger.removeHandler(caplog.handler)
    assert any(r.name == "synthwatch" and "index" in r.getMessage() for r in caplog.records)


def _one_process():
    from synthwatch.embeddings.engine import EngineOptions

    return EngineOptions(workers=0)
