"""Ingestion as a user sees it through `synthwatch ingest --json` and `status --json`."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from synthwatch.embeddings.decode import DecodeLimits, ImageRejected, read_image_file
from synthwatch.store.catalog import GENERATOR_NEW, Catalog
from synthwatch.store.layout import StoreLayout
from synthwatch.store.verify import verify_store
from tests.conftest import image_bytes, write_image
from tests.embeddings.test_decode import _png_header_only


@pytest.fixture
def pile(tmp_path):
    """A folder as users have them: good images of two generators, broken files, clutter."""
    root = tmp_path / "pile"
    for index in range(3):
        write_image(root / "real" / "cams" / f"r{index}.jpg", fmt="JPEG", seed=index)
    write_image(root / "real" / "UPPER.PNG", seed=10)
    write_image(root / "real" / "png-named.jpg", fmt="PNG", seed=11)
    write_image(root / "real" / "cmyk.jpeg", fmt="JPEG", mode="CMYK", seed=12)
    for index in range(2):
        write_image(root / "synthetic" / "ピカソ-XL" / f"s{index}.png", seed=20 + index)
        write_image(root / "synthetic" / "flux.1 [dev]" / f"f{index}.webp", fmt="WEBP", seed=30 + index)
    broken = root / "real" / "broken"
    broken.mkdir(parents=True)
    (broken / "empty.jpg").write_bytes(b"")
    (broken / "truncated.png").write_bytes(image_bytes(size=(80, 80))[:200])
    (broken / "text.jpg").write_text("I am not an image")
    (broken / "bomb.png").write_bytes(_png_header_only(50_000, 50_000))
    write_image(broken / "tiny.png", size=(31, 200))
    (root / "real" / "notes.txt").write_text("clutter")
    (root / "real" / ".DS_Store").write_bytes(b"\0")
    return root


def test_ingest_reports_every_outcome(cli, store, pile):
    code, out, _ = cli("--store", store, "ingest", pile, "--json")
    assert code == 0
    assert (out["ingested"], out["duplicates"], out["rejected"], out["skipped"]) == (10, 0, 5, 2)
    assert sorted(out["new_generators"]) == ["flux.1 [dev]", "ピカソ-XL"]
    reasons = {os.path.basename(r["path"]): r["reason"] for r in out["rejections"]}
    assert reasons["empty.jpg"].startswith("empty file")
    assert reasons["truncated.png"].startswith("truncated or corrupt")
    assert reasons["text.jpg"].startswith("not an image")
    assert reasons["bomb.png"].startswith("decompression bomb")
    assert reasons["tiny.png"].startswith("too small: 31 x 200 px")

    code, status, _ = cli("--store", store, "status", "--json")
    assert code == 0
    assert status["images"] == {"real": 6, "synthetic": 4}
    assert status["generators"] == {"flux.1 [dev]": 2, "ピカソ-XL": 2}
    assert status["quarantined"] == 5


def test_catalog_records_what_the_content_is(cli, store, pile):
    cli("--store", store, "ingest", pile, "--json")
    rows = Catalog(StoreLayout(store)).query(
        "SELECT original_path, format, mode, width, height, source, label, generator FROM images"
    )
    by_name = {os.path.basename(row[0]): row[1:] for row in rows}
    assert by_name["png-named.jpg"][:2] == ("PNG", "RGB")  # decided by content
    assert by_name["cmyk.jpeg"][:2] == ("JPEG", "CMYK")
    assert by_name["r0.jpg"] == ("JPEG", "RGB", 64, 48, "cams", "real", None)
    assert by_name["s0.png"][-2:] == ("synthetic", "ピカソ-XL")


def test_reingest_adds_nothing(cli, store, pile):
    cli("--store", store, "ingest", pile, "--json")
    _, before, _ = cli("--store", store, "status", "--json")
    code, again, _ = cli("--store", store, "ingest", pile, "--json")
    assert code == 0
    assert (again["ingested"], again["duplicates"], again["new_generators"]) == (0, 10, [])
    _, after, _ = cli("--store", store, "status", "--json")
    for key in ("images", "generators", "quarantined", "events"):
        assert after[key] == before[key]


def test_repeats_within_one_run_are_duplicates(cli, store, tmp_path):
    same = image_bytes(seed=5)
    for name in ("a.png", "b.png", "deep/c.png"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(same)
    code, out, _ = cli("--store", store, "ingest", tmp_path / "in", "--label", "real", "--json")
    assert (out["ingested"], out["duplicates"]) == (1, 2)


def test_conflicting_label_is_reported_and_never_overwritten(cli, store, tmp_path):
    data = image_bytes(seed=7)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(data)
    (tmp_path / "b" / "synthetic" / "gen-1").mkdir(parents=True)
    (tmp_path / "b" / "synthetic" / "gen-1" / "y.png").write_bytes(data)
    cli("--store", store, "ingest", tmp_path / "a", "--label", "real", "--json")
    code, out, _ = cli("--store", store, "ingest", tmp_path / "b", "--json")
    assert code == 0
    assert (out["ingested"], out["conflicts"], out["new_generators"]) == (0, 1, [])
    assert "already stored as real" in out["conflict_details"][0]["reason"]
    assert "this file says synthetic/gen-1" in out["conflict_details"][0]["reason"]
    _, status, _ = cli("--store", store, "status", "--json")
    assert status["images"] == {"real": 1, "synthetic": 0}
    assert status["generators"] == {} and status["conflicts"] == 1


def test_new_generator_is_logged_once(cli, store, tmp_path):
    write_image(tmp_path / "one" / "synthetic" / "Ünïcödé gen" / "a.png", seed=1)
    write_image(tmp_path / "two" / "synthetic" / "Ünïcödé gen" / "b.png", seed=2)
    _, first, _ = cli("--store", store, "ingest", tmp_path / "one", "--json")
    _, second, _ = cli("--store", store, "ingest", tmp_path / "two", "--json")
    assert (first["new_generators"], second["new_generators"]) == (["Ünïcödé gen"], [])
    events = Catalog(StoreLayout(store)).query("SELECT name, payload FROM events")
    assert [(name, json.loads(payload)["generator"]) for name, payload in events] == [
        (GENERATOR_NEW, "Ünïcödé gen")
    ]
    _, status, _ = cli("--store", store, "status", "--json")
    assert status["generators"] == {"Ünïcödé gen": 2}


def test_originals_are_copied_into_content_addressed_blobs(cli, store, tmp_path):
    original = write_image(tmp_path / "in" / "a.png", seed=3)
    data = original.read_bytes()
    cli("--store", store, "ingest", tmp_path / "in", "--label", "real", "--json")
    original.unlink()  # the store owns its data
    blob = StoreLayout(store).blob_path(hashlib.sha256(data).hexdigest())
    assert blob.read_bytes() == data
    assert verify_store(StoreLayout(store)) == []


def test_no_copy_references_originals_in_place(cli, store, tmp_path):
    original = write_image(tmp_path / "in" / "a.png", seed=3)
    cli("--store", store, "ingest", tmp_path / "in", "--label", "real", "--no-copy", "--json")
    rows = Catalog(StoreLayout(store)).query("SELECT stored, original_path FROM images")
    assert rows == [(False, str(original.resolve()))]
    assert not any(p.is_file() for p in StoreLayout(store).blobs_dir.rglob("*"))


def test_manifest_ingest_quarantines_escaping_paths(cli, store, tmp_path):
    write_image(tmp_path / "data" / "ok.png", seed=1)
    write_image(tmp_path / "secret.png", seed=2)
    manifest = tmp_path / "data" / "m.csv"
    manifest.write_text("path,label,generator\nok.png,real,\n../secret.png,real,\n")
    code, out, _ = cli("--store", store, "ingest", manifest, "--json")
    assert (code, out["ingested"], out["rejected"]) == (0, 1, 1)
    assert "escapes the allowed root" in out["rejections"][0]["reason"]


def test_limits_are_configurable(cli, store, tmp_path):
    write_image(tmp_path / "in" / "small.png", size=(40, 20))
    args = ("--store", store, "ingest", tmp_path / "in", "--label", "real", "--json")
    _, out, _ = cli(*args, "--min-side", "16", "--max-pixels", "500")
    assert out["rejections"][0]["reason"].startswith(
        "decompression bomb: 40 x 20 = 800 pixels, over the limit of 500")
    _, out, _ = cli(*args)
    assert out["rejections"][0]["reason"].startswith("too small: 40 x 20 px")
    size = (tmp_path / "in" / "small.png").stat().st_size
    _, out, _ = cli(*args, "--min-side", "16", "--max-bytes", str(size - 1))
    assert out["rejections"][0]["reason"] == f"too large: {size:,} bytes, at most {size - 1:,} are read"
    _, out, _ = cli(*args, "--min-side", "16")
    assert (out["ingested"], out["rejected"]) == (1, 0)


def test_missing_path_fails_clearly(cli, store, tmp_path):
    code, out, err = cli("--store", store, "ingest", tmp_path / "absent", "--json")
    assert code != 0 and out is None
    assert "absent does not exist" in err


def test_unwritable_store_fails_clearly(cli, tmp_path):
    (tmp_path / "a-file").write_text("x")
    write_image(tmp_path / "in" / "a.png")
    code, _, err = cli("--store", tmp_path / "a-file" / "store", "ingest", tmp_path / "in",
                       "--label", "real", "--json")
    assert code == 1
    assert "Expected a writable store directory" in err


def test_status_of_a_store_that_does_not_exist_yet(cli, store):
    code, status, _ = cli("--store", store, "status", "--json")
    assert code == 0
    assert status["images"] == {"real": 0, "synthetic": 0} and status["quarantined"] == 0
    assert not store.exists()


def test_repeats_of_a_rejected_file_are_all_rejected(cli, store, tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_bytes(image_bytes(size=(10, 10)))
    _, out, _ = cli("--store", store, "ingest", tmp_path / "in", "--label", "real", "--json")
    assert (out["ingested"], out["duplicates"], out["rejected"]) == (0, 0, 2)


def test_conflict_within_one_run(cli, store, tmp_path):
    data = image_bytes(seed=9)
    for folder in ("real", "synthetic/g"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "x.png").write_bytes(data)
    _, out, _ = cli("--store", store, "ingest", tmp_path / "in", "--json")
    assert (out["ingested"], out["conflicts"]) == (1, 1)


def test_hostile_files_are_rejected_with_reasons_and_the_rest_ingested(cli, store, tmp_path):
    """One file Pillow chokes on (any exception type) never stops an ingest."""
    import numpy as np

    from tests.hostile_images import psd_with_garbage_layers, psd_with_one_layer, tiff_with_a_broken_second_frame

    pixels = np.random.default_rng(5).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "broken-page.tif").write_bytes(tiff_with_a_broken_second_frame())
    (folder / "garbage-layers.psd").write_bytes(psd_with_garbage_layers(pixels))
    (folder / "layered.psd").write_bytes(psd_with_one_layer(pixels))
    write_image(folder / "good.png", seed=3)
    code, out, _ = cli("--store", store, "ingest", folder, "--label", "real", "--json")
    assert code == 0
    assert (out["ingested"], out["rejected"]) == (2, 2)
    reasons = {os.path.basename(r["path"]): r["reason"] for r in out["rejections"]}
    assert reasons == {"broken-page.tif": "truncated or corrupt image data (Pillow: Missing dimensions)",
                       "garbage-layers.psd": reasons["garbage-layers.psd"]}
    assert reasons["garbage-layers.psd"].startswith("truncated or corrupt image data (Pillow: ")
    _, status, _ = cli("--store", store, "status", "--json")
    assert status["images"]["real"] == 2 and status["quarantined"] == 2


def test_a_fifo_and_a_link_to_a_device_are_refused_without_waiting(cli, store, tmp_path):
    folder = tmp_path / "specials"
    folder.mkdir()
    os.mkfifo(folder / "pipe.jpg")  # nobody ever writes to it: reading would wait forever
    (folder / "zeros.png").symlink_to("/dev/zero")  # size 0, endless bytes
    write_image(folder / "good.png", seed=4)
    code, out, _ = cli("--store", store, "ingest", folder, "--label", "real", "--json")
    assert code == 0 and out["ingested"] == 1
    reasons = {os.path.basename(r["path"]): r["reason"] for r in out["rejections"]}
    assert reasons == {"pipe.jpg": "not a regular file (a FIFO): only files are read",
                       "zeros.png": "not a regular file (a character device): only files are read"}
    with pytest.raises(ImageRejected, match="a FIFO"):  # what detect, similar and embed read with
        read_image_file(folder / "pipe.jpg")


def test_a_file_larger_than_its_size_said_is_cut_off_at_the_limit(tmp_path):
    """The read is bounded by the limit, not by what stat said (a file growing, /proc-like files)."""
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 5000)
    with pytest.raises(ImageRejected, match="too large: 5,000 bytes, at most 4,000"):
        read_image_file(path, DecodeLimits(max_bytes=4000))
    assert read_image_file(path, DecodeLimits(max_bytes=5000)) == b"\0" * 5000


def test_rows_with_non_text_labels_or_generators_are_refused_and_the_rest_ingested(cli, store, tmp_path):
    for index in range(6):
        write_image(tmp_path / "data" / f"{index}.png", seed=40 + index)
    rows = [{"path": "0.png", "label": 5}, {"path": "1.png", "label": ["real"]}, {"path": "2.png", "label": True},
            {"path": "3.png", "label": "synthetic", "generator": 7},
            {"path": "4.png", "label": "real", "source": 12},  # a class number as the source group
            {"path": "5.png", "label": "synthetic", "generator": "sdxl"}]
    manifest = tmp_path / "data" / "m.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, out, _ = cli("--store", store, "ingest", manifest, "--json")
    assert (code, out["ingested"], out["rejected"]) == (0, 2, 4)
    reasons = sorted(r["reason"] for r in out["rejections"])
    assert reasons == ["m.jsonl:line 1: label must be text (real or synthetic), but got int 5",
                       "m.jsonl:line 2: label must be text (real or synthetic), but got list ['real']",
                       "m.jsonl:line 3: label must be text (real or synthetic), but got bool True",
                       "m.jsonl:line 4: the generator name must be text, but got int 7"]
    sources = Catalog(StoreLayout(store)).query("SELECT source FROM images ORDER BY source")
    assert [row[0] for row in sources] == ["12", "m"]


def test_an_int64_label_column_in_parquet_is_refused_row_by_row(cli, store, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_image(tmp_path / "data" / "a.png", seed=50)
    pq.write_table(pa.table({"path": ["a.png"], "label": pa.array([1], pa.int64())}), tmp_path / "data" / "m.parquet")
    code, out, _ = cli("--store", store, "ingest", tmp_path / "data" / "m.parquet", "--json")
    assert (code, out["ingested"], out["rejected"]) == (0, 0, 1)
    assert out["rejections"][0]["reason"].endswith("label must be text (real or synthetic), but got int 1")


@pytest.mark.parametrize("name, reason", [
    ("evil\x1b[31mred", "holds the unprintable character U+001B"),
    ("two\nlines", "holds the unprintable character U+000A"),
    ("mirror\u202egnp", "holds the unprintable character U+202E"),
    ("x" * 256, "has 256 characters, at most 255 are allowed"),
])
def test_generator_names_are_checked_at_the_door(cli, store, tmp_path, name, reason):
    write_image(tmp_path / "in" / "a.png", seed=60)
    code, _, err = cli("--store", store, "ingest", tmp_path / "in", "--label", "synthetic", "--generator", name, "--json")
    assert code != 0 and reason in err
    if len(name.encode()) > 255:
        return  # no file system has such a folder name; manifests and --generator do
    folder = tmp_path / "tree"
    write_image(folder / "real" / "r.png", seed=61)
    write_image(folder / "synthetic" / name / "s.png", seed=62)
    code, out, _ = cli("--store", store, "ingest", folder, "--json")
    assert (code, out["ingested"], out["rejected"]) == (0, 1, 1)
    assert reason in out["rejections"][0]["reason"]
    _, status, _ = cli("--store", store, "status", "--json")
    assert status["images"] == {"real": 1, "synthetic": 0}


def test_names_in_any_script_with_spaces_and_punctuation_are_fine(cli, store, tmp_path):
    for name in ("ピカソ-XL", "flux.1 [dev]", "Midjourney v6.1 (relax)", "🎨 generator"):
        write_image(tmp_path / "in" / "synthetic" / name / "a.png", seed=hash(name) % 1000)
    _, out, _ = cli("--store", store, "ingest", tmp_path / "in", "--json")
    assert out["ingested"] == 4 and out["rejected"] == 0
