"""One read-only catalog connection a process reuses across lookups, where the single-writer rule
allows: DuckDB lets one process write or many read, so a reader that held a connection open for
good would lock the pipeline out.

Writers announce themselves (``store.writer_intent``): they hold an exclusive ``flock`` on
``catalog.writer`` while a write connection is open or being waited for. Before each query the
reader probes that lock: free, it reuses its connection (about 1 ms a query instead of about 11 ms
to open the file); held, it closes its connection and opens one per query, as every reader did
before, until the writer is done. An idle connection is closed after ``IDLE_CLOSE_S``, so a writer
that arrives between queries waits at most that long. A writer killed with SIGKILL drops its
``flock`` with its process.
"""

from __future__ import annotations

import threading
import time
from typing import Sequence

import duckdb

from synthwatch.store.catalog import Catalog
from synthwatch.store.layout import StoreLayout
from synthwatch.store.writer_intent import on_writer, writer_waiting

IDLE_CLOSE_S = 0.5


class SharedReader:
    """Read-only queries over one reused connection (see the module docstring); thread-safe."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self.catalog = Catalog(layout)
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._last_use = 0.0
        self._closer: threading.Timer | None = None
        on_writer(layout, self.close)

    def query(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        if writer_waiting(self.layout):
            self.close()
            return self.catalog.query(sql, params)
        with self._lock:
            if self._con is None:
                try:
                    self._con = duckdb.connect(str(self.layout.catalog_path), read_only=True)
                except duckdb.Error:  # busy or damaged: the per-query path waits, or names the damage
                    return self.catalog.query(sql, params)
            try:
                return self._con.execute(sql, params or []).fetchall()
            finally:
                self._last_use = time.monotonic()
                self._schedule_close()

    def _schedule_close(self) -> None:
        if self._closer is None or not self._closer.is_alive():
            self._closer = threading.Timer(IDLE_CLOSE_S, self._close_if_idle)
            self._closer.daemon = True
            self._closer.start()

    def _close_if_idle(self) -> None:
        with self._lock:
            idle = time.monotonic() - self._last_use
            if idle < IDLE_CLOSE_S and self._con is not None:
                self._closer = None
                self._schedule_close()
                return
            self._close_locked()

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


_READERS: dict[str, SharedReader] = {}
_READERS_GUARD = threading.Lock()


def shared_reader(layout: StoreLayout) -> SharedReader:
    """This process's reader of ``layout``'s catalog (one per store, made on first use)."""
    key = str(layout.root.resolve())
    with _READERS_GUARD:
        if key not in _READERS:
            _READERS[key] = SharedReader(layout)
        return _READERS[key]
