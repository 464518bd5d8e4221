"""Turning folders and manifests into a plan: labels, generators, sources, and escapes."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthwatch.store.errors import StoreError
from synthwatch.store.sources import plan_sources
from tests.conftest import write_image


def _by_name(plan):
    return {c.path.name: (c.label, c.generator, c.source) for c in plan.candidates}


def test_folder_convention_with_unicode_generators_and_any_case_extensions(tmp_path):
    write_image(tmp_path / "real" / "flickr" / "a.JPG", fmt="JPEG")
    write_image(tmp_path / "real" / "b.png")
    write_image(tmp_path / "synthetic" / "Stable Diffusion 3½" / "c.PNG")
    write_image(tmp_path / "synthetic" / "画像生成器" / "deep" / "d.webp", fmt="WEBP")
    (tmp_path / "real" / ".DS_Store").write_bytes(b"\0\0")
    (tmp_path / "real" / "notes.txt").write_text("hi")
    plan = plan_sources([tmp_path])
    assert _by_name(plan) == {
        "a.JPG": ("real", None, "flickr"),
        "b.png": ("real", None, tmp_path.name),
        "c.PNG": ("synthetic", "Stable Diffusion 3½", tmp_path.name),
        "d.webp": ("synthetic", "画像生成器", "deep"),
    }
    assert sorted(os.path.basename(p) for p in plan.skipped) == [".DS_Store", "notes.txt"]


def test_images_outside_the_convention_are_refused_with_a_reason(tmp_path):
    write_image(tmp_path / "real" / "ok.png")
    write_image(tmp_path / "synthetic" / "loose.png")
    write_image(tmp_path / "elsewhere" / "x.png")
    plan = plan_sources([tmp_path])
    reasons = {os.path.basename(i.path): i.reason for i in plan.invalid}
    assert set(reasons) == {"loose.png", "x.png"}
    assert all("expected the file under real/ or synthetic/<generator>/" in r for r in reasons.values())


def test_flat_folder_takes_label_and_generator(tmp_path):
    write_image(tmp_path / "x.png")
    write_image(tmp_path / "sub" / "y.jpeg", fmt="JPEG")
    plan = plan_sources([tmp_path], label="synthetic", generator="flux-dev", source="batch-7")
    assert _by_name(plan) == {"x.png": ("synthetic", "flux-dev", "batch-7"),
                              "y.jpeg": ("synthetic", "flux-dev", "batch-7")}


@pytest.mark.parametrize(
    "kwargs, message",
    [({"label": "synthetic"}, "needs a generator"),
     ({"label": "real", "generator": "x"}, "cannot have a generator"),
     ({"generator": "x"}, "--label is missing")],
)
def test_flat_folder_label_errors(tmp_path, kwargs, message):
    write_image(tmp_path / "x.png")
    with pytest.raises(StoreError, match=message):
        plan_sources([tmp_path], **kwargs)


def test_missing_path_and_unlabelled_folder_are_errors(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        plan_sources([tmp_path / "nope"])
    write_image(tmp_path / "x.png")
    with pytest.raises(StoreError, match="Pass --label real"):
        plan_sources([tmp_path])


def _manifest_rows(root):
    write_image(root / "imgs" / "r.png", seed=1)
    write_image(root / "imgs" / "s.png", seed=2)
    write_image(root / "imgs" / "t.png", seed=3)
    (root / "imgs" / "readme.txt").write_text("x")
    outside = write_image(root.parent / f"{root.name}-outside" / "o.png", seed=4)
    os.symlink(outside, root / "imgs" / "link.png")
    return [
        {"path": "imgs/r.png", "label": "real", "generator": "", "source": "cam-1"},
        {"path": "imgs/s.png", "label": "Synthetic", "generator": "Midjourney ✨", "source": ""},
        {"path": str(root / "imgs" / "t.png"), "label": "synthetic", "generator": "sdxl", "source": ""},
        {"path": "imgs/readme.txt", "label": "real", "generator": "", "source": ""},
        {"path": "imgs", "label": "real", "generator": "", "source": ""},
        {"path": "../" + root.name + "-outside/o.png", "label": "real", "generator": "", "source": ""},
        {"path": str(outside), "label": "real", "generator": "", "source": ""},
        {"path": "imgs/link.png", "label": "real", "generator": "", "source": ""},
        {"path": "imgs/missing.png", "label": "real", "generator": "", "source": ""},
        {"path": "imgs/r.png", "label": "fake", "generator": "", "source": ""},
        {"path": "imgs/s.png", "label": "synthetic", "generator": "", "source": ""},
    ]


def _write_manifest(root, kind, rows):
    if kind == "csv":
        keys = list(rows[0])
        lines = [",".join(keys)] + [",".join(f'"{r[k]}"' for k in keys) for r in rows]
        target = root / "manifest.csv"
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif kind == "jsonl":
        target = root / "manifest.jsonl"
        target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        target = root / "manifest.parquet"
        pq.write_table(pa.Table.from_pylist(rows), target)
    return target


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_manifests_of_every_kind(tmp_path, kind):
    root = tmp_path / "data"
    root.mkdir()
    manifest = _write_manifest(root, kind, _manifest_rows(root))
    plan = plan_sources([manifest])
    assert _by_name(plan) == {
        "r.png": ("real", None, "cam-1"),
        "s.png": ("synthetic", "Midjourney ✨", "manifest"),
        "t.png": ("synthetic", "sdxl", "manifest"),
    }
    assert sorted(os.path.basename(p) for p in plan.skipped) == ["imgs", "readme.txt"]
    reasons = [i.reason for i in plan.invalid]
    assert sum("escapes the allowed root" in r for r in reasons) == 3  # ../, absolute, symlink
    assert any(r.endswith("file not found") for r in reasons)
    assert any("label 'fake' is not one of real, synthetic" in r for r in reasons)
    assert any("needs a generator" in r for r in reasons)
    assert all(f"manifest.{kind}:" in r for r in reasons)


def test_manifest_root_can_be_widened(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    manifest = _write_manifest(root, "csv", _manifest_rows(root))
    plan = plan_sources([manifest], manifest_root=tmp_path)
    # ../o.png, its absolute path and the symlink to it are now all allowed
    assert sum(c.path.name == "o.png" for c in plan.candidates) == 3


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_manifest_without_required_columns_names_the_file(tmp_path, kind):
    manifest = _write_manifest(tmp_path, kind, [{"file": "a.png", "label": "real", "generator": "", "source": ""}])
    with pytest.raises(StoreError, match=rf"{manifest.name} lacks path"):
        plan_sources([manifest])


def test_jsonl_bad_line_is_refused_and_others_go_on(tmp_path):
    write_image(tmp_path / "a.png")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.png", "label": "real"}\n{oops\n', encoding="utf-8")
    plan = plan_sources([manifest])
    assert len(plan.candidates) == 1
    assert "m.jsonl:line 2: invalid JSON" in plan.invalid[0].reason


def test_unreadable_manifest_names_the_file(tmp_path):
    manifest = tmp_path / "broken.parquet"
    manifest.write_bytes(b"not parquet at all")
    with pytest.raises(StoreError, match=r"Expected a readable PARQUET manifest, but .*broken.parquet"):
        plan_sources([manifest])
