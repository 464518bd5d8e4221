"""Watched sources: registering folders, manifests and object-store prefixes, and ingesting only
what is new from a prefix (pyarrow filesystems, file:// standing in for s3://; fsspec filesystems,
memory:// standing in for hf://)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from synthwatch.store.catalog import Catalog
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.watched import add_source, ingest_watched, list_sources, parse_duration
from tests.conftest import image_bytes, write_image


def test_sources_add_list_and_remove_from_the_cli(cli, store, tmp_path, monkeypatch):
    folder = tmp_path / "drop"
    write_image(folder / "real" / "a.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,generator\n")
    code, added, _ = cli("--store", store, "sources", "add", folder, "--every", "15m", "--json")
    assert code == 0 and added == {**added, "uri": str(folder), "kind": "folder", "every_s": 900, "cron": None}
    code, added, _ = cli("--store", store, "sources", "add", manifest, "--schedule", "0 * * * *", "--json")
    assert code == 0 and (added["kind"], added["cron"]) == ("manifest", "0 * * * *")
    code, listed, _ = cli("--store", store, "sources", "list", "--json")
    assert [s["uri"] for s in listed["sources"]] == [str(folder), str(manifest)]
    assert cli("--store", store, "sources", "remove", manifest, "--json")[0] == 0
    assert [s.uri for s in list_sources(StoreLayout(store))] == [str(folder)]
    monkeypatch.chdir(tmp_path)
    assert cli("--store", store, "sources", "remove", "drop/", "--json")[0] == 0  # as typed, relative
    assert list_sources(StoreLayout(store)) == []


@pytest.mark.parametrize("args, message", [
    (["--every", "soon"], "Expected a duration such as 30s"),
    (["--schedule", "every hour"], "Expected a cron expression of five fields"),
    (["--schedule", "99 99 * * *"], "the minute field of '99 99 * * *' has '99': values go from 0 to 59"),
    (["--schedule", "0 9 * * mon-xyz"], "the day of week field of '0 9 * * mon-xyz' has 'mon-xyz': 'xyz' is not"),
    (["--schedule", "*/0 * * * *"], "a step must be a positive number"),
    (["--schedule", "0 18-9 * * *"], "a range must go upwards"),
])
def test_bad_schedules_are_refused(cli, store, tmp_path, args, message):
    (tmp_path / "drop").mkdir()
    code, _, err = cli("--store", store, "sources", "add", tmp_path / "drop", *args)
    assert code == 1 and message in err


def test_missing_places_are_refused(store, tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        add_source(StoreLayout(store), str(tmp_path / "nowhere"))
    with pytest.raises(StoreError, match=r"Expected objects under file://.*nowhere, but it does not exist"):
        add_source(StoreLayout(store), f"file://{tmp_path}/nowhere")
    assert parse_duration("2d") == 172800


def test_an_object_store_prefix_is_staged_and_only_new_objects_are_downloaded(store, tmp_path):
    bucket = tmp_path / "bucket"
    write_image(bucket / "real" / "shoot" / "a.png", seed=1)
    write_image(bucket / "synthetic" / "flux" / "shoot" / "b.png", seed=2)
    (bucket / "notes.txt").write_text("not an image")
    layout = StoreLayout(store)
    watched = add_source(layout, f"file://{bucket}")
    assert watched.kind == "prefix"
    first = ingest_watched(layout, watched)
    assert (first["ingested"], first["new_generators"], first["remote"]["downloaded"]) == (2, ["flux"], 2)
    paths = sorted(row[0] for row in Catalog(layout).query("SELECT original_path FROM images"))
    assert paths == [f"file://{bucket}/real/shoot/a.png", f"file://{bucket}/synthetic/flux/shoot/b.png"]
    assert not list((store / "staging").rglob("*.png"))  # staged copies dropped once in the blobs
    write_image(bucket / "real" / "shoot" / "c.png", seed=3)
    second = ingest_watched(layout, watched)
    assert (second["ingested"], second["remote"]["downloaded"], second["remote"]["unchanged"]) == (1, 1, 2)
    shutil.rmtree(bucket / "synthetic")
    third = ingest_watched(layout, watched)
    assert (third["ingested"], third["remote"]["downloaded"]) == (0, 0)


def test_a_prefix_is_ingested_through_a_relative_or_symlinked_store_root(store, tmp_path, monkeypatch):
    bucket = tmp_path / "bucket"
    write_image(bucket / "real" / "shoot" / "a.png", seed=1)
    (tmp_path / "link").symlink_to(store.parent)
    monkeypatch.chdir(tmp_path)
    layout = StoreLayout(Path("link") / store.name)  # as `--store link/store` or $SYNTHWATCH_STORE gives it
    watched = add_source(layout, f"file://{bucket}")
    first = ingest_watched(layout, watched)
    assert (first["ingested"], first["remote"]["downloaded"]) == (1, 1)
    assert Catalog(layout).status()["images"]["real"] == 1


def test_objects_over_the_byte_limit_are_refused_before_download(store, tmp_path):
    from synthwatch.embeddings.decode import DecodeLimits
    from synthwatch.store.ingest import IngestOptions

    bucket = tmp_path / "bucket"
    write_image(bucket / "real" / "shoot" / "a.png", seed=1)
    limit = (bucket / "real" / "shoot" / "a.png").stat().st_size + 100
    (bucket / "real" / "shoot" / "huge.png").write_bytes(b"\x89PNG" + b"\0" * limit)
    layout = StoreLayout(store)
    watched = add_source(layout, f"file://{bucket}")
    report = ingest_watched(layout, watched, IngestOptions(limits=DecodeLimits(max_bytes=limit)))
    assert (report["ingested"], report["remote"]["downloaded"]) == (1, 1)
    assert report["remote"]["refused"] == [
        f"{bucket}/real/shoot/huge.png: too large: {limit + 4:,} bytes, at most {limit:,} are read"]


def test_a_prefix_pyarrow_has_no_filesystem_for_is_read_through_fsspec(store, request):
    """hf:// and http(s):// come through fsspec; its in-memory filesystem is a real one of those."""
    import fsspec

    from synthwatch.embeddings.decode import DecodeLimits
    from synthwatch.store.ingest import IngestOptions

    memory = fsspec.filesystem("memory")
    bucket = f"/{request.node.name}"
    request.addfinalizer(lambda: memory.rm(bucket, recursive=True))
    memory.pipe(f"{bucket}/real/shoot/a.png", image_bytes(seed=1))
    memory.pipe(f"{bucket}/synthetic/flux/shoot/b.png", image_bytes(seed=2))
    memory.pipe(f"{bucket}/synthetic/flux/shoot/huge.png", b"\x89PNG" + b"\0" * 50_000)
    memory.pipe(f"{bucket}/notes.txt", b"not an image")
    layout = StoreLayout(store)
    watched = add_source(layout, f"memory://{bucket}")
    options = IngestOptions(limits=DecodeLimits(max_bytes=40_000))
    report = ingest_watched(layout, watched, options)
    assert (report["ingested"], report["new_generators"], report["remote"]["downloaded"]) == (2, ["flux"], 2)
    assert report["remote"]["refused"] == [f"{bucket}/synthetic/flux/shoot/huge.png: too large: 50,004 bytes, "
                                           "at most 40,000 are read"]
    paths = sorted(row[0] for row in Catalog(layout).query("SELECT original_path FROM images"))
    assert paths == [f"memory://{bucket}/real/shoot/a.png", f"memory://{bucket}/synthetic/flux/shoot/b.png"]
    memory.pipe(f"{bucket}/real/shoot/c.png", image_bytes(seed=3))
    again = ingest_watched(layout, watched, options)
    assert (again["ingested"], again["remote"]["downloaded"], again["remote"]["unchanged"]) == (1, 1, 2)


def test_a_scheme_no_filesystem_knows_is_refused_naming_it(store):
    with pytest.raises(StoreError, match=r"Expected a URI scheme pyarrow or fsspec has a filesystem for, but "
                                         r"nosuchfs://bucket/x has nosuchfs://"):
        add_source(StoreLayout(store), "nosuchfs://bucket/x")
    with pytest.raises(StoreError, match=r"Expected objects under memory://nothing-here, but it does not exist"):
        add_source(StoreLayout(store), "memory://nothing-here")


@pytest.mark.parametrize("cron", ["0 * * * *", "*/15 9-17 * * mon-fri", "30 2 1,15 jan,jul ?", "0 0 * * 7"])
def test_good_schedules_are_kept(cli, store, tmp_path, cron):
    (tmp_path / "drop").mkdir()
    code, added, _ = cli("--store", store, "sources", "add", tmp_path / "drop", "--schedule", cron, "--json")
    assert code == 0 and added["cron"] == cron
