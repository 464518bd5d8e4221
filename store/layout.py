"""Where things live inside a store root."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from synthwatch.store.errors import StoreError


@dataclass(frozen=True)
class StoreLayout:
    """Paths inside one store root. Creating the object touches nothing on disk."""

    root: Path

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs"

    @property
    def lock_path(self) -> Path:
        return self.root / "write.lock"

    @property
    def vectors_dir(self) -> Path:
        return self.root / "vectors"

    def lock_for(self, job: str) -> Path:
        """A lock file for one kind of job (``embed-<backbone id>``), beside the catalog's."""
        return self.root / "locks" / f"{job}.lock"

    @property
    def predictions_dir(self) -> Path:
        """The prediction log (Parquet files, see ``store.predictions``)."""
        return self.root / "predictions"

    @property
    def uploads_dir(self) -> Path:
        """Uploaded images kept for labelling (``serve --keep-uploads``)."""
        return self.root / "uploads"

    def upload_path(self, image_id: str) -> Path:
        """Where a kept upload lies, by its sha256."""
        return self.uploads_dir / image_id[:2] / image_id

    @property
    def discoveries_dir(self) -> Path:
        """Groups of unfamiliar traffic found by `synthwatch discover` (see ``store.discoveries``)."""
        return self.root / "discoveries"

    def discovery_path(self, group: str) -> Path:
        return self.discoveries_dir / f"{group}.json"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def report_path(self, version: str) -> Path:
        """Where the evaluation report of head ``version`` is kept (written by retrain)."""
        return self.reports_dir / f"{version}.html"

    def blob_path(self, image_id: str) -> Path:
        """Content-addressed location of an original: ``blobs/ab/cd/<sha256>``."""
        return self.blobs_dir / image_id[:2] / image_id[2:4] / image_id

    def exists(self) -> bool:
        return self.catalog_path.exists()

    def ensure_writable(self) -> None:
        """Create the root if needed and prove it is writable, or raise ``StoreError``."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.blobs_dir.mkdir(exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as error:
            raise StoreError(
                f"Expected a writable store directory, but {self.root} is not writable "
                f"({error.strerror or error}). Pass --store DIR or set SYNTHWATCH_STORE "
                "to a directory you can write."
            ) from error
        if not os.access(self.root, os.W_OK):
            raise StoreError(
                f"Expected a writable store directory, but {self.root} is read-only. "
                "Pass --store DIR or set SYNTHWATCH_STORE to a directory you can write."
            )
