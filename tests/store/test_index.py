"""The FAISS index and lookups: incremental updates, staleness, exact-k filters, duplicates."""

from __future__ import annotations

import hashlib
import io
import json

import faiss
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.index import IndexStore, image_key, image_keys
from synthwatch.store.backbones import choose_backbone
from synthwatch.store.indexing import sync_index
from synthwatch.store.neighbors import open_for_reading
from synthwatch.store.layout import StoreLayout
from synthwatch.store.neighbors import group_pairs, straddling_pairs
from synthwatch.corpus.photos import bundled_photos, random_crops

BACKBONE = "test-tiny-dinov2@main.crop32.L4"
TINY = ("--backbone", "test-tiny-dinov2", "--workers", "0")


def _write_crops(folder, count, seed, size=48):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index, (_, crop) in enumerate(random_crops(bundled_photos(), count, size, rng)):
        path = folder / f"{seed}-{index:03d}.png"
        crop.save(path)
        paths.append(path)
    return paths


@pytest.fixture
def indexed(cli, store, tmp_path):
    """30 real, 20 of generator 'common' and 7 of generator 'rare', embedded and indexed."""
    _write_crops(tmp_path / "in" / "real", 30, seed=1)
    _write_crops(tmp_path / "in" / "synthetic" / "common", 20, seed=2)
    _write_crops(tmp_path / "in" / "synthetic" / "rare", 7, seed=3)
    cli("--store", store, "ingest", tmp_path / "in", "--json")
    cli("--store", store, "embed", *TINY, "--json")
    code, out, _ = cli("--store", store, "index", "--json")
    assert code == 0
    return store, out


def test_index_contract(indexed):
    _, out = indexed
    assert (out["backbone_id"], out["ntotal"], out["index_type"]) == (BACKBONE, 57, "flat")


def test_new_vectors_are_added_without_a_rebuild(cli, indexed, tmp_path):
    store, _ = indexed
    _write_crops(tmp_path / "more", 5, seed=9)
    cli("--store", store, "ingest", tmp_path / "more", "--label", "real", "--json")
    cli("--store", store, "embed", *TINY, "--json")
    _, out = cli("--store", store, "index", "--json")[:2]
    assert (out["action"], out["added"], out["removed"], out["ntotal"]) == ("updated", 5, 0, 62)


def test_removed_images_leave_the_index(cli, indexed, tmp_path):
    store, _ = indexed
    layout = StoreLayout(store)
    gone = [row[0] for row in Catalog(layout).query("SELECT image_id FROM images WHERE generator = 'rare' LIMIT 3")]
    assert Catalog(layout).remove_images(gone) == 3
    result = sync_index(layout, BACKBONE)
    assert (result["action"], result["removed"], result["ntotal"]) == ("updated", 3, 54)
    neighbors, _ = open_for_reading(layout, None)
    found, matching = neighbors.search(np.ones((1, 64), np.float32) / 8, 10, generator="rare")
    assert matching == 4 and not {n.image_id for n in found[0]} & set(gone)


def test_images_removed_after_indexing_are_skipped_and_k_still_found(indexed):
    store, _ = indexed
    layout = StoreLayout(store)
    neighbors, _ = open_for_reading(layout, None)  # a long-lived reader, as the service is
    query = _stored_vector(layout)  # a constant query scores every vector 0 (layer-normed tokens): ties
    first, _ = neighbors.search(query, 5)
    assert len({round(n.score, 5) for n in first[0]}) == 5
    gone = [n.image_id for n in first[0][:3]]
    assert Catalog(layout).remove_images(gone) == 3  # another process removes them; no re-index yet
    found, _ = neighbors.search(query, 5)
    assert len(found[0]) == 5 and not {n.image_id for n in found[0]} & set(gone)
    assert [n.image_id for n in found[0][:2]] == [n.image_id for n in first[0][3:]]


def _stored_vector(layout: StoreLayout) -> np.ndarray:
    from synthwatch.store.vectors import VectorStore

    table = next(VectorStore(layout, BACKBONE).read(["vector"]))
    return np.asarray(table.column("vector")[0].as_py(), np.float32)[None]


