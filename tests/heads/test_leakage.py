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


def _forensic_like(images: int, seed: int = 0):
    """Unit vectors that all point nearly the same way, as forensic features of unrelated images
    do (cosine about 0.99 between any two), one source group per image, and one exact copy."""
    from synthwatch.heads.dataset import EmbeddingSet

    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=64) * 10 + rng.normal(size=(images, 64))
    vectors[-1] = vectors[0] + rng.normal(size=64) * 1e-3  # a re-encoded copy of image 0
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    sources = np.array([f"g{i}" for i in range(images)])
    sources[-1] = "copy"
    return EmbeddingSet(np.array([f"{i:064x}" for i in range(images)]), vectors, np.array(["real"] * images),
                        sources, np.zeros(images, dtype=int), None)


def test_a_backbone_whose_unrelated_images_look_alike_gets_a_threshold_few_of_its_pairs_exceed():
    from synthwatch.heads.prepare import FALSE_PAIR_SHARE, effective_dedup_threshold

    data = _forensic_like(600)
    threshold, note = effective_dedup_threshold(data, 0.95)
    similarity = data.vectors @ data.vectors.T
    upper = np.triu(np.ones_like(similarity, dtype=bool), k=1)
    unrelated_above = int(((similarity > threshold) & upper).sum()) - 1  # less the planted copy
    assert threshold > 0.95 and note is not None and "raised from 0.95" in note
    # a fixed 99.9th percentile would let about 180 of these 180,000 unrelated pairs through
    assert unrelated_above <= 2 * FALSE_PAIR_SHARE * len(data), unrelated_above
    assert similarity[0, -1] > threshold  # the real copy is still a near-duplicate


def test_a_backbone_that_tells_unrelated_images_apart_keeps_the_requested_threshold():
    from synthwatch.heads.dataset import EmbeddingSet
    from synthwatch.heads.prepare import effective_dedup_threshold

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 64))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    data = EmbeddingSet(np.array([f"{i:064x}" for i in range(300)]), vectors, np.array(["real"] * 300),
                        np.array([f"g{i}" for i in range(300)]), np.zeros(300, dtype=int), None)
    assert effective_dedup_threshold(data, 0.95) == (0.95, None)
