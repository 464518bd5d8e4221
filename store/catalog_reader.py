"""One read-only catalog connection a process reuses across lookups, where the single-writer rule
allows: DuckDB lets one process write or many read, so a reader that held a connection open for
good would lock the pipeline out.

Writers announce themselves: :func:`writer_intent` holds an exclusive ``flock`` on
``catalog.writer`` while a write connection is open or being waited for. Before each query the
reader probes that lock: free, it reuses its connection (about 1 ms a query instead of about 11 ms
to open the file); held, it closes its connection and opens one per query, as every reader did
before, until the writer is done. An idle connection is closed after ``IDLE_CLOSE_S``, so a writer
that arrives between queries waits at most that long. A writer killed with SIGKILL drops its
``flock`` with its process.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import duckdb

from synthwatch.store.layout import StoreLayout

IDLE_CLOSE_S = 0.5


def intent_path(layout: StoreLayout) -> Path:
    return layout.root / "catalog.writer"


_HELD: dict[str, list] = {}  # intent path -> [descriptor, depth]: one flock per process, nested freely
_HELD_GUARD = threading.Lock()


@contextmanager
def writer_intent(layout: StoreLayout, *, timeout_s: float) -> Iterator[None]:
    """Hold the writer-intent lock, waiting up to ``timeout_s`` while another process holds it.
    Threads and nested writers of one process share it (DuckDB lets one process's connections
    write together)."""
    key = str(intent_path(layout))
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is None:
        held = [_take(layout, timeout_s), 1]
        reader = _READERS.get(str(layout.root.resolve()))
        if reader is not None:
            reader.close()  # DuckDB opens a file one way per process: this process's reader steps aside
        with _HELD_GUARD:
            if key in _HELD:  # another thread took it meanwhile: share that one
                os.close(held[0])
                held = _HELD[key]
                held[1] += 1
            else:
                _HELD[key] = held
    try:
        yield
    finally:
        with _HELD_GUARD:
            held[1] -= 1
            if held[1] == 0:
                del _HELD[key]
                os.close(held[0])  # drops the flock


def _take(layout: StoreLayout, timeout_s: float) -> int:
    from synthwatch.store.errors import StoreBusy

    fd = os.open(intent_path(layout), os.O_RDWR | os.O_CREAT, 0o644)
    deadline, delay = time.monotonic() + timeout_s, 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise StoreBusy(f"Expected to write the catalog {layout.catalog_path}, but another writer held it "
                                f"for {timeout_s:.0f} s. Retry when the running job has finished its batch.") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def writer_waiting(layout: StoreLayout) -> bool:
    """Whether a writer holds (or waits behind the holder of) the writer-intent lock."""
    try:
        fd = os.open(intent_path(layout), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class SharedReader:
    """Read-only queries over one reused connection (see the module docstring); thread-safe."""

    def __init__(self, layout: StoreLayout) -> None:
        from synthwatch.store.catalog import Catalog

        self.layout = layout
        self.catalog = Catalog(layout)
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._last_use = 0.0
        self._closer: threading.Timer | None = None

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


def shared_reader(layout: StoreLayout) -> SharedReader:
    """This process's reader of ``layout``'s catalog (one per store, made on first use)."""
    key = str(layout.root.resolve())
    with _HELD_GUARD:
        if key not in _READERS:
            _READERS[key] = SharedReader(layout)
        return _READERS[key]
