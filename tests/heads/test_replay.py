"""Bounded retraining: a replay set balanced over labels and generators, leaning to recent images,
seeded and recorded; validation and test rows all kept."""

from __future__ import annotations

import numpy as np
import pytest

from synthwatch.heads.dataset import REAL, ROBUSTNESS_FROM, UNSAMPLED, EmbeddingSet, split_of_rows
from synthwatch.heads.evaluation import make_fold
from synthwatch.heads.replay import bound_training, draw_replay, trainable_rows, water_fill


def test_water_filling_shares_a_budget_as_equally_as_capacities_allow():
    assert water_fill([10, 100, 100], 90) == [10, 40, 40]
    assert water_fill([10, 100, 100], 1000) == [10, 100, 100]
    assert water_fill([50, 50], 60) == [30, 30]


def _pool(seed=0):
    """8,000 real images, generators of 10,000, 3,000 and 50 images (2 rows each), arriving over time."""
    rng = np.random.default_rng(seed)
    generators = np.array([REAL] * 8000 + ["big"] * 10000 + ["mid"] * 3000 + ["rare"] * 50, object)
    ids = np.array([f"img-{i:06d}" for i in range(len(generators))], object)
    return ids, generators, np.full(len(ids), 2), rng.permutation(len(ids)).astype(float)


def test_the_replay_set_is_balanced_keeps_every_generator_and_leans_to_recent_images():
    ids, generators, rows, arrivals = _pool()
    sample = draw_replay(ids, generators, rows, arrivals, max_rows=8000, seed=1)
    per_class = sample.record["per_class"]
    assert sample.record["rows"] <= 8000 and sample.record["rows"] >= 7990
    assert per_class["real"]["rows"] == 4000  # half for real images
    assert per_class["rare"]["images"] == 50  # every generator kept: all of the rare one
    assert per_class["big"]["rows"] == per_class["mid"]["rows"] == (4000 - 100) // 2  # the rest shared
    chosen = np.isin(ids, sample.image_ids)
    big = generators == "big"
    rank = np.argsort(np.argsort(arrivals[big])) / (big.sum() - 1)
    assert rank[chosen[big]].mean() > 0.55  # the newest are up to 4x as likely: mean rank 0.6 expected
    again = draw_replay(ids, generators, rows, arrivals, max_rows=8000, seed=1)
    other = draw_replay(ids, generators, rows, arrivals, max_rows=8000, seed=2)
    assert again.record["ids_sha256"] == sample.record["ids_sha256"] != other.record["ids_sha256"]


def _views_set(n=3000, seed=0):
    """Images with a clean view, and for fakes the two robustness views evaluation embeds."""
    rng = np.random.default_rng(seed)
    generators = rng.choice(np.array([REAL, "a", "b"], object), n)
    ids, gens, sources, views = [], [], [], []
    for k, generator in enumerate(generators):
        for view in [0] + ([ROBUSTNESS_FROM, ROBUSTNESS_FROM + 1] if generator != REAL else []):
            ids.append(f"i{k:05d}")
            gens.append(generator)
            sources.append(f"g{k % 60}")
            views.append(view)
    m = len(ids)
    return EmbeddingSet(np.array(ids, object), rng.normal(size=(m, 4)).astype(np.float32), np.array(gens, object),
                        np.array(sources, object), np.array(views, np.int64))


def test_bounding_leaves_training_images_out_of_training_only():
    data = _views_set()
    split = split_of_rows(data)
    bounded, record = bound_training(data, {}, max_rows=300, seed=0)
    after = split_of_rows(bounded)
    assert len(bounded) == len(data)  # nothing is dropped: left-out images change split only
    assert record["rows"] == trainable_rows(bounded).sum() <= 300  # robustness views do not count
    assert record["per_class"]["real"]["rows"] == 150  # half the trainable rows real, as drawn
    assert set(after[split != "train"]) == set(split[split != "train"])  # every val/test row as it was
    assert set(after[split == "train"]) == {"train", UNSAMPLED}
    fold = make_fold(bounded, ["b"])
    assert len(fold.train) == (trainable_rows(bounded) & (bounded.generators != "b")).sum()
    assert len(fold.test_fake["b"]) == (data.generators == "b").sum()  # a held-out generator: all its images
    same, none = bound_training(data, {}, max_rows=10 * len(data), seed=0)
    assert same is data and none is None
    with pytest.raises(ValueError, match="Expected --max-train of at least 1 row, but got 0"):
        bound_training(data, {}, max_rows=0, seed=0)


def test_every_generator_keeps_an_image_even_below_its_share():
    ids, generators, rows, arrivals = _pool()
    sample = draw_replay(ids, generators, rows * 3, arrivals, max_rows=8, seed=0)  # 6 rows an image, shares of 2
    assert {name: c["images"] for name, c in sample.record["per_class"].items()} == {
        "real": 1, "big": 1, "mid": 1, "rare": 1}


def test_retrain_with_max_train_records_its_replay_set_and_tests_on_everything(cli, proxy_store):
    store, _ = proxy_store
    flags = ("--n-boot", "50", "--no-robustness", "--auroc-floor", "0", "--tpr-floor", "0", "--json")
    code, full, err = cli("--store", store, "retrain", "--max-train", "1000000", *flags)
    assert code == (3 if full["decision"] == "rejected" else 0), err  # 3: the gate rejected it
    assert full["training_sample"] is None  # the bound does not bite
    code, small, err = cli("--store", store, "retrain", "--max-train", "40", *flags)
    assert code == (3 if small["decision"] == "rejected" else 0), err  # 3: the gate rejected it
    sample = small["training_sample"]
    assert sample["rule"] == "balanced-recent-v1" and sample["rows"] <= 40 < sample["of_rows"]
    assert set(sample["per_class"]) == {"real", *full["metrics"]["per_generator"]}
    assert all(c["images"] >= 1 for c in sample["per_class"].values())  # every generator kept
    code, record, _ = cli("--store", store, "models", "show", small["candidate"], "--json")
    assert record["training_sample"] == sample
    code, again, _ = cli("--store", store, "retrain", "--max-train", "40", *flags)
    assert again["training_sample"]["ids_sha256"] == sample["ids_sha256"]  # same seed, same store: same set
    tested = {g: (m["n_real"], m["n_fake"]) for g, m in small["metrics"]["per_generator"].items()}
    assert tested == {g: (m["n_real"], m["n_fake"]) for g, m in full["metrics"]["per_generator"].items()}
