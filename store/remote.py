"""Object-store prefixes (any pyarrow filesystem URI: ``s3://``, ``gs://``, ``abfs://``, ``hdfs://``,
``file://``), staged into the store before ingestion.

New or changed objects under the prefix (by size and modification time) are downloaded into
``staging/<prefix key>/`` keeping their relative paths, so the folder convention (``real/``,
``synthetic/<generator>/``) and flat labels work as for local folders; what was staged is
recorded in ``.staged.json`` so a later cycle downloads only what is new. Object keys that would
escape the staging folder (``..``, absolute) are refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

from synthwatch.embeddings.decode import DecodeLimits
from synthwatch.store.atomic import atomic_write_bytes
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.candidates import is_image_name

INDEX = ".staged.json"


def open_prefix(uri: str):
    """``(filesystem, path)`` of a URI; raises ``StoreError`` naming it if pyarrow cannot open it."""
    import pyarrow.fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
    except (OSError, ValueError) as error:  # pyarrow.ArrowInvalid is a ValueError
        raise StoreError(f"Expected an object-store prefix pyarrow can open, but {uri} failed: {error}. "
                         "Check the scheme (s3://, gs://, abfs://, hdfs://, file://) and the credentials.") from None
    if info.type == pafs.FileType.NotFound:
        raise StoreError(f"Expected objects under {uri}, but it does not exist.")
    return filesystem, path


def stage(layout: StoreLayout, uri: str, *, limits: DecodeLimits = DecodeLimits()) -> tuple[Path, dict[str, str], dict]:
    """Download new image objects under ``uri`` (none larger than ``limits.max_bytes``); returns
    (staging folder, {local path: object URI} of the files staged now, counts). Local paths are
    resolved, as the ingestion plan resolves them, so the two match whatever the store root."""
    import pyarrow.fs as pafs

    filesystem, root = open_prefix(uri)
    folder = (layout.root / "staging" / hashlib.sha256(uri.encode()).hexdigest()[:16]).resolve()
    index_path = folder / INDEX
    seen = json.loads(index_path.read_text()) if index_path.exists() else {}
    infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    staged, counts = {}, {"listed": 0, "downloaded": 0, "unchanged": 0, "refused": []}
    for info in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
        relative = PurePosixPath(info.path).relative_to(PurePosixPath(root)) if root else PurePosixPath(info.path)
        if not is_image_name(Path(relative.name)):
            continue
        counts["listed"] += 1
        if relative.is_absolute() or ".." in relative.parts:
            counts["refused"].append(f"{info.path}: the key escapes the prefix")
            continue
        stamp = [info.size, info.mtime_ns]
        if seen.get(str(relative)) == stamp:
            counts["unchanged"] += 1
            continue
        too_large = limits.too_large(info.size)
        if too_large:
            counts["refused"].append(f"{info.path}: {too_large}")
            continue
        with filesystem.open_input_stream(info.path) as stream:
            data = stream.read(limits.max_bytes + 1)
        if limits.too_large(len(data)):  # it grew after listing
            counts["refused"].append(f"{info.path}: {limits.too_large(len(data))}")
            continue
        local = folder / relative
        atomic_write_bytes(local, data)
        staged[str(local)] = f"{uri.rstrip('/')}/{relative.as_posix()}"
        seen[str(relative)] = stamp
        counts["downloaded"] += 1
    return folder, staged, {**counts, "index": seen}


def commit_staged(folder: Path, index: dict, staged: dict[str, str]) -> None:
    """After ingestion: remember what was staged, and drop the copies (the blobs hold them now)."""
    atomic_write_bytes(folder / INDEX, json.dumps(index, sort_keys=True).encode())
    for local in staged:
        Path(local).unlink(missing_ok=True)
