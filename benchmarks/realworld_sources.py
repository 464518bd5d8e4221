"""Rebuild the "extended" real-world image set (real generator output and real photographs) for
``benchmarks/realworld.py --manifest``, deterministically, from snapshots of public GitHub
repositories at pinned commits (the ``REPOSITORIES`` and ``SOURCES`` tables below).

Usage: python benchmarks/realworld_sources.py [--mirror-root /work/.mirror] [--out /work/data-extra]
                                              [--mirror OWNER/NAME=GITDIR ...] [--dev-manifest CSV]

A snapshot of ``owner/name`` is a bare git directory, by default ``<mirror-root>/<owner>+<name>/repo``
(``--mirror`` overrides one). Sample grids are cut into their cells (saved as PNG; a grid's cells
share one source group); other files are copied byte for byte. Images byte-identical to one of the
dev set's are skipped. ``--out`` gets ``synthetic/<generator>/``, ``real/<part>/`` and
``manifest.csv`` (the dev manifest's columns). The images are for local measurement only: the
licences are the source repositories'; keep them out of this repository.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

DEV_MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "realworld-dev" / "manifest.csv"
COLUMNS = ["path", "label", "generator", "source", "provenance", "format", "width", "height", "sha256"]
MIN_CELL = 128  # cells smaller than this on a side are not kept
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "TIFF": "tif", "WEBP": "webp"}

REPOSITORIES = {  # owner/name -> the commit every path below is read at
    "CompVis/latent-diffusion": "a506df5756472e2ebaf9078affdde2c4f1502cd4",
    "facebookresearch/DiT": "ed81ce2229091fd4ecc9a223645f95cf379d582b",
    "kakaobrain/karlo": "3c68a50a16d76b48a15c181d1c5a5e0879a90f85",
    "Tencent/HunyuanDiT": "368280ec35119ed2741a30cc5b40aafde34f8a8a",
    "deep-floyd/IF": "ffc8163891682beaca0c5eb6b9077860a3bc6509",
    "Stability-AI/StableCascade": "7a7d341f729ccaa042920a1fac3e7b9326079aca",
    "Kwai-Kolors/Kolors": "0fafa56a76b7acf1e147b153d1e7b8fd65f9055b",
    "Stability-AI/generative-models": "0ad7de9a5cb53fd63d6d30a4f385485e72e08597",
    "black-forest-labs/flux": "802fb4713906133fcbd0d8dc5351620ca4773036",
    "ai-forever/Kandinsky-3": "a4c9e92e4d9b2a57081b7e33a2e82373c99ddbfc",
    "NVlabs/stylegan2": "bf0fe0baba9fc7039eae0cac575c1778be1ce3e3",
    "PixArt-alpha/PixArt-alpha": "cac2fd3b4544cf7620d8fbbf8b19d97ffcb85892",
    "Zelex/images": "0b8a89db599a384124fb991b85d40cfd63c73d58",
    "cszn/FFDNet": "e787f46df2f374ff3591186706229cb9a0591fea",
    "majedelhelou/denoising_datasets": "58234876fef6f1b56306705c78dfd40cdb837b86",
}


@dataclass(frozen=True)
class Grid:
    """Equal cells in ``rows`` x ``cols``, with uniform separators (and border) of a width found from
    the image."""

    rows: int
    cols: int


@dataclass(frozen=True)
class Boxes:
    """Explicit cells ``(left, top, right, bottom)``; each edge not on the image border is moved
    ``trim`` px inward (seams between pasted cells are often blended or a pixel off)."""

    boxes: tuple[tuple[int, int, int, int], ...]
    trim: int = 3


def rows_of(*rows: tuple[int, int, tuple[int, ...]], trim: int = 3) -> Boxes:
    """Boxes from rows: each ``(top, bottom, (x0, x1, ..., xn))`` gives the cells between the x
    edges."""
    return Boxes(tuple((x0, top, x1, bottom) for top, bottom, xs in rows for x0, x1 in zip(xs, xs[1:])), trim)


@dataclass(frozen=True)
class Source:
    """Files of one repository: ``paths`` are exact paths or patterns (``*`` stays within a folder),
    less those matching an ``exclude`` path or pattern; sorted, at most ``limit``. Synthetic when
    ``generator`` is set, else real photos of ``part``. Outputs are named ``<prefix>-<file stem>``;
    the source group is ``<prefix>-<first capture of the group regex on the path>`` (default: the
    file stem), so files that share a prompt or a reference image share a group. ``layout`` cuts
    grids (None: keep the file whole)."""

    repo: str
    part: str
    paths: tuple[str, ...]
    generator: str = ""
    prefix: str = ""
    layout: Grid | Boxes | None = None
    group: str = ""
    exclude: tuple[str, ...] = ()
    limit: int | None = None

    @property
    def commit(self) -> str:
        return REPOSITORIES[self.repo]


# Layouts of grids whose cells are unequal, read off the images (edges where the mean absolute
# difference between neighbouring pixel rows or columns jumps).
DIT_GRID = rows_of((0, 532, (0, 532, 1065, 1597)), (532, 798, (0, 265, 532, 798, 1065, 1331, 1597)),
                   (798, 1064, (0, 265, 532, 798, 1065, 1331, 1597)), trim=2)
IF_NABLA = rows_of((0, 1024, (0, 1024, 2432, 3456)), (1024, 1751, (0, 727, 1728, 2729, 3456)),
                   (1751, 2442, (0, 691, 1384, 2073, 2765, 3456)), (2442, 3363, (0, 1267, 2189, 3456)))
IF_DREAM = Boxes(((16, 10, 554, 548), (554, 10, 1092, 548), (16, 548, 554, 1086), (554, 548, 1092, 1086)), trim=4)
CASCADE_COLLAGE_1 = Boxes(((0, 0, 1120, 768), (1120, 0, 3040, 768), (3040, 0, 4960, 768), (0, 768, 1120, 2688),
                           (1120, 768, 2080, 1728), (2080, 768, 3040, 1728), (3040, 768, 4000, 1728),
                           (4000, 768, 4960, 1728), (1120, 1728, 2492, 2688), (2492, 1728, 3587, 2688),
                           (3587, 1728, 4960, 2688)))
CASCADE_COLLAGE_3 = rows_of((0, 896, (0, 1536, 2816)), (896, 1792, (0, 1281, 2816)))
SDXL_000 = Boxes(((0, 0, 1024, 1021), (1024, 0, 2358, 1021), (2358, 0, 4096, 704), (0, 1021, 1024, 2048),
                  (1024, 1021, 2358, 2048), (2358, 704, 3246, 2048), (3246, 704, 4096, 2048)))
SDXL_001 = Boxes(((1372, 0, 2396, 1024), (2396, 0, 3192, 1024), (3192, 0, 4216, 1024)))  # less the plot (left)
FLUX_DEV = Boxes(((0, 0, 1691, 759), (1691, 0, 3212, 759), (0, 759, 898, 1880), (898, 759, 2500, 1880),
                  (2500, 763, 3212, 1880)))  # a 4 px line above the last
FLUX_SCHNELL = rows_of((2, 724, (0, 1581, 3211)), (724, 1880, (0, 1573, 2486, 3211)))  # 2 px frame top, 1 px right
FLUX_GRID = Boxes(((0, 0, 1442, 720), (1442, 0, 2161, 1340), (2162, 0, 3502, 768), (0, 720, 743, 2002),
                   (743, 720, 1442, 1340), (743, 1340, 2161, 2002), (2161, 768, 2876, 2002),
                   (2876, 768, 3502, 2002)))

SOURCES = [
    # --- synthetic: the generators' own sample images and comparison outputs ---
    Source("CompVis/latent-diffusion", "ldm", ("assets/a-*.png", "assets/birdhouse.png", "assets/fire.png",
           "assets/the-earth-is-on-fire,-oil-on-canvas.png"), "ldm", "ldm", Grid(1, 6)),
    Source("CompVis/latent-diffusion", "ldm", ("assets/txt2img-convsample.png",), "ldm", "ldm"),
    Source("facebookresearch/DiT", "dit", ("visuals/sample_grid_*.png",), "dit", "dit", DIT_GRID),
    # the variations share their prompt's group
    Source("kakaobrain/karlo", "karlo", ("assets/*.png",), "karlo", "karlo", Grid(1, 4),
           group=r"assets/(?:variation_)?(.*)\.png"),
    # HunyuanDiT's imgs-style comparisons are absent at this commit; its module examples' outputs
    # (not the inputs, nor the LoRA's training images) are the model's own.
    Source("Tencent/HunyuanDiT", "hunyuan-dit", ("ipadapter/asset/output/*",), "hunyuan-dit", "hunyuan-ipadapter",
           group=r"output/([a-z]+)_"),
    Source("Tencent/HunyuanDiT", "hunyuan-dit", ("controlnet/asset/output/*.jpg",), "hunyuan-dit",
           "hunyuan-controlnet"),
    Source("Tencent/HunyuanDiT", "hunyuan-dit", ("lora/asset/porcelain/inference/*.png",), "hunyuan-dit",
           "hunyuan-lora"),
    Source("Tencent/HunyuanDiT", "hunyuan-dit", ("comfyui/hunyuan_dit_1.2_controlnet_canny_example.png",
           "comfyui/hunyuan_dit_1.2_example.png"), "hunyuan-dit", "hunyuan-comfyui", group=r"comfyui/(hunyuan_dit)_"),
    Source("deep-floyd/IF", "deepfloyd-if", ("pics/main.jpg",), "deepfloyd-if", "if", Grid(2, 4)),
    Source("deep-floyd/IF", "deepfloyd-if", ("pics/nabla.jpg",), "deepfloyd-if", "if", IF_NABLA),
    Source("deep-floyd/IF", "deepfloyd-if", ("pics/dream-III.jpg",), "deepfloyd-if", "if", IF_DREAM),
    Source("Stability-AI/StableCascade", "stable-cascade", ("figures/collage_1.jpg",), "stable-cascade", "cascade",
           CASCADE_COLLAGE_1),
    Source("Stability-AI/StableCascade", "stable-cascade", ("figures/collage_2.jpg",), "stable-cascade", "cascade",
           Grid(2, 2)),
    Source("Stability-AI/StableCascade", "stable-cascade", ("figures/collage_3.jpg",), "stable-cascade", "cascade",
           CASCADE_COLLAGE_3),
    Source("Stability-AI/StableCascade", "stable-cascade", ("figures/collage_4.jpg",), "stable-cascade", "cascade",
           Grid(1, 5)),
    Source("Stability-AI/StableCascade", "stable-cascade", ("figures/text-to-image-example-penguin.jpg",),
           "stable-cascade", "cascade", Grid(1, 4)),
    # Kolors' comparisons: the same reference image (IP-Adapter), masked photo (inpainting) or
    # condition (ControlNet) across Kolors, Midjourney and SDXL share a group.
    Source("Kwai-Kolors/Kolors", "kolors", ("ipadapter/asset/*_kolors_ip_result.jpg",), "kolors", "kolors-ip",
           group=r"asset/(\d+)_"),
    Source("Kwai-Kolors/Kolors", "kolors", ("ipadapter/asset/*_mj_cw_result.png",), "midjourney", "kolors-ip",
           group=r"asset/(\d+)_"),
    Source("Kwai-Kolors/Kolors", "kolors", ("ipadapter/asset/*_sdxl_ip_result.jpg",), "sdxl", "kolors-ip",
           group=r"asset/(\d+)_"),
    Source("Kwai-Kolors/Kolors", "kolors", ("inpainting/asset/*_kolors.png",), "kolors", "kolors-inpaint",
           group=r"asset/(\d+)_"),
    # 3_sdxl.png's contents are not in the snapshot
    Source("Kwai-Kolors/Kolors", "kolors", tuple(f"inpainting/asset/{i}_sdxl.png" for i in (1, 2, 4, 5)), "sdxl",
           "kolors-inpaint", group=r"asset/(\d+)_"),
    Source("Kwai-Kolors/Kolors", "kolors", ("controlnet/outputs/*.jpg",), "kolors", "kolors-cn",
           group=r"outputs/[A-Za-z]+_(?:ipadapter_)?(.+?)(?:_sdxl)?\.jpg",
           exclude=("controlnet/outputs/*_condition.jpg", "controlnet/outputs/*_sdxl.jpg")),
    Source("Kwai-Kolors/Kolors", "kolors", ("controlnet/outputs/*_sdxl.jpg",), "sdxl", "kolors-cn",
           group=r"outputs/[A-Za-z]+_(?:ipadapter_)?(.+?)(?:_sdxl)?\.jpg"),
    Source("Kwai-Kolors/Kolors", "kolors", ("dreambooth/ktxl_test_image.png", "scripts/outputs/sample_test.jpg"),
           "kolors", "kolors"),
    Source("Stability-AI/generative-models", "sdxl", ("assets/000.jpg",), "sdxl", "sgm", SDXL_000),
    Source("Stability-AI/generative-models", "sdxl", ("assets/001_with_eval.png",), "sdxl", "sgm", SDXL_001),
    Source("Stability-AI/generative-models", "sdxl-turbo", ("assets/turbo_tile.png",), "sdxl-turbo", "sgm",
           Grid(2, 3)),
    Source("black-forest-labs/flux", "flux.1", ("assets/dev_grid.jpg",), "flux.1", "flux", FLUX_DEV),
    Source("black-forest-labs/flux", "flux.1", ("assets/schnell_grid.jpg",), "flux.1", "flux", FLUX_SCHNELL),
    Source("black-forest-labs/flux", "flux.1", ("assets/grid.jpg",), "flux.1", "flux", FLUX_GRID),
    Source("ai-forever/Kandinsky-3", "kandinsky-3", ("assets/photo_*.jpg", "assets/butterly_effect.jpg",
           "assets/title.jpg"), "kandinsky-3", "kandinsky3"),
    Source("NVlabs/stylegan2", "stylegan2", ("docs/stylegan2-teaser-1024x256.png",), "stylegan2", "stylegan2",
           Grid(1, 4)),
    Source("PixArt-alpha/PixArt-alpha", "pixart-alpha", ("asset/images/controlnet/*.png",), "pixart-alpha",
           "pixart"),
    # --- real: photographs only (no charts, synthetic patterns, drawings, paintings, slides) ---
    Source("Zelex/images", "kodak", ("kodak/kodim*.png",), exclude=("kodak/kodim01.png",)),  # kodim01 is in dev
    # not 007 (an engraving), 019 (a Hubble nebula composite), 027 (a painting)
    Source("Zelex/images", "wikipedia", ("wikipedia-photos/*.png",),
           exclude=("wikipedia-photos/007.png", "wikipedia-photos/019.png", "wikipedia-photos/027.png")),
    Source("Zelex/images", "waterloo", tuple(f"waterloo/{name}.png" for name in (
        "barb", "bird", "boat", "bridge", "camera", "frog", "goldhill1", "goldhill2", "lena1", "lena2", "lena3",
        "mandrill", "monarch", "mountain", "peppers2", "peppers3", "sail", "tulips", "washsat", "zelda"))),
    Source("Zelex/images", "usc-sipi", ("usc_sipi/misc/*.png",),  # less a resolution chart, a grey scale, a ruler
           exclude=("usc_sipi/misc/5.1.13.png", "usc_sipi/misc/gray21.512.png", "usc_sipi/misc/ruler.512.png")),
    Source("cszn/FFDNet", "mcmaster", ("testsets/McMaster/*.tif",)),
    Source("majedelhelou/denoising_datasets", "sun-hays80", ("CSun_Hays80/*.jpg",), limit=50),
    Source("majedelhelou/denoising_datasets", "set5", ("CSet5/*.png",)),
    Source("majedelhelou/denoising_datasets", "set14", ("CSet14/*.png",),  # not a comic drawing, a book cover
           exclude=("CSet14/comic.png", "CSet14/ppt3.png")),
]

# The same photograph in several benchmark sets (whole, cropped, grey or resized) is one source group.
SAME_PHOTO = {
    "photo-mandrill": ("usc_sipi/misc/4.2.03.png", "waterloo/mandrill.png", "CSet14/baboon.png"),
    "photo-peppers": ("usc_sipi/misc/4.2.07.png", "waterloo/peppers2.png", "waterloo/peppers3.png",
                      "CSet14/pepper.png"),
    "photo-bridge": ("usc_sipi/misc/5.2.10.png", "waterloo/bridge.png", "CSet14/bridge.png"),
    "photo-man": ("usc_sipi/misc/5.3.01.png", "CSet14/man.png"),
    "photo-lena": ("waterloo/lena1.png", "waterloo/lena2.png", "waterloo/lena3.png", "CSet14/lenna.png"),
    "photo-monarch": ("waterloo/monarch.png", "CSet14/monarch.png", "CSet5/butterfly.png"),
    "photo-barbara": ("waterloo/barb.png", "CSet14/barbara.png"),
    "photo-goldhill": ("waterloo/goldhill1.png", "waterloo/goldhill2.png"),
    "photo-head": ("CSet14/face.png", "CSet5/head.png"),
}
PHOTO_GROUP = {path: group for group, paths in SAME_PHOTO.items() for path in paths}


@dataclass
class Snapshot:
    """A repository's bare git directory, read at one commit."""

    repo: str
    gitdir: Path
    commit: str
    tree: list[str] = field(default_factory=list)

    def git(self, *args: str) -> bytes:
        return subprocess.run(["git", "--git-dir", str(self.gitdir), *args], capture_output=True).stdout

    def blob(self, path: str) -> bytes:
        """The file's bytes at the commit."""
        result = subprocess.run(["git", "--git-dir", str(self.gitdir), "cat-file", "blob", f"{self.commit}:{path}"],
                                capture_output=True)
        if result.returncode != 0 or not result.stdout:
            raise SystemExit(f"Expected the contents of {path} in {self.repo}@{self.commit} ({self.gitdir}), but "
                             f"the snapshot lacks them. Fetch a fuller snapshot, or drop the file from SOURCES.")
        return result.stdout


