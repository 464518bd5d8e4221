"""The folder layouts of the public AI-image benchmarks, mapped to label, generator and source group.

Each layout reads a tree as its dataset publishes it (``LAYOUTS``; the README shows each tree).
Source groups follow the dataset's own notion of related images (an ImageNet class, a
CNNDetection object class, the real photo a fake was made from) so that splits keep them
together. A dataset that ships its split keeps it (``store.splits``): GenImage's ``train/`` is
trained on (a fifth of its groups validate) and its ``val/`` is its test set; ForenSynths'
``train/``, ``val/`` and ``test/`` folders are those splits. Their groups are named with the
split (``train/imagenet-n01440764``), so a class photographed in both is two groups. Image files are those with an image extension in any case, or no extension at all
(ingest decodes every file, so a non-image is refused with its reason, never guessed at); hidden
files and other files (metadata, readmes, archives) are skipped and counted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from synthwatch.store.candidates import Candidate, Invalid, Plan, check_name, check_source, is_image_name
from synthwatch.store.errors import StoreError
from synthwatch.store.splits import TRAIN_WITH_VALIDATION

_SYNSET = re.compile(r"^(n\d{8})")
_CLASS_INDEX = re.compile(r"^(\d+)_")
REAL_FOLDERS_DRCT = ("mscoco", "coco")
# CNNDetection's object classes (PASCAL VOC's 20 for ProGAN): folders with these names are classes,
# not generators.
CNNDETECTION_CLASSES = frozenset({
    "airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    # and the classes of its test sets (StyleGAN, StyleGAN2: LSUN; CycleGAN: its domains)
    "bedroom", "church", "apple", "orange", "summer", "winter", "zebra", "facades", "photo", "monet"})


@dataclass(frozen=True)
class Layout:
    """A dataset's tree: how to recognise it and how to read it into a plan."""

    name: str
    tree: str  # what it expects, for errors and the README
    recognise: Callable[[Path], bool]
    read: Callable[[Path], Plan]


def _children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _named(folder: Path, *names: str) -> Path | None:
    """The child folder whose name matches one of ``names`` in any case."""
    wanted = {name.lower() for name in names}
    return next((p for p in _children(folder) if p.name.lower() in wanted), None)


def _files(folder: Path) -> Iterator[Path]:
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            yield Path(current) / name


def _is_image_file(path: Path) -> bool:
    return not path.name.startswith(".") and (is_image_name(path) or path.suffix == "")


def _add_tree(plan: Plan, folder: Path, label: str, generator: str | None, source_of: Callable[[Path], str],
              split: tuple[str, str] | None = None) -> None:
    _add_files(plan, _files(folder), label, generator, source_of, split)


def _add_files(plan: Plan, files, label: str, generator: str | None, source_of: Callable[[Path], str],
               split: tuple[str, str] | None = None) -> None:
    """Candidates of ``files``. ``split`` is (the dataset's split folder, the split it is kept as):
    each candidate keeps it and its group is named after the folder (a group never straddles two
    splits)."""
    folder, shipped = split or (None, None)
    for file in files:
        if not _is_image_file(file):
            plan.skipped.append(str(file))
            continue
        try:
            source = source_of(file) if folder is None else f"{folder}/{source_of(file)}"
            names = (None if generator is None else check_name(generator, "the generator folder name"),
                     check_source(source))
        except ValueError as error:
            plan.invalid.append(Invalid(str(file), str(error)))
            continue
        plan.candidates.append(Candidate(file, label, *names, split=shipped))


# The datasets' split folders and the split each is kept as (store.splits.SHIPPED). GenImage has
# train/ and val/, and tests on val/ (a fifth of train/'s groups validate); ForenSynths has all three.
_SHIPPED_BY_LAYOUT = {"genimage": {"train": TRAIN_WITH_VALIDATION, "val": "test"},
                      "forensynths": {"train": "train", "val": "val", "test": "test"}}


def _shipped(layout: str, folder: Path) -> tuple[str, str]:
    return folder.name, _SHIPPED_BY_LAYOUT[layout][folder.name.lower()]


def _relative_folder(top: Path, fallback: str) -> Callable[[Path], str]:
    def source(file: Path) -> str:
        relative = file.parent.relative_to(top)
        return relative.as_posix() if relative.parts else fallback
    return source


