"""Bounded retraining, bounded in reading: what a retrain reads is drawn from the catalog first (a
replay set balanced over labels and generators, leaning to recent images; a stable sample of
validation and test images), only those vectors are read, and both draws are recorded."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from synthwatch.heads.dataset import split_of_rows
from synthwatch.heads.prepare import prepare_data
from synthwatch.heads.replay import class_shares, plan_read, water_fill
from synthwatch.store.catalog import Catalog
from synthwatch.store.simulated import BACKBONE_ID, SimulatedSize, write_simulated_store


def test_water_filling_shares_a_budget_as_equally_as_capacities_allow():
    assert water_fill([10, 100, 100], 90) == [10, 40, 40]
    assert water_fill([10, 100, 100], 1000) == [10, 100, 100]
    assert water_fill([50, 50], 60) == [30, 30]
    assert class_shares({"": 8000, "big": 10000, "rare": 50}, 8000) == {"": 4000, "big": 3950, "rare": 50}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """12,000 synthetic images of 4 generators and 6,000 real ones, a real catalog and real shards."""
    root = tmp_path_factory.mktemp("simulated") / "store"
    return write_simulated_store(root, SimulatedSize(synthetic=12_000, real=6_000, generators=4, groups=60,
                                                     dim=16, shard_rows=5_000))


def test_the_replay_set_is_balanced_keeps_every_generator_and_leans_to_recent_images(simulated):
    plan = plan_read(simulated, BACKBONE_ID, max_train=2000, max_eval=None, seed=1)
    sample = plan.training_sample
    assert sample["rule"] == "balanced-recent-v3" and sample["rows"] == 2000 < sample["of_rows"]
    assert sample["per_class"]["real"]["rows"] == 1000  # half for real images
    assert [c["rows"] for name, c in sample["per_class"].items() if name != "real"] == [250] * 4
    assert plan.evaluation_sample is None  # --max-eval unset: every validation and test image read
    catalog_train = Catalog(simulated).query(
        "SELECT count(*) FROM images JOIN splits USING (source) WHERE split = 'train'")[0][0]
    assert sample["of_images"] == catalog_train
    drawn = plan.images.filter(pc.equal(plan.images.column("split"), "train"))
    arrivals = Catalog(simulated).arrival_times()
    train_ids = [i for i, s in Catalog(simulated).query(
        "SELECT image_id, split FROM images JOIN splits USING (source) WHERE generator = 'gen-00'") if s == "train"]
    order = np.argsort(np.argsort([arrivals[i] for i in train_ids])) / (len(train_ids) - 1)
    chosen = set(drawn.column("image_id").to_pylist())
    rank = np.array([r for i, r in zip(train_ids, order) if i in chosen])
    assert rank.mean() > 0.55  # the newest are up to 4x as likely: a mean rank of 0.6 expected
    again = plan_read(simulated, BACKBONE_ID, max_train=2000, max_eval=None, seed=1).training_sample
    other = plan_read(simulated, BACKBONE_ID, max_train=2000, max_eval=None, seed=2).training_sample
    assert again["ids_sha256"] == sample["ids_sha256"] != other["ids_sha256"]


def test_every_generator_keeps_an_image_even_below_its_share(simulated):
    sample = plan_read(simulated, BACKBONE_ID, max_train=3, max_eval=None, seed=0).training_sample
    assert {name: c["images"] for name, c in sample["per_class"].items()} == {
        "real": 1, "gen-00": 1, "gen-01": 1, "gen-02": 1, "gen-03": 1}


def test_only_the_drawn_images_are_read_and_the_evaluation_sample_is_stable(simulated):
    prepared = prepare_data(simulated, BACKBONE_ID, max_train=2000, max_eval=1000, seed=0)
    splits = split_of_rows(prepared.data)
    assert (splits == "train").sum() == 2000
    assert (splits == "val").sum() == (splits == "test").sum() == 1000
    evaluation = prepared.evaluation_sample
    assert evaluation["rule"] == "stable-sample-v2"
    assert evaluation["test"]["per_class"]["real"]["rows"] == 500  # half real, half shared by the generators
    assert evaluation["test"]["of_images"] > 4 * evaluation["test"]["images"]
    assert any("metrics and their intervals are those of the sample" in note for note in prepared.notes)
    wider = prepare_data(simulated, BACKBONE_ID, max_train=2000, max_eval=2000, seed=0)
    small = set(prepared.data.image_ids[splits == "test"].tolist())
    large = set(wider.data.image_ids[split_of_rows(wider.data) == "test"].tolist())
    assert len(small - large) <= 0.02 * len(small)  # a larger budget keeps the smaller sample's images
    everything = prepare_data(simulated, BACKBONE_ID, max_train=10**9, max_eval=10**9, seed=0)
    assert everything.training_sample is None and everything.evaluation_sample is None
    assert len(everything.data) == 18_000


def test_a_bound_below_one_row_is_refused(simulated):
    with pytest.raises(ValueError, match="Expected --max-eval of at least 1 row, but got 0"):
        plan_read(simulated, BACKBONE_ID, max_train=10, max_eval=0, seed=0)


def test_retrain_with_small_bounds_records_both_samples(cli, proxy_store):
    store, _ = proxy_store
    flags = ("--n-boot", "50", "--no-robustness", "--auroc-floor", "0", "--tpr-floor", "0", "--json")
    code, full, err = cli("--store", store, "retrain", "--max-train", "1000000", "--max-eval", "1000000", *flags)
    assert code == (3 if full["decision"] == "rejected" else 0), err  # 3: the gate rejected it
    assert full["training_sample"] is None and full["evaluation_sample"] is None  # the bounds do not bite
    code, small, err = cli("--store", store, "retrain", "--max-train", "40", "--max-eval", "30", *flags)
    assert code == (3 if small["decision"] == "rejected" else 0), err
    sample = small["training_sample"]
    assert sample["rule"] == "balanced-recent-v3" and sample["rows"] <= 40 < sample["of_rows"]
    assert set(sample["per_class"]) == {"real", *full["metrics"]["per_generator"]}
    assert all(c["images"] >= 1 for c in sample["per_class"].values())  # every generator kept
    evaluation = small["evaluation_sample"]
    assert evaluation["test"]["rows"] <= 30 < evaluation["test"]["of_rows"]
    code, record, _ = cli("--store", store, "models", "show", small["candidate"], "--json")
    assert record["training_sample"] == sample and record["evaluation_sample"] == evaluation
    code, again, _ = cli("--store", store, "retrain", "--max-train", "40", "--max-eval", "30", *flags)
    assert again["training_sample"]["ids_sha256"] == sample["ids_sha256"]  # same seed, same store: same set
    tested = sum(m["n_real"] for m in small["metrics"]["per_generator"].values())
    assert tested < sum(m["n_real"] for m in full["metrics"]["per_generator"].values())  # the sample's figures


def test_sorting_only_the_likely_candidates_draws_exactly_what_sorting_everything_draws(simulated, monkeypatch):
    import synthwatch.heads.replay as replay

    narrowed = plan_read(simulated, BACKBONE_ID, max_train=2000, max_eval=700, seed=3)
    monkeypatch.setattr(replay, "_floor", lambda *args: -1e308)  # every image a candidate
    everything = plan_read(simulated, BACKBONE_ID, max_train=2000, max_eval=700, seed=3)
    assert narrowed.training_sample == everything.training_sample
    assert narrowed.evaluation_sample == everything.evaluation_sample
    assert narrowed.images.column("image_id").to_pylist() == everything.images.column("image_id").to_pylist()