def open_snapshot(repo: str, mirror_root: Path, overrides: dict[str, Path]) -> Snapshot:
    """The snapshot of ``repo``, checked to hold the pinned commit, with its file list."""
    commit = REPOSITORIES[repo]
    candidates = [overrides[repo]] if repo in overrides else [
        mirror_root / repo.replace("/", "+") / "repo", mirror_root / repo.replace("/", "+")]
    gitdir = next((c for c in candidates if (c / "objects").is_dir()), None)
    if gitdir is None:
        where = f"at {overrides[repo]}" if repo in overrides else f"under {mirror_root}"
        raise SystemExit(f"Expected a snapshot of {repo} {where}, but there is none. Fetch it, or give "
                         f"--mirror {repo}=GITDIR.")
    snapshot = Snapshot(repo, gitdir, commit)
    if subprocess.run(["git", "--git-dir", str(gitdir), "cat-file", "-e", f"{commit}^{{commit}}"],
                      capture_output=True).returncode != 0:
        raise SystemExit(f"Expected commit {commit} in the snapshot of {repo} at {gitdir}, but it is not there. "
                         f"Fetch a newer snapshot, or give --mirror {repo}=GITDIR for one that has it.")
    snapshot.tree = sorted(p for p in snapshot.git("ls-tree", "-r", "-z", "--name-only", commit).decode().split("\0")
                           if p)
    return snapshot