def test_two_images_sharing_an_index_key_are_refused(indexed):
    store, _ = indexed
    layout = StoreLayout(store)
    with Catalog(layout).transaction() as con:  # a forged twin: same first 60 bits, other sha256
        con.execute("INSERT INTO images SELECT * REPLACE (substr(image_id, 1, 15) || repeat('0', 49) AS image_id) "
                    "FROM images LIMIT 1")
    with pytest.raises(StoreError, match="share one"):
        sync_index(layout, BACKBONE, rebuild=True)


def test_stale_index_is_detected_and_updated_saying_so(cli, indexed, tmp_path):
    store, _ = indexed
    _write_crops(tmp_path / "late", 4, seed=11)
    cli("--store", store, "ingest", tmp_path / "late", "--label", "real", "--json")
    cli("--store", store, "embed", *TINY, "--json")  # vectors added, index not rebuilt
    index_folder = IndexStore(StoreLayout(store), BACKBONE).folder
    before = {p.name: p.read_bytes() for p in index_folder.iterdir()}
    for reader in (["similar", next((tmp_path / "late").iterdir()), "-k", "1"], ["duplicates"], ["detect", next((tmp_path / "late").iterdir())]):
        code, out, err = cli("--store", store, *reader, "--json")
        if reader[0] == "similar":
            assert code == 0
            assert "was not current" in err and "+4 -0" in err
            assert out["results"][0]["neighbors"][0]["score"] == pytest.approx(1.0, abs=1e-5)
        # Readers answer from an index brought up to date in memory and never write one.
        assert {p.name: p.read_bytes() for p in index_folder.iterdir()} == before, reader[0]
    code, out, _ = cli("--store", store, "index", "--json")
    assert (out["action"], out["added"]) == ("updated", 4)


def test_damaged_index_is_rebuilt_saying_so(cli, indexed, tmp_path):
    store, _ = indexed
    index_store = IndexStore(StoreLayout(store), BACKBONE)
    (index_store.folder / index_store.manifest()["file"]).write_bytes(b"garbage")
    query = next((tmp_path / "in" / "real").iterdir())
    code, out, err = cli("--store", store, "similar", query, "-k", "3", "--json")
    assert code == 0 and "was damaged" in err and "rebuilt with 57 vectors" in err
    assert len(out["results"][0]["neighbors"]) == 3


def test_a_stored_image_comes_back_first(cli, indexed, tmp_path):
    store, _ = indexed
    query = sorted((tmp_path / "in" / "synthetic" / "rare").iterdir())[2]
    code, out, _ = cli("--store", store, "similar", query, "-k", "5", "--json")
    first = out["results"][0]["neighbors"][0]
    assert (first["path"], first["generator"], first["label"]) == (str(query), "rare", "synthetic")
    assert first["score"] == pytest.approx(1.0, abs=1e-5)
    assert [n["score"] for n in out["results"][0]["neighbors"]] == sorted(
        (n["score"] for n in out["results"][0]["neighbors"]), reverse=True)


@pytest.mark.parametrize("exact_limit", [10_000, 8], ids=["flat", "ivf-hnsw"])
@pytest.mark.parametrize("k, label, generator, expected", [
    (5, None, "rare", 5), (10, None, "rare", 7), (25, "real", None, 25), (40, "real", None, 30),
    (57, None, None, 57),
])
def test_filters_return_exactly_k_when_k_match(indexed, tmp_path, exact_limit, k, label, generator, expected):
    store, _ = indexed
    layout = StoreLayout(store)
    result = sync_index(layout, BACKBONE, rebuild=True, exact_limit=exact_limit)
    assert result["index_type"] == ("flat" if exact_limit > 100 else "ivf-hnsw")
    neighbors, _ = open_for_reading(layout, None)
    queries = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    found, matching = neighbors.search(queries, k, label=label, generator=generator)
    for result_list in found:
        assert len(result_list) == expected
        assert all((label is None or n.label == label) and (generator is None or n.generator == generator)
                   for n in result_list)
        assert len({n.image_id for n in result_list}) == expected


