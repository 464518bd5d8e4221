"""Object-store prefixes, staged into the store before ingestion: any URI pyarrow has a filesystem
for (``s3://``, ``gs://``, ``abfs://``, ``hdfs://``, ``file://``), else any fsspec knows
(``hf://datasets/...``, ``http(s)://`` with aiohttp, ``memory://``), read through pyarrow's
fsspec handler so both kinds are listed, limited and refused the same way.

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
    """``(filesystem, path)`` of a URI; raises ``StoreError`` naming it if it cannot be opened."""
    import pyarrow.fs as pafs

    try:
        filesystem, path = _filesystem_of(uri)
        info = filesystem.get_file_info(path)
    except StoreError:
        raise
    except Exception as error:  # each filesystem fails its own way (OSError, ArrowInvalid, HTTP and cloud SDK errors)
        raise StoreError(f"Expected an object-store prefix synthwatch can open, but {uri} failed: "
                         f"{type(error).__name__}: {error}. Check the scheme (s3://, gs://, abfs://, hdfs://, file://, "
                         "or any fsspec knows, such as hf://), the network and the credentials.") from None
    if info.type == pafs.FileType.NotFound:
        raise StoreError(f"Expected objects under {uri}, but it does not exist.")
    return filesystem, path


def _filesystem_of(uri: str):
    """pyarrow's own filesystem for ``uri``, else fsspec's wrapped as a pyarrow filesystem."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except pa.ArrowInvalid as error:
        if "Unrecognized filesystem type" not in str(error):
            raise
    scheme = uri.split("://", 1)[0]
    try:
        import fsspec

        filesystem, path = fsspec.core.url_to_fs(uri)
    except ImportError as missing:
        raise StoreError(f"Expected the packages fsspec's {scheme}:// filesystem needs, but {missing}. "
                         "Install them into synthwatch's environment.") from None
    except ValueError:
        raise StoreError(f"Expected a URI scheme pyarrow or fsspec has a filesystem for, but {uri} has {scheme}://. "
                         "Use s3://, gs://, abfs://, hdfs://, file://, or a scheme of an installed fsspec "
                         "implementation (hf://).") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path


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
        too_large = limits.too_large(info.size) if info.size is not None else None  # unknown: checked on read
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
