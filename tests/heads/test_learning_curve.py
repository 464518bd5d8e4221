"""How many fakes of a new generator it takes: the curve on simulated vectors where one generator
is caught only once trained on, then `evaluate --learning-curve` over a real store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthwatch.heads.dataset import EmbeddingSet
from synthwatch.heads.evaluation import EvalOptions
from synthwatch.heads.learning_curve import fake_counts, learning_curve
from tests.heads.test_evaluation import simulated as evaluation_set


def simulated(seed=0) -> EmbeddingSet:
    """'near-a' and 'near-b' shift along one shared direction (each teaches the other); 'odd' along
    a direction of its own (caught only once trained on)."""
    eye = np.eye(8)
    return evaluation_set(real_per_group=20, fakes_per_group=10, groups=30, seed=seed, dim=8,
                          shifts={"near-a": 4.0 * eye[0], "near-b": 4.0 * eye[0] + eye[2], "odd": 5.0 * eye[1]})


def test_a_generator_of_its_own_kind_is_caught_only_after_some_of_its_fakes():
    data = simulated()
    curve = learning_curve(data, "odd", options=EvalOptions(n_boot=300))
    counts = [point["fakes"] for point in curve.points]
    assert counts == fake_counts(curve.available) and counts[:3] == [0, 8, 16] and counts[-1] == curve.available
    assert curve.points[0]["auroc_ci"][0] < 0.70  # never trained on it: missed
    assert curve.fakes_needed is not None and 0 < curve.fakes_needed <= 32
    caught = next(p for p in curve.points if p["fakes"] == curve.fakes_needed)
    assert caught["auroc_ci"][0] >= 0.70 and caught["tpr_at_1fpr_ci"][0] >= 0.05
    assert all(p["n_fake"] == curve.points[0]["n_fake"] for p in curve.points)  # one test split for every count
    assert curve.line() == f"odd: caught from {curve.fakes_needed} fakes (AUROC >= 0.7 and TPR at 1% FPR >= 0.05, " \
                           "interval lower ends)"
    near = learning_curve(data, "near-a", options=EvalOptions(n_boot=300))
    assert near.fakes_needed == 0 and "caught without any of its fakes" in near.line()  # near-b teaches it
    strict = learning_curve(data, "odd", options=EvalOptions(n_boot=300), auroc_floor=1.01)
    assert strict.fakes_needed is None and "not caught with all" in strict.line()
    with pytest.raises(ValueError, match="Expected a generator among those stored"):
        learning_curve(data, "nope")


def test_fake_counts_double_from_eight_and_end_at_what_there_is():
    assert fake_counts(0) == [0]
    assert fake_counts(5) == [0, 5]
    assert fake_counts(8) == [0, 8]
    assert fake_counts(40) == [0, 8, 16, 32, 40]


def test_evaluate_learning_curve_from_the_cli(cli, proxy_store, tmp_path):
    store, corpus = proxy_store
    measured = {}
    for generator in sorted(corpus.synthetic):  # 16 fakes each: some test splits are too small to measure
        code, out, err = cli("--store", store, "evaluate", "--learning-curve", generator, "--n-boot", "100",
                             "--no-robustness", "--report", tmp_path / "curve.html", "--json")
        assert code == 0, err
        assert out["curve"] or "too few test images" in out["skipped"]
        measured[generator] = out
        if out["curve"]:
            break
    assert out["curve"], measured
    assert out["generator"] == generator and out["head"] == "logreg" and out["curve"]
    assert set(out["curve"][0]) >= {"fakes", "auroc", "auroc_ci", "tpr_at_1fpr", "tpr_at_1fpr_ci"}
    assert "fakes_needed" in out and out["curve"][0]["fakes"] == 0
    page = (tmp_path / "curve.html").read_text()
    assert "How many fakes of a new generator" in page and "<svg" in page
    assert json.loads((tmp_path / "curve.json").read_text())["learning_curves"][0]["curve"] == out["curve"]
    code, _, err = cli("--store", store, "evaluate", "--learning-curve", generator, "--train-on", generator)
    assert code == 1 and "Expected --learning-curve alone" in err
    code, _, err = cli("--store", store, "evaluate", "--learning-curve", "no-such-generator")
    assert code == 1 and "Expected a generator among those stored" in err