def test_near_duplicates_group_reencoded_and_resized_copies(cli, store, tmp_path):
    originals = _write_crops(tmp_path / "in", 12, seed=4, size=64)
    source = Image.open(originals[0])
    buffer = io.BytesIO()
    source.save(buffer, format="JPEG", quality=92)
    (tmp_path / "in" / "copy-reencoded.jpg").write_bytes(buffer.getvalue())
    source.resize((60, 60), Image.Resampling.LANCZOS).save(tmp_path / "in" / "copy-resized.png")
    cli("--store", store, "ingest", tmp_path / "in", "--label", "real", "--json")
    cli("--store", store, "embed", *TINY, "--json")
    cli("--store", store, "index", "--json")
    code, out, _ = cli("--store", store, "duplicates", "--threshold", "0.995", "--json")
    assert code == 0
    groups = [sorted(image["path"].rsplit("/", 1)[1] for image in g["images"]) for g in out["groups"]]
    assert sorted(["copy-reencoded.jpg", "copy-resized.png", originals[0].name]) in groups
    neighbors, _ = open_for_reading(StoreLayout(store), None)
    pairs = neighbors.pairs_above(0.995)
    ids = {row[1].rsplit("/", 1)[1]: row[0] for row in Catalog(StoreLayout(store)).query(
        "SELECT image_id, original_path FROM images")}
    train = {ids[originals[0].name], ids["copy-resized.png"]}
    held_out = {ids["copy-reencoded.jpg"], ids[originals[5].name]}
    crossing = straddling_pairs(pairs, train, held_out)
    assert {frozenset(p[:2]) for p in crossing} == {
        frozenset((ids[originals[0].name], ids["copy-reencoded.jpg"])),
        frozenset((ids["copy-resized.png"], ids["copy-reencoded.jpg"]))}


def test_group_pairs_is_transitive():
    assert group_pairs([("a", "b", 1.0), ("c", "d", 1.0), ("b", "c", 0.99), ("x", "y", 1.0)]) == [
        ["a", "b", "c", "d"], ["x", "y"]]


def test_default_backbone_is_the_only_indexed_one_or_the_choices_are_listed(cli, indexed):
    store, _ = indexed
    layout = StoreLayout(store)
    assert choose_backbone(layout, None) == BACKBONE
    assert choose_backbone(layout, "test-tiny-dinov2") == BACKBONE
    cli("--store", store, "embed", "--backbone", "test-tiny-convnext", "--workers", "0", "--json")
    cli("--store", store, "index", "--backbone", "test-tiny-convnext", "--json")
    with pytest.raises(StoreError, match=r"2 have an index: test-tiny-convnext@main.crop32.S3, test-tiny-dinov2"):
        choose_backbone(layout, None)
    code, _, err = cli("--store", store, "similar", "x.png", "--json")
    assert code == 1 and "Choose one with --backbone" in err


def test_the_id_directory_gives_back_full_ids_by_key():
    from synthwatch.store.id_directory import IdDirectory

    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(70_000)]  # more than one chunk
    directory = IdDirectory(pa.array(ids))
    wanted = [image_key(ids[i]) for i in (0, 65_536, 69_999)] + [12345]  # the last is no image's
    assert directory.ids_of(np.array(wanted)) == {wanted[0]: ids[0], wanted[1]: ids[65_536], wanted[2]: ids[69_999]}
    with pytest.raises(ValueError, match="Expected image ids of 64 hex digits"):
        IdDirectory(pa.array(["abc" * 8]))
    with pytest.raises(ValueError, match="in hexadecimal"):
        IdDirectory(pa.array(["z" * 64]))


def test_vectorised_keys_match_the_single_key():
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(50)] + ["F" * 64]
    assert image_keys(ids).tolist() == [image_key(i) for i in ids]
    assert image_keys(pa.chunked_array([ids[:20], ids[20:]])).tolist() == [image_key(i) for i in ids]
    with pytest.raises(ValueError, match="hexadecimal"):
        image_keys(["z" * 64])


def test_codes_are_remembered_and_the_type_follows_the_size(indexed):
    store, _ = indexed
    layout = StoreLayout(store)
    small = sync_index(layout, BACKBONE, codes="sq8")
    assert (small["index_type"], small["codes"]) == ("flat", "sq8")  # too few vectors for IVF
    grown = sync_index(layout, BACKBONE, exact_limit=8)
    assert (grown["index_type"], grown["action"]) == ("ivf-hnsw-sq8", "rebuilt as ivf-hnsw-sq8 for 57 vectors (was flat)")
    again = sync_index(layout, BACKBONE, exact_limit=8)
    assert (again["index_type"], again["action"]) == ("ivf-hnsw-sq8", "unchanged")
    neighbors, _ = open_for_reading(layout, None)
    found, _ = neighbors.search(np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32), 20,
                                label="synthetic")
    assert [len(f) for f in found] == [20, 20] and all(n.label == "synthetic" for f in found for n in f)


