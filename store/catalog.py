"""The catalog: a DuckDB file of images, generators, quarantine, events and runs.

Connections are short-lived: a writer opens one per batch and closes it on commit, and readers
retry briefly while a batch is being committed, so the pipeline and the readers (CLI, HTTP
service) can share one file even though DuckDB allows a single writing process.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator, Sequence

import duckdb
import pyarrow as pa

from synthwatch.store.errors import StoreError
from synthwatch.store.layout import StoreLayout
from synthwatch.store.schema import SCHEMA_SQL, SCHEMA_VERSION, utc_now
from synthwatch.store.splits import adopt_legacy_splits, assign_new_groups, split_seed
from synthwatch.store.writer_intent import writer_intent

GENERATOR_NEW = "synthwatch.generator.new"
DRIFT_DETECTED = "synthwatch.drift.detected"
TRAFFIC_DRIFT = "synthwatch.traffic.drift"
TRAFFIC_DISCOVERED = "synthwatch.traffic.discovered"
HEAD_PROMOTED = "synthwatch.head.promoted"
HEAD_REJECTED = "synthwatch.head.rejected"


# Column order of ``images``; ImageRecord fields follow it.
IMAGE_COLUMNS = (
    "image_id", "label", "generator", "source", "original_path", "stored", "size_bytes",
    "width", "height", "format", "mode", "frames", "ingested_at", "run_id",
)
_IMAGE_TYPES = (
    pa.string(), pa.string(), pa.string(), pa.string(), pa.string(), pa.bool_(), pa.int64(),
    pa.int32(), pa.int32(), pa.string(), pa.string(), pa.int32(), pa.timestamp("us"), pa.string(),
)
_IMAGE_SCHEMA = pa.schema(list(zip(IMAGE_COLUMNS, _IMAGE_TYPES)))


@dataclass(frozen=True)
class ImageRecord:
    """One row of ``images``."""

    image_id: str
    label: str
    generator: str | None
    source: str
    original_path: str
    stored: bool
    size_bytes: int
    width: int
    height: int
    format: str
    mode: str
    frames: int
    ingested_at: datetime
    run_id: str


@dataclass(frozen=True)
class QuarantineRecord:
    """One rejected or conflicting file."""

    path: str
    reason: str
    kind: str = "rejected"
    image_id: str | None = None


@dataclass(frozen=True)
class KnownImage:
    """What the catalog already says about some bytes."""

    label: str
    generator: str | None
    original_path: str


@dataclass
class Batch:
    """Everything one commit writes, in one transaction."""

    images: list[ImageRecord] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    shipped_splits: dict[str, str] = field(default_factory=dict)  # group -> the dataset's split (store.splits)


class Catalog:
    """The DuckDB catalog of one store."""

    def __init__(self, layout: StoreLayout, *, lock_wait_s: float = 30.0) -> None:
        self.layout = layout
        self.lock_wait_s = lock_wait_s

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def connect(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits while another process holds the file. A damaged
        catalog raises one ``StoreError`` saying how to restore it, from opening or from a query."""
        path = str(self.layout.catalog_path)
        with nullcontext() if read_only else writer_intent(self.layout, timeout_s=self.lock_wait_s):
            with self._open(path, read_only) as con:
                yield con

    @contextmanager
    def _open(self, path: str, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.01
        while True:
            try:
                con = duckdb.connect(path, read_only=read_only)
                break
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    raise self._damaged(error) from None
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"Expected to open the catalog {path}, but it stayed busy for {self.lock_wait_s:.0f} s "
                        f"({error}). Retry when the running job has finished its batch."
                    ) from error
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
            except duckdb.Error as error:
                raise self._damaged(error) from None
        try:
            yield con
        except (duckdb.IOException, duckdb.InternalException, duckdb.SerializationException,
                duckdb.FatalException) as error:
            raise self._damaged(error) from None
        finally:
            con.close()

    def _damaged(self, error: Exception) -> StoreError:
        from synthwatch.store.snapshots import list_snapshots

        snapshots = list_snapshots(self.layout)
        remedy = (f"Run `synthwatch restore` to rebuild it from the latest snapshot ({snapshots[-1].name}); the "
                  "damaged file is kept beside it." if snapshots else
                  "There is no snapshot to restore it from: re-ingest the sources into a new store.")
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return StoreError(f"Expected a readable catalog at {self.layout.catalog_path}, but it is damaged ({first}). {remedy}")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside one transaction: all of it commits, or none of it."""
        with self.connect(read_only=False) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def create(self) -> None:
        """Create the store and its tables if they are missing, or migrate an older catalog
        (idempotent)."""
        self.layout.ensure_writable()
        with self.transaction() as con:
            con.execute(SCHEMA_SQL)
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"Expected catalog schema version {SCHEMA_VERSION} or older, but "
                    f"{self.layout.catalog_path} has version {row[0]}. Use the synthwatch "
                    "release that wrote this store."
                )
            elif int(row[0]) < SCHEMA_VERSION:
                self._migrate(con, int(row[0]))
            assign_new_groups(con)

    def _migrate(self, con: duckdb.DuckDBPyConnection, version: int) -> None:
        """Bring a catalog of schema ``version`` up to date, inside the caller's transaction."""
        if version < 3:  # where each split came from (a dataset's own, or the store's rule)
            con.execute("ALTER TABLE splits ADD COLUMN IF NOT EXISTS origin VARCHAR DEFAULT 'hash'")
        if version < 2:  # splits were recomputed on every read: store those the champion used
            adopt_legacy_splits(con, self.layout)
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])

    def schema_version(self) -> int:
        row = self.query("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row[0][0]) if row else 0

    # -- runs --------------------------------------------------------------------------------

    def start_run(self, command: str) -> str:
        run_id = uuid.uuid4().hex
        with self.transaction() as con:
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, NULL, 'running', NULL)",
                [run_id, command, utc_now()],
            )
        return run_id

    def finish_run(self, run_id: str, summary: dict) -> None:
        """Mark the run completed, then take a snapshot of the catalog (``store.snapshots``)."""
        from synthwatch.store.snapshots import write_snapshot

        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET finished_at = ?, status = 'completed', summary = ? "
                "WHERE run_id = ?",
                [utc_now(), json.dumps(summary), run_id],
            )
        with self.connect(read_only=True) as con:
            write_snapshot(self.layout, con)

    # -- images ------------------------------------------------------------------------------

    def lookup(self, image_ids: Sequence[str]) -> dict[str, KnownImage]:
        """What the catalog holds for each of ``image_ids`` that it knows."""
        if not image_ids:
            return {}
        with self.connect(read_only=True) as con:
            con.register("wanted", pa.table({"image_id": list(image_ids)}))
            rows = con.execute(
                "SELECT i.image_id, i.label, i.generator, i.original_path "
                "FROM images i JOIN wanted w USING (image_id)"
            ).fetchall()
        return {row[0]: KnownImage(row[1], row[2], row[3]) for row in rows}

    def commit(self, batch: Batch, run_id: str) -> list[str]:
        """Write one batch atomically; return generators seen for the first time."""
        now = utc_now()
        new_generators: list[str] = []
        with self.transaction() as con:
            if batch.images:
                table = pa.Table.from_pylist(
                    [record.__dict__ for record in batch.images], schema=_IMAGE_SCHEMA
                )
                con.register("batch_images", table)
                con.execute("INSERT INTO images SELECT * FROM batch_images")
                con.unregister("batch_images")
                assign_new_groups(con, shipped=batch.shipped_splits)
            counts: dict[str, int] = {}
            for record in batch.images:
                if record.generator is not None:
                    counts[record.generator] = counts.get(record.generator, 0) + 1
            for name, count in counts.items():
                updated = con.execute(
                    "UPDATE generators SET image_count = image_count + ? WHERE name = ? "
                    "RETURNING name",
                    [count, name],
                ).fetchall()
                if not updated:
                    con.execute("INSERT INTO generators VALUES (?, ?, ?)", [name, now, count])
                    self._log_event(con, GENERATOR_NEW, {"generator": name, "run_id": run_id})
                    new_generators.append(name)
            for item in _unique_quarantine(batch.quarantine):
                con.execute(
                    "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (path, reason) DO UPDATE SET last_seen = excluded.last_seen, "
                    "run_id = excluded.run_id",
                    [item.path, item.reason, item.kind, item.image_id, now, now, run_id],
                )
        return new_generators

    def remove_images(self, image_ids: Sequence[str]) -> int:
        """Delete images from the catalog (their blobs stay until collected); return how many."""
        with self.transaction() as con:
            con.register("gone", pa.table({"image_id": list(image_ids)}))
            counts = con.execute(
                "SELECT generator, count(*) FROM images JOIN gone USING (image_id) "
                "WHERE generator IS NOT NULL GROUP BY generator"
            ).fetchall()
            for name, count in counts:
                con.execute("UPDATE generators SET image_count = image_count - ? WHERE name = ?", [count, name])
            removed = con.execute(
                "DELETE FROM images WHERE image_id IN (SELECT image_id FROM gone) RETURNING image_id"
            ).fetchall()
            if removed:  # readers of an index's neighbour rows look here for images gone since it was written
                con.execute("INSERT INTO meta VALUES ('images_removed', ?) ON CONFLICT (key) DO UPDATE SET "
                            "value = (meta.value::BIGINT + excluded.value::BIGINT)::VARCHAR", [str(len(removed))])
        return len(removed)

    REMOVED_SQL = "SELECT coalesce(max(value::BIGINT), 0) FROM meta WHERE key = 'images_removed'"

    def images_removed(self) -> int:
        """How many images were ever removed from the catalog (0 when none was)."""
        return int(self.query(self.REMOVED_SQL)[0][0])

    def log_event(self, name: str, payload: dict) -> None:
        """Append one event to the catalog's event log (in its own transaction)."""
        with self.transaction() as con:
            self._log_event(con, name, payload)

    def pending_events(self) -> list[dict]:
        """Events not yet forwarded to Prefect, oldest first."""
        return [e for e in self.events() if e["forwarded_at"] is None]

    def mark_forwarded(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        with self.transaction() as con:
            con.register("done", pa.table({"event_id": list(event_ids)}))
            con.execute("UPDATE events SET forwarded_at = ? WHERE event_id IN (SELECT event_id FROM done)", [utc_now()])

    def events(self, name: str | None = None) -> list[dict]:
        """Logged events, oldest first, optionally of one name."""
        if not self.layout.exists():
            return []
        rows = self.query("SELECT event_id, name, payload, occurred_at, forwarded_at FROM events "
                          "WHERE ? IS NULL OR name = ? ORDER BY occurred_at, event_id", [name, name])
        return [{"event_id": r[0], "name": r[1], "payload": json.loads(r[2]), "occurred_at": r[3].isoformat(),
                 "forwarded_at": r[4].isoformat() if r[4] else None} for r in rows]

    @staticmethod
    def _log_event(con: duckdb.DuckDBPyConnection, name: str, payload: dict) -> None:
        con.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, NULL)",
            [uuid.uuid4().hex, name, json.dumps(payload, ensure_ascii=False), utc_now()],
        )

    # -- reading -----------------------------------------------------------------------------

    def status(self) -> dict:
        """Counts of what the store holds, as ``synthwatch status`` reports them."""
        empty = {
            "images": {"real": 0, "synthetic": 0},
            "generators": {},
            "quarantined": 0,
            "conflicts": 0,
            "events": 0,
            "last_run": None,
        }
        if not self.layout.exists():
            return empty
        with self.connect(read_only=True) as con:
            labels = dict(con.execute("SELECT label, count(*) FROM images GROUP BY label").fetchall())
            generators = con.execute(
                "SELECT name, image_count FROM generators ORDER BY name"
            ).fetchall()
            kinds = dict(con.execute("SELECT kind, count(*) FROM quarantine GROUP BY kind").fetchall())
            events = con.execute("SELECT count(*) FROM events").fetchone()[0]
            last = con.execute(
                "SELECT run_id, command, started_at, finished_at, status FROM runs "
                "ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
        return {
            "images": {"real": labels.get("real", 0), "synthetic": labels.get("synthetic", 0)},
            "generators": {name: count for name, count in generators},
            "quarantined": kinds.get("rejected", 0),
            "conflicts": kinds.get("conflict", 0),
            "events": events,
            "last_run": None if last is None else {
                "run_id": last[0],
                "command": last[1],
                "started_at": last[2].isoformat(),
                "finished_at": last[3].isoformat() if last[3] else None,
                "status": last[4],
            },
        }

    def group_splits(self) -> dict[str, str]:
        """``{source group: "train" | "val" | "test"}``: the one reader of the stored splits
        (``store.splits``). A catalog from before splits were stored is migrated first."""
        if self.schema_version() < SCHEMA_VERSION:
            self.create()
        rows = self.query("SELECT source, split FROM splits ORDER BY source")
        if self.query("SELECT count(*) FROM images WHERE source NOT IN (SELECT source FROM splits)")[0][0]:
            self.create()  # groups written without a split (by hand): assign them once, now
            rows = self.query("SELECT source, split FROM splits ORDER BY source")
        return dict(rows)

    def shipped_groups(self) -> set[str]:
        """Source groups whose split is the one their dataset ships (origin ``dataset``)."""
        self.group_splits()  # migrates an older catalog first
        return {row[0] for row in self.query("SELECT source FROM splits WHERE origin = 'dataset'")}

    def split_seed(self) -> int:
        """The seed the store assigns new groups' splits with."""
        with self.connect(read_only=True) as con:
            return split_seed(con)

    def generators_by_group(self) -> dict[str, set[str]]:
        """``{source group: generators of its images}``, ``''`` standing for real images."""
        groups: dict[str, set[str]] = {}
        for source, generator in self.query("SELECT DISTINCT source, coalesce(generator, '') FROM images"):
            groups.setdefault(source, set()).add(generator)
        return groups

    def synthetic_ids_since(self, since: str) -> set[str]:
        """Ids of synthetic images ingested after the ISO timestamp ``since``."""
        return {row[0] for row in self.query(
            "SELECT image_id FROM images WHERE label = 'synthetic' AND ingested_at > ?::TIMESTAMP", [since])}

    def arrival_times(self, image_ids=None) -> dict[str, float]:
        """``{image_id: ingested_at}`` (seconds since the epoch) of every image, or of those in
        ``image_ids`` (repeats allowed)."""
        if image_ids is None:
            table = self.arrow("SELECT image_id, epoch(ingested_at) AS at FROM images")
        else:
            with self.connect(read_only=True) as con:
                con.register("wanted", pa.table({"image_id": pa.array(sorted(set(image_ids)), pa.string())}))
                table = con.sql("SELECT image_id, epoch(ingested_at) AS at FROM images "
                                "JOIN wanted USING (image_id)").to_arrow_table()
        return dict(zip(table.column("image_id").to_pylist(), table.column("at").to_pylist()))

    def image_files(self) -> pa.Table:
        """``image_id``, ``generator`` ('' for real), ``source``, ``stored`` and ``original_path``
        of every image, ordered by id."""
        return self.arrow("SELECT image_id, coalesce(generator, '') AS generator, source, stored, original_path "
                          "FROM images ORDER BY image_id")

    def image_labels(self) -> dict[str, tuple[str, str | None, str, str]]:
        """``{image_id: (label, generator, original_path, source)}`` of every image."""
        return {row[0]: row[1:] for row in self.query(
            "SELECT image_id, label, generator, original_path, source FROM images")}

    def arrow(self, sql: str, params: Sequence | None = None) -> pa.Table:
        """Run a read-only query and return its rows as an Arrow table."""
        with self.connect(read_only=True) as con:
            return con.sql(sql, params=params or None).to_arrow_table()

    def query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        """Run a read-only query (for reports, checks and tests)."""
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).fetchall()


def _unique_quarantine(items: Sequence[QuarantineRecord]) -> list[QuarantineRecord]:
    """Drop repeats of the same (path, reason) so one statement never upserts a key twice."""
    seen: dict[tuple[str, str], QuarantineRecord] = {}
    for item in items:
        seen.setdefault((item.path, item.reason), item)
    return list(seen.values())