def pattern_regex(pattern: str) -> re.Pattern:
    """A path pattern as a regex: ``*`` matches within one folder, everything else literally."""
    return re.compile("".join("[^/]*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
                      + r"\Z")


def select_paths(source: Source, snapshot: Snapshot) -> list[str]:
    """The source's paths at its commit, sorted; a missing exact path or an unmatched pattern fails."""
    chosen: set[str] = set()
    for pattern in source.paths:
        regex = pattern_regex(pattern)
        matches = [p for p in snapshot.tree if regex.match(p)]
        if not matches:
            what = f"files matching {pattern}" if "*" in pattern else pattern
            raise SystemExit(f"Expected {what} in {source.repo}@{source.commit}, but there is none. Fix the entry "
                             f"in SOURCES, or check the snapshot at {snapshot.gitdir}.")
        chosen.update(matches)
    excluded = [pattern_regex(p) for p in source.exclude]
    paths = sorted(p for p in chosen if not any(r.match(p) for r in excluded))
    return paths[:source.limit] if source.limit is not None else paths


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (runs of other characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")


def stem_of(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def group_of(source: Source, path: str) -> str:
    """The source group of a file: a photo seen in several sets, the entry's group regex, or the file."""
    if not source.generator and path in PHOTO_GROUP:
        return PHOTO_GROUP[path]
    key = stem_of(path)
    if source.group:
        match = re.search(source.group, path)
        if match is None:
            raise SystemExit(f"Expected the group pattern {source.group} to match {path}, but it does not. "
                             f"Fix the entry for {source.repo} in SOURCES.")
        key = match.group(1)
    return f"{source.prefix or source.part}-{slug(key)}"


def separators_uniform(pixels: np.ndarray, pad: int, rows: int, cols: int) -> bool:
    """Whether the bands of ``pad`` px around and between ``rows`` x ``cols`` cells are each flat."""
    height, width = pixels.shape[:2]
    cell_w, cell_h = (width - (cols + 1) * pad) // cols, (height - (rows + 1) * pad) // rows
    bands = [pixels[:, i * (cell_w + pad):i * (cell_w + pad) + pad] for i in range(cols + 1)]
    bands += [pixels[j * (cell_h + pad):j * (cell_h + pad) + pad] for j in range(rows + 1)]
    return all(band.size and float(band.std()) < 4.0 for band in bands)


def grid_boxes(image: Image.Image, grid: Grid, where: str) -> list[tuple[int, int, int, int]]:
    """Cell boxes of an equal grid: the widest separator (0-8 px) that divides the size evenly and is
    uniform, else none when the size divides."""
    width, height = image.size
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    for pad in range(8, -1, -1):
        free_w, free_h = width - (grid.cols + 1) * pad, height - (grid.rows + 1) * pad
        if free_w <= 0 or free_h <= 0 or free_w % grid.cols or free_h % grid.rows:
            continue
        if pad and not separators_uniform(pixels, pad, grid.rows, grid.cols):
            continue
        cw, ch = free_w // grid.cols, free_h // grid.rows
        return [(pad + c * (cw + pad), pad + r * (ch + pad), pad + c * (cw + pad) + cw, pad + r * (ch + pad) + ch)
                for r in range(grid.rows) for c in range(grid.cols)]
    raise SystemExit(f"Expected {where} ({width} x {height}) to be a {grid.rows} x {grid.cols} grid of equal cells, "
                     f"but its size does not divide so. Give its cells as Boxes in SOURCES.")


def trimmed_boxes(image: Image.Image, layout: Boxes, where: str) -> list[tuple[int, int, int, int]]:
    """Explicit boxes, each inner edge moved ``trim`` px inward; boxes outside the image fail."""
    width, height = image.size
    boxes = []
    for left, top, right, bottom in layout.boxes:
        if not (0 <= left < right <= width and 0 <= top < bottom <= height):
            raise SystemExit(f"Expected the box {(left, top, right, bottom)} within {where} ({width} x {height}), "
                             f"but it is not. Fix its layout in SOURCES.")
        t = layout.trim
        boxes.append((left + t if left else left, top + t if top else top,
                      right - t if right < width else right, bottom - t if bottom < height else bottom))
    return boxes


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG (RGB, or L when grey), deterministically."""
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def outputs_of(source: Source, path: str, data: bytes) -> list[tuple[str, bytes, str]]:
    """``(relative output path, bytes, provenance)`` for one file: its cells, or itself whole."""
    where = f"{source.repo}@{source.commit} {path}"
    image = Image.open(io.BytesIO(data))
    kind = EXTENSIONS.get(image.format or "")
    if kind is None:
        raise SystemExit(f"Expected an image in PNG, JPEG, TIFF or WebP at {where}, but got {image.format}. "
                         f"Drop it from SOURCES.")
    name = slug(f"{source.prefix}-{stem_of(path)}" if source.prefix else stem_of(path))
    folder = f"synthetic/{source.generator}" if source.generator else f"real/{source.part}"
    if source.layout is None:
        return [(f"{folder}/{name}.{kind}", data, where)]
    image.load()
    if isinstance(source.layout, Grid):
        boxes = grid_boxes(image, source.layout, where)
        shape = f"a {source.layout.rows} x {source.layout.cols} grid"
    else:
        boxes = trimmed_boxes(image, source.layout, where)
        shape = f"{len(boxes)} unequal cells"
    cells = []
    for i, box in enumerate(boxes):
        if min(box[2] - box[0], box[3] - box[1]) < MIN_CELL:
            continue
        cells.append((f"{folder}/{name}-c{i}.png", png_bytes(image.crop(box)),
                      f"{where} (cell {i} of {shape}, box {box[0]},{box[1]},{box[2]},{box[3]})"))
    return cells


def dev_hashes(manifest: Path) -> set[str]:
    """The sha256 of every image in the dev set (its manifest's column)."""
    if not manifest.is_file():
        raise SystemExit(f"Expected the dev manifest at {manifest}, but there is none. Give it with --dev-manifest.")
    with manifest.open(newline="") as handle:
        return {row["sha256"] for row in csv.DictReader(handle) if row.get("sha256")}


def prepare_out(out: Path) -> None:
    """Empty ``out`` of a previous build (only a folder that is empty or holds one may be used)."""
    if out.exists() and any(out.iterdir()) and not (out / "manifest.csv").is_file():
        raise SystemExit(f"Expected --out {out} to be empty or a previous build (with manifest.csv), but it holds "
                         f"other files. Give another folder.")
    for sub in ("real", "synthetic"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def build(mirror_root: Path, overrides: dict[str, Path], out: Path, dev_manifest: Path) -> list[dict]:
    """Write every selected image under ``out`` and return the manifest rows, sorted by path."""
    skip = dev_hashes(dev_manifest)
    snapshots = {repo: open_snapshot(repo, mirror_root, overrides) for repo in sorted({s.repo for s in SOURCES})}
    prepare_out(out)
    rows: dict[str, dict] = {}
    seen: set[str] = set()
    for source in SOURCES:
        snapshot = snapshots[source.repo]
        for path in select_paths(source, snapshot):
            group = group_of(source, path)
            for relative, data, provenance in outputs_of(source, path, snapshot.blob(path)):
                digest = hashlib.sha256(data).hexdigest()
                if digest in skip or digest in seen:
                    print(f"skipped {relative}: byte-identical to an image {'in dev' if digest in skip else 'kept'}",
                          file=sys.stderr)
                    continue
                if relative in rows:
                    raise SystemExit(f"Expected one file per output name, but {relative} comes twice. Give the "
                                     f"entries distinct prefixes in SOURCES.")
                seen.add(digest)
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                with Image.open(io.BytesIO(data)) as image:
                    width, height, fmt = image.width, image.height, image.format
                rows[relative] = {"path": relative, "label": "synthetic" if source.generator else "real",
                                  "generator": source.generator, "source": group, "provenance": provenance,
                                  "format": fmt, "width": width, "height": height, "sha256": digest}
    ordered = [rows[key] for key in sorted(rows)]
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(ordered)
    return ordered


def parse_overrides(values: list[str]) -> dict[str, Path]:
    """``--mirror owner/name=GITDIR`` values as a mapping."""
    overrides = {}
    for value in values:
        repo, sep, gitdir = value.partition("=")
        if not sep or repo not in REPOSITORIES:
            raise SystemExit(f"Expected --mirror OWNER/NAME=GITDIR with one of {', '.join(REPOSITORIES)}, but got "
                             f"{value}.")
        overrides[repo] = Path(gitdir)
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror-root", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--mirror", action="append", default=[], metavar="OWNER/NAME=GITDIR",
                        help="(repeatable) the snapshot of one repository")
    parser.add_argument("--out", type=Path, default=Path("/work/data-extra"))
    parser.add_argument("--dev-manifest", type=Path, default=DEV_MANIFEST,
                        help=f"images byte-identical to this set's are skipped (default {DEV_MANIFEST})")
    args = parser.parse_args()
    started = time.monotonic()
    rows = build(args.mirror_root, parse_overrides(args.mirror), args.out, args.dev_manifest)
    counts: dict[str, int] = {}
    for row in rows:
        key = row["generator"] or f"real ({row['path'].split('/')[1]})"
        counts[key] = counts.get(key, 0) + 1
    for key in sorted(counts):
        print(f"{counts[key]:5d}  {key}")
    synthetic = sum(1 for row in rows if row["label"] == "synthetic")
    print(f"{len(rows)} images ({synthetic} synthetic, {len(rows) - synthetic} real) in {args.out / 'manifest.csv'}, "
          f"{time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
