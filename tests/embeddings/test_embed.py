"""`synthwatch embed` end to end: Parquet output, views, resume, failures, SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.conftest import write_image

TINY = ("--backbone", "test-tiny-dinov2")


@pytest.fixture
def ingested(cli, store, tmp_path):
    """A store holding 12 real and 12 synthetic images of various sizes."""
    for index in range(12):
        write_image(tmp_path / "in" / "real" / f"r{index}.png", size=(48 + index, 40), seed=index)
        write_image(tmp_path / "in" / "synthetic" / "gen" / f"s{index}.jpg", fmt="JPEG",
                    size=(64, 33 + index), seed=100 + index)
    code, _, _ = cli("--store", store, "ingest", tmp_path / "in", "--json")
    assert code == 0
    return store


def _vectors(store: Path, backbone_id: str):
    return ds.dataset(store / "vectors" / backbone_id, format="parquet").to_table()


def test_contract_and_parquet_readable_without_our_code(cli, ingested):
    code, out, _ = cli("--store", ingested, "embed", *TINY, "--workers", "0", "--json")
    assert code == 0
    assert (out["embedded"], out["skipped"], out["failed"], out["dim"]) == (24, 0, 0, 64)
    table = _vectors(ingested, out["backbone_id"])
    assert table.schema.field("vector").type.list_size == 64
    assert str(table.schema.field("vector").type.value_type) == "float"
    vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    shard = next((ingested / "vectors" / out["backbone_id"]).glob("*.parquet"))
    meta = json.loads(pq.read_schema(shard).metadata[b"synthwatch.backbone"])
    assert meta["name"] == "test-tiny-dinov2" and meta["mode"] == "crop" and meta["layers"] == [4]
    count = duckdb.sql(f"SELECT count(DISTINCT image_id) FROM read_parquet('{shard.parent}/*.parquet')").fetchall()[0][0]
    assert count == 24
    code, status, _ = cli("--store", ingested, "status", "--json")
    assert status["embeddings"] == {out["backbone_id"]: 24}


def test_rerun_adds_nothing_and_new_views_are_added(cli, ingested):
    _, first, _ = cli("--store", ingested, "embed", *TINY, "--workers", "0", "--json")
    _, again, _ = cli("--store", ingested, "embed", *TINY, "--workers", "0", "--json")
    assert (again["embedded"], again["skipped"]) == (0, 24)
    _, more, _ = cli("--store", ingested, "embed", *TINY, "--views", "2", "--workers", "0", "--json")
    assert (more["embedded"], more["skipped"]) == (48, 24)
    table = _vectors(ingested, first["backbone_id"])
    pairs = Counter(zip(table.column("image_id").to_pylist(), table.column("view").to_pylist()))
    assert len(pairs) == 72 and set(pairs.values()) == {1}


def test_views_are_seeded_and_recorded(cli, ingested, tmp_path):
    _, out, _ = cli("--store", ingested, "embed", *TINY, "--views", "3", "--workers", "1", "--json")
    rows = _vectors(ingested, out["backbone_id"]).to_pylist()
    params = [json.loads(row["augmentation"]) for row in rows]
    assert all(p == {} for row, p in zip(rows, params) if row["view"] == 0)
    augmented = [p for row, p in zip(rows, params) if row["view"] > 0]
    assert all("crop" in p for p in augmented)
    assert any("jpeg_quality" in p for p in augmented) and any("downscale" in p for p in augmented)
    assert any("blur_sigma" in p for p in augmented)
    by_key = {(r["image_id"], r["view"]): np.asarray(r["vector"]) for r in rows}
    other = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(ingested), str(other)], check=True)
    for shard in (other / "vectors").rglob("*.parquet"):
        shard.unlink()
    _, redo, _ = cli("--store", other, "embed", *TINY, "--views", "3", "--workers", "0", "--json")
    again = {(r["image_id"], r["view"]): np.asarray(r["vector"]) for r in _vectors(other, redo["backbone_id"]).to_pylist()}
    assert by_key.keys() == again.keys()
    assert all(np.allclose(by_key[key], again[key], atol=1e-6) for key in by_key)  # same seed, same views
    for shard in (other / "vectors").rglob("*.parquet"):
        shard.unlink()
    cli("--store", other, "embed", *TINY, "--views", "3", "--seed", "7", "--workers", "0", "--json")
    seeded = {(r["image_id"], r["view"]): np.asarray(r["vector"]) for r in _vectors(other, redo["backbone_id"]).to_pylist()}
    assert all(np.allclose(by_key[k], seeded[k], atol=1e-6) for k in by_key if k[1] == 0)
    assert not all(np.allclose(by_key[k], seeded[k], atol=1e-6) for k in by_key if k[1] > 0)


def test_modes_and_backbones_keep_separate_folders(cli, ingested):
    ids = set()
    for args in (TINY, (*TINY, "--mode", "resize"), (*TINY, "--layers", "2,4"),
                 ("--backbone", "test-tiny-convnext")):
        _, out, _ = cli("--store", ingested, "embed", *args, "--workers", "0", "--json")
        assert out["embedded"] == 24
        ids.add(out["backbone_id"])
    _, status, _ = cli("--store", ingested, "status", "--json")
    assert set(status["embeddings"]) == ids and len(ids) == 4


def test_decode_failure_at_embed_time_is_quarantined_and_the_run_goes_on(cli, ingested):
    blob = sorted(p for p in (ingested / "blobs").rglob("*") if p.is_file())[0]
    blob.write_bytes(blob.read_bytes()[:100])
    code, out, _ = cli("--store", ingested, "embed", *TINY, "--workers", "1", "--json")
    assert code == 0
    assert (out["failed"], out["embedded"]) == (1, 23)
    assert "changed since it was ingested" in out["failures"][0]["reason"]
    _, status, _ = cli("--store", ingested, "status", "--json")
    assert status["quarantined"] == 1


def test_missing_weights_fail_at_once_from_the_cli(cli, ingested, monkeypatch, tmp_path, online_loads):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    code, out, err = cli("--store", ingested, "embed", "--backbone", "dinov2-small", "--json")
    assert code == 1 and out is None
    assert "dinov2-small" in err and "--backbone DIR" in err and "--allow-random-weights" in err
    assert online_loads == []  # never the libraries' retrying online path


def test_sigkill_mid_embed_then_clean_resume(cli, store, tmp_path):
    for index in range(400):
        write_image(tmp_path / "many" / f"{index:04d}.png", size=(48, 48), seed=index)
    cli("--store", store, "ingest", tmp_path / "many", "--label", "real", "--json")
    command = [sys.executable, "-m", "synthwatch", "--store", str(store), "embed", *TINY,
               "--views", "1", "--shard-images", "4", "--batch-size", "2", "--workers", "1", "--json"]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = store / "vectors" / "test-tiny-dinov2@main.crop32.L4"
    while not (folder.exists() and len(list(folder.glob("*.parquet"))) >= 5):  # pytest-timeout guards a hang
        assert writer.poll() is None, writer.communicate()
        time.sleep(0.01)
    import psutil

    workers = psutil.Process(writer.pid).children(recursive=True)
    assert workers  # its decoding worker
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    psutil.wait_procs(workers)  # no orphan left at PPID 1 (pytest-timeout fails the test if one stays)
    kept = ds.dataset(folder, format="parquet").to_table()  # every shard left is readable
    assert 0 < kept.num_rows < 800
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)
    assert resumed["skipped"] == kept.num_rows
    assert resumed["embedded"] == 800 - kept.num_rows  # nothing repeated
    table = ds.dataset(folder, format="parquet").to_table()
    pairs = Counter(zip(table.column("image_id").to_pylist(), table.column("view").to_pylist()))
    assert len(pairs) == 800 and set(pairs.values()) == {1}
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]


def test_vectors_do_not_depend_on_batching_or_workers(cli, ingested, tmp_path):
    """Workers hand over chunks of 32 views that are joined into model batches; the rows are
    the same however the work is cut (here 2 views an image, so 16-image chunks)."""
    other = tmp_path / "other-store"
    cli("--store", other, "ingest", tmp_path / "in", "--json")
    _, big, _ = cli("--store", ingested, "embed", *TINY, "--views", "1", "--batch-size", "64", "--workers", "2", "--json")
    _, small, _ = cli("--store", other, "embed", *TINY, "--views", "1", "--batch-size", "3", "--workers", "0", "--json")
    assert big["embedded"] == small["embedded"] == 48
    rows = []
    for store in (ingested, other):
        table = _vectors(store, big["backbone_id"])
        rows.append({(i, v): np.asarray(x) for i, v, x in zip(table.column("image_id").to_pylist(),
                                                              table.column("view").to_pylist(),
                                                              table.column("vector").to_pylist())})
    assert rows[0].keys() == rows[1].keys()
    assert max(float(np.abs(rows[0][key] - rows[1][key]).max()) for key in rows[0]) < 1e-5


def test_patch_views_are_seeded_native_resolution_squares_and_synthwatch_toml_asks_for_them(cli, ingested):
    _, out, _ = cli("--store", ingested, "embed", *TINY, "--patches", "2", "--workers", "0", "--json")
    assert (out["embedded"], out["failed"]) == (72, 0)
    rows = _vectors(ingested, out["backbone_id"]).to_pylist()
    assert Counter(row["view"] for row in rows) == {0: 24, 500: 24, 501: 24}
    patches = [json.loads(row["augmentation"])["patch"] for row in rows if row["view"] >= 500]
    sides = {side for _, _, side in patches}
    assert sides <= set(range(16, 33)) and len(sides) > 1  # half the shorter side of 33..64 px images
    assert len({(left, top) for left, top, _ in patches}) > 12  # placed at random, not all centred
    config = ingested / "synthwatch.toml"
    text = re.sub(r'(?m)^#? ?backbone = .*$', 'backbone = "test-tiny-dinov2"', config.read_text())
    text = re.sub(r"(?m)^views = \d+$", "views = 0", text)
    config.write_text(re.sub(r"(?m)^patches = \d+$", "patches = 3", text))
    _, other, _ = cli("--store", ingested, "embed", "--backbone", "test-tiny-convnext", "--workers", "0", "--json")
    assert other["embedded"] == 24  # another backbone than synthwatch.toml's: its patch count is not this one's
    _, more, _ = cli("--store", ingested, "embed", "--workers", "0", "--json")
    assert (more["embedded"], more["skipped"]) == (24, 72)  # the third patch view, from synthwatch.toml
    code, _, err = cli("--store", ingested, "embed", *TINY, "--patches", "900", "--workers", "0", "--json")
    assert code != 0 and "patch views" in err


def test_a_store_keeps_embedding_what_its_champion_reads_when_no_layers_are_asked_for(cli, proxy_store):
    store, _ = proxy_store
    code, narrow, err = cli("--store", store, "embed", *TINY, "--layers", "2", "--workers", "0", "--json")
    assert code == 0, err
    code, trained, err = cli("--store", store, "train", "--backbone", narrow["backbone_id"], "--auroc-floor", "0",
                             "--tpr-floor", "0", "--n-boot", "50", "--json")
    assert code in (0, 3), err
    if trained["decision"] != "promoted":
        assert cli("--store", store, "models", "promote", trained["version"], "--force", "--reason", "test")[0] == 0
    code, again, err = cli("--store", store, "embed", *TINY, "--workers", "0", "--json")  # no --layers
    assert code == 0, err
    assert again["backbone_id"] == narrow["backbone_id"] and again["embedded"] == 0  # the champion's layers
    code, default, err = cli("--store", store, "embed", *TINY, "--layers", "4", "--workers", "0", "--json")
    assert default["backbone_id"] != narrow["backbone_id"]  # asked for, other layers are still made
