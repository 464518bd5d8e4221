"""Groups found by `synthwatch discover`, kept under ``<store>/discoveries/`` so that a person
can name one and ingest it later: ``synthwatch ingest --from-discovery GROUP --generator NAME``.

A new group's name comes from its first members (``g-`` and the start of the sha256 of its
sorted image ids); found again with at least half its members in common (as traffic comes and
goes in the window), it keeps the name. Files are written whole (atomic) and dropped after
``KEEP_DAYS`` without being found again. Its images are the uploads the service kept
(``serve --keep-uploads``): the prediction log holds only their sha256.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

from synthwatch.store.atomic import atomic_write_bytes
from synthwatch.store.candidates import Candidate, Invalid, Plan, check_name
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.originals import IMAGE_ID

GROUP_NAME = re.compile(r"g-[0-9a-f]{12}")
SAME_GROUP = 0.5  # Jaccard overlap of members from which a group found again keeps its name
KEEP_DAYS = 30


def group_name(image_ids: list[str]) -> str:
    """The name of the group of ``image_ids`` (order does not matter)."""
    return "g-" + hashlib.sha256("\n".join(sorted(image_ids)).encode()).hexdigest()[:12]


def name_groups(layout: StoreLayout, groups: list[list[str]]) -> list[tuple[str, bool]]:
    """For each group of image ids, ``(name, new)``: the name of the saved group it shares most
    members with (Jaccard at least ``SAME_GROUP``; each saved name given once), else a new name."""
    saved = {}
    for path in sorted(layout.discoveries_dir.glob("g-*.json")) if layout.discoveries_dir.exists() else []:
        try:
            saved[path.stem] = set(json.loads(path.read_text())["image_ids"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: rewritten if the group is found again under a new name
    pairs = sorted(((len(set(ids) & members) / len(set(ids) | members), number, name)
                    for number, ids in enumerate(groups) for name, members in saved.items()), reverse=True)
    names: dict[int, str] = {}
    for overlap, number, name in pairs:
        if overlap >= SAME_GROUP and number not in names and name not in names.values():
            names[number] = name
    return [(names[number], False) if number in names else (group_name(ids), True)
            for number, ids in enumerate(groups)]


def save_group(layout: StoreLayout, group: dict) -> None:
    """Keep ``group`` (a `discover` group with ``group`` and ``image_ids``) for a later ingest."""
    atomic_write_bytes(layout.discovery_path(group["group"]), json.dumps(group, indent=1).encode())


def prune_groups(layout: StoreLayout, *, keep_days: float = KEEP_DAYS) -> int:
    """Drop saved groups not found again for ``keep_days``; returns how many."""
    cutoff, dropped = time.time() - keep_days * 86400, 0
    for path in layout.discoveries_dir.glob("g-*.json") if layout.discoveries_dir.exists() else []:
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            dropped += 1
    return dropped


def load_group(layout: StoreLayout, name: str) -> dict:
    """The group ``name`` as `synthwatch discover` saved it, or ``StoreError`` saying why not."""
    if not isinstance(name, str) or not GROUP_NAME.fullmatch(name):
        raise StoreError(f"Expected a group name such as g-0123456789ab from `synthwatch discover`, but got "
                         f"{str(name)[:80]!r}. Run `synthwatch discover` and copy a group's name.")
    path = layout.discovery_path(name)
    try:
        group = json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"Expected a group {name} found by `synthwatch discover` in {layout.root}, but there is "
                         "none. Run `synthwatch discover` on this store and use a name it prints.") from None
    except (OSError, ValueError) as error:
        raise StoreError(f"Expected a readable group file {path}, but it could not be read ({error}). "
                         "Run `synthwatch discover` again to rewrite it.") from None
    ids = group.get("image_ids") if isinstance(group, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) and IMAGE_ID.fullmatch(i) for i in ids):
        raise StoreError(f"Expected a list of image ids in {path}, but got something else. "
                         "Run `synthwatch discover` again to rewrite it.")
    return group


def plan_group(layout: StoreLayout, name: str, generator: str) -> Plan:
    """An ingest plan of group ``name``'s kept uploads, each labelled synthetic from ``generator``
    in the source group ``discovery-<name>``; images whose upload was not kept are refused with
    the reason."""
    try:
        generator = check_name(generator, "the generator name")
    except ValueError as error:
        raise StoreError(f"Expected a generator name for the group's images, but {error}. "
                         "Pass --generator NAME.") from None
    plan = Plan()
    for image_id in load_group(layout, name)["image_ids"]:
        path = layout.upload_path(image_id)
        if path.is_file():
            plan.candidates.append(Candidate(path, "synthetic", generator, f"discovery-{name}"))
        else:
            plan.invalid.append(Invalid(image_id, "its upload was not kept (the service ran without "
                                                  "--keep-uploads, or the file was removed)"))
    if not plan.candidates:
        raise StoreError(f"Expected kept uploads of group {name}'s {len(plan.invalid)} images under "
                         f"{layout.uploads_dir}, but none is there. Serve with --keep-uploads so that the next "
                         "images of this kind are kept, then run `synthwatch discover` again.")
    return plan
