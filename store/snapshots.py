"""Catalog snapshots in plain Parquet, and rebuilding a damaged catalog from the latest one.

After every run that finished (ingest, embed), each catalog table is copied to
``snapshots/catalog-<time>/<table>.parquet`` with a ``snapshot.json`` written last, under a
temporary name renamed into place, so a snapshot is whole or absent; the newest
``SNAPSHOTS_KEPT`` are kept. Blobs, vectors, indexes and heads live outside the catalog, so a
restored catalog lacks only what runs committed after its snapshot, and re-running those runs
(ingest is idempotent) brings it back; ``restore`` counts the stored originals it does not name.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import duckdb

from synthwatch.store.schema import SCHEMA_SQL, utc_now
from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.lock import write_lock

SNAPSHOTS_KEPT = 3
_MANIFEST = "snapshot.json"


def snapshots_dir(layout: StoreLayout) -> Path:
    return layout.root / "snapshots"


def write_snapshot(layout: StoreLayout, con: duckdb.DuckDBPyConnection) -> Path:
    """Copy every table of the catalog open on ``con`` into a new snapshot; drop old ones."""
    stamp = f"{utc_now().strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}"  # two writers never collide
    final = snapshots_dir(layout) / f"catalog-{stamp}"
    temporary = snapshots_dir(layout) / f".tmp-{stamp}"
    temporary.mkdir(parents=True)
    try:
        tables = [row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]
        rows = {}
        for table in tables:
            target = str(temporary / f"{table}.parquet").replace("'", "''")
            con.execute(f'COPY (SELECT * FROM "{table}") TO \'{target}\' (FORMAT parquet, COMPRESSION zstd)')
            rows[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        (temporary / _MANIFEST).write_text(json.dumps({"taken_at": utc_now().isoformat(), "rows": rows}))
        os.replace(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    for old in list_snapshots(layout)[:-SNAPSHOTS_KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_snapshots(layout: StoreLayout) -> list[Path]:
    """Whole snapshots, oldest first."""
    folder = snapshots_dir(layout)
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith("catalog-") and (p / _MANIFEST).is_file())


def restore_catalog(layout: StoreLayout, snapshot: Path | None = None) -> dict:
    """Rebuild ``catalog.duckdb`` from ``snapshot`` (default: the latest); the old file is kept
    beside it as ``catalog.duckdb.damaged-<time>``. Returns what was restored and what is missing."""
    snapshots = list_snapshots(layout)
    snapshot = snapshot or (snapshots[-1] if snapshots else None)
    if snapshot is None or not (snapshot / _MANIFEST).is_file():
        raise StoreError(f"Expected a catalog snapshot under {snapshots_dir(layout)}, but there is none. Snapshots "
                         "are taken after every finished ingest or embed; without one, re-ingest the sources "
                         "into a new store (blobs and vectors are kept).")
    manifest = json.loads((snapshot / _MANIFEST).read_text())
    with write_lock(layout.lock_path):
        rebuilt = layout.catalog_path.with_name(f".tmp-catalog-{uuid.uuid4().hex[:6]}.duckdb")
        try:
            con = duckdb.connect(str(rebuilt))
            try:
                con.execute(SCHEMA_SQL)
                for table in manifest["rows"]:
                    source = str(snapshot / f"{table}.parquet").replace("'", "''")
                    con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM read_parquet(\'{source}\')')
                rows = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in manifest["rows"]}
                named = {row[0] for row in con.execute("SELECT image_id FROM images WHERE stored").fetchall()}
                con.execute("CHECKPOINT")
            finally:
                con.close()
            if rows != manifest["rows"]:
                raise StoreError(f"Expected the snapshot {snapshot} to restore {manifest['rows']} rows, but got {rows}.")
            kept = None
            stamp = utc_now().strftime("%Y%m%dT%H%M%S")
            for suffix in ("", ".wal"):
                old = Path(str(layout.catalog_path) + suffix)
                if old.exists():
                    kept = kept or old.with_name(f"{layout.catalog_path.name}.damaged-{stamp}")
                    os.replace(old, Path(str(kept) + suffix))
            os.replace(rebuilt, layout.catalog_path)
        finally:
            rebuilt.unlink(missing_ok=True)
    unnamed = sum(1 for blob in layout.blobs_dir.rglob("*") if blob.is_file() and ".tmp-" not in blob.name
                  and blob.name not in named) if layout.blobs_dir.exists() else 0
    return {"snapshot": str(snapshot), "taken_at": manifest["taken_at"], "rows": rows,
            "damaged_catalog_kept": str(kept) if kept else None, "originals_not_in_catalog": unnamed}