# -- GenImage: <generator>/[<subset>/]{train,val}/{ai,nature}/ ------------------------------------

def _genimage_splits(generator: Path) -> list[Path]:
    """The {train,val} folders of one GenImage generator, directly below it or one level down."""
    found = [p for p in _children(generator) if p.name.lower() in ("train", "val")]
    for sub in _children(generator):
        found += [p for p in _children(sub) if p.name.lower() in ("train", "val")]
    return [p for p in found if _named(p, "ai", "nature")]


def _genimage_source(file: Path) -> str:
    """ImageNet class: the synset of a real image's name (n01440764_...), the class index that
    starts a generated image's name (12_adm_3.PNG), else its folder."""
    synset = _SYNSET.match(file.name)
    if synset:
        return f"imagenet-{synset.group(1)}"
    index = _CLASS_INDEX.match(file.name)
    return f"imagenet-class-{int(index.group(1))}" if index else file.stem  # unknown class: the image alone


def _read_genimage(root: Path) -> Plan:
    plan = Plan()
    for generator in _children(root):
        for split in _genimage_splits(generator):
            for kind in _children(split):
                if kind.name.lower() in ("ai", "nature"):
                    synthetic = kind.name.lower() == "ai"
                    _add_tree(plan, kind, "synthetic" if synthetic else "real", generator.name if synthetic else None,
                              _genimage_source, _shipped("genimage", split))
    return plan


# -- ForenSynths / CNNDetection / UnivFD: <generator>/[<class>/]{0_real,1_fake}/ -------------------

def _labelled_pairs(folder: Path) -> bool:
    return _named(folder, "0_real") is not None or _named(folder, "1_fake") is not None


def _read_forensynths(root: Path) -> Plan:
    """Generators below ``root`` (or ``root`` itself when it holds 0_real/1_fake, or classes named
    as CNNDetection's 20 object classes); each generator's classes are its source groups. A root
    of ``train/``, ``val/`` and ``test/`` folders (as CNNDetection's training, validation and test
    sets are arranged) keeps those splits."""
    shipped = _forensynths_split_folders(root)
    if shipped:
        plan = Plan()
        for folder in shipped:
            _read_forensynths_tree(plan, folder, _shipped("forensynths", folder))
        return plan
    plan = Plan()
    _read_forensynths_tree(plan, root, None)
    return plan


def _forensynths_split_folders(root: Path) -> list[Path]:
    return [c for c in _children(root) if c.name.lower() in _SHIPPED_BY_LAYOUT["forensynths"] and _is_forensynths_tree(c)]


def _is_forensynths_tree(folder: Path) -> bool:
    return _labelled_pairs(folder) or any(_labelled_pairs(c) or any(_labelled_pairs(g) for g in _children(c))
                                          for c in _children(folder))


def _read_forensynths_tree(plan: Plan, root: Path, split: tuple[str, str] | None) -> None:
    labelled = [c for c in _children(root) if _labelled_pairs(c)]
    is_one_generator = _labelled_pairs(root) or (labelled and all(c.name.lower() in CNNDETECTION_CLASSES for c in labelled))
    for generator in [root] if is_one_generator else _children(root):
        groups = [generator] if _labelled_pairs(generator) else [c for c in _children(generator) if _labelled_pairs(c)]
        for group in groups:
            source = generator.name if group == generator else group.name
            for kind in _children(group):
                if kind.name.lower() in ("0_real", "1_fake"):
                    fake = kind.name.lower() == "1_fake"
                    _add_tree(plan, kind, "synthetic" if fake else "real", generator.name if fake else None,
                              lambda _file, source=source: source, split)


# -- Synthbuster (RAISE/ plus <generator>/) and DRCT-2M-style sets (MSCOCO/ plus <generator>/) ---

def _real_folder_plus_generators(*real_names: str) -> Callable[[Path], Plan]:
    """A reader for a real folder (any of ``real_names``) beside one folder per generator, where a
    fake is named after the real photo it was made from (RAISE id, COCO image id): the file's
    stem is its source group."""
    def read(root: Path) -> Plan:
        plan = Plan()
        real = _named(root, *real_names)
        _add_tree(plan, real, "real", None, _stem)
        for generator in _children(root):
            if generator != real:
                _add_tree(plan, generator, "synthetic", generator.name, _stem)
        return plan
    return read


