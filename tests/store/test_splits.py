"""Splits as data: a source group's split is assigned once, stored in the catalog, and never moves
as groups are added; a store from before keeps the splits its champion was measured on."""

from __future__ import annotations

import random

from synthwatch.store.catalog import Batch, Catalog, ImageRecord
from synthwatch.store.layout import StoreLayout
from synthwatch.store.registry import HeadRegistry
from synthwatch.store.schema import SCHEMA_VERSION, utc_now
from synthwatch.store.splits import SPLITS, assign_splits


def _images(groups, start=0):
    return [ImageRecord(f"{start + n:064x}", "real", None, group, f"/in/{n}.png", False, 1, 8, 8, "PNG", "RGB", 1,
                        utc_now(), "run") for n, group in enumerate(groups)]


def test_no_group_ever_moves_as_groups_arrive_over_many_random_stores():
    rng = random.Random(0)
    moved = 0
    for _ in range(2000):
        names = [f"group-{rng.randrange(10**6)}" for _ in range(rng.randint(3, 8))]
        chosen: dict[str, str] = {}
        for cut in sorted(rng.sample(range(1, len(names)), rng.randint(0, len(names) - 1))) + [len(names)]:
            before = dict(chosen)
            chosen = assign_splits(names[:cut], seed=0, existing=chosen)
            moved += sum(chosen[g] != split for g, split in before.items())
        assert set(chosen) == set(names)
    assert moved == 0
    assert set(assign_splits(["a", "b", "c"]).values()) == set(SPLITS)  # three groups at once fill all three


def test_the_catalog_assigns_each_group_once_in_the_commit_that_brings_it(tmp_path):
    catalog = Catalog(StoreLayout(tmp_path / "store"))
    catalog.create()
    seen: dict[str, str] = {}
    for number, groups in enumerate([["a", "b", "c"], ["d"], ["a", "e", "f", "g"], ["h"] * 3]):
        catalog.commit(Batch(images=_images(groups, start=100 * number)), "run")
        splits = catalog.group_splits()
        assert {g: splits[g] for g in seen} == seen  # nothing stored before moved
        seen = splits
    assert set(seen) == set("abcdefgh") and set(seen.values()) == set(SPLITS)
    rows = catalog.query("SELECT count(*), min(seed), max(seed) FROM splits")
    assert rows == [(8, 0, 0)]


def test_a_store_from_before_keeps_the_splits_its_champion_used(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    catalog = Catalog(layout)
    catalog.create()
    groups = [f"g{n}" for n in range(12)]
    catalog.commit(Batch(images=_images(groups)), "run")
    # How the champion saw its splits before they were stored: all groups at once, with its seed.
    legacy = assign_splits(groups, seed=7)
    kept_in_training = next(g for g in groups if legacy[g] != "train")  # trained on when the store was smaller
    registry = HeadRegistry(layout)
    registry.write_version("h1", {"kind": "logreg", "split_seed": 7, "train_groups": [kept_in_training]}, {})
    registry.promote("h1", reason="test")
    # Make it a store of schema 1: no stored splits.
    with catalog.transaction() as con:
        con.execute("DELETE FROM splits")
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")

    splits = catalog.group_splits()
    assert splits == {**legacy, kept_in_training: "train"}
    assert catalog.schema_version() == SCHEMA_VERSION and catalog.split_seed() == 7
    catalog.commit(Batch(images=_images(["late"], start=500)), "run")  # later groups: the same seed, old ones stay
    assert {g: s for g, s in catalog.group_splits().items() if g != "late"} == splits


def test_a_store_of_schema_2_gains_the_origin_of_its_splits_and_keeps_them(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    catalog = Catalog(layout)
    catalog.create()
    catalog.commit(Batch(images=_images([f"g{n}" for n in range(6)])), "run")
    before = catalog.group_splits()
    with catalog.transaction() as con:  # the splits table as schema 2 had it
        con.execute("ALTER TABLE splits DROP COLUMN origin")
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    assert catalog.group_splits() == before and catalog.schema_version() == SCHEMA_VERSION
    assert catalog.query("SELECT DISTINCT origin FROM splits") == [("hash",)] and catalog.shipped_groups() == set()


def test_a_dataset_that_ships_its_split_keeps_it_and_its_training_folder_lends_a_fifth_to_validation(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    catalog = Catalog(layout)
    catalog.create()
    trained = [f"train/c{n}" for n in range(40)]
    shipped = {**{g: "train+val" for g in trained}, "val/c0": "test", "test/x": "test"}
    catalog.commit(Batch(images=_images([*trained, "val/c0", "test/x", "mine"]), shipped_splits=shipped), "run")
    splits = catalog.group_splits()
    assert splits["val/c0"] == splits["test/x"] == "test"
    share = sum(splits[g] == "val" for g in trained) / len(trained)
    assert {splits[g] for g in trained} == {"train", "val"} and 0.05 < share < 0.4
    assert catalog.shipped_groups() == set(shipped)  # "mine" took the store's rule
    assert catalog.query("SELECT origin FROM splits WHERE source = 'mine'") == [("hash",)]
