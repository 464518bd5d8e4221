"""Splits by source group, folds that never train on what they test, and honest held-out metrics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synthwatch.heads.dataset import REAL, EmbeddingSet, assign_splits, split_of_rows
from synthwatch.heads.detector import HeadSpec
from synthwatch.heads.evaluation import EvalOptions, evaluate_protocol, make_fold

DIM = 16
FAST = EvalOptions(n_boot=200)


def simulated(real_per_group=40, fakes_per_group=8, groups=12, seed=0, dim=DIM, shifts=None) -> EmbeddingSet:
    """Real ~ N(0, I). Generators 'near-a' and 'near-b' shift along a shared direction (a held-out
    one is still caught); 'odd' shifts along a direction of its own (only caught when trained on).
    ``shifts`` replaces those shifts ({generator: vector of ``dim``})."""
    rng = np.random.default_rng(seed)
    eye = np.eye(dim)
    shifts = shifts or {"near-a": 3.0 * eye[0] + eye[1], "near-b": 3.0 * eye[0] + eye[2], "odd": 3.0 * eye[3]}
    ids, vectors, generators, sources = [], [], [], []
    for group in range(groups):
        for name, shift in [(REAL, np.zeros(dim)), *shifts.items()]:
            count = real_per_group if name == REAL else fakes_per_group
            vectors.append(rng.normal(size=(count, dim)) + shift)
            generators += [name] * count
            sources += [f"group-{group}"] * count
            ids += [f"{name or 'real'}-{group}-{i}" for i in range(count)]
    n = len(ids)
    return EmbeddingSet(np.array(ids, object), np.concatenate(vectors).astype(np.float32),
                        np.array(generators, object), np.array(sources, object), np.zeros(n, np.int64))


def test_splits_are_by_group_stable_and_never_empty():
    groups = [f"g{i}" for i in range(30)]
    chosen = assign_splits(groups, seed=0)
    assert set(chosen.values()) == {"train", "val", "test"}
    # Adding groups moves none of the old ones.
    assert {k: v for k, v in assign_splits(groups + ["new-1", "new-2"], seed=0).items() if k in chosen} == chosen
    assert set(assign_splits(["a", "b", "c"], seed=0).values()) == {"train", "val", "test"}
    data = simulated()
    split = split_of_rows(data)
    for source in set(data.sources.tolist()):
        assert len(set(split[data.sources == source].tolist())) == 1


def test_a_fold_never_trains_on_its_held_out_generator_and_drops_leaks():
    data = simulated()
    fold = make_fold(data, ["odd"])
    assert "odd" not in set(fold.train.generators.tolist())
    assert len(fold.test_fake["odd"]) == int((data.generators == "odd").sum())  # every image of it
    assert set(split_of_rows(data)[np.isin(data.image_ids, fold.test_real.image_ids)]) == {"test"}
    train_id = fold.train.image_ids[0]
    victim = fold.test_fake["odd"].image_ids[0]
    leaky = make_fold(data, ["odd"], near_duplicates=[(train_id, victim, 0.99)])
    assert victim not in set(leaky.test_fake["odd"].image_ids.tolist()) and leaky.dropped == 1


def test_leave_one_generator_out_reports_what_a_new_generator_would_see():
    data = simulated()
    evaluation = evaluate_protocol(HeadSpec("logreg"), data, protocol="logo", options=FAST)
    per = evaluation.as_dict()["per_generator"]
    assert set(per) == {"near-a", "near-b", "odd"} and all(m["held_out"] for m in per.values())
    assert per["near-a"]["auroc"] > 0.9 and per["near-b"]["auroc"] > 0.9
    assert 0.35 < per["odd"]["auroc"] < 0.65  # trained on the others, the head is blind to 'odd'
    # Trained on 'odd' (holding out another), the same head catches it: a known generator.
    known = evaluate_protocol(HeadSpec("logreg"), data, protocol="holdout", holdout=["near-a"], options=FAST)
    assert known.per_generator()["odd"]["held_out"] is False and known.per_generator()["odd"]["auroc"] > 0.85


def test_the_threshold_holds_the_false_positive_rate_on_held_out_reals():
    data = simulated(real_per_group=400, fakes_per_group=20)
    evaluation = evaluate_protocol(HeadSpec("logreg"), data, protocol="holdout", holdout=["near-a"],
                                   options=EvalOptions(target_fpr=0.05, n_boot=200))
    result = evaluation.per_generator()["near-a"]
    assert 0.02 <= result["fpr"] <= 0.08  # set on validation reals, measured on test reals
    assert result["fpr_ci"][0] <= 0.05 <= result["fpr_ci"][1]


@pytest.mark.parametrize("kind", ["svm", "mlp", "knn", "attribution"])
def test_every_head_kind_runs_the_protocol(kind):
    evaluation = evaluate_protocol(HeadSpec(kind), simulated(), protocol="holdout", holdout=["near-b"], options=FAST)
    assert evaluation.per_generator()["near-b"]["auroc"] > 0.8


def test_clear_errors_for_impossible_requests():
    data = simulated()
    with pytest.raises(ValueError, match="Expected held-out generators among those stored .* but got flux"):
        evaluate_protocol(HeadSpec(), data, protocol="holdout", holdout=["flux"], options=FAST)
    with pytest.raises(ValueError, match="Expected at least one generator to hold out"):
        evaluate_protocol(HeadSpec(), data, protocol="holdout", options=FAST)
    groups = sorted(set(data.sources.tolist()))
    train_and_test = next(pair for pair in itertools.combinations(groups, 2)
                          if sorted(assign_splits(list(pair)).values()) == ["test", "train"])
    no_validation = data.take(np.isin(data.sources, train_and_test))
    assert "val" not in set(split_of_rows(no_validation).tolist())
    measured = evaluate_protocol(HeadSpec(), no_validation, protocol="logo", options=FAST)  # AUROC still measured
    assert any("no validation real images" in note for note in measured.notes)
    assert measured.results and all(result.threshold == 0.5 for result in measured.results)