def _stem(file: Path) -> str:
    return file.stem


# -- real / fake trees (Chameleon, WildFake, Community Forensics) --------------------------------

def _read_real_fake(root: Path) -> Plan:
    plan = Plan()
    real, fake = _named(root, "real", "0_real"), _named(root, "fake", "1_fake")
    _add_tree(plan, real, "real", None, _relative_folder(real, root.name))
    if fake is not None:
        loose = sorted(p for p in fake.iterdir() if p.is_file())  # fakes of no named generator
        _add_files(plan, loose, "synthetic", root.name, lambda _file: root.name)
        for generator in _children(fake):
            _add_tree(plan, generator, "synthetic", generator.name, _relative_folder(generator, generator.name))
    return plan


LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("genimage", "<generator>/[<subset>/]{train,val}/{ai,nature}/...",
           lambda root: any(_genimage_splits(g) for g in _children(root)), _read_genimage),
    Layout("forensynths", "[{train,val,test}/]<generator>/[<class>/]{0_real,1_fake}/... (CNNDetection, UnivFD "
                          "test sets)",
           lambda root: _labelled_pairs(root) or ((_is_forensynths_tree(root) or bool(_forensynths_split_folders(root)))
                                                  and not _named(root, "real", "fake")),
           _read_forensynths),
    Layout("synthbuster", "RAISE/... (real photos) plus <generator>/...",
           lambda root: _named(root, "raise") is not None and len(_children(root)) > 1,
           _real_folder_plus_generators("raise")),
    Layout("drct", "MSCOCO/... (real) plus <generator>/... (DRCT-2M and diffusion-folder sets)",
           lambda root: _named(root, *REAL_FOLDERS_DRCT) is not None and len(_children(root)) > 1,
           _real_folder_plus_generators(*REAL_FOLDERS_DRCT)),
    Layout("real-fake", "real/... and fake/[<generator>/]... (Chameleon, WildFake, Community Forensics)",
           lambda root: _named(root, "real") is not None and _named(root, "fake") is not None, _read_real_fake),
)}
LAYOUT_NAMES = ("auto", *LAYOUTS)


def plan_layout(path: Path, name: str) -> tuple[str, Plan]:
    """``(layout name, plan)`` for the tree at ``path`` read as layout ``name`` (``auto``: the
    first layout that recognises it)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise StoreError(f"Expected a dataset folder for --layout, but {path} is not a folder.")
    path = path.resolve()
    if name == "auto":
        name = next((layout.name for layout in LAYOUTS.values() if layout.recognise(path)), None)
        if name is None:
            trees = "; ".join(f"{layout.name}: {layout.tree}" for layout in LAYOUTS.values())
            raise StoreError(f"Expected {path} to be laid out as one of the known datasets ({trees}), but it is none "
                             "of them. Name one with --layout, or ingest real/ and synthetic/<generator>/ folders.")
    elif name not in LAYOUTS:
        raise StoreError(f"Expected --layout in {', '.join(LAYOUT_NAMES)}, but got {name!r}.")
    elif not LAYOUTS[name].recognise(path):
        raise StoreError(f"Expected {path} to be laid out as {name} ({LAYOUTS[name].tree}), but it is not. "
                         "Check the path, or let --layout auto recognise the tree.")
    return name, LAYOUTS[name].read(path)


def summarise(layout: str, plan: Plan) -> dict:
    """What a plan would ingest: ``layout``, ``real``, ``synthetic`` per generator, ``sources``,
    ``skipped`` and ``invalid`` counts (``ingest --dry-run --json``)."""
    synthetic: dict[str, int] = {}
    for candidate in plan.candidates:
        if candidate.label == "synthetic":
            synthetic[candidate.generator] = synthetic.get(candidate.generator, 0) + 1
    return {"layout": layout, "real": sum(c.label == "real" for c in plan.candidates),
            "synthetic": dict(sorted(synthetic.items())), "sources": len({c.source for c in plan.candidates}),
            "skipped": len(plan.skipped), "invalid": len(plan.invalid)}
