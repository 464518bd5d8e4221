"""Writers of a store's catalog announce themselves, so readers that keep a connection open
(``store.catalog_reader``) step aside: DuckDB lets one process write or many read.

A writer holds an exclusive ``flock`` on ``catalog.writer`` while a write connection is open or
being waited for; threads and nested writers of one process share it. A writer killed with
SIGKILL drops it with its process.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from synthwatch.store.errors import StoreBusy
from synthwatch.store.layout import StoreLayout

def intent_path(layout: StoreLayout) -> Path:
    return layout.root / "catalog.writer"


_STEP_ASIDE: dict[str, Callable[[], None]] = {}  # store root -> close this process's reader
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
        step_aside = _STEP_ASIDE.get(str(layout.root.resolve()))
        if step_aside is not None:
            step_aside()  # DuckDB opens a file one way per process: this process's reader closes first
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




def on_writer(layout: StoreLayout, step_aside: Callable[[], None]) -> None:
    """Call ``step_aside`` whenever a writer of this process takes the intent lock of ``layout``."""
    with _HELD_GUARD:
        _STEP_ASIDE[str(layout.root.resolve())] = step_aside
