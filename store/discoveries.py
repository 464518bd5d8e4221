"""Groups found by `synthwatch discover`, kept under ``<store>/discoveries/`` so that a person
can name one and ingest it later: ``synthwatch ingest --from-discovery GROUP --generator NAME``.

A group's name is derived from its members (``g-`` and the start of the sha256 of its sorted
image ids), so the same group found again keeps its name and a file is never half written
(atomic). Its images are the uploads the service kept (``serve --keep-uploads``): the prediction
log holds only their sha256.
"""

from __future__ import annotations

import hashlib
import json
import re

from synthwatch.store.atomic import atomic_write_bytes
from synthwatch.store.candidates import Candidate, Invalid, Plan, check_name
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.originals import IMAGE_ID

GROUP_NAME = re.compile(r"g-[0-9a-f]{12}")


def group_name(image_ids: list[str]) -> str:
    """The name of the group of ``image_ids`` (order does not matter)."""
    return "g-" + hashlib.sha256("\n".join(sorted(image_ids)).encode()).hexdigest()[:12]


def save_group(layout: StoreLayout, group: dict) -> bool:
    """Keep ``group`` (a `discover` group with ``group`` and ``image_ids``) for a later ingest;
    returns whether it was found for the first time."""
    path = layout.discovery_path(group["group"])
    first = not path.exists()
    atomic_write_bytes(path, json.dumps(group, indent=1).encode())
    return first


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
