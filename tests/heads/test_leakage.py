"""A re-encoded copy of a training image, filed under a held-out source group, is flagged by
`duplicates` and never tested on."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from synthwatch.heads.dataset import assign_splits
from synthwatch.heads.evaluation import make_fold
from synthwatch.heads.prepare import load_embedding_set
from synthwatch.store.catalog import Catalog
from synthwatch.store.neighbors import open_for_reading
from synthwatch.store.layout import StoreLayout
from synthwatch.corpus.photos import bundled_photos, random_crops

BACKBONE = "test-tiny-dinov2@main.crop32.L4"
GROUPS = [f"g{number}" for number in range(8)]


def _crops(folder, count, seed):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index, (_, crop) in enumerate(random_crops(bundled_photos(), count, 48, rng)):
        paths.append(folder / f"{seed}-{index:03d}.png")
        crop.save(paths[-1])
    return paths


def test_a_near_duplicate_across_splits_is_flagged_and_dropped(cli, store, tmp_path):
    inbox = tmp_path / "in"
    for number, group in enumerate(GROUPS):
        _crops(inbox / "real" / group, 6, seed=number)
        _crops(inbox / "synthetic" / "gen" / group, 3, seed=100 + number)
    split = assign_splits(GROUPS)
    train_group = next(g for g in GROUPS if split[g] == "train")
    test_group = next(g for g in GROUPS if split[g] == "test")
    original = sorted((inbox / "real" / train_group).iterdir())[0]
    buffer = io.BytesIO()
    Image.open(original).save(buffer, format="JPEG", quality=90)
    copy = inbox / "real" / test_group / "copy.jpg"
    copy.write_bytes(buffer.getvalue())
    for args in (["ingest", inbox], ["embed", "--backbone", "test-tiny-dinov2", "--workers", "0"], ["index"]):
        assert cli("--store", store, *args, "--json")[0] == 0

    code, out, _ = cli("--store", store, "duplicates", "--threshold", "0.995", "--json")
    assert code == 0
    group = next(g for g in out["groups"] if str(copy) in {image["path"] for image in g["images"]})
    assert group["straddles_splits"] and {image["split"] for image in group["images"]} >= {"train", "test"}
    assert out["straddling_groups"] >= 1

    layout = StoreLayout(store)
    ids = {path: image_id for image_id, path in Catalog(layout).query("SELECT image_id, original_path FROM images")}
    neighbors, _ = open_for_reading(layout, BACKBONE)
    fold = make_fold(load_embedding_set(layout, BACKBONE), [], near_duplicates=neighbors.pairs_above(0.995))
    tested = set(fold.test_real.image_ids.tolist()) | set(fold.val_real.image_ids.tolist())
    assert ids[str(copy)] not in tested and ids[str(original)] in set(fold.train.image_ids.tolist())
    assert fold.dropped >= 1
    assert len(fold.test_real) > 0  # the other test images are still measured