def test_an_index_whose_keys_disagree_with_its_manifest_is_refused(indexed):
    store, _ = indexed
    index_store = IndexStore(StoreLayout(store), BACKBONE)
    manifest = index_store.manifest()
    manifest["checksum"] = "57:0000000000000000"
    index_store.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="to hold the keys its manifest names"):
        index_store.load()


def test_bytes_damaged_in_the_middle_of_the_index_are_found_not_searched(cli, indexed, tmp_path):
    """Overwriting bytes inside the file keeps its size and its keys: only a checksum of the
    bytes catches it, before any answer is given."""
    store, _ = indexed
    index_store = IndexStore(StoreLayout(store), BACKBONE)
    path = index_store.folder / index_store.manifest()["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\x7f" * 64  # inside the vectors: similarities would be ~1e30
    path.write_bytes(bytes(data))
    query = next((tmp_path / "in" / "real").iterdir())
    code, out, err = cli("--store", store, "similar", query, "-k", "3", "--json")
    assert code == 0 and "was damaged" in err and "do not match the sha256" in err
    assert all(-1.001 <= n["score"] <= 1.001 for n in out["results"][0]["neighbors"])
    assert path.read_bytes() == bytes(data)  # a reader never writes the index: it rebuilt one in memory
    code, out, _ = cli("--store", store, "index", "--json")
    assert out["action"].startswith("rebuilt") and out["ntotal"] == 57


def test_readers_check_sampled_blocks_and_verify_reads_every_byte(cli, indexed, tmp_path, monkeypatch):
    """A reader's check costs the same at any size (the size and evenly spaced blocks), so damage in a
    sampled block or a truncation is refused on opening, damage between blocks is not, and
    ``status --verify`` and ``index`` (which hash every byte) find it."""
    from synthwatch.store import file_digest

    monkeypatch.setattr(file_digest, "SAMPLE_BLOCKS", 4)
    monkeypatch.setattr(file_digest, "SAMPLE_BYTES", 64)
    store, _ = indexed
    assert cli("--store", store, "index", "--rebuild", "--json")[1]["ntotal"] == 57  # digests of 4 x 64 bytes
    index_store = IndexStore(StoreLayout(store), BACKBONE)
    path = index_store.folder / index_store.manifest()["file"]
    original = path.read_bytes()
    gap = (len(original) - 64) // 3  # blocks start at 0, gap, 2 gap and the end
    query = next((tmp_path / "in" / "real").iterdir())
    for damaged in (original[:gap + 10] + b"\x7f" + original[gap + 11:], original[:-1]):
        path.write_bytes(damaged)
        code, _, err = cli("--store", store, "similar", query, "-k", "3", "--json")
        assert code == 0 and "do not match the sha256" in err  # refused; answered from an index built in memory
    between = bytearray(original)
    between[gap + 100] ^= 0x01  # a bit flipped between two sampled blocks
    path.write_bytes(bytes(between))
    code, out, err = cli("--store", store, "similar", query, "-k", "3", "--json")
    assert code == 0 and "sha256" not in err
    code, status, _ = cli("--store", store, "status", "--verify", "--json")
    assert code == 1 and status["problems"] == [f"index {BACKBONE}: its file does not have the bytes its manifest names"]
    code, out, _ = cli("--store", store, "index", "--json")
    assert out["action"] == "rebuilt (its file was missing or damaged)"


def test_index_rebuilds_a_file_damaged_in_place(cli, indexed):
    store, _ = indexed
    index_store = IndexStore(StoreLayout(store), BACKBONE)
    path = index_store.folder / index_store.manifest()["file"]
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out, _ = cli("--store", store, "index", "--json")
    assert (code, out["action"], out["ntotal"]) == (0, "rebuilt (its file was missing or damaged)", 57)


def test_a_search_that_returns_impossible_similarities_is_refused(indexed):
    """The cheap check on every search: a long-lived reader whose loaded index went bad (memory
    damage, a file swapped under it) answers with an error, never with such neighbours."""
    store, _ = indexed
    neighbors, _ = open_for_reading(StoreLayout(store), None)
    flat = faiss.downcast_index(neighbors.index.index)  # the id map's exact index: raw float32 codes
    vectors = faiss.vector_to_array(flat.codes).view(np.float32) * np.float32(1e15)
    faiss.copy_array_to_vector(vectors.view(np.uint8), flat.codes)  # what memory damage looks like
    with pytest.raises(StoreError, match=r"within the query's length.*index --rebuild"):
        neighbors.search(_stored_vector(StoreLayout(store)), 3)


def _damage_a_page(shard):
    """Overwrite bytes inside the first column chunk's data: the footer stays intact, so the file
    opens and only decoding a page fails."""
    import pyarrow.parquet as pq

    chunk = pq.ParquetFile(shard).metadata.row_group(0).column(3)  # the vectors
    start = chunk.data_page_offset
    data = bytearray(shard.read_bytes())
    data[start + 40:start + 240] = bytes(range(200))
    shard.write_bytes(bytes(data))


def test_a_damaged_shard_is_named_found_by_verify_and_repaired(cli, indexed, tmp_path):
    store, _ = indexed
    layout = StoreLayout(store)
    from synthwatch.store.vectors import VectorStore

    shard = VectorStore(layout, BACKBONE).shards()[0]
    _damage_a_page(shard)
    code, _, err = cli("--store", store, "train", "--backbone", BACKBONE, "--json")
    assert code == 1 and str(shard) in err and "status --verify --repair" in err and "Traceback" not in err
    code, status, _ = cli("--store", store, "status", "--verify", "--json")
    assert code == 1 and any(str(shard) in problem and "damaged" in problem for problem in status["problems"])
    code, status, _ = cli("--store", store, "status", "--repair", "--json")
    assert code == 0 and status["problems"] == []
    assert status["repairs"][0] == f"set aside {shard.parent / 'damaged' / shard.name}"
    assert status["repairs"][1].startswith("re-embedded 57 images (")  # train embedded their robustness views first
    assert VectorStore(layout, BACKBONE).row_count() >= 57
    code, out, _ = cli("--store", store, "similar", next((tmp_path / "in" / "real").iterdir()), "-k", "1", "--json")
    assert code == 0 and out["results"][0]["neighbors"][0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_verify_finds_a_damaged_index_and_repair_rebuilds_it(cli, indexed):
    store, _ = indexed
    index_store = IndexStore(StoreLayout(store), BACKBONE)
    path = index_store.folder / index_store.manifest()["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    code, status, _ = cli("--store", store, "status", "--verify", "--json")
    assert code == 1 and status["problems"] == [f"index {BACKBONE}: its file does not have the bytes its manifest names"]
    code, status, _ = cli("--store", store, "status", "--repair", "--json")
    assert code == 0 and status["repairs"] == [f"rebuilt the index of {BACKBONE} (57 vectors)"] and status["problems"] == []


def test_index_json_counts_the_vectors_instead_of_trusting_the_manifest(cli, indexed):
    store, _ = indexed
    index_store = IndexStore(StoreLayout(store), BACKBONE)
    manifest = index_store.manifest()
    index_store.manifest_path.write_text(json.dumps({**manifest, "ntotal": 999}))  # edited by hand
    code, out, _ = cli("--store", store, "index", "--json")
    assert (code, out["action"], out["ntotal"]) == (0, "unchanged", 57)


def test_the_id_directory_is_a_file_beside_the_index_mapped_by_readers_and_checked(cli, indexed, tmp_path):
    from synthwatch.store.neighbors import NeighborIndex

    store, _ = indexed
    index_store = IndexStore(StoreLayout(store), BACKBONE)
    manifest = index_store.manifest()
    directory = index_store.folder / manifest["ids_file"]
    assert directory.stat().st_size >= 57 * 40 and manifest["ids_sha256"]
    neighbors = NeighborIndex(StoreLayout(store), BACKBONE)
    assert isinstance(neighbors.ids.records, np.memmap) and len(neighbors.ids) == 57  # mapped, not read
    query = next((tmp_path / "in" / "real").iterdir())
    code, before, _ = cli("--store", store, "similar", query, "-k", "3", "--json")
    data = bytearray(directory.read_bytes())
    data[-5] ^= 0xFF
    directory.write_bytes(bytes(data))
    code, status, _ = cli("--store", store, "status", "--verify", "--json")
    assert code == 1 and status["problems"] == [f"index {BACKBONE}: its file does not have the bytes its manifest names"]
    code, after, err = cli("--store", store, "similar", query, "-k", "3", "--json")  # built in memory, said so
    assert code == 0 and "damaged" in err and after["results"][0]["neighbors"] == before["results"][0]["neighbors"]
    code, status, _ = cli("--store", store, "status", "--repair", "--json")
    assert code == 0 and status["problems"] == []


def test_neighbours_are_resolved_from_the_rows_beside_the_index_as_the_catalog_would(cli, indexed, tmp_path):
    from synthwatch.store.neighbors import NeighborIndex

    store, _ = indexed
    layout = StoreLayout(store)
    index_store = IndexStore(layout, BACKBONE)
    manifest = index_store.manifest()
    assert manifest["generators"] == ["common", "rare"] and manifest["images_removed"] == 0
    neighbors = NeighborIndex(layout, BACKBONE)
    assert isinstance(neighbors.rows.rows, np.memmap) and len(neighbors.rows.rows) == 57
    query = _stored_vector(layout)
    from_rows, _ = neighbors.search(query, 57)
    catalog = {row[0]: row[1:] for row in Catalog(layout).query(
        "SELECT image_id, label, generator, original_path FROM images")}
    assert len(from_rows[0]) == 57
    assert [(n.label, n.generator, n.path) for n in from_rows[0]] == [catalog[n.image_id] for n in from_rows[0]]
    assert {n.generator for n in from_rows[0]} == {None, "common", "rare"}
    rows = index_store.folder / manifest["rows_file"]
    data = bytearray(rows.read_bytes())
    data[-3] ^= 0xFF
    rows.write_bytes(bytes(data))
    code, status, _ = cli("--store", store, "status", "--verify", "--json")
    assert code == 1 and status["problems"] == [f"index {BACKBONE}: its file does not have the bytes its manifest names"]


def test_an_index_written_before_neighbour_rows_is_read_through_the_catalog_and_given_them_without_a_rebuild(
        cli, indexed, tmp_path):
    store, _ = indexed
    layout = StoreLayout(store)
    index_store = IndexStore(layout, BACKBONE)
    manifest = index_store.manifest()
    old = {key: value for key, value in manifest.items()
           if not key.startswith(("rows_", "paths_")) and key not in ("generators", "images_removed")}
    index_store.manifest_path.write_text(json.dumps(old))
    query = next((tmp_path / "in" / "real").iterdir())
    code, before, _ = cli("--store", store, "similar", query, "-k", "5", "--json")
    assert code == 0 and len(before["results"][0]["neighbors"]) == 5
    code, out, _ = cli("--store", store, "index", "--json")
    assert (code, out["action"], out["added"], out["removed"]) == (0, "updated", 0, 0)
    upgraded = index_store.manifest()
    assert "rows_file" in upgraded and upgraded["file"] == manifest["file"]  # the index file is kept as it is
    assert sorted(path.name for path in index_store.folder.glob("index-*")) == sorted(
        upgraded[key] for key in ("file", "ids_file", "rows_file", "paths_file"))  # the old directory is gone
    code, after, _ = cli("--store", store, "similar", query, "-k", "5", "--json")
    assert after["results"][0]["neighbors"] == before["results"][0]["neighbors"]


READER = """
import sys, time
from pathlib import Path
from synthwatch.store.catalog_reader import shared_reader
from synthwatch.store.layout import StoreLayout
reader = shared_reader(StoreLayout(Path(sys.argv[1])))
deadline = time.monotonic() + float(sys.argv[2])
answered = 0
while time.monotonic() < deadline:
    answered += reader.query("SELECT count(*) FROM images")[0][0] > 0
    time.sleep(float(sys.argv[3]))
print(answered)
"""


@pytest.mark.parametrize("pause_s", [0.0, 2.0])
def test_a_reader_reusing_its_connection_never_locks_a_writer_out(indexed, pause_s):
    """Querying back to back (the writer is seen before each query) or idle between queries (the
    connection is closed after a moment), a reader in another process lets every write through."""
    import subprocess
    import sys
    import time

    from synthwatch.store.catalog import Catalog

    store, _ = indexed
    reader = subprocess.Popen([sys.executable, "-c", READER, str(store), "6", str(pause_s)], stdout=subprocess.PIPE,
                              text=True)
    time.sleep(2.5)  # the reader is up and holds its connection
    catalog = Catalog(StoreLayout(store), lock_wait_s=5)
    for number in range(5):
        catalog.log_event("synthwatch.test", {"number": number})  # each raises if the reader kept the file
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and int(out) >= 1
    assert len(catalog.events("synthwatch.test")) == 5
